"""Verify a definite integral: ``mpmath.quad`` split where the integrand is not smooth.

Invariant: pure; the reference is computed numerically by mpmath
(``mpmath.quad``, tanh-sinh and Gauss-Legendre), never by the SymPy call
that gave the answer. ``check_definite_integral`` returns ``(Verification,
numeric)`` where *numeric* is the trustworthy numeric value as text when the
check contradicted the answer, else None.
"""

from __future__ import annotations

from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.answer import Verification
from jobtrail.solver.verify.mass import breaks
from jobtrail.solver.verify.numeric import Budget, call, compile_expr, fmt, stable
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


def check_definite_integral(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                            upper: sympy.Expr, value: sympy.Expr, budget: Budget) -> Checked:
    """Compare the exact *value* with ``mpmath.quad``, split where *expr* is not smooth."""
    method = "mpmath.quad (tanh-sinh) at 30 digits, split at non-smooth points"
    if expr.free_symbols - {variable} or value.free_symbols:
        return Verification("unverified", method, "the integrand has parameters"), None
    quad = _quad(expr, variable, lower, upper, budget)
    if value in (sympy.oo, -sympy.oo):
        if quad is not None and abs(quad[0]) < 1e6 and quad[1] < mpmath.mpf(
                10) ** -15 * max(1, abs(quad[0])) and _confirmed(
                    expr, variable, lower, upper, quad[0], budget):
            return Verification("contradicted", method, f"symbolic result {value} disagrees "
                                f"with numeric quadrature {fmt(quad[0])} at 30 digits",
                                None), None
        return Verification("unverified", method, "a divergent integral cannot be confirmed "
                            "by quadrature"), None
    if quad is None:
        return Verification("unverified", method, "the integrand is undefined on the "
                            "interval"), None
    number, error = quad
    exact = stable(compile_expr(value, []), (), budget)
    if exact is None:
        return Verification("unverified", method, "the exact value did not settle "
                            "numerically"), None
    target = exact[0]
    split = None
    if not _converged(number, error):
        # tanh-sinh over a long interval misses a fast oscillation (x^2 cos x from 0 to
        # 1950: 3.07e6 "with error 1.0" against the true 3.04e6); equal pieces, each a few
        # periods wide, converge (mpmath's documentation: "it is often useful to split
        # the interval", for oscillatory integrands)
        split = _split_quad(expr, variable, lower, upper, budget)
        if split is not None and _converged(*split):
            number, error = split
            method += f"; Gauss-Legendre over {SPLIT_PIECES} equal pieces"
    if not _converged(number, error):
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
                                relative_error(number, target)), None
        return Verification("unverified", method, "quadrature did not converge (estimated "
                            f"error {fmt(error, 2)})"), None
    # *error* is absolute: read as relative it let 4.6e34 "confirm" -2 (1/x^2 over [-1, 1])
    if abs(number - target) <= max(100 * error, mpmath.mpf(10) ** -20 * max(
            1, abs(number), abs(target))):
        return Verification("verified", method, f"quadrature gives {fmt(number)}",
                            relative_error(number, target)), None
    unstable = _unstable(expr, variable, lower, upper, value, target, number, budget)
    if unstable is not None:
        return unstable, None
    detail = (f"symbolic result {value} = {fmt(target)} disagrees with numeric quadrature "
              f"{fmt(number)} at 30 digits")
    trusted = _confirmed(expr, variable, lower, upper, number, budget)
    return Verification("contradicted", method, detail, relative_error(number, target)), (
        fmt(number, 15, False) if trusted else None)


def _unstable(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr, upper: sympy.Expr,
              value: sympy.Expr, target: Any, number: Any, budget: Budget) -> Verification | None:
    """None if tanh-sinh at 45 digits repeats the 30-digit *number*, else the verification.

    At a non-integrable singularity (or over an infinite interval where the integrand
    oscillates) tanh-sinh's nodes crowd the bad point, its two last levels agree and its
    error estimate says "converged" on a value that only grows with the precision: 1/x^2
    over [-1, 1] gives 4.6e34 at 30 digits and about 1e49 at 45. On a finite interval
    that growth means the integral diverges, which a finite *value* contradicts; over an
    infinite one an oscillating convergent integrand (cos(x)/sqrt(x)) grows the same way,
    so it is only unverified.
    """
    method = "mpmath.quad (tanh-sinh) at 30 and 45 digits, split at non-smooth points"
    again = _quad(expr, variable, lower, upper, budget, dps=45)
    if again is not None and close(again[0], number, mpmath.mpf(10) ** -10):
        return None
    infinite = lower.has(sympy.oo, -sympy.oo) or upper.has(sympy.oo, -sympy.oo)
    shown = "undefined" if again is None else fmt(again[0])
    if not infinite and again is not None and abs(again[0]) > 2 * abs(number) and abs(
            number) > mpmath.mpf(10) ** 10 * max(1, abs(target)):
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


def _confirmed(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
               upper: sympy.Expr, number: Any, budget: Budget) -> bool:
    """True if Gauss-Legendre at 45 digits agrees with tanh-sinh to 15 digits."""
    if lower.has(sympy.oo, -sympy.oo) or upper.has(sympy.oo, -sympy.oo):
        return False
    f = compile_expr(expr, [variable])
    with mpmath.workdps(45):
        a, b = call(compile_expr(lower, [])), call(compile_expr(upper, []))
        if a is None or b is None:
            return False
        lo, hi = sorted((float(a), float(b)))
        nodes = [a] + [mpmath.mpf(p) for p in breaks(expr, variable, lo, hi, budget)] + [b]
        if a > b:
            nodes = [a] + list(reversed(nodes[1:-1])) + [b]
        try:
            other = mpmath.quad(f, nodes, method="gauss-legendre")
        except (ArithmeticError, ValueError, TypeError):
            return False
    return close(other, number, mpmath.mpf(10) ** -15)


#: Equal pieces of the split quadrature (check_definite_integral), and its degree.
SPLIT_PIECES = 64
SPLIT_DEGREE = 6


def _converged(number: Any, error: Any) -> bool:
    """True if a quadrature's *error* estimate is within 1e-12 of *number* (relative)."""
    return bool(mpmath.isfinite(number)) and error <= mpmath.mpf(10) ** -12 * max(
        1, abs(number))


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
