"""Job service: submit problems (record first, then the Celery task), read jobs back.

Invariant: a job record exists before its task is sent, so a worker never
sees a task without a record; a task that cannot be sent leaves its job
`failed` with the reason, never `pending` forever. This module sends tasks by
name (worker.app), so it never imports SymPy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from jobtrail.clock import monotonic_s, now_s
from jobtrail.config import SOLVER_MAX_PROBLEM_CHARS
from jobtrail.connections import REDIS_ERRORS, mask_url
from jobtrail.errors import (
    ConcurrentUpdateError,
    InvalidTransitionError,
    JobtrailError,
    MessageStillQueuedError,
    NotCancellableError,
    PartialSubmitError,
    ProblemError,
    RedisOutOfMemoryError,
    RedisUnavailableError,
)
from jobtrail.models import TERMINAL_STATUSES, EventType, Job, JobStatus
from jobtrail.problem_text import MAX_SUBMIT_BYTES, check_problem_text
from jobtrail.store import JobStore
from jobtrail.store.heartbeats import DEFAULT_GONE_AFTER_S, HeartbeatStore
from jobtrail.store.messages import find_job_message, message_ids
from jobtrail.worker.app import (
    CANCELLED_BEFORE_START,
    SETTINGS_KEY,
    TASK_SOLVE,
    TASK_SOLVE_BATCH,
    new_batch_id,
)
from jobtrail.worker.recovery import DeadWorkerSweep, RecoveryReport, gone_reason

__all__ = ["MAX_SUBMIT_BYTES", "SAMPLE_PROBLEMS", "SUBMIT_CHUNK", "JobService",
           "check_problem_text"]

logger = logging.getLogger(__name__)

#: What a requeue needs, in a refusal's words.
REQUEUE_NEEDS = ("only a pending job whose message was lost, or a processing job whose worker "
                 "is gone, can be requeued")
#: submit_many writes records and sends tasks about this many at a time: the whole batches
#: (Settings.batch_jobs() each) that fit in it, at least one; 96 at the default 32.
SUBMIT_CHUNK = 100

#: A wait polls the record at most this often, then backs off to WAIT_POLL_MAX_S (seconds).
WAIT_POLL_MIN_S = 0.02
WAIT_POLL_MAX_S = 0.25

#: The five scrubbed problems of the original reproduction, one per kind
#: (`jobtrail demo` and `jobtrail repro run` submit them).
SAMPLE_PROBLEMS: tuple[str, ...] = (
    "Solve x^2 - 5x + 6 = 0",
    "Prove that a triangle with sides 3, 4 and 5 is right-angled",
    "Find the derivative of x^3 sin(x)",
    "Solve the system 2x + 3y = 7, x - y = 1",
    "Find the limit of (1 + 1/n)^n as n -> infinity",
)


class JobService:
    """Submits and reads jobs.

    Args:
        store: The job store of the main DB.
        app: The Celery app whose broker receives the solve tasks.
    """

    def __init__(self, store: JobStore, app: Celery, *,
                 max_problem_chars: int | None = None) -> None:
        self.store = store
        self.app = app
        settings = app.conf.get(SETTINGS_KEY)
        #: Longest problem text submit accepts; by default the app's settings' limit.
        self.max_problem_chars = max_problem_chars or (
            settings.max_problem_chars if settings is not None else SOLVER_MAX_PROBLEM_CHARS)
        #: Jobs of submit_many per Celery message (1: one message per job).
        self.batch_max_jobs = settings.batch_jobs() if settings is not None else 1
        #: Seconds without a heartbeat after which a worker is gone (3 heartbeat intervals).
        self.gone_after_s = (settings.gone_after_s if settings is not None
                             else DEFAULT_GONE_AFTER_S)
        #: The broker's and result backend's URLs as the user wrote them (errors name
        #: them so; Celery holds kombu's form of a unix:// URL, worker.celery_urls).
        self.broker_url = str(settings.broker_url if settings is not None
                              else app.conf.broker_url)
        self.results_url = str(settings.results_url if settings is not None
                               else app.conf.result_backend)

    def check_text(self, problem: str) -> None:
        """Refuse a problem text at the door; called by submit() before any write.

        Raises:
            ProblemParseError: See check_problem_text().
            ProblemTooLargeError: See check_problem_text().
        """
        check_problem_text(problem, max_chars=self.max_problem_chars)

    def _enqueue_failure(self, exc: Exception) -> RedisUnavailableError | None:
        """The error to report for a send_task that raised *exc*, or None if not Redis's.

        send_task raises kombu's OperationalError when the broker cannot be
        reached, and, before publishing, a RuntimeError when Celery's Redis
        result backend gave up subscribing to the task's result (20 tries, e.g.
        "max number of clients reached"); nothing was published in either case.
        """
        if isinstance(exc, OperationalError):
            return RedisUnavailableError(mask_url(self.broker_url), str(exc))
        if isinstance(exc, RuntimeError) and isinstance(exc.__cause__, redis.RedisError):
            return RedisUnavailableError(mask_url(self.results_url),
                                         str(exc.__cause__) or type(exc.__cause__).__name__)
        return None

    def _send(self, jobs: Sequence[Job], producer: Any = None, *,
              batched: bool = False, sent: list[Job] | None = None,
              unmarked: list[Job] | None = None) -> None:
        """Send the messages of *jobs*: one solve_job message per job or, when *batched*,
        one solve_batch message per run of jobs sharing a `batch` id (in order).

        Each job whose message went out is appended to *sent* (when given) as it
        goes, so a caller whose send failed partway knows which jobs will run; the
        jobs from the failed message on are marked failed and RedisUnavailableError
        is raised. A job whose failed mark could not be written either (the main DB
        down too) is appended to *unmarked* when given (it stays pending without a
        message), else that error is raised."""
        i = 0
        while i < len(jobs):
            job = jobs[i]
            group = [job]
            while batched and job.batch and i + len(group) < len(jobs) \
                    and jobs[i + len(group)].batch == job.batch:
                group.append(jobs[i + len(group)])
            try:
                if batched and job.batch:
                    self.app.send_task(TASK_SOLVE_BATCH, args=[[j.id, j.problem] for j in group],
                                       task_id=job.batch, producer=producer)
                else:
                    self.app.send_task(TASK_SOLVE, args=[job.id, job.problem], task_id=job.id,
                                       producer=producer)
            except (OperationalError, RuntimeError) as exc:
                failure = self._enqueue_failure(exc)
                if failure is None:
                    raise
                logger.info("enqueue failed job_id=%s reason=%s", job.id, failure.reason)
                for n, unsent in enumerate(jobs[i:], i):
                    try:
                        self.store.fail(unsent.id, f"could not enqueue the task: {failure.reason}")
                    except RedisUnavailableError:
                        if unmarked is None:
                            raise
                        unmarked += jobs[n:]  # the main DB is gone too: no use asking per job
                        break
                raise failure from exc
            if sent is not None:
                sent += group
            i += len(group)

    def _send_alone(self, job: Job, *, reason: str = "requeued: sent alone",
                    dead_worker: str = "") -> Job:
        """Send *job* again in a message of its own (task id = its id); a job of a batch
        leaves its batch first (JobStore.leave_batch: its batch message's delivery then
        leaves it), so it runs once, and its batch-mates are not touched.

        Returns:
            The job as sent (pending; batch "").

        Raises:
            ConcurrentUpdateError: The record changed since *job* was read (nothing sent).
        """
        if job.batch:
            job = self.store.leave_batch(job, reason=reason, dead_worker=dead_worker)
        self._send([replace(job, batch="")])
        return job

    def submit(self, problem: str) -> Job:
        """Create a pending job for *problem* and send its solve task.

        Returns:
            The pending Job; its id is the Celery task id.

        The record's write and the task's publish are in flight together
        (one round trip each, overlapped); a worker that gets the task before
        the record lands waits for it (worker.tasks).

        Raises:
            ProblemTooLargeError: The text is over max_problem_chars; nothing written.
            ProblemParseError: The text is empty, blank, holds a control character
                or is not valid UTF-8; nothing written.
            RedisUnavailableError: The main DB or the broker is down (a job
                created before the broker failed is marked failed; a task sent
                whose record could not be written is revoked).
        """
        self.check_text(problem)
        # the record's round trip overlaps the publish: both are in flight together
        job, pending = self.store.send_create(problem)
        try:
            self.app.send_task(TASK_SOLVE, args=[job.id, job.problem], task_id=job.id)
        except (OperationalError, RuntimeError) as exc:
            self.store.confirm_create(job, pending)
            failure = self._enqueue_failure(exc)
            if failure is None:
                raise
            logger.info("enqueue failed job_id=%s reason=%s", job.id, failure.reason)
            self.store.fail(job.id, f"could not enqueue the task: {failure.reason}")
            raise failure from exc
        except BaseException:
            self.store.confirm_create(job, pending)
            raise
        try:
            self.store.confirm_create(job, pending)
        except JobtrailError:
            # the task went out but its record was not written: withdraw the task, if the
            # broker still answers (it may be the server that just failed: the caller
            # still gets the store's error, never kombu's)
            try:
                self.app.control.revoke(job.id)
            except (OperationalError, *REDIS_ERRORS) as revoke_failed:
                logger.warning("task of an unconfirmed record not revoked job_id=%s "
                               "reason=%s", job.id, revoke_failed)
            raise
        return job

    def submit_many(self, problems: Sequence[str], *,
                    on_progress: Callable[[int], None] | None = None,
                    stop: Callable[[], bool] | None = None) -> list[Job]:
        """Submit several problems, SUBMIT_CHUNK at a time: records, then their tasks.

        Jobs travel batch_max_jobs to a message (jobtrail.solve_batch, args
        [[job_id, problem], ...], task id "batch-<hex>" named in each record's
        `batch` field); with batch_max_jobs 1, or a lone job, one solve_job
        message per job, as submit() sends.

        Chunking bounds what a submitter killed midway can leave behind: at
        most one chunk of pending records without a message, which trace
        reports as stale ("no message left") and `jobtrail requeue` resends.

        Args:
            problems: The problem texts, in order.
            on_progress: Called after each chunk with how many jobs are sent so far.
            stop: Asked before each chunk; True ends the submission there (a
                Ctrl-C the caller holds), with every chunk so far whole.

        Returns:
            The jobs submitted, in the order of *problems*: all of them, or
            the first whole chunks when *stop* said so.

        Raises:
            ProblemTooLargeError: A text is too large; nothing written. The
                message begins with its place, "problem N: " (1-based).
            ProblemParseError: A text is empty, blank, holds a control or invisible
                character or is not valid UTF-8; nothing written ("problem N: ...").
            PartialSubmitError: The broker (or the main DB) failed partway: the
                error names the accepted jobs' ids (they will run), the ids
                marked failed ("could not enqueue the task: ..."), the ids that
                may be pending without a message (`uncertain`: their failed mark
                or their records' write was cut off) and how many problems were
                never written. Raised whenever a job was marked failed or is
                uncertain, or some were accepted before the fault.
            RedisUnavailableError: The main DB or the broker is down before any
                job was accepted or marked failed (nothing written, unless the
                first write's reply was lost: trace and doctor name such a
                record pending-without-message). ReplicationError (one of them)
                when too few replicas held the first chunk's records.
        """
        for n, problem in enumerate(problems, 1):
            try:
                self.check_text(problem)
            except ProblemError as exc:  # which one of the batch: "problem 2: empty problem"
                exc.args = (f"problem {n}: {exc}", *exc.args[1:])
                raise
        size = self.batch_max_jobs
        # a chunk holds whole batches, so a batch's records are written in one round trip
        chunk_size = max(1, SUBMIT_CHUNK // size) * size
        jobs: list[Job] = []
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(problems), chunk_size):
                if stop is not None and stop():
                    break
                part = problems[start:start + chunk_size]
                batches = ["" if size == 1 or len(part) == 1 else new_batch_id()
                           for _ in range(0, len(part), size)]
                chunk = self.store.new_jobs(
                    part, batches=[batches[n // size] for n in range(len(part))])
                try:
                    self.store.write_jobs(chunk)
                except (RedisUnavailableError, RedisOutOfMemoryError) as exc:
                    # a write cut off may have been applied (a lost reply; too few replicas;
                    # the records of the pipeline written before memory ran out); before
                    # anything was accepted the error is the store's own (ReplicationError
                    # says the master holds the write)
                    if not jobs:
                        raise
                    where = exc.url if isinstance(exc, RedisUnavailableError) else exc.what
                    raise PartialSubmitError(where, exc.reason, [j.id for j in jobs], [],
                                             len(problems) - start - len(chunk),
                                             [j.id for j in chunk]) from exc
                before = len(jobs)
                unmarked: list[Job] = []
                try:
                    self._send(chunk, producer, batched=True, sent=jobs, unmarked=unmarked)
                except RedisUnavailableError as exc:
                    lost = {j.id for j in unmarked}
                    raise PartialSubmitError(
                        exc.url, exc.reason, [j.id for j in jobs],
                        [j.id for j in chunk[len(jobs) - before:] if j.id not in lost],
                        len(problems) - start - len(chunk), [j.id for j in unmarked]) from exc
                if on_progress is not None:
                    on_progress(len(jobs))
        return jobs

    def requeue(self, job_id: str) -> Job:
        """Send the task of a pending job again (its message was lost), or take back a
        processing job whose worker is gone.

        A pending job whose message is still in the broker (queued, or held
        unacknowledged by a live worker; its batch's message for a job of a batch)
        is refused and nothing is sent: a second message could start it on a
        second worker while the first runs it. A pending job whose own message
        is held unacknowledged by no live worker (its worker is gone) has that
        message taken back to the queue the dead-worker sweep's way (only
        once it is unacknowledged past the gone threshold) and nothing new is
        sent; younger, it is refused with when the sweep takes it back
        (`jobtrail recover` then). A processing job goes back to pending with
        a `redelivered` event naming its dead worker, and its unacknowledged
        message returns to the queue at once (or, if it has none left, a new
        one is sent).

        A job of a batch is requeued alone, and nothing else is: it leaves its
        batch (JobStore.leave_batch: pending, its record no longer naming the
        batch, with a `redelivered` event) and is sent in a message of its own;
        the batch message stays where it is (a gone holder's is taken back by
        the dead-worker sweep), its delivery leaves the job, and its other
        jobs, the one processing too, are not touched.

        Raises:
            JobNotFoundError: No such job.
            InvalidTransitionError: The job is finished, or processing on a live
                worker (nothing sent).
            MessageStillQueuedError: The job is pending and its message is still
                queued, held by a live worker, or held by a gone worker for less
                than the gone threshold (nothing sent).
            RedisUnavailableError: The main DB or the broker is down.
        """
        job = self.store.get(job_id)
        if job.status is JobStatus.PROCESSING:
            return self._requeue_processing(job)
        if job.status is not JobStatus.PENDING:
            raise InvalidTransitionError(
                job_id, job.status.value, "requeued", needs=REQUEUE_NEEDS,
                hint="a finished job does not run again: submit its problem again as a new job")
        if self._refuse_if_its_message_exists(job):
            return self.store.get(job.id)  # its message is back in the queue
        return self._send_alone(job)

    def _refuse_if_its_message_exists(self, job: Job) -> bool:
        """Raise MessageStillQueuedError when *job*'s message (its own or its batch's) is
        queued in the broker, or unacked by a live worker; a queue longer than the scan
        (MAX_QUEUE_SCAN) whose examined part lacks it lets the requeue go on (False: it
        may be lost). An unacked message no live worker holds, once past the gone
        threshold, is taken back as the dead-worker sweep does (True), or, a batch's,
        left in place (False: the job leaves the batch and is sent alone); younger, it
        is refused."""
        with self._broker() as broker:
            search = find_job_message(broker, self.store.keys, job)
        if search.ahead is None and search.unacked_tag is None:
            return False
        message_id = search.message.task_id if search.message else message_ids(job)[0]
        if search.ahead is not None:
            raise MessageStillQueuedError(job.id, message_id, f"queued, {search.ahead} ahead")
        where = f"held unacknowledged by a worker, delivery tag {search.unacked_tag}"
        heartbeats = self._heartbeats()
        live = sorted(b.name for b in heartbeats.list_workers() if b.alive)
        held, fetching = heartbeats.holdings_of_live_workers(live)
        if message_id in held or search.unacked_since in fetching:  # fetched, reply unread
            raise MessageStillQueuedError(job.id, message_id, where)
        # no live worker lists it: the sweep's own rule (unacked past the gone threshold,
        # held by no live worker), so a worker that got it since its last beat keeps it
        if job.batch and message_id == job.batch:
            if (search.unacked_since or now_s()) <= now_s() - self.gone_after_s:
                return False  # the job alone leaves its batch (_send_alone); the rest stay
        else:
            with self._broker() as broker:
                report = self._sweep(broker, self.gone_after_s).sweep(
                    lock=False, only={job.id}, reason_prefix="requeued: ")
            if any(r.job_id == job.id and r.restored for r in report.recovered):
                logger.info("requeue took back a gone worker's message job_id=%s message=%s",
                            job.id, message_id)
                return True
        raise MessageStillQueuedError(
            job.id, message_id, f"{where}, which no live worker lists",
            outlook="it does not run from there if its worker is gone: the dead-worker "
                    f"sweep takes it back once unacknowledged for {self.gone_after_s:g} s "
                    "(then `jobtrail recover`, or requeue again)")

    def recover(self, *, gone_after_s: float) -> RecoveryReport:
        """Take back now every message no live worker holds (`jobtrail recover`).

        Raises:
            RedisUnavailableError: The main DB or the broker is down.
        """
        with self._broker() as broker:
            return self._sweep(broker, gone_after_s).sweep(lock=False)

    @contextmanager
    def _broker(self) -> Iterator[Any]:
        """Yield the broker's redis-py client (kombu's channel's).

        Raises:
            RedisUnavailableError: The broker could not be reached, or failed meanwhile
                (kombu's OperationalError, redis-py's errors), naming the broker's URL.
        """
        try:
            with self.app.connection_for_write() as conn:
                yield conn.default_channel.client
        except (redis.RedisError, OperationalError) as exc:
            raise RedisUnavailableError(mask_url(self.broker_url), str(exc)) from exc

    def _sweep(self, broker: Any, gone_after_s: float) -> DeadWorkerSweep:
        return DeadWorkerSweep(self.app, self.store, self._heartbeats(), broker,
                               self.store.keys, gone_after_s=gone_after_s, node="")

    def _heartbeats(self) -> HeartbeatStore:
        """The heartbeats, judged with this service's gone threshold (whatever age of
        unacknowledged message a sweep takes back)."""
        return HeartbeatStore(self.store.client, self.store.keys,
                              gone_after_s=self.gone_after_s)

    def _requeue_processing(self, job: Job) -> Job:
        heartbeats = self._heartbeats()
        beats = {b.name: b for b in heartbeats.list_workers()}
        holder = beats.get(job.worker)
        if holder is not None and holder.alive:
            raise InvalidTransitionError(
                job.id, f"processing (on live worker {job.worker})", "requeued",
                needs=REQUEUE_NEEDS, hint="it finishes there; to stop it, cancel it with "
                "terminate (--terminate)")
        if holder is not None and not holder.gone:
            raise InvalidTransitionError(
                job.id, f"processing (on worker {job.worker}: {holder.absence_note})",
                "requeued", needs=REQUEUE_NEEDS,
                hint=f"a live worker beats again within {self.gone_after_s:g} s of a Redis "
                "restart; requeue again after that if it is still processing")
        if job.batch:
            # the job alone: back to pending out of its batch, sent in a message of its own;
            # the batch message (and every batch-mate, the one running too) stays as it is
            reason = "requeued: " + gone_reason(job.worker, holder.last_seen if holder else None,
                                               started_at=job.started_at)
            return self._send_alone(job, reason=reason, dead_worker=job.worker)
        with self._broker() as broker:
            report = self._sweep(broker, 0.0).sweep(
                lock=False, only={job.id}, reason_prefix="requeued: ")
        # a batch message brings back its other unfinished jobs too; this one's entry decides
        mine = next((r for r in report.recovered if r.job_id == job.id), None)
        if mine is not None and not mine.restored:
            # back to pending, but its message went meanwhile
            return self._send_alone(self.store.get(job.id))
        if mine is None:
            # no unacknowledged message left: back to pending and send a new one
            reason = "requeued: " + gone_reason(job.worker, holder.last_seen if holder else None,
                                               started_at=job.started_at)
            job = self.store.transition(job.id, JobStatus.PENDING, event=EventType.REDELIVERED,
                                        event_fields={"reason": reason,
                                                      "dead_worker": job.worker},
                                        expected_version=job.version)
            return self._send_alone(job)
        return self.store.get(job.id)

    def cancel(self, job_id: str, *, terminate: bool = False) -> Job:
        """Cancel a job: pending -> cancelled, or processing -> cancelled with *terminate*.

        The record changes first (one atomic step, against the version read),
        then the Celery message is revoked: a worker that receives it later
        finds the job cancelled and skips it. With *terminate*, the revoke
        also kills the task's pool process (Celery's revoke terminate=True,
        SIGTERM) and its outcome is never recorded.

        A job of a batch (`batch` set) is revoked by its own id, never by its
        batch's: the batch's other jobs still run and this one is skipped. A
        processing job of a batch is never terminated (its pool process runs
        the whole batch): refused, with or without *terminate*.

        Returns:
            The cancelled Job; its `error` says how it was cancelled.

        Raises:
            JobNotFoundError: No such job.
            NotCancellableError: The job is finished, processing without
                *terminate*, or processing in a batch; nothing written, nothing revoked.
            RedisUnavailableError: The main DB or the broker is down.
        """
        for _ in range(5):
            job = self.store.get(job_id)
            if job.status in TERMINAL_STATUSES:
                raise NotCancellableError(
                    job_id, job.status.value, "only a pending job, or a processing job with "
                    "terminate, can be cancelled; a finished job has nothing left to stop")
            processing = job.status is JobStatus.PROCESSING
            if processing and job.batch:
                raise NotCancellableError(
                    job_id, job.status.value, f"it runs in batch message {job.batch} on "
                    f"{job.worker or 'a worker'}, and terminating its task would kill the "
                    "rest of the batch with it: wait for it to finish (the batch's pending "
                    "jobs can be cancelled one by one)")
            if processing and not terminate:
                raise NotCancellableError(
                    job_id, job.status.value, f"it runs on {job.worker or 'a worker'}; "
                    "cancelling it kills its task", needs_terminate=True)
            reason = (f"cancelled while processing on {job.worker or 'a worker'}: "
                      "task terminated" if processing else CANCELLED_BEFORE_START)
            try:
                cancelled = self.store.transition(
                    job_id, JobStatus.CANCELLED, expected_version=job.version,
                    fields={"error": reason, "finished_at": repr(now_s())},
                    event_fields={"error": reason, "terminate": "1" if processing else "0"})
            except (ConcurrentUpdateError, InvalidTransitionError):
                continue  # the worker moved it meanwhile: decide again on what it is now
            break
        else:
            raise NotCancellableError(job_id, job.status.value, "it kept changing; try again")
        try:
            self.app.control.revoke(job_id, terminate=processing, signal="SIGTERM")
        except OperationalError as exc:
            raise RedisUnavailableError(mask_url(self.broker_url),
                                        f"job cancelled, but its task not revoked: {exc}"
                                        ) from exc
        logger.info("job cancelled job_id=%s terminate=%s", job_id, processing)
        return cancelled

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """Return the job once it is finished, or as it is after *timeout_s* seconds.

        Polls the record, WAIT_POLL_MIN_S apart at first and backing off to
        WAIT_POLL_MAX_S.

        Raises:
            JobNotFoundError: No such job.
            RedisUnavailableError: The main DB is down.
        """
        deadline = monotonic_s() + max(0.0, timeout_s)
        delay_s = WAIT_POLL_MIN_S
        while True:
            job = self.store.get(job_id)
            left_s = deadline - monotonic_s()
            if job.status in TERMINAL_STATUSES or left_s <= 0:
                return job
            time.sleep(min(delay_s, left_s))
            delay_s = min(delay_s * 2, WAIT_POLL_MAX_S)
