"""The solve task: mark processing, solve with SymPy, record the answer or the reason.

Invariant: the job record's status change and the Celery result agree; a
second delivery of a finished job, or one after the job's last attempt, is
refused by the start's own atomic step before any solve (Celery's Ignore; the
Celery result is stored from the record when none is); a pool
process killed by the hard time limit gets its job failed by the parent
(SolveRequest.on_timeout), only while the job is still that delivery's. Every
write of a job's start and outcome carries the delivery's run token (minted by
the worker's main process for each delivery, SolveRequest), so it can be
sent again after any connection error: a retried write is never recorded as
a redelivery, and `attempts` counts broker deliveries that started the job.
A delivery whose job has no record past RECORD_WAIT_S (its create lost in a
failover) recreates it from the message, unless a tombstone says it was purged
(JobRun._recreate).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Celery, Task, shared_task, states
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded, WorkerLostError
from celery.signals import task_revoked
from celery.worker import state as worker_state
from celery.worker.request import Request

from jobtrail.clock import monotonic_s, now_s
from jobtrail.connections import connect
from jobtrail.errors import (
    AttemptsExhaustedError,
    ConcurrentUpdateError,
    InvalidTransitionError,
    JobLeftBatchError,
    JobNotFoundError,
    JobPurgedError,
    JobtrailError,
    ProblemError,
    RedisOutOfMemoryError,
    RedisUnavailableError,
    SolverTimeoutError,
)
from jobtrail.keys import KeySpace
from jobtrail.metrics import failure_reason
from jobtrail.models import NO_RECORD_REASON, Job, JobStatus
from jobtrail.solver import Answer, classify, solve
from jobtrail.solver.limits import memory_guard
from jobtrail.store import JobStore, TombstoneStore
from jobtrail.store.job_store import (
    PendingFinish,
    StartTicket,
    completion_fields,
    failure_fields,
)
from jobtrail.store.node_stats import NodeCount
from jobtrail.worker import pool_limits  # noqa: F401  (its signal receivers, in every worker)
from jobtrail.worker.app import (
    CANCELLED_BEFORE_START,
    TASK_SOLVE,
    TASK_SOLVE_PROBLEM,
    settings_of,
)
from jobtrail.worker.node_metrics import kind_label
from jobtrail.worker.pool_loss import PoolLoss, pool_loss
from jobtrail.worker.results import OWNED_KEY, restore_result

__all__ = ["RUN_KEY", "JobRun", "SolveRequest", "SolveTask", "answer_payload", "hard_limit_reason",
           "result_from_record", "revoked_reason", "run_job", "runtime", "solve_job",
           "solve_problem", "solve_run"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Runtime:
    store: JobStore
    time_limit_s: float
    hard_time_limit_s: float
    memory_limit_bytes: int
    max_attempts: int
    redis_retry_s: float


_runtimes: dict[int, _Runtime] = {}


def runtime(app: Celery) -> _Runtime:
    """The worker's store and limits for *app*, built once per process."""
    rt = _runtimes.get(id(app))
    if rt is None:
        settings = settings_of(app)
        main_url, _, _ = settings.require_urls()
        store = JobStore(connect(main_url, settings=settings),
                         KeySpace(settings.key_prefix, settings.queue),
                         events_max_len=settings.events_max_len)
        rt = _Runtime(store, settings.solver_time_limit_s, settings.solver_hard_time_limit_s,
                      settings.solver_memory_limit_bytes, settings.max_attempts,
                      settings.redis_retry_s)
        _runtimes[id(app)] = rt
    return rt


def answer_payload(answer: Answer) -> dict[str, Any]:
    """Return the result dict stored in the job hash and returned to Celery.

    Shape: {"kind": str, "text": str, "latex": str, "steps": [str, ...],
    "verification": {"status": "verified" | "unverified" | "contradicted",
    "method": str, "detail": str, "max_error": float | None}}.
    """
    return {"kind": answer.kind, "text": answer.text, "latex": answer.latex,
            "steps": list(answer.steps), "verification": answer.verification.to_dict()}


#: The request key the worker's main process adds to each delivery: its run token.
RUN_KEY = "jobtrail_run"


class SolveRequest(Request):  # type: ignore[misc]  # celery ships no types
    """One delivery of a solve task, in the worker's main process (Celery's Task.Request).

    It mints the delivery's run token before the task reaches a pool process
    (which reads it as `self.request.jobtrail_run`), so the main process knows
    the token too: a hard time-limit kill fails the job only while the job is
    still this delivery's, never a newer delivery's that took it over.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_token = uuid.uuid4().hex
        self._request_dict[RUN_KEY] = self.run_token

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Record a hard time-limit kill on the job, if the job is still this delivery's.

        The record is written before Celery's own handling (its result and the
        task_failure signal), so a task_failure receiver reads the job failed.
        """
        if not soft and not worker_state.should_terminate \
                and self.task.name in (TASK_SOLVE, TASK_SOLVE_PROBLEM):
            self._record_hard_timeout()
        super().on_timeout(soft, timeout)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:
        """On a lost pool process (billiard's WorkerLostError, not at a warm shutdown),
        record its cause before Celery's own handling (which logs it and requeues the
        message), so the redelivery's `redelivered` event names it (_record_lost)."""
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, WorkerLostError) and not worker_state.should_terminate:
            self._record_lost(killed_by_limit=False, loss=pool_loss(exc))
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def _record_lost(self, *, killed_by_limit: bool, loss: PoolLoss | None = None) -> None:
        """Log the loss of this delivery's pool process in one line and record its cause
        on the job while the job is still this delivery's (JobStore.note_lost): the
        redelivery's event and a give-up name it. Unrecorded when the main DB cannot be
        reached (the event then lacks a reason). *killed_by_limit* is for subclasses."""
        if self.task.name not in (TASK_SOLVE, TASK_SOLVE_PROBLEM):
            return
        cause = (loss or PoolLoss(None, None)).cause
        try:
            attempts = runtime(self.task.app).store.note_lost(self.id, cause,
                                                              run=self.run_token)
        except JobtrailError as err:  # never let the main process's event loop die of it
            logger.warning("%s, task redelivered job_id=%s (cause not recorded: %s)", cause,
                           self.id, err)
            return
        logger.warning("%s, task redelivered job_id=%s attempt=%s", cause, self.id,
                       "?" if attempts is None else attempts)

    def _record_hard_timeout(self) -> None:
        rt = runtime(self.task.app)
        reason = hard_limit_reason(rt.hard_time_limit_s)
        try:
            job = rt.store.get(self.id)
            if job.status is JobStatus.PENDING:  # this delivery's start never landed
                rt.store.fail(self.id, reason, expected_version=job.version)
            else:
                rt.store.fail(self.id, reason, run=self.run_token)
        except ConcurrentUpdateError as err:
            logger.warning("hard timeout not recorded: another delivery took the job over "
                           "job_id=%s (%s)", self.id, err)
        except JobtrailError as err:  # finished, gone, malformed, Redis down: never let
            # the worker's main process (this runs in its event loop) die of it
            logger.warning("hard timeout not recorded job_id=%s reason=%s", self.id, err)


class SolveTask(Task):  # type: ignore[misc]  # celery ships no types
    """Base of the solve task: its deliveries are SolveRequests (run token, hard timeout)."""

    Request = SolveRequest
    #: A problem's own failure (parse, unsupported, timed out, memory, contradicted) is
    #: an outcome, not a fault of the worker: Celery logs it at INFO, without traceback.
    throws = (ProblemError,)


def hard_limit_reason(hard_time_limit_s: float) -> str:
    """The `error` of a job the hard time limit ended (a single job's and a batch's)."""
    return (f"timed out after {hard_time_limit_s:g} s "
            "(hard limit: the worker process was killed and replaced)")


def _kind_of(problem: str) -> str:
    try:
        return classify(problem)
    except ProblemError:
        return ""


#: What a worker's write to the main DB rides out (retried, then the task handed back):
#: the DB unreachable, or out of memory under noeviction (the write refused whole).
TRANSIENT = (RedisUnavailableError, RedisOutOfMemoryError)


def _with_main_db(rt: _Runtime, what: str, job_id: str, write: Callable[[], T]) -> T:
    """Run *write*, retrying while the main DB is unreachable or out of memory, then
    give the task back.

    A write that still fails after `redis_retry_s` seconds (setting, default
    30), or when the soft time limit comes first, raises Celery's
    Reject(requeue=True): the message returns to the
    queue (or, if the broker is down too, stays unacknowledged until the
    visibility timeout), so the job is redelivered instead of lost. Every
    write retried here is idempotent for the delivery's run token.
    """
    delay_s, deadline = 0.2, monotonic_s() + rt.redis_retry_s
    try:
        while True:
            try:
                return write()
            except TRANSIENT as exc:
                if monotonic_s() >= deadline:
                    logger.error("main DB unreachable, task given back job_id=%s step=%s "
                                 "reason=%s", job_id, what, exc.reason)
                    raise Reject(str(exc), requeue=True) from exc
                logger.warning("main DB unreachable, retrying job_id=%s step=%s reason=%s",
                               job_id, what, exc.reason)
            time.sleep(min(delay_s, max(0.0, deadline - monotonic_s()) + 0.01))
            delay_s = min(delay_s * 2, 5.0)
    except SoftTimeLimitExceeded as exc:  # the time limit came first: give the task back
        logger.error("main DB unreachable until the soft time limit, task given back "
                     "job_id=%s step=%s", job_id, what)
        raise Reject("soft time limit reached while the main DB was unreachable",
                     requeue=True) from exc


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What solving gave: the answer payload, or the reason it failed; and the kind."""

    payload: dict[str, Any] | None
    reason: str
    kind: str

    def status_and_fields(self) -> tuple[JobStatus, dict[str, str], dict[str, str]]:
        """The target status, hash fields and event fields that record this outcome."""
        if self.payload is not None:
            verification = self.payload.get("verification") or {}
            event = {"verification": str(verification.get("status", "unverified"))}
            return JobStatus.COMPLETED, completion_fields(self.payload, self.kind), event
        return (JobStatus.FAILED, failure_fields(self.reason, self.kind),
                {"error": self.reason})

    def result(self, job_id: str) -> dict[str, Any]:
        """Return the payload for Celery, or raise the failure as ProblemError."""
        if self.payload is None:
            logger.info("job failed job_id=%s reason=%s", job_id, self.reason)
            raise ProblemError(self.reason)
        logger.info("job completed job_id=%s kind=%s", job_id, self.kind)
        return self.payload


def _solve(rt: _Runtime, job_id: str, problem: str,
           limit: Callable[[], AbstractContextManager[None]] = nullcontext) -> _Outcome:
    """Solve *problem* under *limit* (the batch's own per-job soft time limit) and the
    memory guard; a limit reached is the job's outcome, never an exception."""
    try:
        with limit(), memory_guard(rt.memory_limit_bytes):
            answer = solve(problem)
    except SoftTimeLimitExceeded:
        return _Outcome(None, str(SolverTimeoutError(rt.time_limit_s)), _kind_of(problem))
    except ProblemError as exc:
        return _Outcome(None, str(exc), _kind_of(problem))
    except Exception as exc:  # a SymPy defect must still end the job with a reason
        logger.exception("solver raised job_id=%s", job_id)
        return _Outcome(None, f"internal solver error: {type(exc).__name__}: {exc}"[:500],
                        _kind_of(problem))
    return _Outcome(answer_payload(answer), "", answer.kind)


#: A task can arrive before its record: the submitter writes both at once. Wait this
#: long (seconds) for the record before failing the task as having none.
RECORD_WAIT_S = 2.0


def result_from_record(rt: _Runtime, backend: Any, job_id: str, request: Any) -> None:
    """Store the Celery result of finished job *job_id* from its record (the caller found
    none stored), as Celery stored it at the finish (results.restore_result: date_done =
    finished_at, the TTL left of result_expires_s); nothing for an unfinished job.

    Raises:
        celery.exceptions.Reject: The main DB stayed unreachable.
        BackendStoreError, redis errors: as the backend's own set().
    """
    job = _with_main_db(rt, "read", job_id, lambda: rt.store.get(job_id))
    value: Any
    if job.status is JobStatus.COMPLETED:
        value, state = job.result, states.SUCCESS
    elif job.status is JobStatus.FAILED:
        value, state = ProblemError(job.error), states.FAILURE
    else:
        return
    done_at = job.finished_at if job.finished_at is not None else now_s()
    if restore_result(backend, job_id, value, state, request, done_at=done_at, now=now_s()):
        logger.info("Celery result of a finished job stored from its record job_id=%s",
                    job_id)


class JobRun:
    """One broker delivery of a job: its run token, its start and its finish.

    The token is minted per delivery (each call of the task body is one
    delivery), so a start or finish sent again after a connection error is
    recognised by the store as this run's own write and changes nothing,
    while a new delivery (another token) finding the job processing records
    a true redelivery.
    """

    def __init__(self, rt: _Runtime, job_id: str, worker: str,
                 task: SolveTask | None = None, token: str = "", request: Any = None,
                 batch: str = "", problem: str | None = None) -> None:
        self.rt, self.job_id, self.worker, self.task = rt, job_id, worker, task
        #: The problem text the message carries (None: a message without it), from which
        #: a record missing past RECORD_WAIT_S is recreated (_recreate).
        self.problem = problem
        #: True once this delivery recreated the job's record (it does so at most once).
        self.recreated = False
        #: The batch message this delivery runs the job from ("" for the job's own): a
        #: job requeued alone since has left it, and its start is refused.
        self.batch = batch
        #: The request context Celery results of this job are stored with (the job's
        #: own in a batch; by default the task's).
        self.request = request
        self.token = token or uuid.uuid4().hex
        self.started_at = now_s()
        self.ticket: StartTicket | None = None
        #: A finish sent by send_finish() whose reply read_finish() reads.
        self.pending: PendingFinish | None = None
        #: Why the delivery was refused, once it was: "finished" (the job was finished
        #: already, a duplicate), "spent" (its attempts were used up: given up), "left
        #: batch" (requeued alone since), "taken over" (another delivery started it) or
        #: "purged" (no record but a tombstone: never recreated).
        self.refused = ""
        #: The job's failure when this delivery gave it up ("spent"), else "".
        self.error = ""

    def first_delivery(self) -> bool:
        """True for the first delivery of a task message (kombu marks a message it restores,
        at a reject, a lost pool process, a visibility timeout or a dead worker's sweep,
        `redelivered`): its start need not be read before the solve (solve_run's
        *known_startable*). Its job is pending, or was requeued by hand; the start is
        read with the finish, and a refused one drops the outcome. A redelivered
        message may carry a job whose last attempt killed its pool process: its start
        is read first, so that a job past its attempts is given up without a solve."""
        if self.task is None or self.batch:
            return False
        return not (self.task.request.delivery_info or {}).get("redelivered")

    def send_start(self) -> StartTicket:
        """Send (or send again) this run's start; its reply is read later."""
        self.ticket = self.rt.store.send_start(**self._start_call())
        return self.ticket

    def _start_call(self) -> dict[str, Any]:
        """JobStore.send_start()'s keyword arguments for this run's start."""
        return {"job_id": self.job_id, "worker": self.worker,
                "max_attempts": self.rt.max_attempts, "token": self.token,
                "started_at": self.started_at, "batch": self.batch}

    def start(self) -> Job:
        """Start and wait for the record (for a message without the problem text).

        Raises:
            ProblemError: No record appeared within RECORD_WAIT_S, and the message
                carries no problem text to recreate it from (else it is: _recreate).
            celery.exceptions.Ignore: The delivery must not run (also: the job was
                purged, and is not recreated).
            celery.exceptions.Reject: The main DB stayed unreachable.
        """
        deadline = monotonic_s() + RECORD_WAIT_S
        while True:
            started = _with_main_db(self.rt, "start", self.job_id,
                                    lambda: self.rt.store.read_start(self.send_start()))
            if isinstance(started, Job):
                return started
            self.ticket = None
            self._refused(started, deadline)

    def finish(self, outcome: _Outcome) -> dict[str, Any]:
        """Write *outcome* (with the start, if not yet applied); return or raise it for Celery.

        Raises:
            ProblemError: The outcome is a failure (its reason), or no record
                appeared within RECORD_WAIT_S and none could be recreated (as start()).
            celery.exceptions.Ignore: The delivery must not write (a purged job, a duplicate,
                or another delivery took the job over).
            celery.exceptions.Reject: The main DB stayed unreachable.
        """
        status, fields, event_fields, node = self._finish_args(outcome)

        def write() -> tuple[Job | JobtrailError, Job | JobtrailError]:
            ticket, self.ticket = self.ticket or self.send_start(), None
            return self.rt.store.finish(ticket, status, fields=fields,
                                        event_fields=event_fields, node=node)

        deadline = monotonic_s() + RECORD_WAIT_S
        while True:
            started, finished = _with_main_db(self.rt, "finish", self.job_id, write)
            if isinstance(finished, Job):
                return self._applied(outcome)
            self._refused(started if not isinstance(started, Job) else finished, deadline)

    def _finish_args(self, outcome: _Outcome,
                     ) -> tuple[JobStatus, dict[str, str], dict[str, str], NodeCount | None]:
        status, fields, event_fields = outcome.status_and_fields()
        # the node's own metrics count the job in the finish's step (no round trip of its own)
        node = NodeCount(self.worker, kind_label(outcome.kind), failure_reason(outcome.reason)
                         ) if self.worker else None
        return status, fields, event_fields, node

    def _applied(self, outcome: _Outcome) -> dict[str, Any]:
        if self.task is not None:  # the outcome is this run's: no read before the store
            setattr(self.request or self.task.request, OWNED_KEY, True)
        return outcome.result(self.job_id)

    def send_finish(self, outcome: _Outcome, *, then: JobRun | None = None) -> None:
        """Send *outcome* on the start's connection without reading the reply (group
        commit, worker.batch); read_finish() reads it. Without a sent start, or when
        the send fails, nothing is pending and read_finish() writes both the usual way
        (finish(): the same token, so a step applied already changes nothing).

        *then*: the run of the batch's next job, whose start goes in the same write
        (JobStore.send_finish *then_start*; its replies are read after this run's); a
        run whose start is sent already, or a send that fails, leaves it to send its
        own."""
        ticket, self.ticket = self.ticket, None
        if ticket is None:
            return
        status, fields, event_fields, node = self._finish_args(outcome)
        chained = then is not None and then.ticket is None
        try:
            self.pending = self.rt.store.send_finish(
                ticket, status, fields=fields, event_fields=event_fields, node=node,
                then_start=then._start_call() if chained and then is not None else None)
            if chained and then is not None:
                then.ticket = self.pending.next_ticket
        except TRANSIENT as exc:
            logger.warning("main DB unreachable at finish, retrying job_id=%s (%s)",
                           self.job_id, exc.reason)

    def read_finish(self, outcome: _Outcome, *, retry: bool = True) -> dict[str, Any]:
        """Read the finish send_finish() sent (else write it: finish()); as finish().

        With *retry* False, nothing is sent again: a finish not sent, unread
        (the main DB unreachable) or refused raises Ignore.

        Raises:
            ProblemError, celery.exceptions.Ignore, celery.exceptions.Reject: as finish().
        """
        pending, self.pending = self.pending, None
        if pending is None:
            if not retry:
                raise Ignore()
            return self.finish(outcome)
        try:
            started, finished = self.rt.store.read_finish(pending)
        except TRANSIENT as exc:
            if not retry:
                raise Ignore() from exc
            logger.warning("main DB unreachable at finish, retrying job_id=%s (%s)",
                           self.job_id, exc.reason)
            return self.finish(outcome)  # both sent again with the same token
        if isinstance(finished, Job):
            return self._applied(outcome)
        if not retry:
            raise Ignore()
        self._refused(started if not isinstance(started, Job) else finished,
                      monotonic_s() + RECORD_WAIT_S)
        return self.finish(outcome)  # the record was missing: wait for it as finish() does

    def skip_cancelled(self, *, started: bool) -> None:
        """End a delivery of a cancelled job: Celery's result says REVOKED, the run is ignored.

        A job cancelled before this delivery started gets a `skipped` event
        ("cancelled before start"); one cancelled (terminated) while this run
        solved keeps its record, and the outcome is dropped.

        Raises:
            celery.exceptions.Ignore: always.
        """
        if started:
            logger.info("outcome dropped: the job was cancelled while it ran job_id=%s",
                        self.job_id)
        else:
            logger.info("cancelled job skipped job_id=%s", self.job_id)
            _with_main_db(self.rt, "skip", self.job_id, lambda: self.rt.store.note_skipped(
                self.job_id, worker=self.worker, reason=CANCELLED_BEFORE_START))
        if self.task is not None:
            self.task.backend.mark_as_revoked(self.job_id, CANCELLED_BEFORE_START
                                              if not started else "cancelled",
                                              request=self.request or self.task.request)
        raise Ignore()

    def store_missing_result(self) -> None:
        """Store the Celery result of this finished job from its record, if none is stored.

        A delivery refused because the job is finished (a duplicate, or given
        up after its last attempt) runs nothing, and Celery stores nothing for
        an ignored task: without this, a client waiting on
        `AsyncResult(job_id).get()` would wait for ever. The result is stored
        as Celery stores it at a finish (results.restore_result: date_done =
        finished_at, the TTL left of result_expires_s). A result that cannot
        be read or stored is logged: the record stays the truth.
        """
        if self.task is None:
            return
        backend = self.task.backend
        try:
            if backend.get(backend.get_key_for_task(self.job_id)) is not None:
                return
            result_from_record(self.rt, backend, self.job_id, self.request or self.task.request)
        except Reject:
            raise
        except Exception as exc:  # noqa: BLE001 - the record stays the truth
            logger.warning("Celery result of a finished job not stored job_id=%s (%s)",
                           self.job_id, exc)

    def _recreate(self) -> None:
        """Recreate the pending record of this job from its message (JobStore.recreate):
        its create was lost (a Sentinel failover with MAIN_MIN_REPLICAS=0 discarded it
        while the message survived), and the message carries all it wrote. The caller's
        start (or finish) then goes on as for any pending job.

        The archive is not consulted: workers do not open it (SQLAlchemy, and the
        default SQLite file is the purging host's); the tombstone, written in the
        purge's own delete step and kept tombstone_ttl_s (30 days by default), far
        longer than a message outlives its job's finish, is the check.

        Raises:
            celery.exceptions.Ignore: The job was purged (its tombstone is there): the
                delivery is dropped, nothing written.
            celery.exceptions.Reject: The main DB stayed unreachable.
        """
        problem = self.problem or ""
        outcome = _with_main_db(self.rt, "recreate", self.job_id, lambda: self.rt.store.recreate(
            self.job_id, problem, worker=self.worker, batch=self.batch,
            created_at=self.started_at))
        self.recreated = True
        if outcome == "purged":
            self.refused = "purged"
            try:
                tomb = TombstoneStore(self.rt.store.client, self.rt.store.keys).find(self.job_id)
            except JobtrailError:
                tomb = None
            logger.warning("delivery of a purged job dropped, record not recreated job_id=%s "
                           "purged_at=%s policy=%s", self.job_id,
                           "?" if tomb is None else repr(tomb.purged_at),
                           "?" if tomb is None else tomb.policy)
            raise Ignore()
        if outcome == "created":
            logger.warning("record missing when its message was delivered (a create lost in "
                           "a failover?): recreated from the message job_id=%s batch=%s",
                           self.job_id, self.batch or "-")

    def _refused(self, err: Job | JobtrailError, deadline: float) -> None:
        """Act on a refused step: wait for a missing record, else end the delivery."""
        if isinstance(err, JobNotFoundError):
            if monotonic_s() < deadline:
                time.sleep(0.05)
                return
            if self.problem is None or self.recreated:
                raise ProblemError(f"job {self.job_id} {NO_RECORD_REASON}") from err
            self._recreate()
            return
        if isinstance(err, AttemptsExhaustedError):
            logger.warning("delivery after the last attempt: job given up, not solved "
                           "job_id=%s attempts=%s", self.job_id, err.attempts)
            self.refused, self.error = "spent", _with_main_db(
                self.rt, "give up", self.job_id,
                lambda: self.rt.store.give_up(self.job_id, err.attempts))
            self.store_missing_result()
            raise Ignore()
        if isinstance(err, JobLeftBatchError):
            logger.info("job left its batch (requeued alone): not started from it job_id=%s "
                        "batch=%s", self.job_id, self.batch)
            self.refused = "left batch"
            raise Ignore()
        if isinstance(err, InvalidTransitionError) and err.from_ == JobStatus.CANCELLED.value:
            self.skip_cancelled(started=err.to != JobStatus.PROCESSING.value)
        if isinstance(err, InvalidTransitionError) and err.to == JobStatus.PROCESSING.value:
            logger.info("duplicate delivery ignored job_id=%s", self.job_id)
            self.refused = "finished"
            self.store_missing_result()
            raise Ignore()
        self.refused = "taken over"
        logger.warning("outcome dropped: another delivery took the job over job_id=%s (%s)",
                       self.job_id, err)
        raise Ignore()


@shared_task(  # type: ignore[untyped-decorator]  # celery ships no types
    name=TASK_SOLVE, bind=True, base=SolveTask,
)
def solve_job(self: SolveTask, job_id: str, problem: str | None = None) -> dict[str, Any]:
    """Solve job *job_id*: processing -> completed (answer) | failed (reason).

    One path for every delivery: the start (with any `redelivered` event) is
    one atomic step that also checks the attempts. A redelivered message's
    start is read before the solve begins, so a delivery refused (the job
    finished, or its attempts used up: then failed "gave up after N
    attempts") solves nothing, and gets its Celery result from the record.
    A first delivery's start is sent and the problem solved meanwhile
    (JobRun.first_delivery); its outcome goes on the start's connection and
    both replies are read together: one round trip to the main DB per job
    (a start refused all the same drops the outcome, as above). Both
    writes carry the delivery's run token, so after a connection error both
    are simply sent again: a write already applied changes nothing, and the
    outcome is never written over another delivery's start.

    Returns:
        The answer payload (see answer_payload); Celery stores it as the result.

    Raises:
        ProblemError: The problem failed; its message is the job's `error`.
        celery.exceptions.Ignore: The job had already finished (duplicate
            delivery), its attempts were used up (given up, not solved), or
            another delivery took it over meanwhile.
        celery.exceptions.Reject: The main DB stayed unreachable; the task goes
            back to the broker (requeue).
    """
    return _deliver(self, job_id, problem)


def _deliver(task: SolveTask, job_id: str, problem: str | None) -> dict[str, Any]:
    return run_job(JobRun(runtime(task.app), job_id, str(task.request.hostname or ""), task,
                          str(getattr(task.request, RUN_KEY, None) or ""), problem=problem),
                   problem)


def run_job(run: JobRun, problem: str | None,
            limit: Callable[[], AbstractContextManager[None]] = nullcontext) -> dict[str, Any]:
    """The one per-job step of every solve task: start, solve (under *limit*), finish.

    solve_job and solve_problem run it once per delivery, solve_batch
    (worker.batch) once per job of the batch, with the job's own soft time
    limit as *limit*.

    Returns:
        The answer payload (see answer_payload).

    Raises:
        ProblemError, celery.exceptions.Ignore, celery.exceptions.Reject: see JobRun.finish.
    """
    return run.finish(solve_run(run, problem, limit, known_startable=run.first_delivery()))


def solve_run(run: JobRun, problem: str | None,
              limit: Callable[[], AbstractContextManager[None]] = nullcontext, *,
              known_startable: bool = False) -> _Outcome:
    """run_job's start and solve, without the finish: the outcome to finish.

    The start's reply is read before the solve, so a refused delivery solves
    nothing, unless *known_startable*: the caller read the record in this
    delivery (a batch reads all its jobs at its start) and found it startable
    (not finished, attempts left, still in its batch). Then the start is sent
    and the problem solved meanwhile, saving a round trip; a start refused all
    the same (another delivery started the job since) is read with the finish,
    whose outcome is then dropped. A start that cannot be sent is sent again
    with the finish.

    Raises:
        ProblemError, celery.exceptions.Ignore, celery.exceptions.Reject: see JobRun.start.
    """
    if problem is None or not known_startable:
        job = run.start()  # read before the solve: a refused delivery solves nothing
        return _solve(run.rt, run.job_id, job.problem if problem is None else problem, limit)
    try:
        if run.ticket is None:  # else sent already, with the batch's previous finish
            run.send_start()
    except TRANSIENT as exc:
        logger.warning("main DB unreachable at start, solving meanwhile job_id=%s (%s)",
                       run.job_id, exc.reason)
    return _solve(run.rt, run.job_id, problem, limit)


@shared_task(  # type: ignore[untyped-decorator]  # celery ships no types
    name=TASK_SOLVE_PROBLEM, bind=True, base=SolveTask,
)
def solve_problem(self: SolveTask, problem: str) -> dict[str, Any]:
    """Solve *problem* as the job whose id is this task's id: the public task for Celery users.

    `app.send_task("jobtrail.solve", args=[problem])` (or the task's
    `.delay(problem)`) on jobtrail's app writes the job record before the
    message goes out (worker.app.JobtrailCelery); a message published any
    other way gets its record here, on the way in. Then as solve_job.

    Returns:
        The answer payload (see answer_payload), as `AsyncResult(id).get()` reads it.

    Raises:
        ProblemError: The problem failed (or was not text); its message is the job's `error`.
        celery.exceptions.Ignore, celery.exceptions.Reject: as solve_job.
    """
    job_id = str(self.request.id)
    if not isinstance(problem, str):
        raise ProblemError(f"the problem must be text, not {type(problem).__name__}")
    rt = runtime(self.app)

    def create() -> None:
        try:
            rt.store.create(problem, job_id=job_id, unless_purged=True)
        except ConcurrentUpdateError:
            pass  # recorded by the producer (or an earlier delivery)
        except JobPurgedError:
            # a late duplicate of a purged job's message: never resurrected (as a
            # recreation, JobRun._recreate)
            logger.warning("delivery of a purged job dropped, record not written job_id=%s",
                           job_id)
            raise Ignore() from None

    _with_main_db(rt, "create", job_id, create)
    return _deliver(self, job_id, problem)


def revoked_reason(why: str) -> str:
    """The `error` of a job whose task was *why* ("revoked", "terminated", "expired")."""
    return f"task {why} before it finished"


@task_revoked.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _record_revoked(sender: Any = None, request: Any = None, terminated: bool = False,
                    expired: bool = False, **_: Any) -> None:
    """Fail a job whose task was revoked or expired before it finished (task_revoked).

    A job cancelled through jobtrail (`jobtrail cancel`) is already
    `cancelled`: it stays so, and a revoke this worker knew of before the
    job started gets the `skipped` event ("cancelled before start").
    Celery sends it with the Task as sender and the request Context.
    """
    if sender is None or request is None or getattr(sender, "name", None) not in (
            TASK_SOLVE, TASK_SOLVE_PROBLEM):
        return
    why = "expired" if expired else ("terminated" if terminated else "revoked")
    store, job_id = runtime(sender.app).store, str(request.id)
    try:
        store.fail(job_id, revoked_reason(why))
    except InvalidTransitionError as err:
        if err.from_ == JobStatus.CANCELLED.value and not terminated:
            try:
                store.note_skipped(job_id, worker=str(request.hostname or ""),
                                   reason=CANCELLED_BEFORE_START)
            except RedisUnavailableError as exc:
                logger.warning("skip not recorded job_id=%s reason=%s", job_id, exc)
        logger.info("revocation not recorded job_id=%s reason=%s", job_id, err)
    except (JobNotFoundError, RedisUnavailableError) as err:
        logger.info("revocation not recorded job_id=%s reason=%s", job_id, err)
