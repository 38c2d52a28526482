"""StatsStore: reads the statistics the store's Lua scripts keep (`stats`, `stats:m:*`, `events`).

Invariant: the counters are written only inside create.lua and transition.lua,
in the same atomic step as the change they count, so they survive restarts of
every jobtrail process and agree with the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from jobtrail.clock import now_s
from jobtrail.connections import REDIS_ERRORS, wrap_redis_error
from jobtrail.keys import KeySpace
from jobtrail.metrics import MetricsSnapshot
from jobtrail.models import LATENCY_BOUNDS_S, JobStatus
from jobtrail.store.heartbeats import (
    DEFAULT_GONE_AFTER_S,
    absence_unproven_s,
    newest_before_start,
    server_uptime_s,
)

__all__ = ["LatencyHistogram", "MinuteStats", "StatsStore", "quantile", "read_metrics"]

_BUCKET_PREFIX = "latency_le_"


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Processing latency: per-bucket counts (upper bound seconds -> n, inf last) and the sum."""

    buckets: tuple[tuple[float, int], ...]
    sum_s: float

    @property
    def count(self) -> int:
        """Number of jobs counted."""
        return sum(n for _, n in self.buckets)


@dataclass(frozen=True, slots=True)
class MinuteStats:
    """One minute's counters: `minute` is epoch seconds // 60; counts per event type."""

    minute: int
    counts: dict[str, int]
    latency: LatencyHistogram


def _histogram(fields: dict[str, str]) -> LatencyHistogram:
    bounds = [*LATENCY_BOUNDS_S, float("inf")]
    counts = {b: 0 for b in bounds}
    for name, value in fields.items():
        if name.startswith(_BUCKET_PREFIX):
            counts[float(name[len(_BUCKET_PREFIX):])] = int(value)
    return LatencyHistogram(tuple((b, counts[b]) for b in bounds),
                            float(fields.get("latency_sum_s") or 0.0))


def _counts(fields: dict[str, str]) -> dict[str, int]:
    return {k: int(v) for k, v in fields.items()
            if not k.startswith(_BUCKET_PREFIX) and k != "latency_sum_s"}


def quantile(hist: LatencyHistogram, q: float) -> float | None:
    """Return the *q*-quantile (0..1) in seconds, interpolated within its bucket.

    The estimate Prometheus' histogram_quantile() makes: linear within the
    bucket, the last finite bound for the +Inf bucket. None when empty.

    Source: https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile
    """
    total = hist.count
    if total == 0:
        return None
    rank = q * total
    seen, lower = 0, 0.0
    for bound, n in hist.buckets:
        if seen + n >= rank and n:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        if bound != float("inf"):
            lower = bound
    return lower


class StatsStore:
    """Reader of jobtrail's statistics in the main DB.

    Args:
        client: redis-py client of the main DB (decode_responses=True).
        keys: Key builder.
    """

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self.client = client
        self.keys = keys

    def lifetime(self) -> tuple[dict[str, int], LatencyHistogram]:
        """Return lifetime counts per event type and the latency histogram.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            fields = cast(dict[str, str], self.client.hgetall(self.keys.stats()))
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        return _counts(fields), _histogram(fields)

    def minutes(self, first: int, last: int) -> list[MinuteStats]:
        """Return the stats of each minute in [first, last] (epoch seconds // 60), in order.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for minute in range(first, last + 1):
                    pipe.hgetall(self.keys.stats_minute(minute))
                rows = cast(list[dict[str, str]], pipe.execute())
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        return [MinuteStats(first + i, _counts(row), _histogram(row))
                for i, row in enumerate(rows)]

    def recent_events(self, count: int = 50) -> list[dict[str, Any]]:
        """Return the newest *count* events of all jobs, newest first.

        Each is {"event_id", "job_id", "type", "at" (epoch s), ...event fields}.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            rows = cast(list[tuple[str, dict[str, str]]],
                        self.client.xrevrange(self.keys.events_feed(), count=count))
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        return [{"event_id": eid, **fields, "at": float(fields.get("at") or 0.0)}
                for eid, fields in rows]


def _server_name(client: redis.Redis, info: dict[str, Any]) -> str:
    """Return `host:port` of the server *client* talks to.

    A client that names no host (a Sentinel-managed pool) gets the start of the
    server's run_id and its INFO port instead, so two servers never share a name.
    """
    kwargs = client.connection_pool.connection_kwargs
    host = kwargs.get("host") or kwargs.get("path")
    if host:
        return f"{host}:{kwargs['port']}" if kwargs.get("port") else str(host)
    return f"{str(info.get('run_id', ''))[:8] or 'redis'}:{info.get('tcp_port', '')}"


def _per_server(pairs: tuple[tuple[redis.Redis, dict[str, Any]], ...]
                ) -> dict[str, dict[str, Any]]:
    """Key the INFO replies by server, each server once (same `run_id`: same server)."""
    seen: set[str] = set()
    out: dict[str, dict[str, Any]] = {}
    for client, info in pairs:
        run_id = str(info.get("run_id", ""))
        if run_id and run_id in seen:
            continue
        seen.add(run_id)
        out[_server_name(client, info)] = info
    return out


def read_metrics(main: redis.Redis, broker: redis.Redis, results: redis.Redis,
                 keys: KeySpace, *, visibility_timeout_s: float,
                 archived_total: int | None = None,
                 gone_after_s: float = DEFAULT_GONE_AFTER_S) -> MetricsSnapshot:
    """Read the figures /metrics exports: two pipelines on the main DB, one on the others.

    A processing job counts as stale when its worker is proven gone by the one
    liveness rule (store.heartbeats.absence_unproven_s: right after a restart of
    the main DB's Redis a missing heartbeat proves nothing yet) or it has run
    past the visibility timeout. *gone_after_s* is that rule's threshold, seconds.

    Raises:
        RedisUnavailableError: A DB could not be reached.
    """
    now = now_s()
    try:
        with main.pipeline(transaction=False) as pipe:
            for status in JobStatus:
                pipe.zcard(keys.jobs_by_status(status))
            pipe.hgetall(keys.stats())
            pipe.zrange(keys.jobs_by_status(JobStatus.PENDING), 0, 0, withscores=True)
            pipe.zrange(keys.jobs_by_status(JobStatus.PROCESSING), 0, -1, withscores=True)
            pipe.zrange(keys.workers(), 0, -1, withscores=True)
            pipe.info()
            replies: list[Any] = pipe.execute()
        n = len(JobStatus)
        counts, stats, oldest, processing, seen, main_info = (
            replies[:n], replies[n], replies[n + 1], replies[n + 2], replies[n + 3],
            replies[n + 4])
        names = [name for name, _ in seen]
        with main.pipeline(transaction=False) as pipe:
            for job_id, _ in processing:
                pipe.hget(keys.job(job_id), "worker")
            for name in names:
                pipe.exists(keys.worker(name))
            tail = pipe.execute()
        workers_of, alive = tail[:len(processing)], tail[len(processing):]
        live = {name for name, up in zip(names, alive, strict=True) if up}
        uptime_s = server_uptime_s(main_info)
        newest = newest_before_start([score for _, score in seen], uptime_s, read_at=now)
        unjudged = {name for (name, score), up in zip(seen, alive, strict=True)
                    if not up and absence_unproven_s(uptime_s, gone_after_s, last_seen=score,
                                                     read_at=now, newest_seen=newest)
                    is not None}
        queue_length = int(broker.llen(keys.queue()))
        infos = _per_server(((main, main_info), (broker, broker.info()),
                             (results, results.info())))
    except REDIS_ERRORS as exc:
        raise wrap_redis_error("a Redis DB", exc) from exc
    stale = sum(1 for (_, started), worker in zip(processing, workers_of, strict=True)
                if worker not in live | unjudged or now - float(started) > visibility_timeout_s)
    hist = _histogram(stats)
    return MetricsSnapshot(
        jobs_by_status={s.value: int(c) for s, c in zip(JobStatus, counts, strict=True)},
        event_totals=_counts(stats), latency_buckets=hist.buckets, latency_sum_s=hist.sum_s,
        queue_length=queue_length,
        oldest_pending_age_s=max(0.0, now - float(oldest[0][1])) if oldest else 0.0,
        stale_jobs=stale, live_workers=len(live), archived_total=archived_total,
        redis_expired_keys={r: int(i.get("expired_keys", 0)) for r, i in infos.items()},
        redis_evicted_keys={r: int(i.get("evicted_keys", 0)) for r, i in infos.items()},
        redis_used_memory_bytes={r: int(i.get("used_memory", 0)) for r, i in infos.items()},
    )
