"""After a Redis restart, a live worker whose heartbeat has not come back yet is not gone.

While Redis was down no worker could beat: its heartbeat hash expired (or was
lost). Until the server holding the heartbeats has been up for the gone
threshold, a missing heartbeat proves nothing (store.heartbeats'
absence_unproven_s): trace, doctor and `workers` say "not yet judged" and the
dead-worker sweep takes no message. Real processes: a `jobtrail worker` solving a
job, its main process (heartbeat thread and consumer) stopped across a SIGKILL
of redis-server and its restart, so it cannot beat before the views are read; its
pool process solves on.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import pytest
import redis

from jobtrail.doctor import Severity, run_checks
from jobtrail.jobs import JobService
from jobtrail.models import EventType, Fate, JobStatus
from jobtrail.worker.app import create_celery_app
from tests.cli.test_cli import run
from tests.faults.conftest import SLOW_PROBLEM, FaultRig
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until
from tests.test_trace import trace

pytestmark = [pytest.mark.slow, pytest.mark.crash]

#: Heartbeat every 4 s: gone after 12 s without one, and 12 s after a restart.
INTERVAL_S = 4.0


def _doctor(rig: FaultRig) -> dict[str, Severity]:
    main, broker, results = rig.settings.require_urls()
    clients = {name: redis.Redis.from_url(url, decode_responses=True)
               for name, url in (("main", main), ("broker", broker), ("results", results))}
    try:
        found = run_checks(rig.settings, clients, rig.store.keys, consistency=False)
    finally:
        for client in clients.values():
            client.close()
    return {f.check: f.severity for f in found}


def _uptime_s(rig: FaultRig) -> float:
    return float(rig.admin.info("server")["uptime_in_seconds"])


def test_a_live_worker_is_not_called_gone_until_redis_has_been_up_the_gone_threshold(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker beating every 4 s and solving a job that runs for a minute
    rig.settings = rig.settings.model_copy(update={
        "heartbeat_interval_s": INTERVAL_S, "solver_time_limit_s": 60.0,
        "solver_hard_time_limit_s": 80.0, "visibility_timeout_s": 300})
    rig.service = JobService(rig.store, create_celery_app(rig.settings))
    gone_after_s = rig.settings.gone_after_s
    proc = rig.start_worker(worker_process)
    job_id = rig.service.submit(SLOW_PROBLEM).id
    running = rig.wait_status(job_id, JobStatus.PROCESSING, timeout_s=30)
    wait_until(lambda: rig.store.client.exists(rig.store.keys.worker(running.worker)),
               timeout_s=10, message="a heartbeat")

    # When its main process is stopped (no heartbeat can be written; the pool solves on),
    # redis-server is SIGKILLed, stays down past the heartbeat's TTL, and restarts
    os.kill(proc.proc.pid, signal.SIGSTOP)
    try:
        [server] = {id(s): s for s in rig.servers.values()}.values()
        assert server.process is not None
        server.process.kill()
        server.process.wait(timeout=10)
        time.sleep(gone_after_s + 1.0)
        rig.start()
        assert not rig.store.client.exists(rig.store.keys.worker(running.worker))

        # Then, right after the restart, no view calls the worker gone
        traced = trace(rig.settings, job_id)
        assert traced.fate is Fate.PROCESSING, traced.verdict
        assert "not yet judged" in traced.verdict, traced.verdict
        doctor = _doctor(rig)
        assert doctor["stale-processing"] is Severity.WARNING, doctor
        assert doctor["workers"] is Severity.WARNING, doctor
        listed = run(rig.settings, "workers", "--json")
        assert listed.returncode == 0, listed.stderr
        [beat] = [b for b in json.loads(listed.stdout) if b["name"] == running.worker]
        assert (beat["status"], beat["gone"]) == ("unknown", False), beat
        assert beat["note"].startswith("no heartbeat since Redis restarted "), beat
        # and the sweep (`jobtrail recover`) takes nothing from it
        report = rig.service.recover(gone_after_s=gone_after_s)
        assert report.recovered == [] and "not yet judged" in report.deferred, report
        after = rig.job(job_id)
        assert (after.status, after.version) == (JobStatus.PROCESSING, running.version)
        assert EventType.REDELIVERED not in [e.type for e in rig.history(job_id)]
        assert _uptime_s(rig) < gone_after_s  # all of it was read inside the window
    finally:
        os.kill(proc.proc.pid, signal.SIGCONT)

    # When its heartbeats come back, it is live, and its job processing there
    wait_until(lambda: rig.store.client.exists(rig.store.keys.worker(running.worker)),
               timeout_s=30, message=lambda: f"the heartbeat to return; log:\n{proc.log()[-3000:]}")
    traced = trace(rig.settings, job_id)
    assert traced.fate is Fate.PROCESSING and "not yet judged" not in traced.verdict, \
        traced.verdict

    # Then a worker truly killed is called gone once the threshold has passed
    os.killpg(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait(timeout=10)
    gone = wait_until(lambda: (t := trace(rig.settings, job_id)).fate is Fate.STALE and t,
                      timeout_s=3 * gone_after_s, interval_s=0.5,
                      message="trace to call the killed worker gone")
    assert f"worker {running.worker} is gone" in gone.verdict, gone.verdict
    assert _doctor(rig)["stale-processing"] is Severity.ERROR
