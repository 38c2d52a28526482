"""What a doctor check finds: Finding and its Severity, and the listing of a check's ids.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "Severity", "listing"]


class Severity(StrEnum):
    """How bad a finding is; any ERROR makes `jobtrail doctor` exit non-zero."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: severity, message, evidence, and the setting that fixes it."""

    check: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as a JSON-ready dict."""
        return {**asdict(self), "severity": self.severity.value}


def listing(check: str, ids: list[str], what: str, counts: dict[str, int],
            fix: str) -> Finding:
    """A check's finding over the ids it reports: OK when none, else ERROR naming them all.

    Args:
        check: The check's name.
        ids: The ids found (job ids), in the order found.
        what: What each id is, after its count ("index entries point to no job record").
        counts: What was examined, by kind -> number.
        fix: What to do about them.

    Returns:
        The Finding; its evidence holds `examined`, and when ids were found
        `count`, `ids` (every one, so `doctor --json` lists them all) and
        `sample` (the first ten, which plain output shows).
    """
    if not ids:
        examined = ", ".join(f"{n} {what}" for what, n in counts.items()).replace("_", " ")
        return Finding(check, Severity.OK, f"none found (examined {examined})",
                       {"examined": counts})
    return Finding(check, Severity.ERROR, f"{len(ids)} {what}",
                   {"count": len(ids), "ids": list(ids), "sample": ids[:10],
                    "examined": counts}, fix)
