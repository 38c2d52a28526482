"""Verify geometry answers: triangles by their angles, two-point answers by coordinates.

Invariant: pure; the reference is computed by mpmath from the given sides or
points, by a different route than the answer's formula where one exists
(the area as ``a*b*sin(C)/2`` against Heron's formula, the kind of triangle
from the largest angle's cosine, the distance by ``mpmath.hypot``), never by
SymPy's ``simplify``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.answer import Verification
from jobtrail.solver.verify.numeric import Budget, Estimate, call, compile_expr, fmt, stable

__all__ = ["check_points", "check_triangle"]

Checked = tuple[Verification, Estimate | None]
_METHOD = "mpmath at 30-240 digits (two precisions agree)"


def _value(expr: sympy.Expr, budget: Budget) -> Any:
    """The settled value of a constant *expr*, or None."""
    settled = stable(compile_expr(expr, []), (), budget)
    return None if settled is None else settled[0]


def _reference(compute: Callable[[], Any], budget: Budget) -> Any:
    settled = stable(compute, (), budget)
    return None if settled is None else settled[0]


def _compare(claims: Sequence[tuple[str, sympy.Expr, Callable[[], Any]]],
             budget: Budget) -> Checked:
    """Each claim ``(what, answer, reference)``: the answer's value against the reference."""
    worst = 0.0
    for what, answer, reference in claims:
        got, want = _value(answer, budget), _reference(reference, budget)
        if got is None or want is None:
            return Verification("unverified", _METHOD, f"the {what} did not settle "
                                "numerically"), None
        error = float(abs(got - want) / max(abs(want), 1))
        if error > 1e-20:
            return Verification("contradicted", _METHOD, f"the {what} {answer} = {fmt(got)} "
                                f"disagrees with {fmt(want)} computed independently",
                                error), None
        worst = max(worst, error)
    shown = ", ".join(what for what, _, _ in claims)
    verb = "agrees" if len(claims) == 1 else "agree"
    return Verification("verified", _METHOD, f"the {shown} {verb} with an independent "
                        "computation", worst), None


def _sides(a: sympy.Expr, b: sympy.Expr, c: sympy.Expr) -> Callable[[], tuple[Any, Any, Any]]:
    fns = [compile_expr(side, []) for side in (a, b, c)]
    return lambda: (fns[0](), fns[1](), fns[2]())


def check_triangle(a: sympy.Expr, b: sympy.Expr, c: sympy.Expr, question: str,
                   answer: Any, budget: Budget) -> Checked:
    """Check a triangle answer computed from the sides *a*, *b*, *c*.

    Args:
        a: First side (a positive constant); *b*, *c* the others.
        question: ``"area"`` (answer: the area), ``"perimeter"`` (the sum),
            ``"angles"`` (answer: the three angles opposite a, b, c, radians)
            or ``"kind"`` (answer: ``"right"``, ``"obtuse"`` or ``"acute"``).
        answer: The value(s) to check, as described for *question*.
        budget: Time allowance.
    """
    sides = _sides(a, b, c)

    def angle(i: int) -> Callable[[], Any]:
        def compute() -> Any:
            s = sides()
            p, q = (s[j] for j in range(3) if j != i)
            # atan2 of (twice the area, from the sine) and the cosine's numerator, times 2pq
            cos_num = p**2 + q**2 - s[i]**2
            return mpmath.atan2(mpmath.sqrt((2 * p * q) ** 2 - cos_num**2), cos_num)
        return compute

    if question == "area":
        def area() -> Any:
            s = sides()
            return s[0] * s[1] * mpmath.sin(angle(2)()) / 2
        return _compare([("area", answer, area)], budget)
    if question == "perimeter":
        return _compare([("perimeter", answer, lambda: sum(sides()))], budget)
    if question == "angles":
        return _compare([(f"angle {name}", value, angle(i))
                         for i, (name, value) in enumerate(zip("ABC", answer, strict=True))],
                        budget)
    with mpmath.workdps(30):
        values = [call(compile_expr(side, [])) for side in (a, b, c)]
    if None in values:
        return Verification("unverified", _METHOD, "the sides did not evaluate"), None
    largest = max(range(3), key=lambda i: values[i])

    def cosine() -> Any:
        s = sides()
        p, q = (s[j] for j in range(3) if j != largest)
        return (p**2 + q**2 - s[largest] ** 2) / (2 * p * q)

    value = _reference(cosine, budget)
    if value is None:
        return Verification("unverified", _METHOD, "the largest angle's cosine did not "
                            "settle numerically"), None
    found = "right" if value == 0 else "obtuse" if value < 0 else "acute"
    detail = f"the largest angle's cosine is {fmt(value)} ({found})"
    status = "verified" if found == answer else "contradicted"
    return Verification(status, _METHOD, detail, None), None


def check_points(p: Sequence[sympy.Expr], q: Sequence[sympy.Expr], question: str,
                 answer: Any, budget: Budget) -> Checked:
    """Check a two-point answer: ``"distance"``, ``"midpoint"`` (a tuple) or ``"slope"``."""
    fp = [compile_expr(v, []) for v in p]
    fq = [compile_expr(v, []) for v in q]
    if question == "distance":
        def distance() -> Any:
            gaps = [g() - f() for f, g in zip(fp, fq, strict=True)]
            return mpmath.hypot(gaps[0], gaps[1]) if len(gaps) == 2 else mpmath.norm(gaps)
        return _compare([("distance", answer, distance)], budget)
    if question == "midpoint":
        return _compare([(f"coordinate {i + 1}", value,
                          lambda i=i: (fp[i]() + fq[i]()) / 2)  # type: ignore[misc]
                         for i, value in enumerate(answer)], budget)
    return _compare([("slope", answer, lambda: mpmath.tan(
        mpmath.atan2(fq[1]() - fp[1](), fq[0]() - fp[0]())))], budget)
