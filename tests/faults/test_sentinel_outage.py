"""A Sentinel that hangs or dies while the master is fine: submits go on, with real processes.

Sentinel only names the master; the master keeps taking writes while Sentinel is
paused (SIGSTOP: every question times out) or gone. A client must keep serving
from the master last named, including over connections it opens anew, and a
submit must not wait on the results DB's pub/sub (Celery's per-task subscription).
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobtrail.connections import connect
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from tests.faults.test_sentinel import PROBLEMS, _settings
from tests.helpers.sentinel import SentinelCluster, sentinel_cluster

__all__ = ["sentinel_cluster"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.slow, pytest.mark.crash]


@pytest.mark.parametrize(("min_replicas", "outage"), [(1, signal.SIGSTOP), (0, signal.SIGKILL)])
def test_submits_go_on_while_sentinel_is_paused_or_gone(
        sentinel_cluster: SentinelCluster, tmp_path: Path, min_replicas: int,
        outage: signal.Signals) -> None:
    # Given a service on Sentinel URLs that has submitted once (it knows the master)
    settings = _settings(sentinel_cluster, tmp_path, main_min_replicas=min_replicas,
                         redis_failover_retry_s=5.0)
    store = JobStore(connect(settings.main_url or "", settings=settings),
                     KeySpace(queue=settings.queue))
    service = JobService(store, create_celery_app(settings))
    service.submit(PROBLEMS[0])
    master = sentinel_cluster.master()
    assert sentinel_cluster.sentinel is not None
    sentinel = sentinel_cluster.sentinel.proc

    # When the Sentinel stops answering (paused: each question times out; killed: refused)
    sentinel.send_signal(outage)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        accepted, slowest_s, stop_at = [], 0.0, time.monotonic() + 12.0
        while time.monotonic() < stop_at:
            started = time.monotonic()
            accepted.append(pool.submit(service.submit, PROBLEMS[1]).result(timeout=30).id)
            slowest_s = max(slowest_s, time.monotonic() - started)
        # and every pooled connection is dropped, so each client must connect anew
        master.client().client_kill_filter(_type="normal", skipme=True)
        started = time.monotonic()
        again = pool.submit(service.submit, PROBLEMS[2]).result(timeout=30)
        reconnect_s = time.monotonic() - started
    finally:
        if outage is signal.SIGSTOP:
            sentinel.send_signal(signal.SIGCONT)
        pool.shutdown(wait=True)

    # Then submits were accepted throughout, each within two Sentinel timeouts (one per
    # Sentinel client asked), none waiting for the failover window, and the records are there
    print(f"\nSentinel {outage.name}: accepted={len(accepted)} slowest_submit_s={slowest_s:.2f}"
          f" reconnect_submit_s={reconnect_s:.2f}")
    assert len(accepted) > 5
    assert slowest_s < 2 * settings.redis_socket_timeout_s + 1.0, slowest_s
    assert reconnect_s < 2 * settings.redis_socket_timeout_s + 1.0, reconnect_s
    assert store.get(again.id).status is JobStatus.PENDING
    assert all(store.find(job_id) is not None for job_id in accepted)
