"""Verify a definite integral: ``mpmath.quad`` split where the integrand is not smooth.

Invariant: pure; the reference is computed numerically by mpmath
(``mpmath.quad``, tanh-sinh and Gauss-Legendre, and interval arithmetic
through ``located``), never by the SymPy call that gave the answer.
``check_definite_integral`` returns ``(Verification, estimate)`` where
*estimate* is the check's own value when it contradicted the answer, robust
only as ``located.estimate`` says, else None.
"""

from __future__ import annotations

import itertools
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.answer import Verification
from jobtrail.solver.verify.located import (
    Where,
    agrees,
    converged,
    decide,
    estimate,
    find,
    not_robust,
    span_points,
)
from jobtrail.solver.verify.mass import breaks
from jobtrail.solver.verify.numeric import (
    Budget,
    Estimate,
    call,
    compile_expr,
    fmt,
    stable,
)
from jobtrail.solver.verify.values import Checked, close, relative_error

__all__ = ["SPLIT_DEGREE", "SPLIT_PIECES", "check_definite_integral"]



def _quad(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr, upper: sympy.Expr,
          budget: Budget, dps: int = 30) -> tuple[Any, Any] | None:
    f = compile_expr(expr, [variable])
    with mpmath.workdps(dps):
        a, b = call(compile_expr(lower, [])), call(compile_expr(upper, []))
        a = -mpmath.inf if lower == -sympy.oo else a
        b = mpmath.inf if upper == sympy.oo else b
        if a is None or b is None:
            return None
        sign = 1
        if a > b:
            a, b, sign = b, a, -1
        lo = float(a) if mpmath.isfinite(a) else -50.0
        hi = float(b) if mpmath.isfinite(b) else 50.0
        if lo > hi:
            lo, hi = hi - 10, hi
        nodes = [a] + [mpmath.mpf(p) for p in breaks(expr, variable, lo, hi, budget)] + [b]
        for inner in (-1, 0, 1):  # infinite ends converge better away from the origin
            if not mpmath.isfinite(a) and nodes[1] > inner and inner not in nodes:
                nodes.insert(1, mpmath.mpf(inner))
                break
        budget.check()

        def g(t: Any) -> Any:
            value = f(t)
            return value

        try:
            value, error = mpmath.quad(g, nodes, error=True, maxdegree=8)
        except (ArithmeticError, ValueError, TypeError):
            return None
        budget.check()
        return sign * value, error


_METHOD = "mpmath.quad (tanh-sinh) at 30 digits, split at non-smooth points"


def check_definite_integral(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                            upper: sympy.Expr, value: sympy.Expr, budget: Budget) -> Checked:
    """Compare the exact *value* with ``mpmath.quad``, split where *expr* is not smooth.

    A quadrature that agrees with *value* verifies it at once. One that does
    not (or did not converge) may have stepped over a narrow peak between
    its nodes (exp(-10^6 (x - 1/3)^2) on [0, 1] "converges" on 1e-210), so
    before anything is contradicted the integrand's mass is located by
    interval bisection (``mass.locate``) and the quadrature repeated over
    the located pieces; its rigorous enclosure of the integral then decides
    where it can (``located.decide``). An infinite *value* is checked too
    (``_check_infinite``).

    Returns:
        ``(verification, estimate)``: verified when a quadrature (over the
        given or the located pieces) agrees; contradicted with a robust
        estimate only when a rigorous interval-arithmetic enclosure over a
        partition of the whole finite interval excludes *value* and pins
        down at least ``located.MIN_DIGITS`` digits, the ones shown
        (``located.estimate``); contradicted with an estimate that is not
        robust (the job then fails, giving both values) when the quadratures
        disagree with *value* but nothing rigorous settles it; unverified
        when the quadrature is unstable, did not converge, or is itself
        outside the enclosure.
    """
    if expr.free_symbols - {variable} or value.free_symbols:
        return Verification("unverified", _METHOD, "the integrand has parameters"), None
    quad = _quad(expr, variable, lower, upper, budget)
    if value in (sympy.oo, -sympy.oo):
        return _check_infinite(expr, variable, lower, upper, value, quad, budget)
    if quad is None:
        return Verification("unverified", _METHOD, "the integrand is undefined on the "
                            "interval"), None
    number, error = quad
    exact = stable(compile_expr(value, []), (), budget)
    if exact is None:
        return Verification("unverified", _METHOD, "the exact value did not settle "
                            "numerically"), None
    target = exact[0]
    method, split = _METHOD, None
    if not converged(number, error):
        # tanh-sinh over a long interval misses a fast oscillation (x^2 cos x from 0 to
        # 1950: 3.07e6 "with error 1.0" against the true 3.04e6); equal pieces, each a few
        # periods wide, converge (mpmath's documentation: "it is often useful to split
        # the interval", for oscillatory integrands)
        split = _split_quad(expr, variable, lower, upper, budget)
        if split is not None and converged(*split):
            number, error = split
            method += f"; Gauss-Legendre over {SPLIT_PIECES} equal pieces"
    if converged(number, error) and agrees(number, error, target):
        return Verification("verified", method, f"quadrature gives {fmt(number)}",
                            relative_error(number, target)), None
    where = find(expr, variable, lower, upper, budget)
    if where is not None:
        decided = decide(where, value, target)
        if decided is not None:
            return decided
    return _disagreement(expr, variable, lower, upper, value, target, (number, error),
                         split, method, where, budget)


def _disagreement(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                  upper: sympy.Expr, value: sympy.Expr, target: Any, quad: tuple[Any, Any],
                  split: tuple[Any, Any] | None, method: str, where: Where | None,
                  budget: Budget) -> Checked:
    """The quadrature over the given pieces (*quad*, or the *split* one when that
    converged) disagrees with *target* or did not converge, and locating the mass settled
    nothing: unverified, or contradicted with an estimate that is never robust."""
    number, error = quad
    if not converged(number, error):
        scale = max(1, abs(number))
        margin = 1000 * error + mpmath.mpf(10) ** -3 * scale
        # mpmath's error estimate of a quadrature that did not converge (the difference
        # of its last two levels) can be far too small: on a finite interval a
        # contradiction needs the split quadrature to agree with this one and disagree
        # with the exact value too (an infinite one has no split: its tail decides)
        if mpmath.isfinite(number) and error < mpmath.mpf(10) ** -6 * scale and abs(
                number - target) > margin and (split is None or _seconded(
                    split[0], number, target, margin)):
            return Verification("contradicted", method, f"symbolic result {value} = "
                                f"{fmt(target)} disagrees with numeric quadrature "
                                f"{fmt(number)} (estimated error {fmt(error, 2)})",
                                relative_error(number, target)), Estimate(
                fmt(number, 15, False), False, not_robust(where))
        return Verification("unverified", method, "quadrature did not converge (estimated "
                            f"error {fmt(error, 2)})"), None
    bounded = where is not None and where.located.enclosure is not None
    unstable = _unstable(expr, variable, lower, upper, value, target, number, bounded, budget)
    if unstable is not None:
        return unstable, None
    detail = (f"symbolic result {value} = {fmt(target)} disagrees with numeric quadrature "
              f"{fmt(number)} at 30 digits")
    return Verification("contradicted", method, detail, relative_error(number, target)), (
        Estimate(fmt(number, 15, False), False, not_robust(where)))


def _unstable(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr, upper: sympy.Expr,
              value: sympy.Expr, target: Any, number: Any, bounded: bool,
              budget: Budget) -> Verification | None:
    """None if tanh-sinh at 45 digits repeats the 30-digit *number*, else the verification.

    At a non-integrable singularity (or over an infinite interval where the integrand
    oscillates) tanh-sinh's nodes crowd the bad point, its two last levels agree and its
    error estimate says "converged" on a value that only grows with the precision: 1/x^2
    over [-1, 1] gives 4.6e34 at 30 digits and about 1e49 at 45. On a finite interval
    that growth means the integral diverges, which a finite *value* contradicts, unless
    the integrand is *bounded* (interval arithmetic bounds it on every piece): then the
    integral is finite, and a growing quadrature has only failed to resolve it (sin(x)
    over [0, 10^100 pi], 5e99 periods). Over an infinite interval an oscillating
    convergent integrand (cos(x)/sqrt(x)) grows the same way, so it is only unverified.
    """
    method = "mpmath.quad (tanh-sinh) at 30 and 45 digits, split at non-smooth points"
    again = _quad(expr, variable, lower, upper, budget, dps=45)
    if again is not None and close(again[0], number, mpmath.mpf(10) ** -10):
        return None
    infinite = lower.has(sympy.oo, -sympy.oo) or upper.has(sympy.oo, -sympy.oo)
    shown = "undefined" if again is None else fmt(again[0])
    if not (infinite or bounded) and again is not None and abs(again[0]) > 2 * abs(
            number) and abs(number) > mpmath.mpf(10) ** 10 * max(1, abs(target)):
        return Verification("contradicted", method, f"numeric quadrature grows without bound "
                            f"as the precision rises ({fmt(number)} at 30 digits, {shown} at "
                            f"45): the integral diverges, so the finite symbolic result "
                            f"{value} = {fmt(target)} cannot be its value", None)
    return Verification("unverified", method, f"numeric quadrature is unstable ({fmt(number)} "
                        f"at 30 digits, {shown} at 45): it cannot check {value} = "
                        f"{fmt(target)}")


def _seconded(other: Any, number: Any, target: Any, margin: Any) -> bool:
    """True if a second quadrature *other* agrees with *number* within *margin* and, like
    it, differs from the exact *target* by more than *margin*."""
    return bool(mpmath.isfinite(other) and abs(other - number) <= margin
                and abs(other - target) > margin)


#: Equal pieces of the split quadrature (check_definite_integral), and its degree.
SPLIT_PIECES = 64
SPLIT_DEGREE = 6


def _split_quad(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                upper: sympy.Expr, budget: Budget) -> tuple[Any, Any] | None:
    """The integral by Gauss-Legendre at 30 digits (degree SPLIT_DEGREE) over
    SPLIT_PIECES equal pieces of a finite interval, also split where *expr* is not
    smooth: (value, error estimate), or None on an infinite or undefined interval.
    About 0.5 s for x^2 cos x over [0, 1950], where its error estimate is 3e-54."""
    if lower.has(sympy.oo, -sympy.oo) or upper.has(sympy.oo, -sympy.oo):
        return None
    f = compile_expr(expr, [variable])
    with mpmath.workdps(30):
        a, b = call(compile_expr(lower, [])), call(compile_expr(upper, []))
        if a is None or b is None or not (mpmath.isfinite(a) and mpmath.isfinite(b)):
            return None
        sign = 1
        if a > b:
            a, b, sign = b, a, -1
        points = {mpmath.mpf(p) for p in breaks(expr, variable, float(a), float(b), budget)}
        nodes = sorted(set(mpmath.linspace(a, b, SPLIT_PIECES + 1)) | points)
        budget.check()
        try:
            value, error = mpmath.quad(f, nodes, method="gauss-legendre", error=True,
                                       maxdegree=SPLIT_DEGREE)
        except (ArithmeticError, ValueError, TypeError):
            return None
        budget.check()
        return sign * value, error


def _check_infinite(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                    upper: sympy.Expr, value: sympy.Expr, quad: tuple[Any, Any] | None,
                    budget: Budget) -> Checked:
    """Check an infinite *value* (``oo`` or ``-oo``): a finite integral contradicts it.

    Finite is proven when interval arithmetic bounds *expr* on every piece of a
    finite interval (the estimate may then be robust, ``located.estimate``).
    Otherwise it is read from samples, never robust: tanh-sinh gives the same
    finite value at 30 and 45 digits (a divergent integral's grows with the
    precision) and ``_integrable_looking`` holds. SymPy gives -oo for
    (cos(x^2) - cos(x))/x^2 over the real line, whose value is pi - sqrt(2 pi).
    """
    where = find(expr, variable, lower, upper, budget)
    box = None if where is None else where.enclosure()
    if where is not None and box is not None and where.integral is not None:
        number = where.integral[0]
        detail = (f"the integrand is bounded on the interval (interval arithmetic), so the "
                  f"integral is finite, within [{fmt(box[0], 6)}, {fmt(box[1], 6)}]: the "
                  f"symbolic result {value} cannot be its value; numeric quadrature gives "
                  f"{fmt(number)}")
        return (Verification("contradicted", _METHOD, detail, None),
                estimate(where, where.located, number))
    if quad is not None and mpmath.isfinite(quad[0]):
        number, error = quad
        again = _quad(expr, variable, lower, upper, budget, dps=45)
        if again is not None and close(again[0], number, mpmath.mpf(10) ** -10) and (
                _integrable_looking(expr, variable, lower, upper, budget)):
            detail = (f"symbolic result {value} disagrees with numeric quadrature "
                      f"{fmt(number)} (estimated error {fmt(error, 2)}), the same at 30 and "
                      "45 digits, of an integrand that decays faster than 1/|x|^1.1 at its "
                      "infinite ends and grows slower than 1/|x - c|^0.9 at its singular "
                      "points: the integral is finite")
            return Verification("contradicted", _METHOD, detail, None), Estimate(
                fmt(number, 15, False), False, "the integral's finiteness rests on samples "
                "of the integrand, not on rigorous bounds")
    return Verification("unverified", _METHOD, "a divergent integral cannot be confirmed by "
                        "quadrature"), None


_DECAY_POWERS = (10, 25, 40, 55)  # |x| = 2^k out toward an infinite end
_NEAR_POWERS = (8, 16, 24, 32)  # |x - c| = 2^-k in toward a singular point (float-accurate c)


def _integrable_looking(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                        upper: sympy.Expr, budget: Budget) -> bool:
    """True if samples say the integral is finite: |x|^1.1 |f(x)| does not grow toward an
    infinite end (at |x| = 2^10 ... 2^55, the largest of four points near each), nor
    |x - c|^0.9 |f(x)| toward a finite end or non-smooth point c (at 2^-8 ... 2^-32 from it,
    on the sides inside the interval). A sampled test, conservative by design: 1/x and
    1/(x log x) fail it; so do some convergent integrals (1/(x log^2 x)), left unverified."""
    f = compile_expr(expr, [variable])
    with mpmath.workdps(60):
        ends = span_points(expr, variable, lower, upper, budget)
        if ends is None:
            return False
        a, b, _, points = ends
        near, far = mpmath.mpf("0.9"), mpmath.mpf("1.1")
        probes: list[tuple[Any, int, bool]] = []  # (from c, toward side, out to infinity)
        for end, other, side in ((a, b, 1), (b, a, -1)):
            if mpmath.isfinite(end):
                probes.append((end, side, False))
            else:
                probes.append((other if mpmath.isfinite(other) else mpmath.mpf(0), -side, True))
        probes += [(c, side, False) for c in points for side in (1, -1)]
        for c, side, out in probes:
            budget.check()
            sizes = []
            for k in _DECAY_POWERS if out else _NEAR_POWERS:
                distance = mpmath.mpf(2) ** (k if out else -k)
                xs = [c + side * distance * (1 + mpmath.mpf(j) / 7) for j in range(4 if out else 1)]
                values = [call(f, t) for t in xs]
                if any(v is None for v in values):
                    return False
                weight = abs(xs[0]) ** far if out else distance ** near
                sizes.append(weight * max(abs(v) for v in values))
            if any(later > 2 * earlier for earlier, later in itertools.pairwise(sizes)) or (
                    sizes[-1] > sizes[0]):
                return False
    return True
