"""Redis out of memory under `maxmemory-policy noeviction`: every write refused with OOM.

A submit during it is refused in one line and writes no record; a worker whose
finish is refused keeps the job (it retries, or hands the task back) and
finishes it truly once memory is freed (`CONFIG SET maxmemory 0`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from jobtrail.connections import refuses_writes_now, wrap_redis_error
from jobtrail.errors import JobtrailError, PartialSubmitError, RedisCommandError
from jobtrail.jobs import SUBMIT_CHUNK
from jobtrail.models import Job, JobStatus
from jobtrail.store.heartbeats import HeartbeatStore
from tests.faults.conftest import (
    RETRY_S,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def _out_of_memory(rig: FaultRig) -> None:
    """Make the server refuse every write that needs memory (OOM), evicting nothing."""
    rig.admin.config_set("maxmemory-policy", "noeviction")
    rig.admin.config_set("maxmemory", "1")


@pytest.mark.parametrize("oom_s", [3.0, RETRY_S + 4.0], ids=["in-window", "past-window"])
def test_out_of_memory_refuses_a_submit_and_the_busy_worker_keeps_its_job(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess], oom_s: float) -> None:
    # Given a worker 0.5 s into a solve whose outcome (soft limit) is due at 3 s
    _, job_id = rig.busy(worker_process, solving_s=0.5)
    records = rig.store.client.zcard(rig.store.keys.jobs())

    # When the server runs out of memory (noeviction) until after the outcome is due
    _out_of_memory(rig)
    try:
        # Then a submit is refused in one line naming OOM, and leaves no record
        with pytest.raises(JobtrailError) as refused:
            rig.service.submit("solve x^2 - 4 = 0")
        assert "OOM" in str(refused.value) and "\n" not in str(refused.value), refused.value
        assert rig.store.client.zcard(rig.store.keys.jobs()) == records
        time.sleep(oom_s)
    finally:
        rig.admin.config_set("maxmemory", "0")
        freed_at = time.time()

    # Then the job ends with its true fate once memory is freed; the worker serves on,
    # and beats again (its heartbeat thread outlived the refused beats)
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)}, redeliveries=1)
    heartbeats = HeartbeatStore(rig.store.client, rig.store.keys)
    wait_until(lambda: any(b.alive and b.last_seen > freed_at
                           for b in heartbeats.list_workers()),
               timeout_s=3 * rig.settings.heartbeat_interval_s + 5,
               message="a heartbeat written after memory was freed")


def test_out_of_memory_partway_through_submit_many_names_the_accepted_jobs(
        rig: FaultRig, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a submit_many of three chunks, the server running out of memory (noeviction)
    # just before the second chunk's records are written
    chunk = SUBMIT_CHUNK // rig.service.batch_max_jobs * rig.service.batch_max_jobs
    problems = [f"solve x + {n} = 0" for n in range(3 * chunk)]
    write_jobs = rig.store.write_jobs
    calls: list[int] = []

    def out_of_memory_at_the_second(jobs: list[Job]) -> None:
        calls.append(len(jobs))
        if len(calls) == 2:
            _out_of_memory(rig)
        write_jobs(jobs)

    monkeypatch.setattr(rig.store, "write_jobs", out_of_memory_at_the_second)
    try:
        # When it runs
        with pytest.raises(PartialSubmitError) as partial:
            rig.service.submit_many(problems)
    finally:
        rig.admin.config_set("maxmemory", "0")

    # Then the error is a partial submit that names the first chunk accepted, the second
    # uncertain (refused, or written in part before memory ran out) and the third unsent
    error = partial.value
    assert error.reason == "OOM command not allowed when used memory > 'maxmemory'", error
    assert len(error.accepted) == chunk and error.failed == []
    assert len(error.uncertain) == chunk and error.unsubmitted == chunk
    for job_id in error.accepted:
        assert rig.store.get(job_id).status is JobStatus.PENDING


def test_a_command_error_quoting_an_oom_reason_in_its_arguments_is_no_oom(
        rig: FaultRig) -> None:
    # Given a pipeline whose write quotes Redis's OOM words as a value and fails WRONGTYPE
    rig.store.client.set("a-string", "x")
    with rig.store.client.pipeline(transaction=False) as pipe:
        pipe.hset("a-string", "error", "OOM command not allowed when used memory > "
                  "'maxmemory'; READONLY You can't write against a read only replica")
        with pytest.raises(redis.ResponseError) as raised:
            pipe.execute()

    # Then it is a command error, not a refusal that passes later (it would be retried)
    assert "WRONGTYPE" in str(raised.value) and "OOM" in str(raised.value)
    assert not refuses_writes_now(raised.value)
    wrapped = wrap_redis_error("main DB", raised.value)
    assert type(wrapped) is RedisCommandError, wrapped
