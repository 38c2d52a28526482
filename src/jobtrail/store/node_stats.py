"""NodeStatsStore: the counters of one worker node's own jobs (`stats:node:<name>`).

Invariant: only the node itself writes its hash (one pipelined step after each
job it finished), so a node's /metrics reports what it alone did, and the sum
over all nodes equals the deployment's count. The hash outlives a restart of
the node under the same name; it expires NODE_STATS_TTL_S after its last write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from jobtrail.connections import REDIS_ERRORS, wrap_redis_error
from jobtrail.keys import KeySpace
from jobtrail.models import LATENCY_BOUNDS_S

__all__ = ["NODE_STATS_TTL_S", "NodeCount", "NodeStats", "NodeStatsStore"]

#: Seconds a node's counters are kept after its last finished job (30 days).
NODE_STATS_TTL_S = 30 * 24 * 3600

Buckets = tuple[tuple[float, int], ...]


@dataclass(frozen=True, slots=True)
class NodeCount:
    """The node that finishes a job, with the job's bounded labels.

    Handed to JobStore.finish(), which counts the job on `stats:node:<node>`
    in the finish's own atomic step (transition.lua; the same fields record()
    writes): no round trip of its own, and a retried finish counts nothing
    again.
    """

    node: str
    kind: str    # one of solver.KINDS or "other"
    reason: str  # metrics.failure_reason() of the error; ignored for a completed job


@dataclass(frozen=True, slots=True)
class NodeStats:
    """One node's figures: outcome counts, queue-wait and solve-time histograms.

    Histograms are (upper bound s, count in that bucket) with +Inf last, and
    their sum in seconds; `solve` is keyed by problem kind.
    """

    completed: int
    failed_by_reason: dict[str, int]
    queue_wait: tuple[Buckets, float]
    solve: dict[str, tuple[Buckets, float]]


def _bucket_of(value_s: float) -> str:
    for bound in LATENCY_BOUNDS_S:
        if value_s <= bound:
            return repr(bound)
    return "inf"


def _histogram(fields: dict[str, str], head: str) -> tuple[Buckets, float]:
    bounds = [*LATENCY_BOUNDS_S, float("inf")]
    buckets = tuple((b, int(fields.get(f"{head}:le:{'inf' if b == float('inf') else repr(b)}",
                                       0))) for b in bounds)
    return buckets, float(fields.get(f"{head}:sum_s") or 0.0)


class NodeStatsStore:
    """Writer and reader of `stats:node:<name>` hashes in the main DB.

    Args:
        client: redis-py client of the main DB (decode_responses=True).
        keys: Key builder.
    """

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self.client = client
        self.keys = keys

    def record(self, node: str, *, completed: bool, reason: str, kind: str,
               queue_wait_s: float | None, solve_s: float | None) -> None:
        """Count one finished job of *node* (one pipelined round trip).

        Args:
            node: The worker node name.
            completed: True for completed, False for failed.
            reason: The bounded failure reason label (ignored when completed).
            kind: The bounded problem kind label.
            queue_wait_s: Seconds from submission to start, if known.
            solve_s: Seconds from start to finish, if known.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        key = self.keys.node_stats(node)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "completed" if completed else f"failed:{reason}", 1)
                if queue_wait_s is not None:
                    pipe.hincrby(key, f"wait:le:{_bucket_of(queue_wait_s)}", 1)
                    pipe.hincrbyfloat(key, "wait:sum_s", queue_wait_s)
                if solve_s is not None:
                    pipe.hincrby(key, f"solve:{kind}:le:{_bucket_of(solve_s)}", 1)
                    pipe.hincrbyfloat(key, f"solve:{kind}:sum_s", solve_s)
                pipe.expire(key, NODE_STATS_TTL_S)
                pipe.execute()
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    def read(self, node: str) -> NodeStats:
        """Return the figures of *node* (all zero for a node that finished nothing).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            fields = cast(dict[str, str], self.client.hgetall(self.keys.node_stats(node)))
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        failed = {name.removeprefix("failed:"): int(v) for name, v in fields.items()
                  if name.startswith("failed:")}
        kinds = {name.split(":")[1] for name in fields if name.startswith("solve:")}
        return NodeStats(int(fields.get("completed") or 0), failed,
                         _histogram(fields, "wait"),
                         {kind: _histogram(fields, f"solve:{kind}") for kind in sorted(kinds)})
