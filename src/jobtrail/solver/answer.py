"""The value every solve returns: the answer as plain text and LaTeX, with steps.

Invariant: an ``Answer`` is immutable and holds only strings, so it can be
serialized by the worker without importing SymPy on the reading side.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KINDS", "Answer"]

KINDS: tuple[str, ...] = (
    "arithmetic",
    "simplify",
    "equation",
    "system",
    "derivative",
    "integral",
    "limit",
    "geometry",
)
"""Every value ``Answer.kind`` and ``classify()`` can take."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The solution of one problem.

    Attributes:
        kind: One of ``KINDS``, e.g. ``"equation"``.
        text: Canonical plain-text answer, SymPy ``str`` syntax for
            expressions, e.g. ``"x = 2, x = 3"`` or ``"(x - 1)*exp(x) + C"``.
        latex: The same answer as LaTeX, e.g. ``"x = 2, \\; x = 3"``.
        steps: Short human-readable steps leading to the answer, in order.
    """

    kind: str
    text: str
    latex: str
    steps: tuple[str, ...]
