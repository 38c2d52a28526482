"""Redis loses every key (FLUSHALL: a restart without persistence) while a job is
processing and another is pending.

The pending job's record and message are gone: trace must not call it pending,
processing, completed or failed. The processing job's message is still in the
worker's hands: its outcome finds no record, and the worker writes the record
again from that message, whole (create.lua's one step, with a `created` event
saying it was recreated: JobRun._recreate), never a half record, then its
outcome; trace names the recreation. The worker serves new jobs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobtrail.models import RECREATED_REASON, EventType, Fate, JobStatus
from jobtrail.trace import TraceSources, trace_job
from tests.faults.conftest import (
    QUICK_ANSWER,
    QUICK_PROBLEM,
    SOFT_LIMIT_S,
    FaultRig,
)
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def _sources(rig: FaultRig) -> TraceSources:
    return TraceSources(main=rig.store.client, broker=rig.service.app.connection_for_read()
                        .default_channel.client, results=rig.results, keys=rig.store.keys,
                        visibility_timeout_s=rig.settings.visibility_timeout_s,
                        result_expires_s=rig.settings.result_expires_s)


def test_data_loss_mid_drain_trace_tells_the_jobs_are_gone_and_the_worker_serves(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a one-process worker 0.5 s into a slow solve, and a job queued behind it
    _, busy_id = rig.busy(worker_process, solving_s=0.5)
    queued_id = rig.service.submit(QUICK_PROBLEM).id

    # When every key of the server is lost
    rig.admin.flushall()

    # Then, once the busy job's outcome was due and written: the queued job has no
    # record, and trace says it is gone, not a live or finished fate
    wait_until(lambda: "celery-task-meta" in " ".join(rig.results.keys("*")) or None,
               timeout_s=SOFT_LIMIT_S + 30, interval_s=0.2,
               message=lambda: f"the busy job's delivery to end; log:\n{rig.worker_logs()}")
    assert not rig.store.client.exists(rig.store.keys.job(queued_id))
    told = trace_job(_sources(rig), queued_id)
    assert told.fate in {Fate.UNKNOWN, Fate.DELETED_EXTERNALLY}, (told.fate, told.verdict)
    # and the busy job's record was written again, whole, from the message the worker
    # held, with its true outcome (timed out), and trace names the recreation
    busy = rig.store.get(busy_id)
    assert busy.status is JobStatus.FAILED and busy.error.startswith("timed out"), busy
    history = rig.events.read(busy_id)
    assert [e.type for e in history] == [EventType.CREATED, EventType.STARTED,
                                         EventType.FAILED], history
    assert history[0].fields["recreated"] == RECREATED_REASON
    told = trace_job(_sources(rig), busy_id)
    assert told.fate is Fate.FAILED and "recreated from its message" in told.verdict, (
        told.verdict)

    # Then the worker is alive and solves a new job
    assert all(w.proc.poll() is None for w in rig.workers), rig.worker_logs()
    fresh = rig.service.submit(QUICK_PROBLEM)
    done = rig.wait_finished(fresh.id, timeout_s=60)
    assert (done.status, done.answer) == (JobStatus.COMPLETED, QUICK_ANSWER), done
