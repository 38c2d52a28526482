"""The quadrature over an integrand's located mass, and what its rigorous enclosure decides.

Used by ``definite.check_definite_integral`` once a quadrature over the
given pieces disagrees with the exact value: ``find()`` locates the mass
(``mass.locate``) and integrates over it, ``decide()`` verifies, contradicts
or leaves the answer unverified from that quadrature and the enclosure, and
``estimate()`` says whether a contradicting value is robust enough to be
given instead of the symbolic one.

Invariant: pure; numbers from mpmath only (``mass``, ``bounds``), never from
the SymPy call that gave the answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.answer import Verification
from jobtrail.solver.verify.bounds import PieceIntegral, interval_fn
from jobtrail.solver.verify.evaluate import Unsupported
from jobtrail.solver.verify.mass import MAX_PIECES, Located, breaks, locate, refine
from jobtrail.solver.verify.numeric import Budget, Estimate, call, compile_expr, fmt
from jobtrail.solver.verify.values import Checked, relative_error

__all__ = ["LOCATED_METHOD", "MIN_DIGITS", "Where", "agrees", "certified", "converged", "decide",
           "estimate", "find", "not_robust", "span", "span_points"]

LOCATED_METHOD = ("mpmath.quad (tanh-sinh) at 30 digits over {pieces} pieces located by "
                  "interval bisection")
"""The verification method of a check over located pieces (``pieces``: their count)."""

LOCATE_S = 0.4
"""Seconds of the verification budget that locating (or refining) may take."""

QUAD_S = 0.4
"""Seconds of the verification budget that one quadrature over located pieces may take."""

CERTIFY_S = 0.8
"""Seconds of the verification budget that refining an enclosure to certify digits may take."""

CERTIFY_HALVINGS = 400
"""Halvings allowed when certifying digits: a count, so the digits shown do not depend on
the machine's speed (the time limit above is only a safety net)."""


def agrees(number: Any, error: Any, target: Any) -> bool:
    """True if *number* (error estimate *error*) agrees with the exact *target*."""
    # *error* is absolute: read as relative it let 4.6e34 "confirm" -2 (1/x^2 over [-1, 1])
    return bool(abs(number - target) <= max(100 * error, mpmath.mpf(10) ** -20 * max(
        1, abs(number), abs(target))))



def converged(number: Any, error: Any) -> bool:
    """True if a quadrature's *error* estimate is within 1e-12 of *number* (relative)."""
    return bool(mpmath.isfinite(number)) and error <= mpmath.mpf(10) ** -12 * max(
        1, abs(number))


@dataclass(slots=True)
class Where:
    """The located mass of an integrand over [a, b] (a <= b) and the quadrature over it."""

    expr: sympy.Expr
    variable: sympy.Symbol
    f: Callable[..., Any]
    sign: int  # -1 when the integral's bounds were given upper first
    located: Located
    integral: tuple[Any, Any] | None  # signed (value, error + skipped) over the runs
    budget: Budget  # the check's whole budget (each step takes a part of it)
    pieces: PieceIntegral | None = None  # built on first use (a fourth derivative)

    def enclosure(self, located: Located | None = None) -> tuple[Any, Any] | None:
        """The rigorous (low, high) of the signed integral, or None."""
        box = (located or self.located).enclosure
        if box is None:
            return None
        return box if self.sign > 0 else (-box[1], -box[0])

    def refined(self, width: Any, located: Located | None = None,
                seconds: float = LOCATE_S, halvings: int = MAX_PIECES) -> Located:
        """*located* (the located pieces) refined to an enclosure *width* wide, in at
        most *halvings* halvings and *seconds* of the budget (``mass.refine``)."""
        if self.pieces is None:
            self.pieces = PieceIntegral(self.expr, self.variable)
        with mpmath.workdps(30):
            return refine(self.pieces, located or self.located, width,
                          self.budget.part(seconds), halvings)

    def mass(self) -> Any:
        """An upper bound of the integral of |f|: width times max |bounds|, summed."""
        return mpmath.fsum((hi - lo) * max(abs(low), abs(high))
                           for lo, hi, low, high in self.located.partition if low is not None)


def span(lower: sympy.Expr, upper: sympy.Expr) -> tuple[Any, Any, int] | None:
    """``(a, b, sign)``: the bounds as mpmath reals (infinities kept), a <= b."""
    a, b = call(compile_expr(lower, [])), call(compile_expr(upper, []))
    a = -mpmath.inf if lower == -sympy.oo else mpmath.inf if lower == sympy.oo else a
    b = mpmath.inf if upper == sympy.oo else -mpmath.inf if upper == -sympy.oo else b
    if a is None or b is None or isinstance(a, mpmath.mpc) or isinstance(b, mpmath.mpc):
        return None
    return (a, b, 1) if a <= b else (b, a, -1)


def span_points(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                upper: sympy.Expr, budget: Budget) -> tuple[Any, Any, int, list[Any]] | None:
    """``(a, b, sign, inner)``: the bounds as ``span`` gives them, and the points strictly
    between them where *expr* is not smooth (``mass.breaks``, searched to 50 out toward an
    infinite end); None if the bounds are not real."""
    ends = span(lower, upper)
    if ends is None:
        return None
    a, b, sign = ends
    lo = float(a) if mpmath.isfinite(a) else -50.0
    hi = float(b) if mpmath.isfinite(b) else 50.0
    inner = [mpmath.mpf(p) for p in breaks(expr, variable, lo, hi, budget) if a < p < b]
    return a, b, sign, inner


def find(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr, upper: sympy.Expr,
            budget: Budget) -> Where | None:
    """Locate *expr*'s mass on the interval and integrate over it; None if *expr* has no
    interval form (``bounds.interval_fn``) or the bounds are not real."""
    try:
        bounds = interval_fn(expr, variable)
    except Unsupported:
        return None
    f = compile_expr(expr, [variable])
    with mpmath.workdps(30):
        ends = span_points(expr, variable, lower, upper, budget)
        if ends is None:
            return None
        a, b, sign, inner = ends
        located = locate(bounds, f, [a, *inner, b], budget.part(LOCATE_S))
        integral = _over_runs(f, located.runs, "tanh-sinh", sign, budget.part(QUAD_S))
        if integral is not None:
            integral = (integral[0], integral[1] + located.skipped)
    return Where(expr, variable, f, sign, located, integral, budget)


def _over_runs(f: Callable[..., Any], runs: tuple[tuple[Any, ...], ...], method: str,
               sign: int, budget: Budget, dps: int = 30) -> tuple[Any, Any] | None:
    """``mpmath.quad`` of *f* over each interval of each run of nodes, summed and times
    *sign* at *dps* digits (53 bits would round the value): (value, error), or None
    (undefined, or *budget* spent). An interval far narrower than its distance from 0
    gets as many more digits as that ratio has (a peak of width 1 at 10^20 needs 20
    more for its nodes to be told apart), 60 at most."""
    total, error = mpmath.mpf(0), mpmath.mpf(0)
    with mpmath.workdps(dps):
        try:
            for run in runs:
                for ends in itertools.pairwise(run):
                    if budget.expired():
                        return None
                    with mpmath.workdps(dps + _offset_digits(*ends)):
                        if method == "tanh-sinh":
                            value, err = mpmath.quad(f, ends, error=True, maxdegree=8)
                        else:
                            value, err = mpmath.quad(f, ends, method=method, error=True)
                    total, error = total + value, error + err
        except (ArithmeticError, ValueError, TypeError):
            return None
        if not (mpmath.isfinite(total) and mpmath.isfinite(error)):
            return None
        return sign * total, error


def _offset_digits(u: Any, v: Any) -> int:
    """Digits of max(|u|, |v|) / (v - u) for a finite interval (0 to 60), else 0."""
    if not (mpmath.isfinite(u) and mpmath.isfinite(v)) or v <= u:
        return 0
    ratio = max(abs(u), abs(v)) / (v - u)
    return 0 if ratio <= 1 else min(60, int(mpmath.log10(ratio)) + 1)


def decide(where: Where, value: sympy.Expr, target: Any) -> Checked | None:
    """Settle a disagreement over the located pieces, or None if they settle nothing.

    Verified when the quadrature over the located pieces agrees with *target*.
    Otherwise the rigorous enclosure is refined (``mass.refine``) until it is
    narrower than a quarter of the distance between the two values: contradicted
    when it excludes *target* (with the estimate of ``estimate``), unverified
    when it excludes the quadrature instead (and a quadrature over the refined
    pieces does not agree either).
    """
    method = LOCATED_METHOD.format(pieces=where.located.pieces)
    if where.integral is None:
        return None
    number, error = where.integral
    if converged(number, error) and agrees(number, error, target):
        return Verification("verified", method, f"quadrature over the located pieces gives "
                            f"{fmt(number)}", relative_error(number, target)), None
    if where.located.enclosure is None:
        return None
    located = where.refined(abs(number - target) / 4)
    box = where.enclosure(located)
    if box is None:
        return None
    low, high = box
    shown = f"[{fmt(low, 6)}, {fmt(high, 6)}]"
    margin = mpmath.mpf(10) ** -15 * max(1, abs(target))
    if target < low - margin or target > high + margin:
        detail = (f"symbolic result {value} = {fmt(target)} disagrees with numeric "
                  f"quadrature {fmt(number)} and lies outside {shown}, a rigorous enclosure "
                  f"of the integral (interval arithmetic over {located.pieces} pieces)")
        return (Verification("contradicted", method, detail, relative_error(number, target)),
                estimate(where, located, number))
    if low <= number <= high:
        return None
    again = _over_runs(where.f, located.runs, "tanh-sinh", where.sign,
                       where.budget.part(QUAD_S))
    if again is not None and converged(*again) and agrees(*again, target):
        return Verification("verified", LOCATED_METHOD.format(pieces=located.pieces),
                            f"quadrature over the refined pieces gives {fmt(again[0])}",
                            relative_error(again[0], target)), None
    return Verification("unverified", method, f"numeric quadrature {fmt(number)} lies outside "
                        f"{shown}, a rigorous enclosure of the integral that holds the symbolic "
                        f"result {value} = {fmt(target)}: the quadrature cannot check it"), None


MIN_DIGITS = 6
"""Significant digits a rigorous enclosure must pin down for its value to replace an answer."""


def estimate(where: Where, located: Located, number: Any) -> Estimate:
    """The value of the integral as the check's estimate: robust when a rigorous enclosure
    certifies it.

    The enclosure of *located* (finite interval, integrand bounded on every piece) is
    refined further for as long as the budget allows (``mass.refine`` to 10^-13 of its
    size); the estimate is the value both of its ends round to, at the most significant
    digits (up to 15) where they agree, so every digit shown is proven: robust when that
    is at least ``MIN_DIGITS`` digits (or the enclosure holds 0 and lies within 10^-9 of
    it, relative to a bound of the integral of |f|: shown as 0.0). Otherwise the
    quadrature's *number* is the estimate, not robust.
    """
    box = where.enclosure(located)
    if box is not None:
        tighter = where.refined(mpmath.mpf(10) ** -13 * max(abs(box[0]), abs(box[1])),
                                located, CERTIFY_S, CERTIFY_HALVINGS)
        box = where.enclosure(tighter) or box
    text = None if box is None else certified(*box, where.mass())
    if box is None or text is None:
        return Estimate(fmt(number, 15, False), False, "the rigorous enclosure of the integral "
                        + ("does not exist here" if box is None else
                           f"[{fmt(box[0], 6)}, {fmt(box[1], 6)}] certifies fewer than "
                           f"{MIN_DIGITS} digits"))
    shared = ("every digit shown is shared by all of it" if text != "0.0" else
              "it lies within 10^-9 of 0, relative to the integral of |f|")
    return Estimate(text, True, f"interval arithmetic bounds the integral in [{fmt(box[0], 17)}, "
                    f"{fmt(box[1], 17)}], which excludes the symbolic value; {shared} "
                    f"(quadrature over the located pieces gives {fmt(number)})")


def certified(low: Any, high: Any, scale: Any) -> str | None:
    """The decimal that every number in [low, high] rounds to, at the most significant
    digits (15 to ``MIN_DIGITS``) where *low* and *high* agree; ``"0.0"`` when the interval
    holds 0 and lies within 10^-9 *scale* of it; else None."""
    if low <= 0 <= high:
        return "0.0" if max(-low, high) <= mpmath.mpf(10) ** -9 * scale else None
    for digits in range(15, MIN_DIGITS - 1, -1):
        shown = mpmath.nstr(low, digits, strip_zeros=False)
        if shown == mpmath.nstr(high, digits, strip_zeros=False):
            return str(shown)
    return None


def not_robust(where: Where | None) -> str:
    """Why a quadrature that disagrees with the symbolic value is not given instead."""
    if where is None:
        return "the integrand has no interval form here, so nothing rigorous bounds the integral"
    if where.located.enclosure is None:
        return ("no rigorous enclosure of the integral exists here (an infinite interval, or "
                "an integrand unbounded near a point)")
    return "the rigorous enclosure of the integral is too wide to exclude the symbolic value"
