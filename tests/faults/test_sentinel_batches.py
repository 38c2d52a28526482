"""Batched submissions through two Sentinel failovers, with real processes.

`jobtrail submit --file` of a few hundred problems and in-process submit_many
(both send `jobtrail.solve_batch` messages) while SENTINEL FAILOVER runs twice,
with MAIN_MIN_REPLICAS=0 and no worker yet (what the switch did stays visible): no
accepted job is unknown; a job whose batch message was lost while its record
survived is `stale` to trace, listed by doctor's pending-without-message, and
`jobtrail requeue` sends it again; once a worker starts, every job completes.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jobtrail.connections import connect
from jobtrail.doctor import run_checks
from jobtrail.errors import JobtrailError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from tests.faults.test_sentinel import PROBLEMS, _outcome, _settings
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.sentinel import SentinelCluster, sentinel_cluster
from tests.helpers.waiting import wait_until

__all__ = ["sentinel_cluster"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.slow, pytest.mark.crash, pytest.mark.timeout(400)]


def test_batches_through_two_failovers_are_found_or_named_and_resendable(
        sentinel_cluster: SentinelCluster, tmp_path: Path,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given Sentinel URLs, MAIN_MIN_REPLICAS=0, batches of 8, and no worker yet
    settings = _settings(sentinel_cluster, tmp_path, main_min_replicas=0, batch_max_jobs=8)
    keys = KeySpace(queue=settings.queue)
    store = JobStore(connect(settings.main_url or "", settings=settings), keys)
    service = JobService(store, create_celery_app(settings))
    problems = tmp_path / "problems.txt"
    problems.write_text("\n".join(PROBLEMS[n % 3] for n in range(300)) + "\n")
    accepted: list[str] = []
    refused: list[str] = []
    cli_runs: list[int] = []
    stop = threading.Event()

    def in_process() -> None:
        while not stop.is_set() and len(accepted) < 600:  # the worker drains them later
            try:
                accepted.extend(j.id for j in service.submit_many([*PROBLEMS] * 7))
            except JobtrailError as exc:
                refused.append(str(exc))
            time.sleep(0.3)

    def cli() -> None:
        for _ in range(2):
            done = subprocess.run([sys.executable, "-m", "jobtrail", "submit", "--file",
                                   str(problems)], env=settings_env(settings),
                                  capture_output=True, text=True, timeout=120, check=False)
            if done.returncode == 0:
                accepted.extend(done.stdout.split())
                cli_runs.append(len(done.stdout.split()))
            else:
                refused.append(done.stderr.strip())
                assert len(done.stderr.strip().splitlines()) == 1, done.stderr

    threads = [threading.Thread(target=f, daemon=True) for f in (in_process, cli)]
    for thread in threads:
        thread.start()
    # When SENTINEL FAILOVER runs twice under the stream
    for _ in range(2):
        time.sleep(2.0)
        sentinel_cluster.failover()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    # Then every accepted job has its record; a pending one has its message, or is stale
    outcome = _outcome(settings, store, accepted)
    counts = {k: len(v) for k, v in outcome.items()}
    print(f"\nbatches HA: accepted={len(accepted)} refused={len(refused)} outcome={counts} "
          f"cli_runs={cli_runs} "
          f"refusals={sorted({r[:80] for r in refused})[:3]}")
    assert len(accepted) > 300 and 300 in cli_runs, (cli_runs, refused[:3])
    assert set(outcome) <= {"pending:pending", "pending:stale"}, counts
    lost = outcome.get("pending:stale", [])
    main, broker, results = (connect(u, settings=settings) for u in settings.require_urls())
    [finding] = [f for f in run_checks(settings, {"main": main, "broker": broker,
                                                  "results": results}, keys)
                 if f.check == "pending-without-message"]
    assert finding.evidence.get("count", 0) == len(lost), finding
    assert set(finding.evidence.get("sample", [])) <= set(lost)
    if lost:
        again = subprocess.run([sys.executable, "-m", "jobtrail", "requeue", *lost],
                               env=settings_env(settings), capture_output=True, text=True,
                               timeout=120, check=False)
        assert again.returncode == 0, again.stderr

    # and once a worker runs, every accepted job completes
    worker_process(settings, concurrency=2)
    wait_until(lambda: all(store.get(j).status is JobStatus.COMPLETED for j in accepted),
               timeout_s=240, interval_s=2.0, message="every accepted job to complete")
