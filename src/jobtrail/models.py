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
    "NO_RECORD_REASON",
    "RECREATED_REASON",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "TRANSITION_EVENTS",
    "ArchivedJob",
    "EventType",
    "Fate",
    "Job",
    "JobEvent",
    "JobStatus",
    "RetentionRun",
    "Tombstone",
    "WorkerHeartbeat",
    "WorkerStatus",
    "allowed_sources",
    "check_transition",
]


class JobStatus(StrEnum):
    """A job's lifecycle status, stored lowercase in the `status` field."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Fate(StrEnum):
    """What `trace` concludes about a job id."""

    PENDING = "pending"
    PROCESSING = "processing"
    STALE = "stale"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RESULT_EXPIRED = "result_expired"
    PURGED = "purged"
    EVICTED = "evicted"
    LOST_IN_FAILOVER = "lost_in_failover"
    DELETED_EXTERNALLY = "deleted_externally"
    UNKNOWN = "unknown"


#: How a worker's error for a delivery whose job has no record ends (worker.tasks); trace
#: reads it in the Celery result of a job whose record is gone.
NO_RECORD_REASON = "has no record in the main DB"

#: The `recreated` field of the `created` event a worker writes when it recreates the
#: record of a job from its delivered message (the create was lost: a failover with
#: MAIN_MIN_REPLICAS=0); trace names the recreation by it.
RECREATED_REASON = "record missing when its message was delivered"


class EventType(StrEnum):
    """Kinds of lifecycle event appended to a job's events stream."""

    CREATED = "created"
    STARTED = "started"
    REDELIVERED = "redelivered"
    RETRIED = "retried"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: A worker received the message of a job cancelled before it started, and skipped it.
    SKIPPED = "skipped"
    PURGED = "purged"
    RESTORED = "restored"


#: The event a transition appends unless the caller names another.
TRANSITION_EVENTS: dict[JobStatus, EventType] = {
    JobStatus.PENDING: EventType.RETRIED,
    JobStatus.PROCESSING: EventType.STARTED,
    JobStatus.COMPLETED: EventType.COMPLETED,
    JobStatus.FAILED: EventType.FAILED,
    JobStatus.CANCELLED: EventType.CANCELLED,
}

#: Upper bounds (seconds) of the processing-latency histogram kept in Redis
#: (started_at -> finished_at), Prometheus-style buckets plus +Inf.
LATENCY_BOUNDS_S: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                       30.0, 60.0)

TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

#: Legal status changes. ``pending -> failed`` exists for a job whose task
#: could not be enqueued or was revoked before it started: without it such a
#: job would stay pending forever (a deliberate extension of the design's
#: lifecycle, see docs/operations.md). ``cancelled`` is terminal like them: a
#: pending job cancelled (its message revoked), or a processing one whose task
#: was terminated on request (`jobtrail cancel --terminate`).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.PROCESSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.PENDING,
                                     JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
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
        raise InvalidTransitionError(job_id, from_.value, to.value,
                                     allowed=sorted(s.value for s in allowed_sources(to)))


@dataclass(frozen=True, slots=True)
class Job:
    """One job record, as stored in the `job:<id>` hash.

    Times are epoch seconds (None until reached); `result` is the solver's
    answer as a dict with `text`, `latex`, `steps` and `verification`, or None.
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
    #: The Celery task id of the batch message that carries this job, "" for a job sent
    #: as its own message (worker/batch.py).
    batch: str = ""

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

    @property
    def verification(self) -> dict[str, Any] | None:
        """How the answer was checked ({"status", "method", "detail", "max_error"}), or None.

        None while there is no answer, and for answers recorded before
        verification existed.
        """
        found = self.result.get("verification") if self.result else None
        return dict(found) if isinstance(found, dict) else None

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
            "verification": self.verification,
            "error": self.error,
            "attempts": self.attempts,
            "worker": self.worker,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "version": self.version,
            "batch": self.batch,
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



class WorkerStatus(StrEnum):
    """What a worker's heartbeat says about it: `alive` (beating and polling the broker),
    `stuck` (beating, but its consumer has not polled the broker for longer than its
    bound), `dead` (its heartbeat expired: stopped or died), `unknown` (no heartbeat,
    but the Redis server holding heartbeats restarted less than the gone threshold ago:
    a live worker has not had the time to beat again, so it is not yet judged)."""

    ALIVE = "alive"
    STUCK = "stuck"
    DEAD = "dead"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    """What a worker node last said about itself.

    `last_seen` is epoch seconds; `alive` is False once its heartbeat hash
    expired (the node stopped or died); `jobs` are the ids it was running.
    `polled_at` is when its consumer last polled the broker (None: the
    worker does not report it), `stuck_after_s` the worker's bound on the
    poll's age, `queue` the queue it consumes, and `read_at` when the
    heartbeat was read (the age of the poll is taken at that time).
    `restarted_s_ago` is set (seconds the main DB's server had been up when
    read) only when the heartbeat is missing, that server restarted less
    than the gone threshold ago and the worker last beat before the restart:
    the absence proves nothing yet
    (store.heartbeats.absence_unproven_s, the one rule); `gone` is then False.
    """

    name: str
    pid: int
    started_at: float
    last_seen: float
    jobs: tuple[str, ...]
    alive: bool
    polled_at: float | None = None
    stuck_after_s: float | None = None
    queue: str | None = None
    read_at: float | None = None
    restarted_s_ago: float | None = None

    @property
    def gone(self) -> bool:
        """True when the worker is proven gone: no heartbeat, and the server holding
        the heartbeats has been up for at least the gone threshold."""
        return not self.alive and self.restarted_s_ago is None

    @property
    def absence_note(self) -> str:
        """Why a missing heartbeat is not judged yet, in words ("" when it is judged)."""
        if self.alive or self.restarted_s_ago is None:
            return ""
        return (f"no heartbeat since Redis restarted {self.restarted_s_ago:.0f} s ago; "
                "not yet judged")

    @property
    def poll_age_s(self) -> float | None:
        """Seconds since the consumer's last poll when read (None: not reported)."""
        if self.polled_at is None:
            return None
        return max(0.0, (self.read_at or self.last_seen) - self.polled_at)

    @property
    def status(self) -> WorkerStatus:
        """alive, stuck or dead (see WorkerStatus)."""
        if not self.alive:
            return WorkerStatus.DEAD if self.gone else WorkerStatus.UNKNOWN
        age = self.poll_age_s
        if self.stuck_after_s is not None and age is not None and age > self.stuck_after_s:
            return WorkerStatus.STUCK
        return WorkerStatus.ALIVE

    def to_dict(self) -> dict[str, Any]:
        """Return the heartbeat as a JSON-ready dict."""
        return {"name": self.name, "pid": self.pid, "started_at": self.started_at,
                "last_seen": self.last_seen, "jobs": list(self.jobs), "alive": self.alive,
                "status": self.status.value, "polled_at": self.polled_at,
                "poll_age_s": self.poll_age_s, "stuck_after_s": self.stuck_after_s,
                "queue": self.queue, "gone": self.gone, "note": self.absence_note}


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What `tombstone:<id>` says about a purged job.

    Attributes:
        job_id: The purged job.
        purged_at: When its record was deleted, epoch seconds.
        policy: Name of the retention policy that selected it ("adhoc" for a
            command-line selector).
        archive: Where its archive row is (URL, password masked).
        run_id: The purge run (see the audit table of the archive).
        status: The job's status when purged.
        ttl_s: Seconds left before the tombstone expires; None without a TTL.
    """

    job_id: str
    purged_at: float
    policy: str
    archive: str
    run_id: str
    status: str = ""
    ttl_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the tombstone as a JSON-ready dict."""
        return {"job_id": self.job_id, "purged_at": self.purged_at, "policy": self.policy,
                "archive": self.archive, "run_id": self.run_id, "status": self.status,
                "ttl_s": self.ttl_s}


@dataclass(frozen=True, slots=True)
class ArchivedJob:
    """One archive row: everything the main and results DBs held about a purged job.

    Attributes:
        job_id: The job id (unique in the archive).
        job: Every field of the `job:<id>` hash, as stored (strings).
        events: The lifecycle events read before the purge, oldest first, each
            a dict of the stream fields plus `event_id` (the stream id).
        celery_meta: The parsed `celery-task-meta-<id>` JSON if the result
            backend still had it at purge time, else None.
        purged_at: When the record was archived for purging, epoch seconds.
        policy: Name of the retention policy that selected it.
        run_id: The purge run that archived it.
        checksum: sha256 (hex) of the canonical JSON of every other field.
        restored_at: When it was last restored to the main DB, epoch seconds;
            None while it is only in the archive.
    """

    job_id: str
    job: dict[str, str]
    events: list[dict[str, str]]
    celery_meta: dict[str, Any] | None
    purged_at: float
    policy: str
    run_id: str
    checksum: str
    restored_at: float | None = None

    @property
    def status(self) -> str:
        """The job's status when it was purged."""
        return self.job.get("status", "")

    def to_dict(self) -> dict[str, Any]:
        """Return the row as a JSON-ready dict."""
        return {"job_id": self.job_id, "job": dict(self.job), "events": list(self.events),
                "celery_meta": self.celery_meta, "purged_at": self.purged_at,
                "policy": self.policy, "run_id": self.run_id, "checksum": self.checksum,
                "restored_at": self.restored_at}


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """One audit record of a purge or restore run, kept in the archive database.

    Attributes:
        run_id: Unique id of the run (a UUID4).
        kind: "purge" or "restore".
        started_at: Epoch seconds.
        finished_at: Epoch seconds; None while running (or if the process died).
        user: OS user that ran it.
        host: Host name it ran on.
        policy: Policy name ("adhoc" for a command-line selector; "" for a
            restore by id).
        selector: The selection, as a JSON-ready dict (statuses, older_than_s,
            keep_last, max_per_run, or ids/since_s for a restore).
        counts: Counts by name: selected, archived, purged, skipped, restored, ...
        archive: Archive location, password masked.
        outcome: "running", "done" or "failed".
        error: The error message of a failed run, else "".
    """

    run_id: str
    kind: str
    started_at: float
    finished_at: float | None
    user: str
    host: str
    policy: str
    selector: dict[str, Any]
    counts: dict[str, int]
    archive: str
    outcome: str
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the run as a JSON-ready dict."""
        return {"run_id": self.run_id, "kind": self.kind, "started_at": self.started_at,
                "finished_at": self.finished_at, "user": self.user, "host": self.host,
                "policy": self.policy, "selector": dict(self.selector),
                "counts": dict(self.counts), "archive": self.archive,
                "outcome": self.outcome, "error": self.error}
