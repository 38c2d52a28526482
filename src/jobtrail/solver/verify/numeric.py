"""Numeric building blocks of verification: mpmath callables, adaptive precision, roots.

Invariant: every number here comes from mpmath (or ``math`` for coarse
sampling) evaluating a SymPy expression compiled by ``evaluate.build``; nothing
calls SymPy's ``evalf``/``N``/``simplify``/``equals``, whose results can
depend on set ordering and so on the process's hash seed. Every loop checks
a ``Budget`` so a check ends in bounded time.

Source:
    mpmath precision contexts (``workdps``), ``quad``, ``diff``, ``limit``,
    ``polyroots``: https://mpmath.org/doc/current/
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.clock import monotonic_s
from jobtrail.solver.verify.evaluate import Unsupported, build

__all__ = [
    "PRECISIONS",
    "Budget",
    "Estimate",
    "OutOfTimeError",
    "compile_expr",
    "fmt",
    "parameter_values",
    "real_roots",
    "stable",
]

PRECISIONS: tuple[int, ...] = (30, 60, 120, 240)
"""Decimal digits tried in turn until two evaluations agree."""

_ZERO_ORDERS = PRECISIONS[-1] - PRECISIONS[0] - 30
"""Orders of magnitude the value must shrink by, over all precisions, to be read as 0."""

_FAILURES = (ArithmeticError, ValueError, TypeError, OverflowError, NameError,
             AttributeError, mpmath.libmp.NoConvergence)


class OutOfTimeError(Exception):
    """A check ran past its budget (caught inside the verify package only)."""


class Budget:
    """A wall-clock allowance for one verification, in seconds."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline_s = monotonic_s() + seconds

    def check(self) -> None:
        """Raise OutOfTimeError once the allowance is spent."""
        if self.expired():
            raise OutOfTimeError(f"verification exceeded its {self.seconds:g} s budget")

    def expired(self) -> bool:
        """True once the allowance is spent."""
        return monotonic_s() > self.deadline_s

    def part(self, seconds: float) -> Budget:
        """A budget of *seconds*, or of what is left of this one if that is less."""
        return Budget(max(0.0, min(seconds, self.deadline_s - monotonic_s())))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A check's own value for a problem whose symbolic answer it contradicted.

    Attributes:
        text: The value, 15 significant digits (``"2.50000000000000"``).
        robust: True only if the check proved the symbolic answer wrong,
            and every digit of this value right, by a method that cannot
            miss part of the problem; what that takes is stated by each
            check (``check_arithmetic``, ``located.estimate`` for
            ``check_definite_integral``). ``settle()`` lets only a robust
            value replace the symbolic one.
        basis: One sentence saying what makes the value robust, or why it is not.
    """

    text: str
    robust: bool
    basis: str


def compile_expr(expr: sympy.Basic, variables: Sequence[sympy.Symbol],
                 module: str = "mpmath") -> Callable[..., Any]:
    """Compile *expr* into a function of *variables* (see ``evaluate.build``).

    Args:
        expr: A SymPy expression (its own free symbols must be among *variables*).
        variables: The arguments, in order.
        module: ``"mpmath"`` (precision from the ambient ``mpmath.mp``) or
            ``"math"`` (floats, for coarse sampling).

    Returns:
        A callable; it may raise ArithmeticError/ValueError where undefined.

    Raises:
        Unsupported: *expr* holds a function with no numeric counterpart.
    """
    fn = build(expr, variables, floats=module == "math")
    return lambda *args: fn(args)


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Return ``fn(*args)`` as an mpmath number, or None where it is undefined or infinite."""
    try:
        value = fn(*args)
        value = mpmath.mpmathify(value)
    except _FAILURES:
        return None
    if not mpmath.isfinite(value):
        return None
    return value


def stable(fn: Callable[..., Any], args: Sequence[Any] = (),
           budget: Budget | None = None) -> tuple[Any, int] | None:
    """Evaluate ``fn(*args)`` at rising precision until two precisions agree.

    Agreement is 25 significant digits of a non-zero value; a value that is
    at the last precision ``_ZERO_ORDERS`` orders of magnitude below the
    largest seen before (it is 0 computed with rounding noise, or exactly 0
    at every precision) is reported as 0. Two exact zeros do not agree: a
    tiny value (1e-40 computed as 1 - 1 + 1e-40, or -1.25e-61 as
    sqrt(10^40 + 1) - 10^20 - 5*10^-21, exactly 0 at 30 and 60 digits)
    stops shrinking once a precision resolves it, and is reported.
    Cancellation therefore cannot turn a small non-zero value into 0 nor the
    reverse.

    Args:
        fn: An mpmath callable from ``compile_expr``.
        args: Its arguments as Python numbers or strings (converted at each precision).
        budget: Time allowance checked between precisions.

    Returns:
        ``(value, digits)``: the value at the precision that settled it and
        that precision; None if undefined, or if no two precisions agreed.
    """
    previous, largest = None, mpmath.mpf(0)
    for dps in PRECISIONS:
        if budget is not None:
            budget.check()
        with mpmath.workdps(dps):
            value = call(fn, *(mpmath.mpmathify(a) for a in args))
            if value is None:
                return None
            size = abs(value)
            # two exact zeros do not agree: cancellation gives 0 until a precision resolves it
            if previous is not None and size != 0 and abs(value - previous) <= mpmath.mpf(
                    10) ** -25 * size:
                return +value, dps
            if dps != PRECISIONS[-1]:
                largest = max(largest, size)
            previous = value
    if previous is not None and abs(previous) <= largest * mpmath.mpf(10) ** -_ZERO_ORDERS:
        # rounding noise of a zero shrinks with the precision (or is 0 at every precision);
        # a small true value stops shrinking once a precision resolves it
        return mpmath.mpf(0), PRECISIONS[-1]
    return None

def fmt(value: Any, digits: int = 15, strip: bool = True) -> str:
    """Print an mpmath value with *digits* significant digits (complex as a + b*I).

    Args:
        value: The number.
        digits: Significant digits.
        strip: Drop trailing zeros (``2.0``); False keeps them (``2.00000000000000``).
    """
    value = mpmath.mpmathify(value)
    if isinstance(value, mpmath.mpc):
        if abs(value.imag) <= mpmath.mpf(10) ** -digits * max(1, abs(value.real)):
            value = value.real
        else:
            return f"{mpmath.nstr(value.real, digits)} + {mpmath.nstr(value.imag, digits)}*I"
    return str(mpmath.nstr(value, digits, strip_zeros=strip))


def parameter_values(symbols: Sequence[sympy.Symbol]) -> dict[sympy.Symbol, sympy.Rational]:
    """Return fixed, unremarkable values for parameters (by name order): 0.83, 1.37, ..."""
    picks = ("83/100", "137/100", "211/100", "59/100", "307/100", "149/100")
    ordered = sorted(symbols, key=lambda s: s.name)
    return {s: sympy.Rational(picks[i % len(picks)]) + i // len(picks)
            for i, s in enumerate(ordered)}


def _float_fn(expr: sympy.Basic, variable: sympy.Symbol) -> Callable[[float], float | None]:
    """A float function of one variable: math module, mpmath at 15 digits as a fallback."""
    try:
        fast: Callable[..., Any] | None = compile_expr(expr, [variable], "math")
    except Unsupported:
        fast = None
    slow = compile_expr(expr, [variable])

    def f(x: float) -> float | None:
        if fast is not None:
            try:
                y = float(fast(x))
            except (ArithmeticError, ValueError, OverflowError):
                return None  # undefined (or not real) at x
            except TypeError:
                pass  # a complex intermediate: let mpmath decide
            else:
                return y if math.isfinite(y) else None
        with mpmath.workdps(15):
            v = call(slow, mpmath.mpf(x))
        if v is None:
            return None
        if isinstance(v, mpmath.mpc):
            if abs(v.imag) > 1e-12 * (1 + abs(v.real)):
                return None
            v = v.real
        return float(v)

    return f


def _bisect(f: Callable[[float], float | None], a: float, fa: float, b: float) -> float | None:
    for _ in range(60):
        m = (a + b) / 2
        fm = f(m)
        if fm is None:
            return None
        if fm == 0:
            return m
        if (fm > 0) == (fa > 0):
            a, fa = m, fm
        else:
            b = m
        if b - a <= 1e-14 * (1 + abs(a)):
            break
    return (a + b) / 2


def _golden_min(g: Callable[[float], float | None], a: float, b: float) -> float | None:
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(80):
        gc, gd = g(c), g(d)
        if gc is None or gd is None:
            return None
        if gc < gd:
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
        if b - a <= 1e-13 * (1 + abs(a)):
            break
    return (a + b) / 2


def real_roots(expr: sympy.Expr, variable: sympy.Symbol, window: tuple[float, float],
               budget: Budget, samples: int = 1001) -> list[float]:
    """Find the real roots of *expr* in *window* by sampling; each confirmed at 40 digits.

    Sign changes are bisected; small local minima of ``|expr|`` without a sign
    change (double roots) are refined by golden-section search. A candidate
    is kept only if ``|expr|`` there is below ``1e-9`` times the size of its
    terms at 40 digits (a pole or jump changes sign too, and is dropped).

    Args:
        expr: A real function of *variable* alone.
        variable: Its variable.
        window: ``(low, high)`` sampled, ends included.
        budget: Time allowance.
        samples: Number of sample points.

    Returns:
        The roots found, ascending (float accuracy).
    """
    f = _float_fn(expr, variable)
    terms = [compile_expr(t, [variable]) for t in sympy.Add.make_args(expr)]
    exact = compile_expr(expr, [variable])
    low, high = window
    step = (high - low) / (samples - 1)
    xs = [low + i * step for i in range(samples)]
    ys: list[float | None] = []
    for i, x in enumerate(xs):
        if i % 256 == 0:
            budget.check()
        ys.append(f(x))
    candidates = _candidates(f, xs, ys)
    roots: list[float] = []
    with mpmath.workdps(40):
        for c in sorted(candidates):
            budget.check()
            root = _confirm(exact, terms, c)
            if root is not None and (not roots or abs(root - roots[-1]) > 1e-7 * (1 + abs(root))):
                roots.append(root)
    return roots


def _candidates(f: Callable[[float], float | None], xs: list[float],
                ys: list[float | None]) -> list[float]:
    """Sign changes (bisected) and small local minima of |f| (golden section) among samples."""
    def magnitude(t: float) -> float | None:
        v = f(t)
        return None if v is None else abs(v)

    found: list[float] = []
    for i in range(len(xs) - 1):
        y0, y1 = ys[i], ys[i + 1]
        if y0 is None or y1 is None:
            continue
        if y0 == 0:
            found.append(xs[i])
        elif (y0 > 0) != (y1 > 0) and y1 != 0:
            root = _bisect(f, xs[i], y0, xs[i + 1])
            if root is not None:
                found.append(root)
        prev = ys[i - 1] if i > 0 else None
        if prev is not None and y0 != 0 and abs(y0) <= min(abs(prev), abs(y1)) and (
                (prev > 0) == (y0 > 0) == (y1 > 0)):
            best = _golden_min(magnitude, xs[i - 1], xs[i + 1])
            if best is not None:
                found.append(best)
    if ys[-1] == 0:
        found.append(xs[-1])
    return found


def _size(terms: Sequence[Callable[..., Any]], point: Any) -> Any:
    values = (call(t, point) for t in terms)
    return max(sum((abs(v) for v in values if v is not None), mpmath.mpf(0)), 1)


def _confirm(exact: Callable[..., Any], terms: Sequence[Callable[..., Any]],
             c: float) -> float | None:
    """Return the root near float *c* if mpmath confirms it, else None (a pole, a jump)."""
    try:
        refined = mpmath.findroot(exact, mpmath.mpf(c))
    except _FAILURES + (ZeroDivisionError,):
        refined = None
    if refined is not None and not isinstance(refined, mpmath.mpc) and abs(
            refined - c) <= 1e-6 * (1 + abs(c)):
        value = call(exact, refined)
        if value is not None and abs(value) <= mpmath.mpf("1e-25") * _size(terms, refined):
            return float(refined)
    value = call(exact, mpmath.mpf(c))
    if value is not None and abs(value) <= mpmath.mpf("1e-12") * _size(terms, mpmath.mpf(c)):
        return c  # a multiple root: secant converges too slowly to confirm it
    return None
