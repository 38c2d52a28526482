"""Verify values and expressions: arithmetic, simplify, derivatives and antiderivatives.

Invariant: pure; the reference is always computed numerically by mpmath
(adaptive-precision evaluation, ``mpmath.diff``), or for arithmetic exactly
from the text (``exact.py``), never by the SymPy call that gave the answer.
Each function returns ``(Verification, estimate)`` where *estimate* is the
check's own value (``numeric.Estimate``) when it contradicted the answer and
the problem asked for a value, else None.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.answer import Verification
from jobtrail.solver.verify.exact import find_exact_verification
from jobtrail.solver.verify.numeric import (
    Budget,
    Estimate,
    call,
    compile_expr,
    fmt,
    parameter_values,
    stable,
)

__all__ = [
    "check_antiderivative",
    "check_arithmetic",
    "check_derivative",
    "check_simplify",
]

Checked = tuple[Verification, Estimate | None]
_POINTS = ("-2.37", "-1.13", "-0.41", "0.29", "0.73", "1.61", "2.47", "3.9")
_FEW_POINTS = ("-1.13", "-0.41", "0.73", "1.61", "2.47")  # mpmath.diff costs more per point
# Tried after _FEW_POINTS when some of those were off the input's real domain.
_DOMAIN_POINTS = ("0.19", "0.41", "0.58", "0.91", "1.27", "3.3", "5.1")


def close(a: Any, b: Any, rel: Any) -> bool:
    """True if *a* and *b* agree within *rel* relative to the larger of them (or 1)."""
    return bool(abs(a - b) <= rel * max(abs(a), abs(b), 1))


def relative_error(a: Any, b: Any) -> float:
    """|a - b| relative to the larger of |a|, |b| and 1."""
    return float(abs(a - b) / max(abs(a), abs(b), 1))


def check_arithmetic(given: sympy.Expr, result: sympy.Expr, budget: Budget, *,
                     text: str | None = None) -> Checked:
    """Compare the exact *result* with *text* read exactly (``exact.py``), else with *given*.

    The parser's *given* is not independent of *result* (a misparse verifies
    itself), so a rational *result* is checked against the text's own exact
    value whenever ``find_exact_verification`` applies; otherwise *given* and
    *result* are each settled by mpmath at adaptive precision.

    Args:
        text: The problem text after filler stripping (``"2^10 / 4"``); None
            (``check_simplify``) skips the exact reading.

    Returns:
        Verified when the exact or the settled values agree; unverified
        when the text's exact value differs (two readings disagree);
        contradicted when the settled values differ, with the input's
        settled value as a robust estimate: it is a closed-form constant
        evaluated by mpmath at two precisions that agree to 25 digits (there
        is no part of the problem an evaluation could miss).
    """
    if text is not None and result.is_Rational:
        exact = find_exact_verification(text, Fraction(int(result.p), int(result.q)))
        if exact is not None:
            return exact, None
    left = stable(compile_expr(given, []), (), budget)
    right = stable(compile_expr(result, []), (), budget)
    if left is None or right is None:
        return Verification("unverified", "mpmath at 30-240 digits",
                            "the value did not settle numerically (undefined, or cancellation "
                            "beyond 240 digits)"), None
    (a, digits_a), (b, digits_b) = left, right
    method = f"mpmath at {max(digits_a, digits_b)} digits (two precisions agree)"
    # Both values are settled to 25 significant digits: compare them relatively, so a
    # tiny value (1e-40) is not "close" to 0.
    if abs(a - b) <= mpmath.mpf(10) ** -20 * max(abs(a), abs(b)):
        return Verification("verified", method, f"the input evaluates to {fmt(a)}",
                            relative_error(a, b)), None
    detail = f"symbolic result {result} = {fmt(b)} disagrees with the input's value {fmt(a)}"
    return (Verification("contradicted", method, detail, relative_error(a, b)),
            Estimate(fmt(a, 15, False), True, f"the input's value settled at {digits_a} "
                     "digits (two precisions agree to 25 digits)"))


def _sample_compare(left: sympy.Expr, right: sympy.Expr, variables: Sequence[sympy.Symbol],
                    budget: Budget, what: str) -> Checked:
    given = parameter_values(variables)
    f = compile_expr(left, list(variables))
    g = compile_expr(right, list(variables))
    worst, used = 0.0, 0
    for k, p in enumerate(_POINTS):
        budget.check()
        point = [mpmath.mpf(p) + given[v] - given[variables[0]] if i else mpmath.mpf(p)
                 for i, v in enumerate(variables)] if variables else []
        with mpmath.workdps(40):
            a, b = call(f, *point), call(g, *point)
        if a is None or b is None:
            continue
        used += 1
        err = relative_error(a, b)
        if err > 1e-15:  # cancellation at 40 digits? look again at 120
            with mpmath.workdps(120):
                again = [call(f, *point), call(g, *point)]
            if None not in again:
                a, b = again
                err = relative_error(a, b)
        if err > 1e-15:
            shown = ", ".join(f"{v} = {fmt(x, 6)}" for v, x in zip(variables, point,
                                                                 strict=True))
            return Verification("contradicted", "mpmath at 40 digits at sample points",
                                f"at {shown} the {what} is {fmt(b)} but the input gives "
                                f"{fmt(a)}", err), None
        worst = max(worst, err)
        del k
    if used < 3:
        return Verification("unverified", "mpmath at 40 digits at sample points",
                            f"only {used} of {len(_POINTS)} sample points are defined"), None
    return Verification("verified", "mpmath at 40 digits at sample points",
                        f"the {what} equals the input at {used} sample points", worst), None


def check_simplify(given: sympy.Expr, result: sympy.Expr, budget: Budget) -> Checked:
    """Compare the simplified/expanded/factored *result* with *given* at sample points."""
    variables = sorted(given.free_symbols | result.free_symbols, key=lambda s: s.name)
    if not variables:
        return check_arithmetic(given, result, budget)
    return _sample_compare(given, result, variables, budget, "result")


def check_derivative(expr: sympy.Expr, variable: sympy.Symbol, order: int,
                     result: sympy.Expr, budget: Budget) -> Checked:
    """Compare *result* with ``mpmath.diff`` (numeric differences) of *expr* at sample points.

    A disagreement where *expr* is not real (outside its real domain: asech(x) off
    (0, 1], acosh(x) below 1) is no contradiction: there the symbolic derivative and
    numeric differences may follow different branches of the complex function
    (d/dx asech(x) = -1/(x*sqrt(1 - x^2)) is the conjugate of the differences at
    x = -1.13, and the right answer failed its check). Such points are left out, and
    points inside (0, 1) and above 1 (_DOMAIN_POINTS) are tried when fewer than 3
    remain; a disagreement at a real point is a contradiction as before.
    """
    params = sorted((expr.free_symbols | result.free_symbols) - {variable},
                    key=lambda s: s.name)
    given = parameter_values(params)
    f = compile_expr(expr.xreplace(given), [variable])
    g = compile_expr(result.xreplace(given), [variable])
    worst, used, off_domain = 0.0, 0, 0
    method = "mpmath.diff (numeric differences) at 30 digits"
    for p in _FEW_POINTS + _DOMAIN_POINTS:
        if p in _DOMAIN_POINTS and (used >= 3 or not off_domain):
            break
        budget.check()
        pair = _diff_at(f, g, p, order, 30)
        if pair is None:
            continue
        err = relative_error(*pair)
        if err > 1e-12:  # cancellation at 30 digits? look again at 90
            pair = _diff_at(f, g, p, order, 90) or pair
            err = relative_error(*pair)
        if err > 1e-12 and not _real_at(f, p):
            off_domain += 1  # another branch off the real domain: not evidence either way
            continue
        used += 1
        if err > 1e-12:
            return Verification("contradicted", method, f"at {variable} = {p} the derivative "
                                f"is {fmt(pair[1])} but numeric differences give "
                                f"{fmt(pair[0])}", err), None
        worst = max(worst, err)
    if used < 3:
        return Verification("unverified", method, f"only {used} sample points are defined"
                            + (f" ({off_domain} left out off the real domain)"
                               if off_domain else "")), None
    return Verification("verified", method, f"agrees at {used} sample points", worst), None


def _real_at(f: Any, point: str) -> bool:
    """True if f(point) is a real number (at 30 digits, imaginary part below 1e-20 of it)."""
    with mpmath.workdps(30):
        value = call(f, mpmath.mpf(point))
    if value is None:
        return False
    return bool(abs(mpmath.im(value)) <= mpmath.mpf(10) ** -20 * max(abs(value), 1))


def _diff_at(f: Any, g: Any, point: str, order: int, dps: int) -> tuple[Any, Any] | None:
    """(numeric derivative of f, g) at *point* with *dps* digits; None where undefined."""
    with mpmath.workdps(dps):
        x0 = mpmath.mpf(point)
        b = call(g, x0)
        if b is None or call(f, x0) is None:
            return None
        try:
            a = mpmath.diff(lambda t: f(t), x0, order)
        except (ArithmeticError, ValueError, TypeError):
            return None
        return (a, b) if mpmath.isfinite(a) else None


def check_antiderivative(expr: sympy.Expr, variable: sympy.Symbol, antiderivative: sympy.Expr,
                         budget: Budget) -> Checked:
    """Compare the numeric derivative of *antiderivative* with the integrand at sample points."""
    verification, _ = check_derivative(antiderivative, variable, 1, expr, budget)
    return Verification(verification.status, verification.method.replace(
        "mpmath.diff", "mpmath.diff of the antiderivative"),
        verification.detail.replace("the derivative is", "the integrand is"),
        verification.max_error), None
