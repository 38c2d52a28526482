"""Verify limits: the function evaluated along a sequence approaching the point.

Invariant: pure; each side asked is approached by ``a ± √2·10^-3 ... √2·10^-12``
(or ``±10^3/√2 ... 10^12/√2`` at infinity) at 60 digits, never by SymPy's
``limit``. A finite answer must be approached; ``oo`` must be outgrown with
its sign; "does not exist" needs the two sides to differ.
"""

from __future__ import annotations

from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.answer import Verification
from jobtrail.solver.verify.numeric import Budget, call, compile_expr, fmt, stable
from jobtrail.solver.verify.values import Checked, close, relative_error

__all__ = ["check_limit"]


def check_limit(expr: sympy.Expr, variable: sympy.Symbol, point: sympy.Expr, side: str,
                result: sympy.Expr | None, budget: Budget) -> Checked:
    """Compare a limit with the function evaluated along a sequence from each side asked.

    Args:
        expr: The function.
        variable: Its variable.
        point: The point approached (``oo``/``-oo`` allowed).
        side: ``"+"``, ``"-"`` or ``"+-"`` (both).
        result: SymPy's limit, or None for "does not exist".
        budget: Time allowance.
    """
    method = ("direct evaluation at 60 digits along x = a ± √2·10^-3, ..., √2·10^-12 "
              "(or ±10^3/√2 ... 10^12/√2)")
    if expr.free_symbols - {variable} or (result is not None and result.free_symbols):
        return Verification("unverified", method, "the function has parameters"), None
    found = _sequences(expr, variable, point, side, budget)
    if found is None:
        return Verification("unverified", method, "the point is not a number"), None
    twins = _sequences(expr, variable, point, side, budget, root=3)
    outcome = _compare(found, result, method, budget, twins)
    if outcome[0].status == "unverified" and point in (sympy.oo, -sympy.oo) and None not in found:
        # c^x for c = 1 - 7.5e-13 only moves past x = 10^12: look further out, at 120 digits
        further = _sequences(expr, variable, point, side, budget, _FURTHER)
        if further is not None:
            again = _compare(further, result, _FURTHER_METHOD, budget, _sequences(
                expr, variable, point, side, budget, _FURTHER, root=3))
            if again[0].status != "unverified":
                return again
    if outcome[0].status == "contradicted" and result is not None \
            and point in (sympy.oo, -sympy.oo) and _far_out_agrees(expr, variable, point,
                                                                  result, budget):
        return Verification("unverified", _FAR_METHOD, "the values up to 10^12 disagree with "
                            f"{result}, but at 10^50 ... 10^1000 they head for it: the "
                            "sampled points cannot see the limit (log(x)^100/x only starts "
                            "falling past e^100)"), None
    return outcome


_FURTHER = (12, 20, 30, 50)
"""Exponents k of the points ±10^k tried at infinity when 10^3 ... 10^12 did not decide."""

_FURTHER_METHOD = ("direct evaluation at 120 digits along x = ±10^12/√2, 10^20/√2, 10^30/√2, "
                   "10^50/√2")

_FAR = (50, 100, 300, 1000)
"""Exponents k of the points ±10^k/√2 looked at before growth contradicts a finite limit."""

_FAR_METHOD = ("direct evaluation at 120 digits along x = ±10^3/√2 ... 10^12/√2 and "
               "±10^50/√2 ... 10^1000/√2")


def _far_out_agrees(expr: sympy.Expr, variable: sympy.Symbol, point: sympy.Expr,
                    result: sympy.Expr, budget: Budget) -> bool:
    """The values at ±10^50/√2 ... 10^1000/√2 head for *result*, which those up to 10^12 did not.

    Values up to 10^12 prove nothing about a limit at infinity when they turn later
    (log(x)^100/x peaks at e^100 ~ 10^43): a contradiction needs the far values not to head
    for the answer too. Heading for it only keeps the answer unverified (120 digits may
    cancel at 10^1000); far values that are undefined (exp(exp(x)) overflows) agree with nothing.
    """
    far = _sequences(expr, variable, point, "+-", budget, _FAR)
    if far is None or any(entry is None for entry in far):
        return False
    if result in (sympy.oo, -sympy.oo):
        want = "+oo" if result == sympy.oo else "-oo"
        return all(_behaviour(entry[0]) == want for entry in far)
    exact = stable(compile_expr(result, []), (), budget)
    return exact is not None and all(_approaches(entry[0], exact[0]) for entry in far)


def _compare(found: list[Any], result: sympy.Expr | None, method: str,
             budget: Budget, twins: list[Any] | None = None) -> Checked:
    """Decide a limit from the sequences *found* (one per side) against *result*.

    *twins* are the same sequences through other points (√3 for √2): a side's
    behaviour counts only where both agree, since 4 points of an oscillation
    (x*sin(x) at 10^k/√2) can happen to grow with one sign.
    """
    if any(entry is None for entry in found):
        return Verification("unverified", method, "the function is undefined near "
                            "the point"), None
    behaviours = [_behaviour(entry[0]) for entry in found]
    if twins is not None:
        behaviours = [b if twin is not None and _same_behaviour(entry[0], twin[0]) else None
                      for b, entry, twin in zip(behaviours, found, twins, strict=True)]
    if result is None:
        return _check_missing(behaviours, method)
    if result.is_finite and any(b in ("+oo", "-oo") for b in behaviours):
        return Verification("contradicted", method, f"symbolic result {result} disagrees "
                            "with the values, which grow without bound", None), None
    if result in (sympy.oo, -sympy.oo) or result is sympy.zoo:
        return _check_infinite(result, found, behaviours, method)
    exact = stable(compile_expr(result, []), (), budget)
    if exact is None:
        return Verification("unverified", method, "the limit's value did not settle"), None
    target = exact[0]
    approaching = [_approaches(entry[0], target) for entry in found]
    if all(approaching):
        errors = [relative_error(entry[0][-1], target) for entry in found]
        return Verification("verified", method, f"the values approach {fmt(target, 10)}",
                            max(errors)), None
    for entry, ok in zip(found, approaching, strict=True):
        settled = _settle_sequence(entry[0])
        if not ok and settled is not None:
            return Verification("contradicted", method, f"symbolic result {result} = "
                                f"{fmt(target)} disagrees with the numeric limit "
                                f"{fmt(settled)}", relative_error(settled, target)), None
    return Verification("unverified", method, "the numeric limit did not settle"), None


def _check_missing(behaviours: list[str | None], method: str) -> Checked:
    """Check "does not exist": the two sides must differ (values, or +oo against -oo).

    With one side (at infinity, or a one-sided limit), values that settle on a
    number contradict the answer; values that grow with one sign prove nothing
    (``x*sin(x)^2`` at oo grows at every sampled point, yet returns to 0 for ever:
    it has no limit), so the answer stays unverified. Two sides that both grow
    to +oo (or both to -oo) contradict it: the limit is then that infinity
    (``1/sqrt(log(x)^2)`` at 1, which SymPy 1.14 says does not exist).
    """
    if len(behaviours) == 1 and behaviours[0] in ("+oo", "-oo"):
        return Verification("unverified", method, f"the values grow to {behaviours[0]} at "
                            "the sampled points, which cannot tell a limit from an "
                            "oscillation that keeps coming back"), None
    if len(behaviours) == 1 and behaviours[0] is not None:
        return Verification("contradicted", method, "the answer says the limit does not "
                            f"exist, but the values approach {behaviours[0]}", None), None
    if len(behaviours) == 2 and None not in behaviours:
        if behaviours[0] == behaviours[1]:
            return Verification("contradicted", method, "the answer says the limit does not "
                                f"exist, but both sides approach {behaviours[0]}", None), None
        if behaviours[0] != behaviours[1]:
            return Verification("verified", method, f"from the right {behaviours[0]}, from "
                                f"the left {behaviours[1]}: they differ", None), None
    return Verification("unverified", method, "the values neither settle nor grow "
                        "without bound (oscillation?)"), None


def _approaches(seq: list[Any], target: Any) -> bool:
    """True if the distances to *target* shrink and the last is below 1e-6 (relative)."""
    gaps = [abs(v - target) for v in seq]
    shrinking = all(b <= a for a, b in zip(gaps[1:], gaps[2:], strict=False))
    return bool(shrinking and gaps[-1] <= 1e-6 * max(1, abs(target)))


def _sequences(expr: sympy.Expr, variable: sympy.Symbol, point: sympy.Expr, side: str,
               budget: Budget, exponents: tuple[int, ...] = (3, 6, 9, 12),
               root: int = 2) -> list[Any] | None:
    """Per side asked: [f(a ± √2·10^-3), ..., f(a ± √2·10^-12)] at 60 digits (None if undefined).

    Other *exponents* k give the points ``a ± √2·10^-k`` (``±10^k/√2`` at infinity), at
    120 digits when the largest is above 12; another *root* r puts √r for √2.
    """
    f = compile_expr(expr, [variable])
    infinite = point in (sympy.oo, -sympy.oo)
    sides = ["+"] if point == sympy.oo else ["-"] if point == -sympy.oo else (
        ["+", "-"] if side == "+-" else [side])
    found: list[Any] = []
    with mpmath.workdps(60 if max(exponents) <= 12 else 120):
        p = None if infinite else call(compile_expr(point, []))
        if not infinite and p is None:
            return None
        for s in sides:
            budget.check()
            direction = 1 if s == "+" else -1
            seq = []
            for k in exponents:
                # √2 keeps the points off every rational lattice: cos(2*pi*x) at x = 10^k is 1
                h = mpmath.sqrt(root) * mpmath.mpf(10) ** -k
                t = direction * (1 / h) if infinite else p + direction * h
                seq.append(call(f, t))
            found.append(None if any(v is None for v in seq) else (seq, None))
    return found


def _settle_sequence(seq: list[Any]) -> Any:
    """The value the sequence settles on (last two agree to 8 digits), else None."""
    if not close(seq[-1], seq[-2], mpmath.mpf(10) ** -8):
        return None
    return seq[-1]


def _same_behaviour(seq: list[Any], twin: list[Any]) -> bool:
    """True if *seq* and *twin* settle on the same value (8 digits) or grow to the same ±oo."""
    settled, other = _settle_sequence(seq), _settle_sequence(twin)
    if settled is not None or other is not None:
        return settled is not None and other is not None and close(
            settled, other, mpmath.mpf(10) ** -8)
    return _behaviour(seq) == _behaviour(twin)


def _behaviour(seq: list[Any]) -> str | None:
    """``"<value>"``, ``"+oo"`` or ``"-oo"`` for a sequence that settles or diverges, else None.

    ``"+oo"``/``"-oo"`` need real values (a complex infinity has no sign) whose size at
    least doubles at each point and ends above 10^6.
    """
    settled = _settle_sequence(seq)
    if settled is not None:
        return fmt(settled, 8)
    mags = [abs(v) for v in seq]
    if all(b > 2 * a for a, b in zip(mags, mags[1:], strict=False)) and mags[-1] > 1e6 and all(
            abs(mpmath.im(v)) <= mpmath.mpf(10) ** -20 * abs(v) for v in seq):
        signs = {mpmath.sign(mpmath.re(v)) for v in seq}
        if signs == {1}:
            return "+oo"
        if signs == {-1}:
            return "-oo"
    return None


def _check_infinite(result: sympy.Expr, found: list[Any], behaviours: list[str | None],
                    method: str) -> Checked:
    for (seq, _), behaviour in zip(found, behaviours, strict=True):
        mags = [abs(v) for v in seq]
        growing = all(b > 2 * a for a, b in zip(mags, mags[1:], strict=False)) and mags[-1] > 1e3
        if result is not sympy.zoo:
            want = 1 if result == sympy.oo else -1
            growing = growing and all(mpmath.sign(mpmath.re(v)) == want for v in seq)
        if not growing:
            other = "-oo" if result == sympy.oo else "+oo"
            if result is not sympy.zoo and behaviour == other:
                return Verification("contradicted", method, f"symbolic result {result} "
                                    f"disagrees with the values, which grow to {other}",
                                    None), None
            if close(seq[-1], seq[-2], mpmath.mpf(10) ** -8):
                return Verification("contradicted", method, f"symbolic result {result} "
                                    f"disagrees with the numeric limit {fmt(seq[-1])}",
                                    None), None
            return Verification("unverified", method, "the values do not clearly grow "
                                "without bound"), None
    return Verification("verified", method, "the values grow without bound with the "
                        "right sign", None), None
