"""The dashboard in headless Chromium on a seeded state: it shows the counts the store holds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.models import JobStatus
from jobtrail.retention.policy import RetentionPolicy
from jobtrail.retention.purge import purge
from jobtrail.store import JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.retention_store import RetentionStore
from jobtrail.worker.app import create_celery_app
from tests.helpers.api_server import serve_in_thread
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
         "--window-size=1280,1100", *extra, url],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                    reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_dashboard_shows_the_stored_counts(settings: Settings, store: JobStore, tmp_path: Path,
                                           worker_process: Callable[..., WorkerProcess]) -> None:
    assert CHROMIUM, "CI must have Chromium"
    # Given three completed jobs, one failed, two pending (submitted with no queue consumer
    # after the worker stopped) and a live worker's history
    live = settings.model_copy(update={"heartbeat_interval_s": 0.5})
    service = JobService(store, create_celery_app(live))
    proc = worker_process(live, hostname="dash")
    done = service.submit_many(["1 + 1", "solve x^2 = 4", "d/dx x^3", "9^9^9"])
    wait_until(lambda: all(store.get(j.id).status in (JobStatus.COMPLETED, JobStatus.FAILED)
                           for j in done), timeout_s=60, message="jobs to finish")
    proc.stop()
    service.submit_many(["2 + 2", "3 + 3"])
    service.cancel(service.submit("4 + 4").id)  # one cancelled (its message stays queued)
    # and one completed job purged by a retention run
    archive = ArchiveStore(live.effective_archive_url)
    archive.ensure_schema()
    results = redis.Redis.from_url(live.results_url or "", decode_responses=True)
    report = purge(RetentionStore(store.client, results, store.keys), archive,
                   RetentionPolicy("dash-policy", (JobStatus.COMPLETED,), 0.0, keep_last=2),
                   tombstone_ttl_s=60)
    assert report.purged == 1
    counts = store.count_by_status()
    assert counts == {JobStatus.PENDING: 2, JobStatus.PROCESSING: 0, JobStatus.COMPLETED: 2,
                      JobStatus.FAILED: 1, JobStatus.CANCELLED: 1}

    with serve_in_thread(create_app(live)) as base:
        dom = _chromium(f"{base}/", tmp_path / "profile", "--dump-dom")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        _chromium(f"{base}/", tmp_path / "profile2", f"--screenshot={shot}")

    html = dom.stdout
    assert 'data-loaded="true"' in html, dom.stderr[-2000:]

    def shown(element_id: str) -> str:
        match = re.search(rf'id="{element_id}">([^<]*)<', html)
        assert match, f"{element_id} not in the page"
        return match.group(1)

    assert shown("count-completed") == "2"
    assert shown("count-failed") == "1"
    assert shown("count-pending") == "2"
    assert shown("count-processing") == "0"
    assert shown("count-cancelled") == "1"
    # the broker holds two messages: the batch of "2 + 2" and "3 + 3" (submitted together) and
    # the cancelled "4 + 4", whose message stays queued until a worker skips it
    broker = redis.Redis.from_url(live.broker_url or "")
    assert broker.llen(store.keys.queue()) == 2
    assert shown("queue-length") == "2"
    assert shown("purged") == "1 / 0"
    assert "dash-policy" in html and "selected=1" in html   # the audit row of the purge
    assert "dash@" in html                      # the worker, now gone
    assert "number too large" in html           # the failed job's event
    assert "<canvas" in html                    # uPlot drew the charts, served offline
    assert shot.stat().st_size > 10_000
