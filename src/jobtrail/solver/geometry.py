"""Solvers for triangles given by three sides, and for two points in the plane.

Invariant: every function takes normalized problem text (see ``text.py``)
and returns an ``Answer`` or raises a ``ProblemError``. Side lengths must be
positive constants satisfying the strict triangle inequality; otherwise
``UnsupportedProblemError`` says which inequality fails (no answer is given
about a triangle that cannot exist).
"""

from __future__ import annotations

import re

import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import ProblemError, ProblemParseError, UnsupportedProblemError
from jobtrail.solver.answer import Answer
from jobtrail.solver.parse import parse_expression, read_expression
from jobtrail.solver.render import join_latex, numeric_or_none, split_top_level, wrap
from jobtrail.solver.verify import run, settle
from jobtrail.solver.verify.geometry import check_points, check_triangle

__all__ = ["solve_geometry"]

_SIDES = re.compile(
    r"\bsides?\s*(?:of\s+)?(?:lengths?\s*)?(?:of\s+)?(?:are\s+)?:?\s*"
    r"(.+?)\s*,\s*(.+?)\s*(?:,\s*and|,|\band)\s*([^\s,;:]+)",
    re.I,
)
_UNITS = re.compile(r"\s*\b(?:cm|mm|km|m|in|ft|units?)\b", re.I)
_END_OF_SIDES = re.compile(r"[,;:?]")
_POINT = re.compile(r"\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
_NAMES = ("A", "B", "C")


def _constant(text: str, what: str) -> sympy.Expr:
    value = parse_expression(_UNITS.sub("", text).strip())
    if value.free_symbols:
        raise UnsupportedProblemError(f"{what} must be numbers, got {value}", kind="geometry")
    return value


def _last_side(text: str, start: int) -> str | None:
    """The longest run of words from *start* that reads as a number, else None.

    The last side ends at the next word that is no part of a number (``5 is
    right-angled``, ``5 right-angled?``), not at the first space: ``and 4 + 1`` is
    the side 5, where ``4`` was taken and ``+ 1`` dropped without a word.
    """
    words = _END_OF_SIDES.split(text[start:], maxsplit=1)[0].split()
    for end in range(len(words), 0, -1):
        candidate = " ".join(words[:end])
        try:
            value = read_expression(_UNITS.sub("", candidate).strip()).expr
        except ProblemError:
            continue
        if not value.free_symbols:
            return candidate
    return None


def _sides(text: str) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
    match = _SIDES.search(text)
    if match is None:
        raise ProblemParseError(
            "could not parse near 'triangle': give the sides, e.g. 'sides 3, 4 and 5'",
            text=text,
            position=None,
        )
    third = _last_side(text, match.start(3)) or match.group(3)
    a, b, c = (_constant(side, "the sides") for side in (match.group(1), match.group(2), third))
    for side in (a, b, c):
        if not (side.is_extended_real and side.is_positive):
            raise UnsupportedProblemError(
                f"no triangle has a side of length {side}: sides must be positive",
                kind="geometry",
            )
    ordered = sorted((a, b, c), key=lambda v: float(sympy.N(v, 30)))
    small, middle, large = ordered
    if sympy.simplify(small + middle - large).is_positive is not True:
        raise UnsupportedProblemError(
            f"no triangle has sides {a}, {b} and {c}: {small} + {middle} = "
            f"{sympy.nsimplify(small + middle)} is not greater than {large} "
            "(triangle inequality)",
            kind="geometry",
        )
    return a, b, c


def _latex_base(value: sympy.Expr) -> str:
    if value.is_Integer and value.is_nonnegative:
        return str(value)
    return f"\\left({sympy.latex(value)}\\right)"


def _right_angle(a: sympy.Expr, b: sympy.Expr, c: sympy.Expr) -> Answer:
    small, middle, large = sorted((a, b, c), key=lambda v: float(sympy.N(v, 30)))
    s2, m2, l2 = (sympy.expand(v**2) for v in (small, middle, large))
    total = s2 + m2
    squares = f"{wrap(small)}^2 + {wrap(middle)}^2"
    steps = [
        f"longest side c = {large}; other sides a = {small}, b = {middle}",
        f"triangle inequality: {small} + {middle} > {large}",
        f"a^2 + b^2 = {squares} = {s2} + {m2} = {total}",
        f"c^2 = {wrap(large)}^2 = {l2}",
    ]
    sq_latex = f"{_latex_base(small)}^2 + {_latex_base(middle)}^2"
    if sympy.simplify(total - l2) == 0:
        steps.append(
            "a^2 + b^2 = c^2, so by the converse of Pythagoras' theorem the angle "
            "opposite the longest side is a right angle"
        )
        text = f"right-angled: {squares} = {wrap(large)}^2 ({s2} + {m2} = {l2})"
        latex = f"\\text{{right-angled: }} {sq_latex} = {_latex_base(large)}^2"
        answer = Answer("geometry", text, latex, tuple(steps))
        return settle(answer, *run(check_triangle, a, b, c, "kind", "right"))
    kind = "obtuse" if sympy.simplify(total - l2).is_negative else "acute"
    relation = "<" if kind == "obtuse" else ">"
    steps.append(
        f"a^2 + b^2 {relation} c^2, so the largest angle is {kind}: the triangle is "
        "not right-angled"
    )
    text = f"not right-angled: {squares} = {total} but {wrap(large)}^2 = {l2} ({kind})"
    latex = f"\\text{{not right-angled: }} {sq_latex} \\ne {_latex_base(large)}^2"
    answer = Answer("geometry", text, latex, tuple(steps))
    return settle(answer, *run(check_triangle, a, b, c, "kind", kind))


def _area(a: sympy.Expr, b: sympy.Expr, c: sympy.Expr) -> Answer:
    s = (a + b + c) / 2
    area = sympy.radsimp(sympy.sqrt(sympy.expand(s * (s - a) * (s - b) * (s - c))))
    area = sympy.simplify(area)
    steps = [
        f"semi-perimeter s = ({a} + {b} + {c})/2 = {s}",
        f"Heron: area = sqrt(s(s - a)(s - b)(s - c)) = sqrt({s}*{s - a}*{s - b}*{s - c})",
        f"area = {area}",
    ]
    number = numeric_or_none(area)
    if number is not None and not area.is_Rational:
        steps.append(f"approximately {number}")
    answer = Answer("geometry", str(area), sympy.latex(area), tuple(steps))
    return settle(answer, *run(check_triangle, a, b, c, "area", area))


def _angles(a: sympy.Expr, b: sympy.Expr, c: sympy.Expr) -> Answer:
    sides = (a, b, c)
    texts: list[str] = []
    latexes: list[str] = []
    steps: list[str] = []
    angles: list[sympy.Expr] = []
    for index, name in enumerate(_NAMES):
        opposite = sides[index]
        p, q = (sides[j] for j in range(3) if j != index)
        cosine = sympy.nsimplify(sympy.simplify((p**2 + q**2 - opposite**2) / (2 * p * q)))
        angle = sympy.acos(cosine)
        angles.append(angle)
        degrees = sympy.simplify(angle * 180 / sympy.pi)
        shown = str(degrees) if degrees.is_Rational else f"{sympy.N(degrees, 6)}"
        steps.append(f"cos {name} = ({p}^2 + {q}^2 - {opposite}^2)/(2*{p}*{q}) = {cosine}")
        texts.append(f"{name} = {angle} ({shown} degrees)")
        latexes.append(f"{name} = {sympy.latex(angle)} \\; ({shown}^\\circ)")
    steps.append("law of cosines; angle A is opposite the first side given")
    answer = Answer("geometry", ", ".join(texts), join_latex(latexes), tuple(steps))
    return settle(answer, *run(check_triangle, a, b, c, "angles", angles))


def _points(text: str) -> list[tuple[sympy.Expr, ...]]:
    points = []
    for found in _POINT.finditer(text):
        coordinates = split_top_level(found.group(1), ",")
        points.append(tuple(_constant(part, "coordinates") for part in coordinates))
    if len(points) != 2 or len(points[0]) != len(points[1]) or len(points[0]) not in (2, 3):
        raise ProblemParseError(
            "could not parse near 'between': give two points, e.g. '(1, 2) and (4, 6)'",
            text=text,
            position=None,
        )
    return points


def _two_points(text: str, lower: str) -> Answer:
    p, q = _points(text)
    if "midpoint" in lower:
        mid = tuple(sympy.simplify((u + v) / 2) for u, v in zip(p, q, strict=True))
        shown = "(" + ", ".join(str(v) for v in mid) + ")"
        steps = [f"midpoint = ((x1 + x2)/2, (y1 + y2)/2) = {shown}"]
        latex = "\\left(" + ", ".join(sympy.latex(v) for v in mid) + "\\right)"
        answer = Answer("geometry", shown, latex, tuple(steps))
        return settle(answer, *run(check_points, p, q, "midpoint", mid))
    if "slope" in lower or "gradient" in lower:
        if sympy.simplify(q[0] - p[0]) == 0:
            raise UnsupportedProblemError("the line is vertical: its slope is undefined")
        slope = sympy.simplify((q[1] - p[1]) / (q[0] - p[0]))
        steps = [f"slope = (y2 - y1)/(x2 - x1) = ({q[1]} - {p[1]})/({q[0]} - {p[0]}) = {slope}"]
        answer = Answer("geometry", str(slope), sympy.latex(slope), tuple(steps))
        return settle(answer, *run(check_points, p, q, "slope", slope))
    squares = [sympy.expand((v - u) ** 2) for u, v in zip(p, q, strict=True)]
    distance = sympy.sqrt(sum(squares, sympy.Integer(0)))
    terms = " + ".join(f"({v} - {u})^2" for u, v in zip(p, q, strict=True))
    steps = [
        f"distance = sqrt({terms})",
        f"= sqrt({' + '.join(str(s) for s in squares)}) = sqrt({sum(squares)})",
        f"= {distance}",
    ]
    answer = Answer("geometry", str(distance), sympy.latex(distance), tuple(steps))
    return settle(answer, *run(check_points, p, q, "distance", distance))


def solve_geometry(text: str) -> Answer:
    """Answer a triangle or two-point question.

    Triangles (``"... triangle with sides 3, 4 and 5 ..."``): ``area`` uses
    Heron's formula, ``angle`` the law of cosines (radians exact where SymPy
    can, degrees alongside), ``perimeter`` the sum; anything else checks for
    a right angle by the converse of Pythagoras' theorem and answers
    ``right-angled: 3^2 + 4^2 = 5^2 (9 + 16 = 25)`` or ``not right-angled:
    ... (obtuse|acute)``. Two points (``"distance between (1, 2) and (4, 6)"``):
    distance, ``midpoint`` or ``slope``.

    Args:
        text: Normalized problem text.

    Returns:
        The Answer, kind ``"geometry"``.

    Raises:
        ProblemParseError: The sides or points cannot be found.
        UnsupportedProblemError: The sides are not positive numbers or
            fail the triangle inequality (message names the inequality).
    """
    lower = text.lower()
    if "triangle" not in lower:
        return _two_points(text, lower)
    a, b, c = _sides(text)
    if "area" in lower:
        return _area(a, b, c)
    if "perimeter" in lower:
        perimeter = a + b + c
        steps = (f"perimeter = {a} + {b} + {c} = {perimeter}",)
        answer = Answer("geometry", str(perimeter), sympy.latex(perimeter), steps)
        return settle(answer, *run(check_triangle, a, b, c, "perimeter", perimeter))
    if re.search(r"\bangles?\b", lower) and not re.search(r"right[\s-]*angle", lower):
        return _angles(a, b, c)
    return _right_angle(a, b, c)
