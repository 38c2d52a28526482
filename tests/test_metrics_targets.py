"""Metrics add up: sum() of each counter over the API and two real workers is the true count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.embedded import free_port
from jobtrail.metrics import failure_reason
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until

pytestmark = [pytest.mark.slow]

PROBLEMS = ["solve x^2 - 5x + 6 = 0", "1 + 1", "d/dx x^3", "__import__('os')",
            "integrate x dx", "x**(10**10**10)"]


def _scrape(url: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Return {family type: {(sample name, labels): value}} of one target."""
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for s in family.samples:
            out.setdefault(family.type, {})[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum_by_name(targets: list[dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]],
                 kind: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for target in targets:
        for (name, _), value in target.get(kind, {}).items():
            total[name] += value
    return total


def test_sum_over_api_and_two_workers_is_the_true_count(
        settings: Settings, store: JobStore, main_db: redis.Redis,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given the API and two real workers, each worker serving its own metrics
    ports = [free_port(), free_port()]
    for name, port in zip(("m1", "m2"), ports, strict=True):
        worker_process(settings.model_copy(update={"worker_metrics_port": port,
                                                   "heartbeat_interval_s": 0.5}),
                       hostname=name)
    worker_urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    with serve_in_thread(create_app(settings)) as base, client(base) as api:
        wait_until(lambda: all(_answers(u) for u in worker_urls), timeout_s=60,
                   message="both workers' metrics servers")
        # When jobs go in through the API, some of which fail
        ids = [api.post("/jobs", json={"problem": p}).json()["id"] for p in PROBLEMS]
        wait_until(lambda: all(job_finished(store, i) for i in ids), timeout_s=90,
                   message="every job to finish")
        jobs = [store.get(i) for i in ids]
        completed = sum(j.status is JobStatus.COMPLETED for j in jobs)
        reasons = Counter(failure_reason(j.error) for j in jobs if j.status is JobStatus.FAILED)
        assert completed == 4 and sum(reasons.values()) == 2, jobs

        def counted() -> Counter[str] | None:
            sums = _sum_by_name([_scrape(u) for u in worker_urls], "counter")
            done = sums["jobtrail_worker_jobs_completed_total"] + \
                sums["jobtrail_worker_jobs_failed_total"]
            return sums if done == len(PROBLEMS) else None

        wait_until(counted, timeout_s=30, message="the workers to count every job")
        targets = [_scrape(f"{base}/metrics"), *(_scrape(u) for u in worker_urls)]
        info = main_db.info()

    # Then each counter summed over all three targets is the true count
    counters = _sum_by_name(targets, "counter")
    ours = {name: v for name, v in counters.items() if name.startswith("jobtrail_")}
    assert ours == {
        "jobtrail_jobs_submitted_total": len(PROBLEMS),
        "jobtrail_jobs_completed_total": completed,
        "jobtrail_jobs_failed_total": 2,
        "jobtrail_jobs_redelivered_total": 0,
        "jobtrail_jobs_purged_total": 0,
        "jobtrail_jobs_restored_total": 0,
        "jobtrail_jobs_archived_total": 0,
        "jobtrail_worker_jobs_completed_total": completed,
        "jobtrail_worker_jobs_failed_total": 2,
        "jobtrail_redis_expired_keys_total": pytest.approx(info["expired_keys"], abs=2),
        "jobtrail_redis_evicted_keys_total": info["evicted_keys"],
    }
    failed_by_reason = Counter[str]()
    for target in targets:
        for (name, labels), value in target.get("counter", {}).items():
            if name == "jobtrail_worker_jobs_failed_total":
                failed_by_reason[dict(labels)["reason"]] += int(value)
    assert failed_by_reason == reasons
    # one Redis server plays all three roles: its INFO figures appear once
    gauges = [key for t in targets for key in t.get("gauge", {})
              if key[0] == "jobtrail_redis_used_memory_bytes"]
    assert len(gauges) == 1 and dict(gauges[0][1])["server"].startswith("127.0.0.1:")
    # the histograms add up too: queue wait for every job, solve time by kind
    histograms = _sum_by_name(targets, "histogram")
    assert histograms["jobtrail_worker_queue_wait_seconds_count"] == len(PROBLEMS)
    assert histograms["jobtrail_worker_solve_seconds_count"] == len(PROBLEMS)
    assert histograms["jobtrail_processing_latency_seconds_count"] == len(PROBLEMS)
    kinds = {dict(labels)["kind"] for t in targets for (name, labels) in t.get("histogram", {})
             if name == "jobtrail_worker_solve_seconds_count"}
    assert {"equation", "arithmetic", "derivative", "integral"} <= kinds
    # and each process exports its own process metrics (prometheus-client's collectors)
    assert all(any(n == "process_cpu_seconds_total" for n, _ in t["counter"]) for t in targets)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
