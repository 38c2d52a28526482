"""Job lifecycle values: statuses, the transition table, jobs and events.

Pure: no I/O. The TRANSITIONS table is the single source of which status
changes are legal; the store's Lua script is handed the allowed sources from
here, so Redis and Python cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobtrail.errors import InvalidTransitionError

__all__ = [
    "LATENCY_BOUNDS_S",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "TRANSITION_EVENTS",
    "EventType",
    "Fate",
    "Job",
    "JobEvent",
    "JobStatus",
    "WorkerHeartbeat",
    "allowed_sources",
    "check_transition",
]


class JobStatus(StrEnum):
    """A job's lifecycle status, stored lowercase in the `status` field."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class Fate(StrEnum):
    """What `trace` concludes about a job id."""

    PENDING = "pending"
    PROCESSING = "processing"
    STALE = "stale"
    COMPLETED = "completed"
    FAILED = "failed"
    RESULT_EXPIRED = "result_expired"
    PURGED = "purged"
    EVICTED = "evicted"
    DELETED_EXTERNALLY = "deleted_externally"
    UNKNOWN = "unknown"


class EventType(StrEnum):
    """Kinds of lifecycle event appended to a job's events stream."""

    CREATED = "created"
    STARTED = "started"
    REDELIVERED = "redelivered"
    RETRIED = "retried"
    COMPLETED = "completed"
    FAILED = "failed"
    PURGED = "purged"
    RESTORED = "restored"


#: The event a transition appends unless the caller names another.
TRANSITION_EVENTS: dict[JobStatus, EventType] = {
    JobStatus.PENDING: EventType.RETRIED,
    JobStatus.PROCESSING: EventType.STARTED,
    JobStatus.COMPLETED: EventType.COMPLETED,
    JobStatus.FAILED: EventType.FAILED,
}

#: Upper bounds (seconds) of the processing-latency histogram kept in Redis
#: (started_at -> finished_at), Prometheus-style buckets plus +Inf.
LATENCY_BOUNDS_S: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                       30.0, 60.0)

TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})

#: Legal status changes. ``pending -> failed`` exists for a job whose task
#: could not be enqueued or was revoked before it started: without it such a
#: job would stay pending forever (a deliberate extension of the design's
#: lifecycle, see docs/operations.md).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED}),
    JobStatus.PROCESSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.PENDING}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


def allowed_sources(to: JobStatus) -> frozenset[JobStatus]:
    """Return the statuses from which a job may move to *to*."""
    return frozenset(src for src, targets in TRANSITIONS.items() if to in targets)


def check_transition(job_id: str, from_: JobStatus, to: JobStatus) -> None:
    """Refuse a status change that the lifecycle does not allow.

    Raises:
        InvalidTransitionError: *to* is not reachable from *from_*.
    """
    if to not in TRANSITIONS[from_]:
        raise InvalidTransitionError(job_id, from_.value, to.value)


@dataclass(frozen=True, slots=True)
class Job:
    """One job record, as stored in the `job:<id>` hash.

    Times are epoch seconds (None until reached); `result` is the solver's
    answer as a dict with `text`, `latex` and `steps`, or None.
    """

    id: str
    problem: str
    status: JobStatus
    created_at: float
    kind: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    worker: str = ""
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: str = ""
    version: int = 0

    @property
    def answer(self) -> str:
        """The answer as canonical text, or "" while there is none."""
        return str(self.result.get("text", "")) if self.result else ""

    @property
    def answer_latex(self) -> str:
        """The answer as LaTeX, or ""."""
        return str(self.result.get("latex", "")) if self.result else ""

    @property
    def steps(self) -> list[str]:
        """The solution steps, possibly empty."""
        return [str(s) for s in self.result.get("steps", [])] if self.result else []

    def to_dict(self) -> dict[str, Any]:
        """Return the job as the JSON object the CLI and API print."""
        return {
            "id": self.id,
            "status": self.status.value,
            "problem": self.problem,
            "kind": self.kind,
            "answer": self.answer,
            "answer_latex": self.answer_latex,
            "steps": self.steps,
            "error": self.error,
            "attempts": self.attempts,
            "worker": self.worker,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One lifecycle event: its stream id (milliseconds-sequence), type, time and fields."""

    event_id: str
    type: EventType
    at: float
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-ready dict."""
        return {"event_id": self.event_id, "type": self.type.value, "at": self.at,
                **{k: v for k, v in self.fields.items() if k not in ("type", "at")}}



@dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    """What a worker node last said about itself.

    `last_seen` is epoch seconds; `alive` is False once its heartbeat hash
    expired (the node stopped or died); `jobs` are the ids it was running.
    """

    name: str
    pid: int
    started_at: float
    last_seen: float
    jobs: tuple[str, ...]
    alive: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the heartbeat as a JSON-ready dict."""
        return {"name": self.name, "pid": self.pid, "started_at": self.started_at,
                "last_seen": self.last_seen, "jobs": list(self.jobs), "alive": self.alive}
