"""Celery task events under each job's id, sent by the pool process that runs a batch.

Celery sends task-received/started/succeeded/failed for a message, so a batch
shows in Flower and `celery events` as one jobtrail.solve_batch task, and its
jobs not at all. An operator who looks a job id up there (task events are on,
worker.app, for Flower and celery-exporter) would find no such task. So the
batch sends, under each job's id and as jobtrail.solve_job, the events a single
job's delivery sends: task-received for each job it will run, task-started
when the job starts, task-succeeded (result, runtime) or task-failed
(exception) when it ends, task-revoked for a cancelled one it skips.

Cost: Celery's own buffering of task events (the worker's dispatcher does the
same): an event is appended to a buffer (about 15 us a job), and the buffer is
published in one message when a job starts or ends FLUSH_S or more after the
last publish, after a job that ran FLUSH_S or more, and at the batch's end (a
message per job would cost about 150 us, more than a trivial job's solve; a
thread to publish would take address space the memory limit counts). So a
quick job's events reach Flower at most about FLUSH_S late; a long job's
task-started is late only when it follows quick ones within FLUSH_S of a
publish. Every event carries the time it happened. Invariant: an event that
cannot be sent is dropped (logged at DEBUG); it never fails a job or its batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Task

from jobtrail.clock import monotonic_s
from jobtrail.worker.app import TASK_SOLVE

__all__ = ["FLUSH_S", "REPR_MAXSIZE", "BatchEvents", "batch_events", "drop_dispatcher",
           "short_repr"]

#: Characters of an event's args or result repr: Celery's argsrepr_maxsize and
#: resultrepr_maxsize defaults (celery.app.task.Task).
REPR_MAXSIZE = 1024


def short_repr(value: Any, maxsize: int = REPR_MAXSIZE) -> str:
    """Return ``repr(value)``, cut to *maxsize* characters ending in "..." when longer.

    Celery's single-job path shows a result as celery.utils.saferepr(value,
    1024), a pure-Python walk of the value that cost 70-85 us for a job's answer
    payload (py-spy: 8% of a pool process draining a batch of trivial jobs)
    against 3-8 us for repr; a payload is JSON data (str, numbers, lists, dicts)
    of bounded size (max_problem_chars, the solver's limits), so a repr is safe
    to build whole. The text differs from saferepr's only past its third level
    of nesting (saferepr writes "...") and in where a long one is cut.
    """
    text = repr(value)
    return text if len(text) <= maxsize else text[:maxsize - 3] + "..."

logger = logging.getLogger(__name__)

#: Seconds between publishes of a batch's buffered task events.
FLUSH_S = 0.2


class BatchEvents:
    """The task events of the jobs of one batch delivery (in its pool process).

    Args:
        dispatcher: A Celery EventDispatcher buffering the `task` group, or None
            when task events are off (then every method does nothing).
    """

    def __init__(self, dispatcher: Any) -> None:
        self._dispatcher = dispatcher
        self._started: dict[str, float] = {}
        self._flushed_at = monotonic_s()
        self._last_ran_s = 0.0

    def _send(self, type_: str, job_id: str, **fields: Any) -> None:
        if self._dispatcher is None:
            return
        try:
            self._dispatcher.send(type_, uuid=job_id, **fields)
        except Exception as exc:  # an event must never fail a job
            logger.debug("task event not sent type=%s job_id=%s (%s)", type_, job_id, exc)

    def _maybe_flush(self) -> None:
        if monotonic_s() - self._flushed_at >= FLUSH_S or self._last_ran_s >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Publish the buffered events (one message)."""
        if self._dispatcher is None:
            return
        self._flushed_at = monotonic_s()
        try:
            self._dispatcher.flush()
        except Exception as exc:  # dropped, with the dispatcher: the next batch makes one
            logger.debug("task events not sent (%s)", exc)
            for buffered in self._dispatcher._group_buffer.values():
                buffered.clear()
            self._dispatcher = None
            drop_dispatcher()

    def received(self, jobs: Sequence[tuple[str, str]], retries: int) -> None:
        """task-received for each [job_id, problem] this delivery will run."""
        for job_id, problem in jobs:
            self._send("task-received", job_id, name=TASK_SOLVE,
                       args=short_repr([job_id, problem]), kwargs="{}", root_id=job_id,
                       parent_id=None, retries=retries, eta=None, expires=None)
        self.flush()

    def started(self, job_id: str) -> None:
        """task-started of *job_id*."""
        self._started[job_id] = monotonic_s()
        self._send("task-started", job_id)  # the dispatcher adds its pid: this process
        self._maybe_flush()

    def succeeded(self, job_id: str, payload: Any) -> None:
        """task-succeeded of *job_id*, with its result and runtime in seconds."""
        self._last_ran_s = monotonic_s() - self._started.pop(job_id, monotonic_s())
        self._send("task-succeeded", job_id, result=short_repr(payload), runtime=self._last_ran_s)
        self._maybe_flush()

    def failed(self, job_id: str, exc: BaseException) -> None:
        """task-failed of *job_id*, with the problem's failure as its exception."""
        self._last_ran_s = monotonic_s() - self._started.pop(job_id, monotonic_s())
        self._send("task-failed", job_id, exception=short_repr(exc), traceback="")
        self._maybe_flush()

    def revoked(self, job_id: str) -> None:
        """task-revoked of *job_id* (a cancelled job skipped)."""
        self._started.pop(job_id, None)
        self._send("task-revoked", job_id, terminated=False, signum=None, expired=False)
        self._maybe_flush()


#: The pool process's task-event dispatcher, kept from batch to batch: (pid, hostname,
#: connection, dispatcher). A dispatcher and its broker connection a batch opened and
#: closed again cost two connects (the channel's PING, the first PUBLISH), about 5% of a
#: pool process's time in a drain of trivial jobs; Celery's worker, too, keeps one
#: dispatcher for its life. One whose publish failed is dropped and made anew.
_kept: list[tuple[int, str, Any, Any]] = []


def _dispatcher(task: Task) -> Any:
    hostname = str(task.request.hostname or "")
    if _kept and _kept[0][:2] == (os.getpid(), hostname):
        return _kept[0][3]
    drop_dispatcher()
    conn = task.app.connection_for_write()
    try:
        # buffer_while_offline=False: a publish that fails raises (BatchEvents drops
        # the events and this dispatcher) instead of growing a buffer kept forever
        dispatcher = task.app.events.Dispatcher(
            conn, hostname=hostname, buffer_group=["task"], buffer_limit=1_000_000,
            buffer_while_offline=False)
    except BaseException:
        conn.release()
        raise
    _kept.append((os.getpid(), hostname, conn, dispatcher))
    return dispatcher


def drop_dispatcher() -> None:
    """Close and forget the kept dispatcher (none kept, or one inherited from another
    process by fork: only forgotten, its socket is the parent's)."""
    if not _kept:
        return
    pid, _, conn, dispatcher = _kept.pop()
    if pid != os.getpid():
        return
    try:
        dispatcher.close()
    except Exception as exc:
        logger.debug("task-event dispatcher not closed (%s)", exc)
    finally:
        conn.release()


@contextmanager
def batch_events(task: Task) -> Iterator[BatchEvents]:
    """The task events of *task*'s current batch delivery, on the pool process's kept
    dispatcher (published as BatchEvents says, and at the end); events off when the
    worker sends no task events or no dispatcher can be made."""
    if not (task.app.conf.worker_send_task_events and task.send_events):
        yield BatchEvents(None)
        return
    try:
        dispatcher = _dispatcher(task)
    except Exception as exc:
        logger.debug("task events off for this batch (%s)", exc)
        yield BatchEvents(None)
        return
    events = BatchEvents(dispatcher)
    try:
        yield events
    finally:
        events.flush()
