"""Prometheus metrics of jobtrail, collected at scrape time from durable statistics.

Invariant: no counter lives in process memory: every figure is read from Redis
when Prometheus scrapes, so a restart loses nothing. Each figure has exactly
one exporter, so `sum()` over all scrape targets is the true count:

- JobtrailCollector (the API's /metrics only): deployment-wide figures, the
  `jobtrail_jobs*` counters and gauges, queue, workers, and Redis INFO figures
  once per Redis server (label `server`), however many roles it plays.
- NodeCollector (each worker's --metrics-port): the `jobtrail_worker_*`
  series of that node's own jobs, labelled `worker`.
- Both add prometheus-client's process, platform and GC collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["FAILURE_REASONS", "JobtrailCollector", "MetricsSnapshot", "NodeCollector",
           "NodeFigures", "failure_reason", "process_registry"]

#: The bounded label set of `jobtrail_worker_jobs_failed_total{reason}`: (label,
#: fragment of the job's error text that selects it), first match wins.
FAILURE_REASONS: tuple[tuple[str, str], ...] = (
    ("timeout", "timed out"),
    ("memory_limit", "memory limit"),
    ("too_large", "too large"),
    ("too_large", "the limit is"),
    ("parse", "parse"),
    ("empty", "empty"),
    ("unsupported", "unsupported"),
    ("internal", "internal solver error"),
    ("no_record", "has no record"),
    ("cancelled", "cancelled"),
    ("revoked", "before it finished"),
)
#: The label of any failure no FAILURE_REASONS fragment matches.
OTHER_REASON = "other"


def failure_reason(error: str) -> str:
    """Return the bounded reason label of a failed job's *error* text."""
    text = error.lower()
    for label, fragment in FAILURE_REASONS:
        if fragment in text:
            return label
    return OTHER_REASON


def process_registry() -> CollectorRegistry:
    """Return a registry holding prometheus-client's process, platform and GC collectors."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything /metrics reports, read in one go.

    Counts are totals since the deployment began; ages and latencies are
    seconds; `latency_buckets` are (upper bound s, count in that bucket), the
    last bound +Inf; `redis_*` are keyed by Redis server (host:port), each
    server once however many of the roles main, broker, results it serves.
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
            family = CounterMetricFamily(name, text, labels=["server"])
            for server, n in values.items():
                family.add_metric([server], n)
            yield family
        memory = GaugeMetricFamily("jobtrail_redis_used_memory_bytes", "Redis used_memory",
                                   labels=["server"])
        for server, n in snap.redis_used_memory_bytes.items():
            memory.add_metric([server], n)
        yield memory


Buckets = tuple[tuple[float, int], ...]


class NodeFigures(Protocol):
    """What NodeCollector reads (store.node_stats.NodeStats has this shape)."""

    @property
    def completed(self) -> int: ...
    @property
    def failed_by_reason(self) -> dict[str, int]: ...
    @property
    def queue_wait(self) -> tuple[Buckets, float]: ...
    @property
    def solve(self) -> dict[str, tuple[Buckets, float]]: ...


def _cumulative(buckets: Buckets) -> list[tuple[str, float]]:
    total, out = 0, []
    for bound, n in buckets:
        total += n
        out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
    return out


class NodeCollector(Collector):
    """Collector of one worker node's own figures, read by *read* on every scrape.

    Args:
        node: The worker node name (label `worker`).
        read: Returns the node's figures; may raise (the scrape fails).
        active_jobs: Returns how many jobs the node runs right now.
    """

    def __init__(self, node: str, read: Callable[[], NodeFigures],
                 active_jobs: Callable[[], int]) -> None:
        self.node = node
        self.read = read
        self.active_jobs = active_jobs

    def collect(self) -> Iterator[Metric]:
        """Yield the `jobtrail_worker_*` families of this node."""
        figures, node = self.read(), [self.node]
        completed = CounterMetricFamily("jobtrail_worker_jobs_completed",
                                        "Jobs this worker completed", labels=["worker"])
        completed.add_metric(node, figures.completed)
        yield completed
        failed = CounterMetricFamily("jobtrail_worker_jobs_failed",
                                     "Jobs this worker failed, by bounded reason",
                                     labels=["worker", "reason"])
        for reason, n in sorted(figures.failed_by_reason.items()):
            failed.add_metric([self.node, reason], n)
        yield failed
        buckets, sum_s = figures.queue_wait
        wait = HistogramMetricFamily("jobtrail_worker_queue_wait_seconds",
                                     "Time from submission to start of this worker's jobs",
                                     labels=["worker"])
        wait.add_metric(node, _cumulative(buckets), sum_s)
        yield wait
        solve = HistogramMetricFamily("jobtrail_worker_solve_seconds",
                                      "Time from start to finish of this worker's jobs, "
                                      "by problem kind", labels=["worker", "kind"])
        for kind, (kind_buckets, kind_sum_s) in figures.solve.items():
            solve.add_metric([self.node, kind], _cumulative(kind_buckets), kind_sum_s)
        yield solve
        yield _active(self.node, self.active_jobs())


def _active(node: str, n: int) -> GaugeMetricFamily:
    family = GaugeMetricFamily("jobtrail_worker_active_jobs", "Jobs this worker is running now",
                               labels=["worker"])
    family.add_metric([node], n)
    return family
