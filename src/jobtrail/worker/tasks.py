"""The solve task: mark processing, solve with SymPy, record the answer or the reason.

Invariant: the job record's status change and the Celery result agree; a
second delivery of a finished job writes nothing (Celery's Ignore); a pool
process killed by the hard time limit gets its job failed by the parent
(Task.on_failure, which Celery calls for hard timeouts too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Celery, Task, shared_task
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import celeryd_init, task_revoked, worker_process_init

from jobtrail.clock import monotonic_s
from jobtrail.connections import connect
from jobtrail.errors import (
    ConcurrentUpdateError,
    InvalidTransitionError,
    JobNotFoundError,
    ProblemError,
    RedisCommandError,
    RedisUnavailableError,
    SolverTimeoutError,
)
from jobtrail.keys import KeySpace
from jobtrail.models import Job, JobStatus
from jobtrail.solver import Answer, classify, solve
from jobtrail.solver.limits import memory_guard, set_memory_limit
from jobtrail.store import JobStore
from jobtrail.store.job_store import completion_fields, failure_fields
from jobtrail.worker.app import SETTINGS_KEY, TASK_SOLVE, settings_of

__all__ = ["SolveTask", "answer_payload", "solve_job"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Runtime:
    store: JobStore
    time_limit_s: float
    hard_time_limit_s: float
    memory_limit_bytes: int
    max_attempts: int


_runtimes: dict[int, _Runtime] = {}


def _runtime(app: Celery) -> _Runtime:
    rt = _runtimes.get(id(app))
    if rt is None:
        settings = settings_of(app)
        main_url, _, _ = settings.require_urls()
        store = JobStore(connect(main_url, settings=settings),
                         KeySpace(settings.key_prefix, settings.queue),
                         events_max_len=settings.events_max_len)
        rt = _Runtime(store, settings.solver_time_limit_s, settings.solver_hard_time_limit_s,
                      settings.solver_memory_limit_bytes, settings.max_attempts)
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


class SolveTask(Task):  # type: ignore[misc]  # celery ships no types
    """Base of the solve task: fails the job when the hard time limit killed its process."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        """Record a hard time-limit kill on the job (runs in the worker's main process)."""
        if not isinstance(exc, TimeLimitExceeded):
            return
        rt = _runtime(self.app)
        reason = (f"timed out after {rt.hard_time_limit_s:g} s "
                  "(hard limit: the worker process was killed and replaced)")
        try:
            rt.store.fail(task_id, reason)
        except (InvalidTransitionError, JobNotFoundError) as err:
            logger.warning("hard timeout not recorded job_id=%s reason=%s", task_id, err)


def _kind_of(problem: str) -> str:
    try:
        return classify(problem)
    except ProblemError:
        return ""


#: How long a worker keeps retrying a main-DB write before handing the task
#: back to the broker (seconds); long enough to ride out a Redis restart.
MAIN_DB_RETRY_S = 30.0


def _with_main_db(what: str, job_id: str, write: Callable[[], T]) -> T:
    """Run *write*, retrying while the main DB is unreachable, then give the task back.

    A write that still fails after MAIN_DB_RETRY_S seconds raises Celery's
    Reject(requeue=True): the message returns to the queue (or, if the broker
    is down too, stays unacknowledged until the visibility timeout), so the
    job is redelivered instead of lost.
    """
    delay_s, deadline = 0.2, monotonic_s() + MAIN_DB_RETRY_S
    while True:
        try:
            return write()
        except RedisUnavailableError as exc:
            if monotonic_s() >= deadline:
                logger.error("main DB unreachable, task given back job_id=%s step=%s", job_id,
                             what)
                raise Reject(exc, requeue=True) from exc
            logger.warning("main DB unreachable, retrying job_id=%s step=%s", job_id, what)
        except SoftTimeLimitExceeded as exc:
            raise Reject(exc, requeue=True) from exc
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 5.0)


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


def _solve(rt: _Runtime, job_id: str, problem: str) -> _Outcome:
    try:
        with memory_guard(rt.memory_limit_bytes):
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


def _start_when_recorded(rt: _Runtime, job_id: str, worker: str) -> Job | None:
    deadline = monotonic_s() + RECORD_WAIT_S
    while True:
        try:
            return _with_main_db("start", job_id, lambda: rt.store.start(
                job_id, worker=worker, max_attempts=rt.max_attempts))
        except JobNotFoundError as exc:
            if monotonic_s() >= deadline:
                raise ProblemError(f"job {job_id} has no record in the main DB") from exc
        time.sleep(0.05)


def _run_in_steps(rt: _Runtime, job_id: str, worker: str,
                  outcome: _Outcome | None) -> dict[str, Any]:
    """The step-by-step path: start (handling redeliveries), solve unless solved, finish.

    Used for messages that do not carry the problem text, and whenever the
    pipelined path cannot tell what happened (a redelivery, exhausted attempts,
    a broken connection, scripts not loaded).
    """
    job = _start_when_recorded(rt, job_id, worker)
    if job is None:
        logger.info("duplicate delivery ignored job_id=%s", job_id)
        raise Ignore()
    if outcome is None:
        outcome = _solve(rt, job_id, job.problem)
    status, fields, event_fields = outcome.status_and_fields()
    try:
        _with_main_db("finish", job_id, lambda: rt.store.transition(
            job_id, status, fields=fields, event_fields=event_fields,
            expected_version=job.version))
    except (ConcurrentUpdateError, InvalidTransitionError) as exc:
        logger.warning("outcome dropped: another delivery took the job over job_id=%s (%s)",
                       job_id, exc)
        raise Ignore() from exc
    return outcome.result(job_id)


@shared_task(  # type: ignore[untyped-decorator]  # celery ships no types
    name=TASK_SOLVE, bind=True, base=SolveTask,
)
def solve_job(self: SolveTask, job_id: str, problem: str | None = None) -> dict[str, Any]:
    """Solve job *job_id*: processing -> completed (answer) | failed (reason).

    With the problem text in the message (as JobService sends it), the start
    is sent without waiting, the problem solved meanwhile, and the outcome
    sent on the same connection: about one round trip to the main DB per job.
    The outcome is written only if this delivery's start is still the
    record's (a run token), so nothing is ever written over another delivery.

    Returns:
        The answer payload (see answer_payload); Celery stores it as the result.

    Raises:
        ProblemError: The problem failed; its message is the job's `error`.
        celery.exceptions.Ignore: The job had already finished (duplicate
            delivery), or another delivery took it over meanwhile.
        celery.exceptions.Reject: The main DB stayed unreachable; the task goes
            back to the broker (requeue).
    """
    rt = _runtime(self.app)
    worker = str(self.request.hostname or "")
    if problem is None:
        return _run_in_steps(rt, job_id, worker, None)
    try:
        ticket = rt.store.send_start(job_id, worker=worker, max_attempts=rt.max_attempts)
    except RedisUnavailableError:
        return _run_in_steps(rt, job_id, worker, None)
    outcome = _solve(rt, job_id, problem)
    status, fields, event_fields = outcome.status_and_fields()
    try:
        started, finished = rt.store.finish(ticket, status, fields=fields,
                                            event_fields=event_fields)
    except (RedisUnavailableError, RedisCommandError):
        return _run_in_steps(rt, job_id, worker, outcome)
    if isinstance(finished, Job):
        return outcome.result(job_id)
    if isinstance(started, Job):  # another delivery took the job over while we solved
        logger.warning("outcome dropped: another delivery took the job over job_id=%s",
                       job_id)
        raise Ignore()
    # a redelivery (found processing), exhausted attempts, or finished already
    return _run_in_steps(rt, job_id, worker, outcome)


@task_revoked.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _record_revoked(sender: Any = None, request: Any = None, terminated: bool = False,
                    expired: bool = False, **_: Any) -> None:
    """Fail a job whose task was revoked or expired before it finished (task_revoked).

    Celery sends it with the Task as sender and the request Context.
    """
    if sender is None or request is None or getattr(sender, "name", None) != TASK_SOLVE:
        return
    why = "expired" if expired else ("terminated" if terminated else "revoked")
    try:
        _runtime(sender.app).store.fail(str(request.id), f"task {why} before it finished")
    except (InvalidTransitionError, JobNotFoundError) as err:
        logger.info("revocation not recorded job_id=%s reason=%s", request.id, err)


_pool_memory_limit_bytes: int = 0


@celeryd_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _remember_memory_limit(conf: Any = None, **_: Any) -> None:
    """Note the solver memory limit when a worker starts (Celery's celeryd_init)."""
    global _pool_memory_limit_bytes
    if conf is not None and SETTINGS_KEY in conf:
        _pool_memory_limit_bytes = conf[SETTINGS_KEY].solver_memory_limit_bytes


@worker_process_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _limit_pool_process_memory(**_: Any) -> None:
    """Cap each prefork pool process's address space (Celery's worker_process_init)."""
    if _pool_memory_limit_bytes:
        set_memory_limit(_pool_memory_limit_bytes)


