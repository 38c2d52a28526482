"""A Celery revoke of a job of a batch skips that job, as it skips a single job.

Celery's revoke (`app.control.revoke(job_id)`, `celery control revoke`, Flower)
puts the id in each worker's revoked set, which Celery consults only for a
message under that id; a batch message travels under its own id
("batch-<hex>"). So the worker's main process, which hears the broadcast,
ends each revoked job of a batch it holds that has not started, as Celery and
tasks._record_revoked end a revoked single job: failed "task revoked before it
finished", its `celery-task-meta-<job id>` REVOKED, a `task-revoked` event
under the job's id. Both orders are covered: a revoke heard while the worker
holds the batch (Celery's revoke command, wrapped here) and one heard before
the batch arrived (BatchRequest calls skip_revoked on receipt).

Invariant: only a pending job is ended (the write is refused if the job
started meanwhile), so a job running in its batch finishes, as a running
single job does; `terminate=True` never kills a batch's pool process for one
of its jobs (its batch-mates would be killed too): it is logged and the job
runs on. The batch's pool process finds the job failed and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery.app.task import Context
from celery.utils.functional import maybe_list
from celery.worker import control
from celery.worker import state as worker_state

from jobtrail.errors import ConcurrentUpdateError, InvalidTransitionError, JobtrailError
from jobtrail.models import JobStatus
from jobtrail.worker.app import TASK_SOLVE, TASK_SOLVE_BATCH
from jobtrail.worker.tasks import revoked_reason, runtime

__all__ = ["job_context", "skip_revoked"]

logger = logging.getLogger(__name__)


def job_context(job_id: str, problem: str, *, hostname: str | None, retries: int,
                delivery_info: Any) -> Context:
    """The request context a job of a batch has its Celery result stored with: a single
    job's (task jobtrail.solve_job, args [job_id, problem]), so the result reads the same."""
    return Context(id=job_id, task=TASK_SOLVE, args=[job_id, problem], kwargs={},
                   hostname=hostname, retries=retries, delivery_info=delivery_info,
                   children=[])


def skip_revoked(request: Any, ids: Iterable[str] | None = None) -> None:
    """End the revoked, not yet started jobs of the batch delivery *request* (main process).

    Args:
        request: A BatchRequest (the worker's Request of a jobtrail.solve_batch message).
        ids: The job ids just revoked; by default, every id in the worker's revoked set.

    Never raises: a write the main DB refuses or cannot take is logged (the
    worker's event loop must not die of it), and the job then runs.
    """
    wanted = set(ids) if ids is not None else None
    pairs = [(str(pair[0]), str(pair[1])) for pair in request.args or ()]
    for job_id, problem in pairs:
        if (job_id not in wanted) if wanted is not None else (job_id not in worker_state.revoked):
            continue
        _skip(request, job_id, problem)


def _skip(request: Any, job_id: str, problem: str) -> None:
    rt, reason = runtime(request.task.app), revoked_reason("revoked")
    try:
        job = rt.store.get(job_id)
        if job.status is not JobStatus.PENDING:
            logger.info("revoke of a job of a batch not applied: the job is %s job_id=%s "
                        "batch=%s", job.status.value, job_id, request.id)
            return
        rt.store.fail(job_id, reason, expected_version=job.version)
    except (ConcurrentUpdateError, InvalidTransitionError) as err:
        logger.info("revoke of a job of a batch not applied: it started job_id=%s (%s)",
                    job_id, err)
        return
    except JobtrailError as err:
        logger.warning("revoke of a job of a batch not recorded job_id=%s reason=%s",
                       job_id, err)
        return
    logger.info("revoked job of a batch skipped job_id=%s batch=%s", job_id, request.id)
    request.task.backend.mark_as_revoked(job_id, "revoked", request=job_context(
        job_id, problem, hostname=request.hostname, retries=0,
        delivery_info=request.delivery_info))
    eventer = getattr(request, "_eventer", None)
    if eventer is not None and eventer.enabled and request.task.send_events:
        eventer.send("task-revoked", uuid=job_id, terminated=False, signum=None,
                     expired=False)


#: Celery's own revoke command, which the one below wraps.
_celery_revoke = control.Panel.data["revoke"]


@control.control_command(  # type: ignore[untyped-decorator]  # celery ships no types
    name="revoke", variadic="task_id", signature="[id1 [id2 [... [idN]]]]",
)
def revoke(state: Any, task_id: Any, terminate: bool = False, signal: Any = None,
           **kwargs: Any) -> Any:
    """Celery's revoke command, then the revoked jobs of the batches this worker holds."""
    reply = _celery_revoke(state, task_id, terminate=terminate, signal=signal, **kwargs)
    ids = {str(i) for i in maybe_list(task_id) or ()}
    held = [r for r in (*worker_state.active_requests, *worker_state.reserved_requests)
            if getattr(r, "name", None) == TASK_SOLVE_BATCH]
    for request in held:
        mine = ids & {str(pair[0]) for pair in request.args or ()}
        if mine:
            if terminate:
                logger.warning("revoke terminate of a job of a batch kills no process (its "
                               "batch-mates share it): a running job finishes batch=%s",
                               request.id)
            skip_revoked(request, mine)
    return reply
