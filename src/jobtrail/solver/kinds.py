"""Decide a problem's kind from its normalized text, and map each kind to its solver.

Invariant: detection is keyword based and cheap (regular expressions, plus
tokenizing the remaining text to tell ``arithmetic`` from ``simplify``); no
SymPy object is built here.

Order of the checks: geometry (``triangle``, ``distance between``,
``midpoint``, ``slope of the line``), limit (``lim``/``limit``), integral
(``integrate``/``integral``/``antiderivative``/``∫``), derivative
(``d/dx``, ``derivative``, ``differentiate``), simplify (leading
``simplify``/``expand``/``factor``), system (two or more equations), equation
(leading ``solve`` or an ``=``), else arithmetic when the expression has no
variable and simplify when it has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from jobtrail.solver.algebra import (
    solve_arithmetic,
    solve_equation,
    solve_simplify,
    solve_system,
    split_system,
)
from jobtrail.solver.answer import Answer
from jobtrail.solver.calculus import solve_derivative, solve_integral, solve_limit
from jobtrail.solver.geometry import solve_geometry
from jobtrail.solver.render import strip_filler
from jobtrail.solver.tokens import tokenize

__all__ = ["SOLVERS", "detect_kind"]

SOLVERS: dict[str, Callable[[str], Answer]] = {
    "arithmetic": solve_arithmetic,
    "simplify": solve_simplify,
    "equation": solve_equation,
    "system": solve_system,
    "derivative": solve_derivative,
    "integral": solve_integral,
    "limit": solve_limit,
    "geometry": solve_geometry,
}
"""The solver of each kind; each takes normalized text and returns an Answer."""

_GEOMETRY = re.compile(
    r"\btriangle\b|\bdistance\s+between\b|\bmidpoint\b|\b(?:slope|gradient)\s+of\s+the\s+line\b",
    re.I,
)
_LIMIT = re.compile(r"\blim(?:it)?\b", re.I)
_INTEGRAL = re.compile(r"\bintegra(?:l|te)\b|\bantiderivative\b", re.I)
_DERIVATIVE = re.compile(
    r"^d\s*(?:\^\s*\(?\s*\d+\s*\)?)?\s*/\s*d\s*[a-z]|\bderivative\b|\bdifferentiate\b", re.I
)
_SIMPLIFY = re.compile(r"^(?:simplify|expand|factori[sz]e|factor)\b", re.I)
_SOLVE = re.compile(r"^solve\b", re.I)
_KEYWORD_KINDS = (
    (_GEOMETRY, "geometry"),
    (_LIMIT, "limit"),
    (_INTEGRAL, "integral"),
    (_DERIVATIVE, "derivative"),
    (_SIMPLIFY, "simplify"),
)


def detect_kind(text: str) -> str:
    """Return the kind of the normalized problem *text*.

    Args:
        text: Output of ``text.normalize()``.

    Returns:
        One of ``answer.KINDS``.

    Raises:
        ProblemParseError: The text is neither a recognized phrase nor a
            readable expression (e.g. ``"hello world"``).
        ProblemTooLargeError: A literal in it is too long.
    """
    body = strip_filler(text)
    for pattern, kind in _KEYWORD_KINDS:
        if pattern.search(body):
            return kind
    parts, _ = split_system(body)
    if sum("=" in part for part in parts) >= 2:
        return "system"
    if _SOLVE.match(body) or "=" in body:
        return "equation"
    tokens = tokenize(body)
    return "simplify" if any(token.kind == "var" for token in tokens) else "arithmetic"
