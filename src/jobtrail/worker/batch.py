"""The batch task: several jobs in one Celery message, each solved as a single job is.

Invariant: a job of a batch gets everything a single job gets, from the same
per-job steps (tasks.solve_run, then JobRun's finish): its start with the delivery's run token, its
outcome, its own `celery-task-meta-<job id>` (stored with a request context
shaped like a single job's, so `AsyncResult(job_id).get()` reads the same),
its own soft time limit (an interval timer per job, SIGALRM), its own memory
guard, its own attempt count. A job already finished is skipped without a
write; a cancelled one is skipped as a single job is, and so is one revoked
through Celery by its job id (worker.batch_revoke, in the main process).

Hard limit, two layers: each job arms a C-level watchdog
(`faulthandler.dump_traceback_later(hard_s, exit=True)`, a thread that needs
no GIL) that ends the pool process when the job outlives the hard limit;
the batch's Celery time limit, n x hard + margin, is the backstop for a pool
process that cannot run at all (stopped). Either way the message is rejected
and requeued (reject on worker lost; on a batch time limit, no ack), and the
redelivered batch resumes after the finished jobs. The main process's
BatchRequest names the true reason on the job its delivery was running, and
fails it once its attempts have run out.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from celery import shared_task, states
from celery.app.task import Context
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from celery.signals import task_postrun, worker_process_init
from celery.worker import state as worker_state

from jobtrail.clock import monotonic_s, now_s
from jobtrail.config import BATCH_MARGIN_S
from jobtrail.errors import JobtrailError, ProblemError
from jobtrail.models import JobStatus
from jobtrail.worker.app import TASK_SOLVE_BATCH, settings_of
from jobtrail.worker.batch_events import BatchEvents, batch_events
from jobtrail.worker.batch_revoke import job_context, skip_revoked
from jobtrail.worker.node_metrics import count_job
from jobtrail.worker.pool_loss import PoolLoss
from jobtrail.worker.results import PendingResults, send_owned_results
from jobtrail.worker.tasks import (
    RUN_KEY,
    JobRun,
    SolveRequest,
    SolveTask,
    _Outcome,
    _with_main_db,
    hard_limit_reason,
    result_from_record,
    runtime,
    solve_run,
)

__all__ = ["GROUP_COMMIT_MAX", "GROUP_COMMIT_S", "BatchRequest", "BatchTask",
           "batch_time_limit_s", "hard_limit_reason", "solve_batch"]

logger = logging.getLogger(__name__)

#: Statuses a job of a redelivered batch is skipped in, without a write.
_FINISHED = frozenset({JobStatus.COMPLETED.value, JobStatus.FAILED.value})
#: The status _Delivery.read() gives a job whose record no longer names this batch: `jobtrail
#: requeue` sent it alone (JobStore.leave_batch); skipped without a write.
_LEFT = "left the batch"
#: Statuses a job of a batch can be started in.
_STARTABLE = frozenset({JobStatus.PENDING.value, JobStatus.PROCESSING.value})


def batch_time_limit_s(jobs: int, hard_time_limit_s: float,
                       visibility_timeout_s: float) -> float:
    """The Celery hard time limit of a batch of *jobs*: each job's hard limit, plus a
    margin, in seconds; capped at the visibility timeout less the margin (never below
    one job's hard limit).

    The submitter sizes batches so that the cap is not reached (Settings.batch_jobs);
    a worker whose hard limit is longer than the submitter's (settings drift) would
    otherwise hold a batch past the visibility timeout, and kombu would deliver it to
    a second worker while this one runs it. Reaching the cap ends the pool process
    and the batch resumes on its next delivery, as at a hard limit.
    """
    whole = max(1, jobs) * hard_time_limit_s + BATCH_MARGIN_S
    return min(whole, max(hard_time_limit_s, visibility_timeout_s - BATCH_MARGIN_S))


class BatchRequest(SolveRequest):
    """One delivery of a batch, in the worker's main process.

    Its Celery time limits come from the batch's size (batch_time_limit_s;
    the soft one is past the hard one: each job has its own). When the pool
    process is lost (the per-job watchdog, a kill) or the batch's limit
    passes, it finds the job this delivery was running and, when that job
    outlived the hard limit, records the true reason once its attempts are
    spent; otherwise the redelivery counts a new attempt.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = settings_of(self.task.app)
        limit_s = batch_time_limit_s(len(self.args or ()), settings.solver_hard_time_limit_s,
                                     settings.visibility_timeout_s)
        self.time_limits = (limit_s, limit_s + 1.0)
        skip_revoked(self)  # jobs revoked before the batch arrived (batch_revoke)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Note the running job's hard limit before Celery's handling (which requeues)."""
        if not soft and not worker_state.should_terminate:
            self._record_lost(killed_by_limit=True)
        super().on_timeout(soft, timeout)

    def _record_lost(self, *, killed_by_limit: bool, loss: PoolLoss | None = None) -> None:
        """Name the loss of this delivery's pool process on the job it was running.

        The hard limit is blamed only on its own evidence: Celery's timeout
        handling (*killed_by_limit*), or the watchdog's exit (*loss*.by_watchdog)
        after the job ran about its hard limit; any other loss is logged with
        *loss*.cause (signal or exit code) and the redelivery counts the attempt.
        """
        rt = runtime(self.task.app)
        cause = "batch time limit" if killed_by_limit else (loss or PoolLoss(None, None)).cause
        ids = [str(pair[0]) for pair in self.args or ()]
        try:
            rows = rt.store.read_fields(ids, ("status", "run", "attempts", "started_at"))
            for job_id, (status, run, attempts, started_at) in zip(ids, rows, strict=True):
                if status != JobStatus.PROCESSING.value or run != self.run_token:
                    continue
                ran_s = now_s() - float(started_at or now_s())
                by_limit = killed_by_limit or (loss is not None and loss.by_watchdog)
                if ran_s < rt.hard_time_limit_s * 0.9 or not by_limit:
                    # lost for another reason (a kill; the batch's limit capped below the
                    # visibility timeout): the redelivery counts the attempt
                    if killed_by_limit:
                        logger.warning("batch time limit reached, batch redelivered "
                                       "job_id=%s batch=%s ran_s=%.1f", job_id, self.id,
                                       ran_s)
                    else:  # named on the job for its redelivered event and give-up
                        rt.store.note_lost(job_id, cause, run=self.run_token)
                        logger.warning("%s, batch redelivered job_id=%s batch=%s "
                                       "ran_s=%.1f attempt=%s", cause, job_id, self.id,
                                       ran_s, attempts)
                    return
                if int(attempts or 0) >= rt.max_attempts:
                    rt.store.fail(job_id, hard_limit_reason(rt.hard_time_limit_s),
                                  run=self.run_token)
                    count_job(self.task.app.conf, job_id, str(self.hostname or ""))
                else:
                    logger.warning("hard time limit: pool process killed (%s), batch "
                                   "redelivered job_id=%s batch=%s attempt=%s", cause, job_id,
                                   self.id, attempts)
                return
        except JobtrailError as err:  # never let the main process's event loop die of it
            logger.warning("%s: not recorded on the job batch=%s reason=%s", cause, self.id,
                           err)


class BatchTask(SolveTask):
    """Base of the batch task: BatchRequest deliveries; a batch time limit requeues."""

    Request = BatchRequest
    #: The batch's own Celery result would be one more key no job names: none is stored.
    ignore_result = True
    #: A batch time limit must not ack the message: the jobs after the stuck one still run.
    acks_on_failure_or_timeout = False


#: True in a prefork pool process: only there are a job's limits armed. Elsewhere (the
#: solo or threads pool, a worker in a test's thread) the watchdog would end the whole
#: worker and SIGALRM cannot be handled off the main thread: those pools enforce no
#: solver limit, for a batch as for a single job (pool_limits.unlimited_pool_warning).
_limits_armed = [False]
#: The process that imported this module: the worker's main process (Celery imports the
#: task modules before it forks its pool), so a pool process has another pid.
_IMPORTED_IN = os.getpid()


@worker_process_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _arm_limits_in_pool_process(**_: Any) -> None:
    """Arm per-job limits in a forked pool process (Celery's worker_process_init, which
    the solo pool sends too, in the worker's own process)."""
    _limits_armed[0] = (os.getpid() != _IMPORTED_IN
                        and threading.current_thread() is threading.main_thread())


#: Seconds between repeats of a soft time limit's SIGALRM while the job still runs.
SOFT_LIMIT_REPEAT_S = 0.5


@contextmanager
def job_limits(soft_s: float) -> Iterator[None]:
    """Arm one job's soft time limit: SIGALRM after *soft_s* seconds raises
    SoftTimeLimitExceeded in the solve (as Celery's SIGUSR1 does for a single job),
    and again every SOFT_LIMIT_REPEAT_S until the solve ends.

    The repeat is for an exception that never reaches the solve: raised while a
    finalizer runs (redis-py's Connection.__del__ during a garbage collection;
    Python prints "Exception ignored in ..." and drops it) or caught by a broad
    `except` in library code. The job then ran on to the hard limit, whose kill
    redelivered the batch and counted an attempt of its own (a job timed out at
    2 s read 3 attempts instead of 2).
    """
    active = [True]

    def soft_limit(signum: int, frame: Any) -> None:
        if active[0]:
            raise SoftTimeLimitExceeded(soft_s)

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, soft_s, SOFT_LIMIT_REPEAT_S)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            active[0] = False  # a SIGALRM already on its way raises nothing now
            signal.signal(signal.SIGALRM, previous)


#: Seconds an armed watchdog is kept before a job re-arms it (at most a tenth of hard_s).
WATCHDOG_SLACK_S = 1.0
#: When this process's watchdog was last armed (clock.monotonic_s), None while disarmed.
_armed_at: list[float | None] = [None]


@contextmanager
def _watchdog(hard_s: float) -> Iterator[None]:
    """The job's hard limit: faulthandler's C thread dumps the stacks to stderr and ends
    the process (exit code 1) after *hard_s* seconds, even if the GIL is never released.

    Arming starts a thread and disarming joins it (about 0.5 ms, a tenth of a trivial
    job's cost in a batch), so a job re-arms only an arm older than the slack
    (WATCHDOG_SLACK_S, at most hard_s / 10), armed for hard_s + slack: a job is ended
    between hard_s and hard_s + slack after it began. The arm stays between the jobs of
    a batch (a result store still hanging when it fires ends the process too: the
    redelivered batch skips the finished job) and is disarmed when the batch task
    ends (task_postrun).

    A watchdog that cannot start (its thread's stack finds no address space under the
    memory limit, once SymPy's cache has grown) leaves the job to the batch's Celery
    time limit, logged: the job runs, as a single job under Celery's limit would,
    rather than its batch being handed back on every delivery with no attempt counted.
    """
    slack_s, now = min(WATCHDOG_SLACK_S, hard_s / 10), monotonic_s()
    armed_at = _armed_at[0]
    if armed_at is None or now - armed_at >= slack_s:
        try:
            # the process's own stderr (fd 2, the worker's log): Celery's LoggingProxy has
            # no fileno
            faulthandler.dump_traceback_later(hard_s + slack_s, exit=True,
                                              file=sys.__stderr__ or sys.stderr)
        except RuntimeError as exc:
            logger.warning("per-job hard limit not armed (%s): the batch's time limit "
                           "remains", exc)
            _armed_at[0] = None
        else:
            _armed_at[0] = now
    yield


@task_postrun.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _disarm_after_batch(task: Any = None, **_: Any) -> None:
    """Disarm the watchdog when a batch task ends in this process (Celery's task_postrun)."""
    if _armed_at[0] is not None and getattr(task, "name", None) == TASK_SOLVE_BATCH:
        faulthandler.cancel_dump_traceback_later()
        _armed_at[0] = None


def _job_request(task: BatchTask, job_id: str, problem: str) -> Context:
    """The request context a single job's result is stored with (celery-task-meta-<id>)."""
    req = task.request
    return job_context(job_id, problem, hostname=req.hostname, retries=req.retries or 0,
                       delivery_info=req.delivery_info)


@shared_task(  # type: ignore[untyped-decorator]  # celery ships no types
    name=TASK_SOLVE_BATCH, bind=True, base=BatchTask,
)
def solve_batch(self: BatchTask, *jobs: Sequence[str]) -> int:
    """Solve the jobs [job_id, problem] of one message one after another.

    Returns:
        How many jobs this delivery finished (completed or failed).

    Raises:
        celery.exceptions.Reject: The main DB stayed unreachable, a job's step
            raised something that is not the problem's failure, or another
            delivery took one of the jobs over (this one's batch was taken
            back): the message goes back to the broker (a no-op when it is
            back already) and its redelivery resumes after the jobs finished
            meanwhile.
    """
    pairs = [(str(job_id), str(problem)) for job_id, problem in jobs]
    return _Delivery(self, runtime(self.app), pairs).run()


class _Delivery:
    """One delivery of a batch in its pool process: its jobs, their statuses as last read,
    and the jobs solved whose finish is not read yet (group commit, GROUP_COMMIT_S)."""

    def __init__(self, task: BatchTask, rt: Any, pairs: list[tuple[str, str]]) -> None:
        self.task, self.rt, self.pairs = task, rt, pairs
        self.buffer: list[_Solved] = []
        self.finished = 0
        self.status_of: list[str] = []
        self.startable: list[bool] = []
        #: the last group's Celery results, sent and not confirmed yet (_confirm_results)
        self.results: PendingResults | None = None
        #: the run of the next job, made before the job before it sends its finish, so
        #: that its start goes in the same write (JobRun.send_finish *then*)
        self.prepared: dict[int, JobRun] = {}

    def read(self, start: int) -> None:
        """Read the jobs from index *start* on, in one round trip: their statuses
        (status_of; _LEFT for a job that left this batch) and whether each is known
        startable (startable: pending or processing, attempts left; its start is then
        sent without waiting, solve_run)."""
        ids = [job_id for job_id, _ in self.pairs[start:]]
        batch = str(self.task.request.id)
        rows = _with_main_db(
            self.rt, "batch read" if start else "batch start", batch,
            lambda: self.rt.store.read_fields(ids, ("status", "batch", "attempts")))
        status_of = [str(status or "") if status is None or named == batch else _LEFT
                     for status, named, _ in rows]
        startable = [status in _STARTABLE and int(attempts or 0) < self.rt.max_attempts
                     for status, (_, _, attempts) in zip(status_of, rows, strict=True)]
        self.status_of[start:], self.startable[start:] = status_of, startable

    def run(self) -> int:
        """Run the jobs; return how many this delivery finished (see solve_batch)."""
        self.read(0)
        unchecked = self._restore_results([n for n, status in enumerate(self.status_of)
                                           if status in _FINISHED])
        with batch_events(self.task) as self.events:
            self.events.received(
                [pair for pair, status in zip(self.pairs, self.status_of, strict=True)
                 if status not in _FINISHED and status != _LEFT],
                int(self.task.request.retries or 0))
            try:
                for n, (job_id, problem) in enumerate(self.pairs):
                    self._run(n, job_id, problem)
            except Reject:
                try:
                    self.flush()  # the jobs solved before the fault are committed before it
                finally:
                    self._confirm_results(quiet=True)
                raise
            try:
                self.flush()
            except Reject:
                self._confirm_results(quiet=True)  # never leave its connection out of the pool
                raise
            self._confirm_results()  # before the ack: every result stored, or handed back
        # the results DB answered this delivery's own stores: what it could not check at the
        # start (down then) is checked again, or no later delivery would (this one acks)
        self._restore_results(unchecked)
        return self.finished

    def _restore_results(self, finished: list[int]) -> list[int]:
        """Store the Celery result of each finished job (by index) that has none, from its
        record: a delivery lost after a group commit's finishes and before their results
        (GROUP_COMMIT_S) left the record as the truth. Celery's own store (it reads
        first: a result already there is kept); a result that cannot be stored is logged.

        Returns:
            *finished* when the results could not be checked (logged), else [].
        """
        if not finished:
            return []
        backend = self.task.backend
        try:
            ids = [self.pairs[n][0] for n in finished]
            metas = backend.mget([backend.get_key_for_task(i) for i in ids])
            for n, meta in zip(finished, metas, strict=True):
                if meta is None:
                    job_id, problem = self.pairs[n]
                    result_from_record(self.rt, backend, job_id,
                                       _job_request(self.task, job_id, problem))
        except Exception as exc:  # the record stays the truth: never fail the batch here
            logger.warning("Celery results of finished jobs not checked batch=%s (%s)",
                           self.task.request.id, exc)
            return finished
        return []

    def _aged(self) -> bool:
        return bool(self.buffer) and (len(self.buffer) >= GROUP_COMMIT_MAX or
                                      monotonic_s() - self.buffer[0].began >= GROUP_COMMIT_S)

    def _run(self, n: int, job_id: str, problem: str) -> None:
        run = self.prepared.pop(n, None)
        # a job whose start went with the previous finish is begun before any commit: one
        # that handed the batch back would leave it started and never solved (_prepare
        # judged the buffer young a moment ago; it is committed after this job instead)
        if self._aged() and (run is None or run.ticket is None):
            self.flush()
        if self.status_of[n] in _FINISHED or self.status_of[n] == _LEFT:
            if run is not None:
                self._drop_start(run)
            if self.status_of[n] == _LEFT:
                logger.info("job requeued alone skipped by its former batch job_id=%s "
                            "batch=%s", job_id, self.task.request.id)
            else:
                logger.info("finished job of a redelivered batch skipped job_id=%s", job_id)
            return
        solved = _solve_one(self.task, self.rt, n, job_id, problem, self.status_of[n],
                            self.events, known_startable=self.startable[n], run=run,
                            then=lambda began: self._prepare(n + 1, began))
        if solved is not None:
            self.buffer.append(solved)
            if self._aged():
                self.flush()  # a slow job ages past the bound: it is committed at once

    def _prepare(self, m: int, began: float) -> JobRun | None:
        """The run of job *m*, made when the job before it (which *began*, clock.monotonic_s)
        sends its finish, so that its start goes in the same write: when *m* is known
        startable (read at the batch's start: pending or processing, attempts left) and
        no commit comes between (it would follow this finish: the buffer ages, _aged),
        so that a commit that hands the batch back never finds a job started that this
        delivery has not begun; else None (it sends its own start)."""
        oldest = self.buffer[0].began if self.buffer else began
        if m >= len(self.pairs) or not self.startable[m] \
                or len(self.buffer) + 1 >= GROUP_COMMIT_MAX \
                or monotonic_s() - oldest >= GROUP_COMMIT_S:
            return None
        job_id, problem = self.pairs[m]
        run = _job_run(self.task, self.rt, job_id, problem)
        self.prepared[m] = run
        return run

    def _drop_start(self, run: JobRun) -> None:
        """Read the reply of a start sent with the previous job's finish for a job this
        delivery skips after all (another delivery finished it, or it left the batch
        since: the start was refused): every earlier reply on its connection was read
        by the commit that found the job so."""
        ticket, run.ticket = run.ticket, None
        if ticket is None:
            return
        try:
            self.rt.store.read_start(ticket)
        except JobtrailError as exc:
            logger.debug("reply of a skipped job's start not read job_id=%s (%s)",
                         run.job_id, exc)

    def flush(self) -> None:
        """Commit the buffered jobs: read their finishes, then send their Celery results
        in one write (results.send_owned_results: confirmed at the next commit, or the
        batch's end, so the wait for the reply overlaps the next jobs' solves) and
        publish their events.

        Raises:
            celery.exceptions.Reject: A job's commit raised it (the first such); the
                finishes sent after it are still read once, without retry, so that an
                applied one gets its result. Also when the results cannot be stored:
                the records are written, and the redelivery skips these jobs and
                restores their results from them (_restore_results).
        """
        entries, self.buffer = self.buffer, []
        refused, reject = False, None
        committed: list[tuple[_Solved, Any, str]] = []
        for entry in entries:
            try:
                read = _read_one(self.task, entry, retry=reject is None)
            except Reject as exc:
                reject = reject or exc
                continue
            if read is None:
                refused = True
            else:
                committed.append((entry, *read))
        self.finished += len(committed)
        if committed:
            self._confirm_results()
            try:
                self.results = send_owned_results(self.task.backend, [
                    (entry.run.job_id, value, state, entry.run.request)
                    for entry, value, state in committed])
            except Exception as exc:
                raise _hand_back(self.task, committed[0][0].run.job_id, exc) from exc
            for entry, value, state in committed:
                if state == states.SUCCESS:
                    self.events.succeeded(entry.run.job_id, value)
                else:
                    self.events.failed(entry.run.job_id, value)
        if reject is not None:
            raise reject
        after = entries[-1].n + 1 if entries else len(self.pairs)
        if refused and after < len(self.pairs):
            # refused: another delivery is ahead (it finished the job): skip what it did
            self.read(after)


    def _confirm_results(self, *, quiet: bool = False) -> None:
        """Confirm the last group's Celery results (PendingResults.confirm).

        Raises:
            celery.exceptions.Reject: They could not be stored (the redelivery restores
                them from the records, _restore_results); with *quiet*, logged instead
                (the batch is being handed back already).
        """
        pending, self.results = self.results, None
        if pending is None:
            return
        try:
            pending.confirm()
        except Exception as exc:
            job_id = pending.first[0] if pending.first else ""
            if quiet:
                logger.warning("Celery results of a group not confirmed job_id=%s batch=%s "
                               "(%s)", job_id, self.task.request.id, exc)
                return
            raise _hand_back(self.task, job_id, exc) from exc


#: Group commit: the jobs of a batch send their finish without reading its reply, and
#: the replies are read (and the Celery results and events of the jobs written) together
#: once the oldest of them began this many seconds ago, before the next job starts (a
#: slow job is therefore committed alone, right after its solve), after
#: GROUP_COMMIT_MAX of them, before the batch hands its message back, and at the batch's
#: end. The record of a job is written when its finish reaches Redis, as without group
#: commit; its Celery result and task events wait at most GROUP_COMMIT_S plus the solve
#: of the job after it. A worker lost meanwhile loses no record: the redelivery skips
#: the jobs whose finish was applied and solves the others again.
GROUP_COMMIT_S = 0.005
#: At most this many finishes wait unread (each keeps a main-DB connection out of the pool).
GROUP_COMMIT_MAX = 16


@dataclass(slots=True)
class _Solved:
    """A job solved, its finish sent and unread: its index in the batch, its run,
    its outcome and when it began (clock.monotonic_s)."""

    n: int
    run: JobRun
    outcome: _Outcome
    began: float


def _job_run(task: BatchTask, rt: Any, job_id: str, problem: str) -> JobRun:
    """The run of one job of this batch delivery (its token the delivery's)."""
    worker, token = str(task.request.hostname or ""), str(getattr(task.request, RUN_KEY, ""))
    return JobRun(rt, job_id, worker, task, token, _job_request(task, job_id, problem),
                  batch=str(task.request.id), problem=problem)


def _solve_one(task: BatchTask, rt: Any, n: int, job_id: str, problem: str, status: str,
               events: BatchEvents, *, known_startable: bool = False,
               run: JobRun | None = None,
               then: Callable[[float], JobRun | None] | None = None) -> _Solved | None:
    """Start and solve one job of the batch and send its finish; None if it was skipped
    (cancelled, or refused at its start). *known_startable*: see solve_run. *run*: the
    job's run if made already (its start maybe sent with the previous finish); *then*,
    called with when this job began as its finish is sent: the next job's run, whose
    start goes in the same write, or None.

    Raises:
        celery.exceptions.Reject: as solve_batch.
    """
    run = run or _job_run(task, rt, job_id, problem)
    began = monotonic_s()
    try:
        with _watchdog(rt.hard_time_limit_s) if _limits_armed[0] else nullcontext():
            if status == JobStatus.CANCELLED.value:
                run.skip_cancelled(started=False)
            events.started(job_id)
            outcome = solve_run(run, problem, (lambda: job_limits(rt.time_limit_s))
                                if _limits_armed[0] else nullcontext,
                                known_startable=known_startable)
            run.send_finish(outcome, then=then(began) if then is not None else None)
    except Ignore:
        # refused at its start, before any solve: cancelled, given up after its last
        # attempt (failed, its Celery result stored), finished by another delivery, or
        # purged (no record to recreate it in: JobRun._recreate)
        if run.refused == "spent":
            events.failed(job_id, ProblemError(run.error))
        elif run.refused not in ("finished", "left batch", "purged"):
            events.revoked(job_id)
        return None
    except Reject:
        raise
    except Exception as exc:
        raise _hand_back(task, job_id, exc) from exc
    return _Solved(n, run, outcome, began)


def _hand_back(task: BatchTask, job_id: str, exc: Exception) -> Reject:
    """The Reject that hands the batch back for a fault of ours, not of the problem
    (rather than drop the jobs after this one; the job at fault counts an attempt on
    each delivery), logged with its traceback."""
    logger.exception("batch handed back job_id=%s batch=%s", job_id, task.request.id)
    return Reject(f"{type(exc).__name__}: {exc}", requeue=True)


def _left_batch(task: BatchTask, job_id: str) -> bool:
    """True when the record of *job_id* no longer names this batch (requeued alone)."""
    rt = runtime(task.app)
    [(named,)] = _with_main_db(rt, "batch read", job_id,
                               lambda: rt.store.read_fields([job_id], ("batch",)))
    return named != str(task.request.id)


def _read_one(task: BatchTask, solved: _Solved, *,
              retry: bool = True) -> tuple[Any, str] | None:
    """Read one job's finish: (payload, SUCCESS) or (ProblemError, FAILURE) if this
    delivery finished it, None if it was refused (see JobRun.read_finish for *retry*).

    Raises:
        celery.exceptions.Reject: as solve_batch.
    """
    run, job_id = solved.run, solved.run.job_id
    try:
        payload = run.read_finish(solved.outcome, retry=retry)
    except Ignore:
        if run.refused == "taken over" and _left_batch(task, job_id):
            # requeued alone while this delivery solved it: its own message runs it; the
            # batch's other jobs are still this delivery's
            logger.warning("outcome dropped: the job was requeued alone job_id=%s batch=%s",
                           job_id, task.request.id)
            return None
        if run.refused == "taken over":
            # another delivery started this job since ours did: our batch was taken
            # back (a sweep or requeue found this worker gone). The jobs after it are
            # that delivery's: hand the message back (a no-op if it was already) rather
            # than start them again over it
            logger.warning("batch given up: another delivery took job_id=%s over "
                           "batch=%s", job_id, task.request.id)
            raise Reject("another delivery took the batch over", requeue=True) from None
        return None
    except Reject:
        raise
    except ProblemError as exc:
        return exc, states.FAILURE
    except Exception as exc:
        raise _hand_back(task, job_id, exc) from exc
    return payload, states.SUCCESS  # counted on this node by its finish (JobRun.finish)
