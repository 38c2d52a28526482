"""The value every solve returns: the answer as plain text and LaTeX, with steps.

Invariant: an ``Answer`` is immutable and holds only strings (and its
``Verification``, strings and a float), so it can be serialized by the worker
without importing SymPy on the reading side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "VERIFICATION_STATUSES", "Answer", "Verification"]

VERIFICATION_STATUSES: tuple[str, ...] = ("verified", "unverified", "contradicted")
"""Every value ``Verification.status`` can take."""

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
class Verification:
    """How an answer was checked by a method independent of the one that produced it.

    Attributes:
        status: ``"verified"`` (the check agreed), ``"unverified"`` (no
            feasible check, or it could not finish; *detail* says why) or
            ``"contradicted"`` (the symbolic result disagreed with the check;
            the answer shown is then the labelled numeric value).
        method: What was done, e.g. ``"mpmath.quad at 30 digits"``.
        detail: One human-readable sentence about the outcome.
        max_error: Largest relative difference seen between the answer and
            the check (relative residual for equations); None when no number
            was compared.
        elapsed_s: Wall-clock time the check took, seconds (for measuring
            the cost of verification).
    """

    status: str
    method: str
    detail: str
    max_error: float | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object stored in the job's result as ``verification``."""
        error = self.max_error
        if error is not None and not math.isfinite(error):
            error = None  # JSON has no inf/nan
        return {"status": self.status, "method": self.method, "detail": self.detail,
                "max_error": error, "elapsed_s": round(self.elapsed_s, 6)}


UNCHECKED = Verification("unverified", "none", "no independent check exists for this kind")
"""The verification of an answer no check was run for."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The solution of one problem.

    Attributes:
        kind: One of ``KINDS``, e.g. ``"equation"``.
        text: Canonical plain-text answer, SymPy ``str`` syntax for
            expressions, e.g. ``"x = 2, x = 3"`` or ``"(x - 1)*exp(x) + C"``.
        latex: The same answer as LaTeX, e.g. ``"x = 2, \\; x = 3"``.
        steps: Short human-readable steps leading to the answer, in order.
        verification: How the answer was checked (see ``Verification``).
    """

    kind: str
    text: str
    latex: str
    steps: tuple[str, ...]
    verification: Verification = field(default=UNCHECKED)
