"""Counts each job a worker node finished into that node's own statistics.

Invariant: a job counts once, on the node that finished it. A job the solve
task finished is counted by the finish itself (worker.tasks hands
JobStore.finish a store.node_stats.NodeCount: the same atomic step, no round
trip of its own; a duplicate delivery writes nothing and counts nothing). A
pool process the hard time limit killed finishes nothing: the main process
counts that job here, on Celery's task_failure (sent there, after
SolveRequest.on_timeout failed it). The figures are read back by the node's
metrics server (worker.heartbeat) from store.node_stats.
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, worker_ready

from jobtrail.connections import REDIS_ERRORS, connect
from jobtrail.errors import RedisUnavailableError
from jobtrail.keys import KeySpace
from jobtrail.metrics import failure_reason
from jobtrail.models import JobStatus
from jobtrail.solver import KINDS
from jobtrail.store.node_stats import NodeStatsStore
from jobtrail.worker.app import SETTINGS_KEY, TASK_SOLVE, TASK_SOLVE_PROBLEM

__all__ = ["SOLVE_TASK_NAMES", "count_job", "kind_label"]

logger = logging.getLogger(__name__)

#: Tasks whose finished jobs a node counts (the job id is the task id).
SOLVE_TASK_NAMES = frozenset({TASK_SOLVE, TASK_SOLVE_PROBLEM})

_FIELDS = ("status", "kind", "error", "created_at", "started_at", "finished_at")
_stores: dict[int, NodeStatsStore] = {}


def kind_label(kind: str) -> str:
    """Return *kind* if it is one of the solver's KINDS, else "other" (a bounded label)."""
    return kind if kind in KINDS else "other"


def _store(conf: Any) -> NodeStatsStore:
    store = _stores.get(os.getpid())
    if store is None:
        settings = conf[SETTINGS_KEY]
        main_url, _, _ = settings.require_urls()
        store = NodeStatsStore(connect(main_url, settings=settings),
                               KeySpace(settings.key_prefix, settings.queue))
        _stores[os.getpid()] = store
    return store


def _seconds(later: str | None, earlier: str | None) -> float | None:
    if not later or not earlier:
        return None
    return max(0.0, float(later) - float(earlier))


#: This node's name, set in the worker's main process when it is ready.
_main_process_node: list[str] = []


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _remember_node(sender: Any = None, **_: Any) -> None:
    """Remember the node name in the main process (Celery's worker_ready)."""
    _main_process_node[:] = [str(sender.hostname)]


@task_failure.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _count_hard_timeout(sender: Any = None, task_id: str | None = None,
                        exception: BaseException | None = None, **_: Any) -> None:
    """Count a job whose pool process the hard time limit killed (main process only)."""
    if isinstance(exception, TimeLimitExceeded) and _main_process_node and sender is not None:
        _count(sender, task_id, _main_process_node[0])


def _count(task: Any, task_id: str | None, node: str) -> None:
    """Read the finished job *task_id* and count it on *node*."""
    if task.name in SOLVE_TASK_NAMES:
        count_job(task.app.conf, task_id, node)


def count_job(conf: Any, task_id: str | None, node: str) -> None:
    """Read the finished job *task_id* and count it on *node* (one the hard limit ended).

    Args:
        conf: The Celery app's conf (carries the Settings).
        task_id: The job id.
        node: The worker node's name.
    """
    if SETTINGS_KEY not in conf or not task_id:
        return
    try:
        store = _store(conf)
        values = cast(list[str | None], store.client.hmget(store.keys.job(task_id), _FIELDS))
        status, kind, error, created_at, started_at, finished_at = values
        if status not in (JobStatus.COMPLETED, JobStatus.FAILED):
            return
        store.record(node, completed=status == JobStatus.COMPLETED,
                     reason=failure_reason(error or ""), kind=kind_label(kind or ""),
                     queue_wait_s=_seconds(started_at, created_at),
                     solve_s=_seconds(finished_at, started_at))
    except (RedisUnavailableError, *REDIS_ERRORS) as exc:
        logger.warning("job not counted in worker metrics job_id=%s reason=%s", task_id, exc)

