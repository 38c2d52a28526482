"""Prometheus metrics of jobtrail, collected at scrape time from a MetricsSnapshot.

Invariant: no counter lives in process memory: every figure is read from the
durable statistics in Redis (store.stats) when Prometheus scrapes, so the API
and every worker export the same numbers and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["JobtrailCollector", "MetricsSnapshot"]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything /metrics reports, read in one go.

    Counts are totals since the deployment began; ages and latencies are
    seconds; `latency_buckets` are (upper bound s, count in that bucket), the
    last bound +Inf; `redis_*` are keyed by role (main, broker, results).
    """

    jobs_by_status: dict[str, int]
    event_totals: dict[str, int]
    latency_buckets: tuple[tuple[float, int], ...]
    latency_sum_s: float
    queue_length: int
    oldest_pending_age_s: float
    stale_jobs: int
    live_workers: int
    archived_total: int | None
    redis_expired_keys: dict[str, int]
    redis_evicted_keys: dict[str, int]
    redis_used_memory_bytes: dict[str, int]


class JobtrailCollector(Collector):
    """A prometheus_client collector calling *read* on every scrape.

    Args:
        read: Returns the current MetricsSnapshot; may raise, in which case the
            scrape fails with that error (Prometheus records `up == 0`).
    """

    def __init__(self, read: Callable[[], MetricsSnapshot]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        """Yield every jobtrail metric family."""
        snap = self.read()
        jobs = GaugeMetricFamily("jobtrail_jobs", "Job records by status", labels=["status"])
        for status, n in snap.jobs_by_status.items():
            jobs.add_metric([status], n)
        yield jobs
        for name, event, text in (
                ("jobtrail_jobs_submitted", "created", "Jobs submitted"),
                ("jobtrail_jobs_completed", "completed", "Jobs completed"),
                ("jobtrail_jobs_failed", "failed", "Jobs failed"),
                ("jobtrail_jobs_redelivered", "redelivered", "Redeliveries after a lost worker"),
                ("jobtrail_jobs_purged", "purged", "Job records purged by retention"),
                ("jobtrail_jobs_restored", "restored", "Job records restored from the archive")):
            yield CounterMetricFamily(name, text, value=snap.event_totals.get(event, 0))
        if snap.archived_total is not None:  # only where the archive is open (the API)
            yield CounterMetricFamily("jobtrail_jobs_archived", "Rows in the archive",
                                      value=snap.archived_total)
        cumulative, buckets = 0, []
        for bound, n in snap.latency_buckets:
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "jobtrail_processing_latency_seconds", "Time from start to finish of a job",
            buckets=buckets, sum_value=snap.latency_sum_s)
        yield GaugeMetricFamily("jobtrail_queue_length", "Messages waiting in the broker queue",
                                value=snap.queue_length)
        yield GaugeMetricFamily("jobtrail_oldest_pending_age_seconds",
                                "Age of the oldest pending job", value=snap.oldest_pending_age_s)
        yield GaugeMetricFamily("jobtrail_stale_jobs",
                                "Processing jobs whose worker is gone or past the visibility "
                                "timeout", value=snap.stale_jobs)
        yield GaugeMetricFamily("jobtrail_live_workers", "Workers with a live heartbeat",
                                value=snap.live_workers)
        for name, values, text in (
                ("jobtrail_redis_expired_keys", snap.redis_expired_keys, "Keys expired (INFO)"),
                ("jobtrail_redis_evicted_keys", snap.redis_evicted_keys, "Keys evicted (INFO)")):
            family = CounterMetricFamily(name, text, labels=["db"])
            for role, n in values.items():
                family.add_metric([role], n)
            yield family
        memory = GaugeMetricFamily("jobtrail_redis_used_memory_bytes", "Redis used_memory",
                                   labels=["db"])
        for role, n in snap.redis_used_memory_bytes.items():
            memory.add_metric([role], n)
        yield memory
