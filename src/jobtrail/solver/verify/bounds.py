"""Interval arithmetic over a SymPy expression: rigorous bounds of a function on an interval.

Invariant: ``interval_fn(expr, x)(lo, hi)`` returns ``(low, high)`` with
``low <= expr(t) <= high`` for every real ``t`` in ``[lo, hi]``, or None
where it cannot say (a pole, a complex value, an unbounded or undefined
result). Arithmetic, ``exp``, ``log``, ``sqrt``, ``sin``, ``cos`` and ``tan``
are mpmath's interval context (outward rounding); every other function is
monotone on known pieces and is bounded by its values at the ends, computed
with 30 extra bits and widened by 2^-60 relative, so the bounds are
rigorous as far as mpmath's point values are accurate to 2^-60. Nothing here
calls SymPy's numerics.

Source:
    mpmath interval arithmetic (``mpmath.iv``):
    https://mpmath.org/doc/current/contexts.html#arbitrary-precision-interval-arithmetic-iv
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import reduce
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.verify.evaluate import Unsupported

__all__ = ["IV_PREC", "Bounds", "PieceIntegral", "interval_fn", "iv_precision"]

IV_PREC = 106
"""Bits of the interval endpoints: twice a double, so a peak of width 1 at 10^20 is resolved."""

Bounds = Callable[[Any, Any], tuple[Any, Any] | None]
_Iv = Callable[[Any], Any]

_iv = mpmath.iv
_EXTRA_BITS = 30
_WIDEN = mpmath.mpf(2) ** -60


class _Undefined(ArithmeticError):
    """The expression is not real, or not defined, somewhere on the interval."""


def _ends(value: Any) -> tuple[Any, Any]:
    """An interval's ends as mpmath reals, exactly (at the ambient 53 bits they would be
    rounded to nearest: inward half the time)."""
    low, high = value._mpi_
    with mpmath.workprec(IV_PREC):
        return mpmath.mpf(low), mpmath.mpf(high)


def _point(fn: Callable[[Any], Any], t: Any, up: bool) -> Any:
    """fn(t) at IV_PREC + 30 bits, moved 2^-60 relative outward (up or down)."""
    with mpmath.workprec(IV_PREC + _EXTRA_BITS):
        value = fn(t)
        if isinstance(value, mpmath.mpc) or mpmath.isnan(value):
            raise _Undefined("not real")
        step = abs(value) * _WIDEN
        return value + step if up else value - step


def _monotone(fn: Callable[[Any], Any], increasing: bool = True) -> _Iv:
    """Bounds of a function monotone on the whole real line, from its values at the ends."""
    def bound(x: Any) -> Any:
        low, high = _ends(x)
        if not increasing:
            return _iv.mpf((_point(fn, high, False), _point(fn, low, True)))
        return _iv.mpf((_point(fn, low, False), _point(fn, high, True)))
    return bound


def _cosh(x: Any) -> Any:
    low, high = _ends(x)
    top = _point(mpmath.cosh, high if abs(high) >= abs(low) else low, True)
    if low <= 0 <= high:
        return _iv.mpf((1, top))
    bottom = _point(mpmath.cosh, low if low > 0 else high, False)
    return _iv.mpf((max(bottom, 1), top))


def _on_domain(fn: Callable[[Any], Any], low_end: Any, high_end: Any,
               increasing: bool) -> _Iv:
    """A monotone function defined on [low_end, high_end] only (asin, acos, atanh)."""
    inner = _monotone(fn, increasing)

    def bound(x: Any) -> Any:
        low, high = _ends(x)
        if low < low_end or high > high_end:
            raise _Undefined("outside the real domain")
        return inner(x)
    return bound


def _log(x: Any) -> Any:
    low, _ = _ends(x)
    if low < 0:
        raise _Undefined("log of a negative number")
    return _iv.log(x)


def _sqrt(x: Any) -> Any:
    low, _ = _ends(x)
    if low < 0:
        raise _Undefined("square root of a negative number")
    return _iv.sqrt(x)


def _step(fn: Callable[[Any], Any]) -> _Iv:
    """A non-decreasing step function (floor, ceiling, sign, Heaviside): exact at the ends."""
    def bound(x: Any) -> Any:
        low, high = _ends(x)
        with mpmath.workprec(IV_PREC + _EXTRA_BITS):  # floor(1.5e20) needs 67 bits
            return _iv.mpf((fn(low), fn(high)))
    return bound


_FUNCTIONS: dict[str, _Iv] = {
    "exp": _iv.exp, "log": _log, "sin": _iv.sin, "cos": _iv.cos, "tan": _iv.tan,
    "cot": lambda x: _iv.cos(x) / _iv.sin(x), "sec": lambda x: 1 / _iv.cos(x),
    "csc": lambda x: 1 / _iv.sin(x), "Abs": abs,
    "sinh": _monotone(mpmath.sinh), "cosh": _cosh, "tanh": _monotone(mpmath.tanh),
    "sech": lambda x: 1 / _cosh(x), "csch": lambda x: 1 / _monotone(mpmath.sinh)(x),
    "coth": lambda x: 1 / _monotone(mpmath.tanh)(x),
    "atan": _monotone(mpmath.atan), "asinh": _monotone(mpmath.asinh),
    "acot": lambda x: _iv.pi / 2 - _monotone(mpmath.atan)(x),
    "erf": _monotone(mpmath.erf), "erfc": _monotone(mpmath.erfc, increasing=False),
    "asin": _on_domain(mpmath.asin, -1, 1, True), "acos": _on_domain(mpmath.acos, -1, 1, False),
    "atanh": _on_domain(mpmath.atanh, -1, 1, True),
    "acosh": _on_domain(mpmath.acosh, 1, mpmath.inf, True),
    "floor": _step(mpmath.floor), "ceiling": _step(mpmath.ceil), "sign": _step(mpmath.sign),
    "Heaviside": _step(lambda t: mpmath.sign(t) / 2 + mpmath.mpf(1) / 2),
}
_CONSTANTS: dict[str, Callable[[], Any]] = {
    "Pi": lambda: _iv.pi, "Exp1": lambda: _iv.e, "EulerGamma": lambda: _iv.euler,
}


def _power(base: _Iv, exponent: sympy.Expr, exp_fn: _Iv) -> _Iv:
    """Bounds of base**exponent: integer powers by iv, others only where the base is >= 0."""
    if exponent.is_Integer:
        k = int(exponent)
        return lambda x: base(x) ** k
    if exponent == sympy.S.Half:
        return lambda x: _sqrt(base(x))
    if exponent.is_Rational and exponent.q == 2:
        k = int(exponent.p)
        return lambda x: _sqrt(base(x)) ** k
    if exponent.is_Rational:
        r = mpmath.mpf(int(exponent.p)) / int(exponent.q)
        rational = _iv.mpf(int(exponent.p)) / int(exponent.q)

        def fractional(x: Any) -> Any:
            b = base(x)
            low, high = _ends(b)
            if low < 0:
                raise _Undefined("fractional power of a negative number")
            if low == 0:
                if r < 0:
                    raise _Undefined("negative power of 0")
                top = _iv.exp(_iv.log(_iv.mpf(high)) * rational) if high > 0 else _iv.mpf(0)
                return _iv.mpf((0, _ends(top)[1]))
            return _iv.exp(_iv.log(b) * rational)
        return fractional

    def general(x: Any) -> Any:  # a**x, x**x: exp(exponent * log(base)) for a positive base
        b = base(x)
        if _ends(b)[0] <= 0:
            raise _Undefined("power of a base that is not positive")
        return _iv.exp(exp_fn(x) * _iv.log(b))
    return general


def _delta(argument: _Iv) -> _Iv:
    """DiracDelta(u) and its derivatives: 0 where u keeps away from 0, unbounded elsewhere."""
    def bound(x: Any) -> Any:
        low, high = _ends(argument(x))
        if low <= 0 <= high:
            raise _Undefined("a delta at a point of the interval")
        return _iv.mpf(0)
    return bound


def _leaf(expr: sympy.Basic, variable: sympy.Symbol) -> _Iv | None:
    """The variable, a number or a constant, else None."""
    if expr == variable:
        return lambda x: x
    if expr.is_Rational:
        p, q = int(expr.p), int(expr.q)
        return lambda x: _iv.mpf(p) / q
    if expr.is_Float:
        value = mpmath.mpf(expr._mpf_)
        return lambda x: _iv.mpf(value)
    name = type(expr).__name__
    if name in _CONSTANTS:
        make = _CONSTANTS[name]
        return lambda x: make()
    return None


def _product(expr: sympy.Mul, variable: sympy.Symbol) -> _Iv:
    """A product, its DiracDelta factors first: a factor that is exactly 0 ends it (the
    delta terms of a kink's derivatives cost only their argument away from the kink)."""
    ordered = sorted(expr.args, key=lambda arg: not arg.has(sympy.DiracDelta))
    parts = [_build(arg, variable) for arg in ordered]

    def product(x: Any) -> Any:
        total = parts[0](x)
        for part in parts[1:]:
            if total == 0:
                return total
            total = total * part(x)
        return total
    return product


def _build(expr: sympy.Basic, variable: sympy.Symbol) -> _Iv:
    leaf = _leaf(expr, variable)
    if leaf is not None:
        return leaf
    name = type(expr).__name__
    if not expr.free_symbols <= {variable} or name in ("ImaginaryUnit", "ComplexInfinity",
                                                        "NaN", "Infinity", "NegativeInfinity"):
        raise Unsupported(name)
    if isinstance(expr, sympy.Mul):
        return _product(expr, variable)
    parts = [_build(arg, variable) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        return lambda x: reduce(lambda s, f: s + f(x), parts[1:], parts[0](x))
    if isinstance(expr, sympy.Pow):
        return _power(parts[0], expr.exp, parts[1])
    if isinstance(expr, (sympy.Max, sympy.Min)):
        pick = max if isinstance(expr, sympy.Max) else min

        def extreme(x: Any) -> Any:  # max and min are monotone in each argument
            ends = [_ends(f(x)) for f in parts]
            return _iv.mpf((pick(e[0] for e in ends), pick(e[1] for e in ends)))
        return extreme
    if isinstance(expr, sympy.log) and len(expr.args) == 1:
        return lambda x: _log(parts[0](x))
    if isinstance(expr, sympy.DiracDelta):
        return _delta(parts[0])
    if name in _FUNCTIONS and len(parts) == 1:
        fn, inner = _FUNCTIONS[name], parts[0]
        return lambda x: fn(inner(x))
    raise Unsupported(name)


@contextmanager
def iv_precision() -> Iterator[None]:
    """Run mpmath's interval context at ``IV_PREC`` bits, restoring its precision after."""
    saved, _iv.prec = _iv.prec, IV_PREC
    try:
        yield
    finally:
        _iv.prec = saved


def interval_fn(expr: sympy.Expr, variable: sympy.Symbol) -> Bounds:
    """Compile *expr* into rigorous bounds over intervals of *variable*.

    Args:
        expr: A real SymPy expression of *variable* alone.
        variable: Its variable.

    Returns:
        ``bounds(lo, hi)``: for mpmath reals ``lo <= hi`` (``hi`` may be
        ``+inf``, ``lo`` ``-inf``), ``(low, high)`` as mpmath reals with
        ``low <= expr(t) <= high`` on all of ``[lo, hi]``; None where the
        expression is unbounded, undefined or not real on some of it.

    Raises:
        Unsupported: *expr* holds a function or construct with no interval
            counterpart here (Piecewise, Bessel functions, gamma, ...).
    """
    walk = _build(expr, variable)

    def bounds(lo: Any, hi: Any) -> tuple[Any, Any] | None:
        with iv_precision():
            try:
                low, high = _ends(walk(_iv.mpf((lo, hi))))
            except (ArithmeticError, ValueError, ZeroDivisionError, TypeError):
                return None
        if not (mpmath.isfinite(low) and mpmath.isfinite(high)):
            return None
        return low, high

    return bounds



_MAX_INTEGRAND_OPS = 80  # a larger integrand is not differentiated (the derivative swells)
_MAX_DERIVATIVE_OPS = 3000  # a fourth derivative larger than this is not bounded (too slow)


class PieceIntegral:
    """Rigorous bounds of the integral of an expression over one interval.

    Two enclosures, intersected: the width times the bounds of the integrand
    (first order), and Simpson's rule with its remainder,
    ``(w/6) (f(lo) + 4 f(m) + f(hi)) - w^5/2880 f4(xi)`` for some xi in the
    interval, with f at the three points and its fourth derivative f4 on the
    interval bounded by interval arithmetic (fourth order: about 10 digits
    from a few hundred pieces where the integrand is smooth). Where f is not
    four times differentiable on the interval (a kink inside, a branch point
    near) f4 has no bound there and only the first enclosure counts. f4 is
    SymPy's ``diff`` over a real variable (differentiation, not the
    integration being checked); a kink's ``DiracDelta`` terms are 0 away
    from the kink.

    Source:
        Simpson's rule and its error term: Abramowitz and Stegun, Handbook
        of Mathematical Functions, 25.4.5.
    """

    def __init__(self, expr: sympy.Expr, variable: sympy.Symbol) -> None:
        """Compile *expr* and its fourth derivative.

        Raises:
            Unsupported: *expr* has no interval form (see ``interval_fn``).
        """
        self.f = interval_fn(expr, variable)
        self._points: dict[Any, tuple[Any, Any] | None] = {}  # f at the ends pieces share
        real = sympy.Dummy(variable.name, real=True)
        self.d4: Bounds | None = None
        if sympy.count_ops(expr) > _MAX_INTEGRAND_OPS:
            return
        try:
            fourth = sympy.diff(expr.xreplace({variable: real}), real, 4)
            if sympy.count_ops(fourth) <= _MAX_DERIVATIVE_OPS:
                self.d4 = interval_fn(fourth, real)
        except (Unsupported, TypeError, ValueError, NotImplementedError):
            self.d4 = None

    def __call__(self, lo: Any, hi: Any) -> tuple[Any, Any] | None:
        """``(low, high)`` with low <= the integral of f over [lo, hi] <= high, or None
        where f is unbounded; *lo* < *hi* are finite mpmath reals."""
        box = self.f(lo, hi)
        if box is None:
            return None
        with iv_precision():
            width = _iv.mpf(hi) - _iv.mpf(lo)
            low, high = _ends(width * _iv.mpf(box))
            simpson = self._simpson(lo, hi, width)
            if simpson is not None:
                s_low, s_high = _ends(simpson)
                if max(low, s_low) <= min(high, s_high):  # disjoint: trust the first only
                    low, high = max(low, s_low), min(high, s_high)
        return low, high

    def _at(self, t: Any) -> tuple[Any, Any] | None:
        """Bounds of f at the point *t* (cached: neighbouring pieces share their ends)."""
        if t not in self._points:
            if len(self._points) > 100_000:
                self._points.clear()
            self._points[t] = self.f(t, t)
        return self._points[t]

    def _simpson(self, lo: Any, hi: Any, width: Any) -> Any:
        """Simpson's rule plus its remainder as an interval, or None without f4 bounds."""
        if self.d4 is None:
            return None
        fourth = self.d4(lo, hi)
        if fourth is None:
            return None
        middle = mpmath.ldexp(mpmath.fadd(lo, hi, exact=True), -1)  # the exact midpoint
        values = [self._at(t) for t in (lo, middle, hi)]
        if any(v is None for v in values):
            return None
        a, m, b = (_iv.mpf(v) for v in values)
        return width / 6 * (a + 4 * m + b) - width ** 5 / 2880 * _iv.mpf(fourth)
