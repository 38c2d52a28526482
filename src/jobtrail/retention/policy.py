"""Retention policies and the pure selection rule (no I/O).

Selection, for a policy with statuses S, minimum age A (seconds), keep-last N
and cap M, at time `now`:

1. Only jobs in `jobs:<s>` for s in S; S may hold only completed, failed and cancelled
   (pending and processing jobs are never selected, however old).
2. A job's age is `now - finished_at` (its `jobs:<status>` score); it is old
   enough when `age >= A`, so a job exactly A seconds old is selected.
3. Jobs are ordered by (finished_at, id) across all of S; the newest N in
   that order are kept whatever their age. Equal timestamps are broken by
   id (the greater id counts as newer), which is Redis's own sorted-set order.
4. At most M are selected, oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobtrail.config import PolicySettings, Settings
from jobtrail.errors import PolicyError
from jobtrail.models import TERMINAL_STATUSES, JobStatus

__all__ = [
    "ADHOC",
    "Entry",
    "RetentionPolicy",
    "count_selected",
    "policies_from_settings",
    "policy_from_settings",
    "select",
]

#: The policy name recorded for a selector given on the command line.
ADHOC = "adhoc"

#: An index entry: (finished_at in epoch seconds, job id).
Entry = tuple[float, str]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which records a purge selects.

    Attributes:
        name: Policy name, recorded in archive rows, tombstones and the audit.
        statuses: Statuses it purges (completed, failed, cancelled only).
        older_than_s: Minimum age in seconds, counted from finished_at.
        keep_last: How many of the newest finished jobs to keep, whatever their age.
        max_per_run: Cap on jobs selected per run; None for no cap.

    Raises:
        PolicyError: A status is not terminal, or a number is negative.
    """

    name: str
    statuses: tuple[JobStatus, ...]
    older_than_s: float
    keep_last: int = 0
    max_per_run: int | None = None

    def __post_init__(self) -> None:
        if not self.statuses:
            raise PolicyError(f"policy {self.name}: no status to purge", policy=self.name)
        live = [s.value for s in self.statuses if s not in TERMINAL_STATUSES]
        if live:
            raise PolicyError(
                f"policy {self.name}: {', '.join(live)} jobs are never purged (only completed, "
                "failed and cancelled); old ones are reported as stuck", policy=self.name)
        if self.older_than_s < 0 or self.keep_last < 0:
            raise PolicyError(f"policy {self.name}: older_than_s and keep_last must be 0 or "
                              "more", policy=self.name)
        if self.max_per_run is not None and self.max_per_run <= 0:
            raise PolicyError(f"policy {self.name}: max_per_run must be more than 0",
                              policy=self.name)

    def cutoff_at(self, now: float) -> float:
        """Return the newest finished_at old enough to purge at *now* (epoch seconds)."""
        return now - self.older_than_s

    def selector(self) -> dict[str, Any]:
        """Return the selection as a JSON-ready dict (for reports and the audit)."""
        return {"status": [s.value for s in self.statuses], "older_than_s": self.older_than_s,
                "keep_last": self.keep_last, "max_per_run": self.max_per_run}


def policy_from_settings(name: str, spec: PolicySettings) -> RetentionPolicy:
    """Return the RetentionPolicy of one `retention_policies` entry.

    Raises:
        PolicyError: The entry is invalid.
    """
    return RetentionPolicy(name=name, statuses=tuple(JobStatus(s) for s in spec.status),
                           older_than_s=spec.older_than_s, keep_last=spec.keep_last,
                           max_per_run=spec.max_per_run)


def policies_from_settings(settings: Settings) -> dict[str, RetentionPolicy]:
    """Return every named policy of *settings*, by name.

    Raises:
        PolicyError: An entry is invalid.
    """
    return {name: policy_from_settings(name, spec)
            for name, spec in sorted(settings.retention_policies.items())}


def keep_boundary(newest_first: Iterable[Entry], keep_last: int) -> Entry | None:
    """Return the oldest kept entry of the newest *keep_last*, or None if nothing is kept.

    Args:
        newest_first: Entries in descending (finished_at, id) order (merged
            across statuses); only the first *keep_last* are read.
        keep_last: How many newest entries to keep.

    Returns:
        The entry such that only entries strictly before it are selectable;
        ``(-inf, "")`` when there are fewer than *keep_last* entries (all are kept);
        None when *keep_last* is 0.
    """
    if keep_last <= 0:
        return None
    seen = 0
    for entry in newest_first:
        seen += 1
        if seen == keep_last:
            return entry
    return (float("-inf"), "")


def is_selected(entry: Entry, cutoff_at: float, boundary: Entry | None) -> bool:
    """Return True if *entry* is old enough and older than the keep-last boundary."""
    return entry[0] <= cutoff_at and (boundary is None or entry < boundary)


def select(entries: Iterable[tuple[str, float]], policy: RetentionPolicy,
           now: float) -> list[str]:
    """Return the ids *policy* selects among *entries*, oldest first (reference rule).

    The purge service applies the same rule batch by batch on the Redis
    indexes; this in-memory form states it and is what the tests check against.

    Args:
        entries: (job id, finished_at) of every job of the policy's statuses.
        policy: The policy.
        now: Epoch seconds.
    """
    ordered = sorted((score, job_id) for job_id, score in entries)
    boundary = keep_boundary(reversed(ordered), policy.keep_last)
    cutoff = policy.cutoff_at(now)
    chosen = [job_id for score, job_id in ordered
              if is_selected((score, job_id), cutoff, boundary)]
    return chosen if policy.max_per_run is None else chosen[:policy.max_per_run]


def count_selected(counts: Mapping[JobStatus, tuple[int, int]],
                   policy: RetentionPolicy) -> int:
    """Return how many jobs *policy* selects, from index counts alone.

    Args:
        counts: Per status, (entries old enough, all entries).
        policy: The policy.

    The old-enough entries are a prefix of the (finished_at, id) order and
    the kept ones a suffix, so the overlap is `max(0, old + keep - total)`.
    """
    old = sum(c[0] for c in counts.values())
    total = sum(c[1] for c in counts.values())
    selected = old - max(0, old + min(policy.keep_last, total) - total)
    return selected if policy.max_per_run is None else min(selected, policy.max_per_run)
