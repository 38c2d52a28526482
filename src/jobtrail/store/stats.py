"""StatsStore: reads the statistics the store's Lua scripts keep (`stats`, `stats:m:*`, `events`).

Invariant: the counters are written only inside create.lua and transition.lua,
in the same atomic step as the change they count, so they survive restarts of
every jobtrail process and agree with the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from jobtrail.errors import RedisUnavailableError
from jobtrail.keys import KeySpace
from jobtrail.models import LATENCY_BOUNDS_S

__all__ = ["LatencyHistogram", "MinuteStats", "StatsStore", "quantile"]

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
        except redis.ConnectionError as exc:
            raise RedisUnavailableError("main DB", str(exc)) from exc
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
        except redis.ConnectionError as exc:
            raise RedisUnavailableError("main DB", str(exc)) from exc
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
        except redis.ConnectionError as exc:
            raise RedisUnavailableError("main DB", str(exc)) from exc
        return [{"event_id": eid, **fields, "at": float(fields.get("at") or 0.0)}
                for eid, fields in rows]
