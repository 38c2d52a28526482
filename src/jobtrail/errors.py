"""Every jobtrail exception, under one root.

Invariant: no jobtrail code raises an exception class defined elsewhere across
a module boundary; library errors (redis, sqlalchemy) are wrapped here with
``raise ... from exc``.

::

    JobtrailError
    ├── ConfigError                      (setting)         bad or unknown setting; CLI exit 2
    ├── RedisUnavailableError            (url)             a Redis DB cannot be reached; CLI exit 1
    │   ├── ReplicationError             (acked, required) fewer replicas than MAIN_MIN_REPLICAS
    │   │                                                   acknowledged a write in time
    │   └── PartialSubmitError           (accepted, failed, unsubmitted) submit_many lost Redis
    │                                                       partway: some jobs accepted, some not
    ├── RedisCommandError                (what)            Redis refused a command (OOM, WRONGTYPE)
    │   └── RedisOutOfMemoryError        (what)            refused a write: used memory over
    │                                                       maxmemory (noeviction); transient
    ├── EmbeddedRedisError                                  embedded redis-server cannot start
    │   └── EmbeddedRedisRefusedError    (url, pid, reason) it runs but refuses us (maxclients,
    │                                                       LOADING, password); never restarted
    ├── StoreError
    │   ├── JobNotFoundError             (job_id)          no job:<id> hash
    │   ├── AmbiguousJobIdError          (prefix, matches) an id prefix names several jobs
    │   ├── InvalidIdError               (text) shorter than a prefix and no job's id
    │   ├── InvalidTransitionError       (job_id, from_, to) transition not in TRANSITIONS
    │   │   └── MessageStillQueuedError  (job_id, message_id, where) requeue refused
    │   ├── MalformedRecordError         (job_id, reason)  job:<id> was not written by jobtrail
    │   ├── ConcurrentUpdateError        (job_id, version) the record changed under us
    │   │   └── JobLeftBatchError        (job_id, batch)   a batch's start of a job that left it
    │   ├── NotCancellableError          (job_id, status, reason) finished, or processing
    │   │                                                   without terminate; nothing written
    │   └── AttemptsExhaustedError       (job_id, attempts) started max_attempts times already
    ├── JobFailed                        (job_id, reason, status) wait(): the job ended
    │   │                                                   failed or cancelled
    │   └── JobCancelledError            (job_id, reason)  wait(): the job was cancelled
    ├── WaitTimeoutError                 (job_id, timeout_s) wait(): not finished in time
    ├── ProblemError                                        the job ends `failed` with the reason
    │   ├── ProblemParseError            (text, position)  text is not a problem we can read
    │   ├── ProblemTooLargeError         (what)            a number or text beyond the limits
    │   ├── UnsupportedProblemError      (kind)            readable but not solvable by us
    │   ├── SolverTimeoutError           (limit_s)         the solver ran past its time limit
    │   ├── SolverMemoryLimitError       (limit_bytes)     the solver ran past its memory limit
    │   └── AnswerContradictedError      (kind, symbolic, numeric) an independent check disagreed
    ├── RetentionError                                      purge, archive and restore
    │   ├── PolicyError                  (policy)          unknown policy, or a selector that
    │   │                                                   would purge pending/processing jobs
    │   ├── ArchiveError                 (job_id, location) the archive refused, lost or garbled
    │   │   │                                               a row; nothing of the batch deleted
    │   │   └── ArchiveSchemaError       (current, head)   the archive's schema is behind (or
    │   │                                                   ahead of) this jobtrail's
    │   ├── ArchivedJobNotFoundError     (job_id)          no archive row for the id
    │   └── RestoreConflictError         (job_id)          the job is live in the main DB
    ├── MonitorError                                        a monitor run cannot go on as asked
    │   └── KeyspaceEventsUnavailableError (url, reason)    CONFIG GET/SET refused: snapshots only
    └── ReproError                                          a reproduction run cannot go on
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AnswerContradictedError",
    "ArchiveError",
    "AmbiguousJobIdError",
    "InvalidIdError",
    "ArchiveSchemaError",
    "ArchivedJobNotFoundError",
    "AttemptsExhaustedError",
    "ConcurrentUpdateError",
    "ConfigError",
    "EmbeddedRedisError",
    "EmbeddedRedisRefusedError",
    "InvalidTransitionError",
    "MessageStillQueuedError",
    "JobCancelledError",
    "JobFailed",
    "JobLeftBatchError",
    "NotCancellableError",
    "PartialSubmitError",
    "WaitTimeoutError",
    "PolicyError",
    "JobNotFoundError",
    "JobtrailError",
    "KeyspaceEventsUnavailableError",
    "MalformedRecordError",
    "MonitorError",
    "ProblemError",
    "ProblemParseError",
    "ProblemTooLargeError",
    "RedisCommandError",
    "RedisOutOfMemoryError",
    "RedisUnavailableError",
    "ReplicationError",
    "ReproError",
    "RestoreConflictError",
    "RetentionError",
    "SolverMemoryLimitError",
    "SolverTimeoutError",
    "StoreError",
    "UnsupportedProblemError",
]


def _restore(cls: type[JobtrailError], args: tuple[Any, ...],
             state: dict[str, Any]) -> JobtrailError:
    """Rebuild a pickled JobtrailError without calling its ``__init__``."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class JobtrailError(Exception):
    """Root of every error jobtrail raises on purpose.

    Every subclass pickles to an equal exception (same class, message and
    attributes), whatever its constructor takes: Exception's own reduce
    calls ``cls(*self.args)``, which fails for a constructor whose arguments
    are not the message (``RedisUnavailableError(url, reason)``), and an
    exception that cannot be unpickled kills a Celery worker when a pool
    process hands it to the parent.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, (type(self), self.args, dict(self.__dict__))


class ConfigError(JobtrailError):
    """Raised when a setting is malformed, inconsistent or unknown."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class RedisUnavailableError(JobtrailError):
    """Raised when a Redis server cannot be reached or answers with an error."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Redis at {url} is unavailable: {reason}")
        self.url = url
        self.reason = reason


class ReplicationError(RedisUnavailableError):
    """Raised when fewer replicas than `main_min_replicas` acknowledged a main-DB write in time.

    The master holds the write, but a failover now could lose it, so the
    operation is not acknowledged (submit exits 1, the API answers 503).
    """

    def __init__(self, url: str, acked: int, required: int, timeout_s: float) -> None:
        super().__init__(url, f"{acked} of {required} required replicas acknowledged the write "
                         f"within {timeout_s:g} s (JOBTRAIL_MAIN_MIN_REPLICAS)")
        self.acked = acked
        self.required = required
        self.timeout_s = timeout_s

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.url, self.acked, self.required, self.timeout_s)


class PartialSubmitError(RedisUnavailableError):
    """Raised when submit_many lost the broker (or the main DB) partway through.

    The jobs before the fault are accepted: their messages are in the broker
    and they will run. The jobs whose records were written but whose message
    could not be sent are `failed` ("could not enqueue the task: ..."). Jobs
    whose state is not known are `uncertain`: their failed mark could not be
    written (the main DB went down too), or their records' write was cut off
    (it may have been applied, e.g. on a lost reply or too few replicas): each
    is pending without a message or was never written; `jobtrail doctor` names
    the first kind (pending-without-message), `jobtrail trace ID` says which,
    and `jobtrail requeue ID` resends one that exists. The problems after them
    were never written. CLI exit 1, API 503.

    Attributes:
        url: The Redis that failed, password masked.
        reason: Why, as Redis or kombu said it.
        accepted: Ids of the accepted jobs (pending, each with its message), in order.
        failed: Ids of the jobs written and then marked failed, in order.
        unsubmitted: How many problems (after the failed and uncertain ones) were
            never written.
        uncertain: Ids that may be pending without a message, in order.
    """

    def __init__(self, url: str, reason: str, accepted: list[str], failed: list[str],
                 unsubmitted: int, uncertain: list[str] | None = None) -> None:
        super().__init__(url, reason)
        self.uncertain = list(uncertain or [])
        total = len(accepted) + len(failed) + len(self.uncertain) + unsubmitted
        self.args = (f"{self.args[0]}; {len(accepted)} of {total} problems were accepted "
                     f"and will run, {len(failed)} could not be enqueued (marked failed), "
                     + (f"{len(self.uncertain)} may be pending without a message, "
                        if self.uncertain else "")
                     + f"{unsubmitted} were not submitted",)
        self.accepted = accepted
        self.failed = failed
        self.unsubmitted = unsubmitted


class RedisCommandError(JobtrailError):
    """Raised when Redis answers a command with an error (out of memory, wrong key type)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} refused a command: {reason}")
        self.what = what
        self.reason = reason


class RedisOutOfMemoryError(RedisCommandError):
    """Raised when Redis refuses a write with OOM: used memory is over `maxmemory` and the
    policy (noeviction) evicts nothing. Nothing of the command was written; the same
    write passes once memory is freed, so the worker retries it as an outage."""


class EmbeddedRedisError(JobtrailError):
    """Raised when the embedded redis-server cannot be found, started or stopped."""


class EmbeddedRedisRefusedError(EmbeddedRedisError):
    """Raised when the embedded redis-server runs (its pid is alive) but refuses commands.

    "max number of clients reached", LOADING, a NOAUTH/WRONGPASS password error
    or a hung server: jobtrail reports it and never starts a second server on
    the same data directory. CLI exit 1.
    """

    def __init__(self, url: str, pid: int, reason: str) -> None:
        super().__init__(f"the embedded Redis at {url} (pid {pid}) is running but refuses "
                         f"connections: {reason}; no second server was started")
        self.url = url
        self.pid = pid
        self.reason = reason

    def __reduce__(self) -> tuple[type[EmbeddedRedisRefusedError], tuple[str, int, str]]:
        return (type(self), (self.url, self.pid, self.reason))


class StoreError(JobtrailError):
    """Root of job store errors."""


class JobNotFoundError(StoreError):
    """Raised when no ``job:<id>`` hash exists for the id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class AmbiguousJobIdError(StoreError):
    """Raised when an id prefix matches more than one job; nothing was looked up further."""

    def __init__(self, prefix: str, matches: list[str], more: bool) -> None:
        shown = ", ".join(matches) + (", ..." if more else "")
        super().__init__(f"id prefix {prefix} matches several jobs ({shown}); give more "
                         "characters")
        self.prefix = prefix
        self.matches = matches


class InvalidIdError(StoreError):
    """Raised when a text shorter than an id prefix needs (8 characters) is no job's id.

    Such a text is refused rather than reported as an unknown job: it was
    never looked up as a prefix (the CLI exits 2, the API answers 400).
    """

    def __init__(self, text: str, min_chars: int) -> None:
        super().__init__(f"no job has the id {text!r}, and an id prefix needs at least "
                         f"{min_chars} characters")
        self.text = text
        self.min_chars = min_chars


class InvalidTransitionError(StoreError):
    """Raised when a status change (or an action: requeue) is refused; nothing was written.

    The message says the state the job is in, what the change needs and, when
    given, what to do instead: "job ID is completed; only a pending job can
    become processing".

    Attributes:
        job_id: The job.
        from_: The state it is in, as a person reads it ("completed",
            "processing (on live worker w1@host)").
        to: The status it was to move to, or the action ("requeued").
        allowed: The statuses *to* may be reached from (may be empty).
        needs: What the change needs, in words (default: from *allowed*).
        hint: What to do instead, or "".
    """

    def __init__(self, job_id: str, from_: str, to: str, *, allowed: Sequence[str] = (),
                 needs: str = "", hint: str = "") -> None:
        self.allowed = list(allowed)
        if not needs:
            sources = " or ".join(self.allowed) or "no other"
            needs = f"only a {sources} job can become {to}"
        super().__init__(f"job {job_id} is {from_}; {needs}" + (f"; {hint}" if hint else ""))
        self.job_id = job_id
        self.from_ = from_
        self.to = to
        self.needs = needs
        self.hint = hint


class MessageStillQueuedError(InvalidTransitionError):
    """Raised when a pending job is requeued while its message is still in the broker.

    Sending it again would deliver it twice: two workers could run it at
    once (the second start takes the first over), so nothing is sent.

    Attributes:
        job_id: The job.
        message_id: The task id of the message that carries it (the job's
            own id, or its batch's `batch-<hex>`).
        where: Where that message is, for a person ("queued, 3 ahead",
            "held by worker delivery 5 since ...").
        outlook: What becomes of it: "it will run from there" (queued, or held by a
            live worker), or, when no live worker holds it, when the dead-worker
            sweep takes it back and the command that does it sooner.
    """

    def __init__(self, job_id: str, message_id: str, where: str, *,
                 outlook: str = "it will run from there") -> None:
        super().__init__(job_id, "pending", "requeued")
        self.args = (f"job {job_id} not requeued: its message {message_id} is still in the "
                     f"broker ({where}); {outlook}",)
        self.message_id = message_id
        self.where = where
        self.outlook = outlook


class MalformedRecordError(StoreError):
    """Raised when `job:<id>` holds something jobtrail cannot read (a foreign write)."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id}: the record is malformed ({reason})")
        self.job_id = job_id
        self.reason = reason


class ConcurrentUpdateError(StoreError):
    """Raised when a record changed between read and write (version mismatch)."""

    def __init__(self, job_id: str, version: int) -> None:
        super().__init__(f"job {job_id} changed concurrently (expected version {version})")
        self.job_id = job_id
        self.version = version


class JobLeftBatchError(ConcurrentUpdateError):
    """Raised when a batch message's delivery starts a job that left that batch: `jobtrail
    requeue` sent the job alone since (its record no longer names batch *batch*)."""

    def __init__(self, job_id: str, batch: str) -> None:
        super().__init__(job_id, 0)
        self.batch = batch
        self.args = (f"job {job_id} left batch {batch}: it was requeued alone",)


class JobPurgedError(StoreError):
    """Raised when a record would be written for a job that was purged (its tombstone is
    there): a purged job is never written again, but by `jobtrail restore`."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was purged: its record is not written again")
        self.job_id = job_id


class NotCancellableError(StoreError):
    """Raised when a job cannot be cancelled as asked; nothing was written.

    A finished job (completed, failed, cancelled) is never cancelled; a
    processing one only with terminate (its task is killed). The message is
    "job ID is STATUS; " and *reason*: what cancelling needs, what to do instead;
    with *needs_terminate*, then ": use " and *how*, the caller's way to ask for
    terminate: `terminate=True` for Python, retold() by the CLI (`--terminate`)
    and the API (`terminate=true`), so none of them names another's spelling.
    """

    def __init__(self, job_id: str, status: str, reason: str, *, needs_terminate: bool = False,
                 how: str = "terminate=True") -> None:
        super().__init__(f"job {job_id} is {status}; {reason}"
                         + (f": use {how}" if needs_terminate else ""))
        self.job_id = job_id
        self.status = status
        self.reason = reason
        self.needs_terminate = needs_terminate
        self.how = how

    def retold(self, how: str) -> NotCancellableError:
        """The same refusal naming *how* (e.g. "--terminate") as the way to ask for terminate."""
        return NotCancellableError(self.job_id, self.status, self.reason,
                                   needs_terminate=self.needs_terminate, how=how)


class JobFailed(JobtrailError):  # noqa: N818  # the name users catch, like Celery's TaskRevokedError
    """Raised by a wait for a job that ended without an answer; ``reason`` is its error."""

    def __init__(self, job_id: str, reason: str, *, status: str = "failed") -> None:
        super().__init__(f"job {job_id} {status}: {reason}")
        self.job_id = job_id
        self.reason = reason
        self.status = status


class JobCancelledError(JobFailed):
    """Raised by a wait for a job that was cancelled."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(job_id, reason, status="cancelled")


class WaitTimeoutError(JobtrailError):
    """Raised when a job did not finish within the wait's timeout (seconds); it goes on."""

    def __init__(self, job_id: str, timeout_s: float) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout_s:g} s "
                         "(is a worker running? jobtrail worker)")
        self.job_id = job_id
        self.timeout_s = timeout_s


class AttemptsExhaustedError(StoreError):
    """Raised when a job was already started its maximum number of times; nothing written."""

    def __init__(self, job_id: str, attempts: int) -> None:
        super().__init__(f"job {job_id} was already started {attempts} times")
        self.job_id = job_id
        self.attempts = attempts


class ProblemError(JobtrailError):
    """Root of problem errors; the message is the reason a person reads on the failed job."""


class ProblemParseError(ProblemError):
    """Raised when problem text cannot be read; ``position`` is a 0-based index or None."""

    def __init__(self, message: str, *, text: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.position = position


class ProblemTooLargeError(ProblemError):
    """Raised when a number, an exponent or the text is beyond the solver's bounds."""

    def __init__(self, message: str, *, what: str = "number") -> None:
        super().__init__(message)
        self.what = what


class UnsupportedProblemError(ProblemError):
    """Raised when the problem is readable but of a kind the solver cannot answer."""

    def __init__(self, message: str, *, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class SolverTimeoutError(ProblemError):
    """Raised when solving ran past the solver time limit (seconds)."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"timed out after {limit_s:g} s")
        self.limit_s = limit_s


class SolverMemoryLimitError(ProblemError):
    """Raised when solving needed more memory than the solver memory limit (bytes)."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"memory limit exceeded ({limit_bytes // (1024 * 1024)} MiB)")
        self.limit_bytes = limit_bytes


class AnswerContradictedError(ProblemError):
    """Raised when an independent numeric check contradicts the solver's symbolic answer.

    The message names both values, e.g. "symbolic result 1 disagrees with
    numeric quadrature 2.00000000000000 at 30 digits"; the answer is never
    reported. Picklable (``__reduce__``) so Celery can carry it.
    """

    def __init__(self, message: str, *, kind: str = "", symbolic: str = "",
                 numeric: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.symbolic = symbolic
        self.numeric = numeric

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_contradicted, (str(self), self.kind, self.symbolic, self.numeric))


def _rebuild_contradicted(message: str, kind: str, symbolic: str,
                          numeric: str) -> AnswerContradictedError:
    return AnswerContradictedError(message, kind=kind, symbolic=symbolic, numeric=numeric)


class RetentionError(JobtrailError):
    """Root of purge, archive and restore errors."""


class PolicyError(RetentionError):
    """Raised when a retention policy is unknown or would select pending/processing jobs."""

    def __init__(self, message: str, *, policy: str = "") -> None:
        super().__init__(message)
        self.policy = policy


class ArchiveError(RetentionError):
    """Raised when the archive cannot be reached, refuses a row or reads one back wrong.

    When purge raises it, no job of the failing batch was deleted from the main DB.
    ``job_id`` is the first job concerned, or None when the whole archive failed;
    ``location`` is the archive URL with any password masked.
    """

    def __init__(self, message: str, *, job_id: str | None = None, location: str = "") -> None:
        super().__init__(message)
        self.job_id = job_id
        self.location = location


class ArchiveSchemaError(ArchiveError):
    """Raised when the archive holds rows under a schema revision other than this jobtrail's.

    ``current`` is the archive's revision (None: tables without a version),
    ``head`` the revision this jobtrail needs; the message names the command
    that upgrades (`jobtrail archive upgrade`).
    """

    def __init__(self, message: str, *, location: str = "", current: str | None = None,
                 head: str = "") -> None:
        super().__init__(message, location=location)
        self.current = current
        self.head = head


class ArchivedJobNotFoundError(RetentionError):
    """Raised when the archive has no row for the job id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} is not in the archive; only a purged job can be "
                         "restored, and none with this id was archived")
        self.job_id = job_id


class RestoreConflictError(RetentionError):
    """Raised when a restore would overwrite a live `job:<id>`; nothing was written.

    ``status`` is the live record's status ("" when not read): the message
    says the job is in the main DB in that state, that only a purged job can
    be restored, and how to see the job instead.
    """

    def __init__(self, job_id: str, status: str = "") -> None:
        super().__init__(f"job {job_id} is {status or 'live'} in the main DB, not purged; only "
                         "a purged job can be restored (its record is in the archive); see it "
                         f"with: jobtrail status {job_id}")
        self.job_id = job_id
        self.status = status


class MonitorError(JobtrailError):
    """Root of monitor errors: a watch, snapshot or diff cannot go on as asked."""


class KeyspaceEventsUnavailableError(MonitorError):
    """Raised when the server refuses CONFIG GET/SET of notify-keyspace-events.

    The monitor goes on with snapshots alone; removals are then attributed to
    no cause ("unknown") unless the server already publishes the events.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"keyspace notifications cannot be enabled on {url}: {reason}")
        self.url = url
        self.reason = reason


class ReproError(JobtrailError):
    """Raised when a reproduction run cannot go on: DBs not empty, a worker that does not
    start, jobs that do not finish in time. The evidence recorded so far is kept."""
