"""HeartbeatStore: worker nodes' heartbeats in the main DB (`worker:<name>`, `workers`).

Invariant: a live worker's hash carries a TTL of three heartbeat intervals, so
a worker that dies (even by SIGKILL) reads as gone within that time; the
`workers` index keeps each name with its last heartbeat for a day, so trace
can still say "the worker that had it is gone" after the hash expired.

The one liveness rule (absence_unproven_s): a missing hash proves a worker
gone only once the Redis server holding the heartbeats has been up for the
gone threshold, or when the worker beat since that server started. While it
was down no live worker could beat (the hash expired, or a server without
persistence lost it), so for the first gone threshold after a restart the
missing heartbeat of a worker last heard before the restart reads `unknown`,
not gone, in every view (trace, doctor, `workers`, the dead-worker sweep,
requeue). Except a worker whose silence the restarted server's own data
proves: what a server loads (AOF, RDB, a replica's copy) is every write up
to some moment, so when the `workers` index holds another worker's heartbeat
from before the start at least the gone threshold newer than this worker's,
this one had stopped beating before the crash: gone, as it read before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import redis

from jobtrail.clock import now_s, to_ms
from jobtrail.config import GONE_AFTER_HEARTBEATS, Settings
from jobtrail.connections import REDIS_ERRORS, wrap_redis_error
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus, WorkerHeartbeat

__all__ = ["DEFAULT_GONE_AFTER_S", "FORGET_AFTER_S", "PROCESSING_READ", "HeartbeatStore",
           "absence_unproven_s", "newest_before_start", "server_uptime_s"]

#: Names of workers silent for longer than this leave the `workers` index.
FORGET_AFTER_S = 86_400.0
#: At most this many `jobs:processing` ids are read to name the jobs nodes run.
PROCESSING_READ = 10_000
#: Seconds without a heartbeat after which a worker is gone, for a reader without settings:
#: Settings.gone_after_s at the default heartbeat interval (30 s).
DEFAULT_GONE_AFTER_S = GONE_AFTER_HEARTBEATS * float(
    Settings.model_fields["heartbeat_interval_s"].default)


def absence_unproven_s(server_uptime_s: float | None, gone_after_s: float, *,
                       last_seen: float, read_at: float,
                       newest_seen: float | None = None) -> float | None:
    """The liveness rule's exception: is a missing heartbeat no evidence yet?

    Args:
        server_uptime_s: INFO server `uptime_in_seconds` of the Redis server holding
            the heartbeats, read with them (None: not read).
        gone_after_s: Seconds without a heartbeat after which a worker is gone.
        last_seen: The worker's last heartbeat (its `workers` index score), epoch s.
        read_at: When the heartbeats were read, epoch seconds.
        newest_seen: The newest heartbeat from before the server started that the
            `workers` index holds (newest_before_start), epoch s; None: not read.

    Returns:
        *server_uptime_s* when the server has been up for less than *gone_after_s*
        and the worker last beat before it started (a live worker may not have
        beaten since it came back: not yet judged); else None (a missing heartbeat
        means gone; so does one that beat since the start and is missing: it
        stopped, or its hash expired on this server; so does one silent for
        *gone_after_s* before *newest_seen*: the loaded data proves it stopped
        before the crash).
    """
    if server_uptime_s is None or server_uptime_s >= gone_after_s:
        return None
    if last_seen > _started_by(server_uptime_s, read_at):
        return None
    if newest_seen is not None and newest_seen - last_seen >= gone_after_s:
        return None
    return server_uptime_s


def newest_before_start(scores: Sequence[float], server_uptime_s: float | None, *,
                        read_at: float) -> float | None:
    """The newest `workers` index score (epoch s) from before the server started.

    Args:
        scores: Every score of the `workers` index (last heartbeats, epoch seconds).
        server_uptime_s: INFO server `uptime_in_seconds`, read with them (None: not read).
        read_at: When they were read, epoch seconds.

    Returns:
        The largest score at or before the server's earliest start, or None (none
        such, or the uptime not read).
    """
    if server_uptime_s is None:
        return None
    started = _started_by(server_uptime_s, read_at)
    return max((s for s in scores if s <= started), default=None)


def _started_by(server_uptime_s: float, read_at: float) -> float:
    """The earliest the server can have started, epoch s: INFO counts its uptime in whole
    seconds (0 for its first second), so it started up to 1 s before read_at - uptime."""
    return read_at - server_uptime_s - 1.0


def server_uptime_s(info: dict[str, Any]) -> float | None:
    """The `uptime_in_seconds` of an INFO server reply (None when absent)."""
    value = info.get("uptime_in_seconds")
    return None if value is None else float(value)


class HeartbeatStore:
    """Worker heartbeats.

    Args:
        client: redis-py client of the main DB (decode_responses=True).
        keys: Key builder.
        gone_after_s: Seconds without a heartbeat after which a worker is gone (the
            readers' threshold; a writer's hash lives 3 of its own intervals).
    """

    def __init__(self, client: redis.Redis, keys: KeySpace, *,
                 gone_after_s: float = DEFAULT_GONE_AFTER_S) -> None:
        self.client = client
        self.keys = keys
        self.gone_after_s = gone_after_s

    def beat(self, name: str, *, pid: int, started_at: float, jobs: Sequence[str],
             interval_s: float, polled_at: float | None = None,
             stuck_after_s: float | None = None, queue: str | None = None,
             held: Sequence[str] | None = None,
             fetching: Sequence[str] | None = None) -> None:
        """Record that worker *name* is alive and running *jobs* now.

        Args:
            name: The Celery node name (e.g. `w1@host`).
            pid: The worker's main process id.
            started_at: When the worker started, epoch seconds.
            jobs: Ids of the jobs it is running.
            interval_s: Seconds until the next heartbeat; the hash lives 3 of them.
            polled_at: When the worker's consumer last polled the broker, epoch seconds
                (None: not yet, or not reported).
            stuck_after_s: Poll age in seconds past which the worker reads as stuck.
            queue: The queue the worker consumes.
            held: Ids of every job whose message the worker holds unacknowledged
                (running and prefetched); the dead-worker sweep never takes these.
            fetching: The arrival scores (repr of epoch seconds) of its fetches whose
                reply it has not read yet (worker.fetch.fetches_in_flight): the sweep
                leaves the unacked entries with these scores alone.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        now = now_s()
        key = self.keys.worker(name)
        fields: dict[Any, str] = {  # Any: redis-py's mapping key type is a union
            "name": name, "pid": str(pid), "started_at": repr(started_at),
            "last_seen": repr(now), "jobs": json.dumps(list(jobs))}
        if polled_at is not None:
            fields["polled_at"] = repr(polled_at)
        if stuck_after_s is not None:
            fields["stuck_after_s"] = repr(stuck_after_s)
        if queue is not None:
            fields["queue"] = queue
        if held is not None:
            fields["held"] = json.dumps(list(held))
        if fetching is not None:
            fields["fetching"] = json.dumps(list(fetching))
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)
                pipe.pexpire(key, to_ms(GONE_AFTER_HEARTBEATS * interval_s))
                pipe.zadd(self.keys.workers(), {name: now})
                pipe.zremrangebyscore(self.keys.workers(), "-inf", now - FORGET_AFTER_S)
                pipe.execute()
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    def stop(self, name: str) -> None:
        """Record a clean shutdown: the heartbeat hash goes, the index entry stays.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            self.client.delete(self.keys.worker(name))
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    def holdings_of_live_workers(self, names: Sequence[str]) -> tuple[set[str], set[float]]:
        """Return what the live workers *names* hold, read in one HMGET a hash (atomic
        against a beat): the ids of their jobs (running or prefetched), and the arrival
        scores (epoch seconds) of their fetches whose reply is unread (beat *fetching*).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        rows = self._hmget([self.keys.worker(name) for name in names],
                           ["jobs", "held", "fetching"])
        held: set[str] = set()
        fetching: set[float] = set()
        for jobs, held_ids, scores in rows:
            for text in (jobs, held_ids):
                held.update(str(j) for j in json.loads(text or "[]"))
            fetching.update(float(s) for s in json.loads(scores or "[]"))
        return held, fetching

    def _hmget(self, names: Sequence[str], fields: Sequence[str], *,
               atomic: bool = False) -> list[list[str | None]]:
        """HMGET *fields* of each hash *names* in one round trip (*atomic*: one MULTI).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            with self.client.pipeline(transaction=atomic) as pipe:
                for name in names:
                    pipe.hmget(name, list(fields))
                return cast(list[list[str | None]], pipe.execute())
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    def list_workers(self) -> list[WorkerHeartbeat]:
        """Return every worker heard from in the last day, most recent first.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            names = cast(list[tuple[str, float]],
                         self.client.zrevrange(self.keys.workers(), 0, -1, withscores=True))
            with self.client.pipeline(transaction=False) as pipe:
                pipe.info("server")
                for name, _ in names:
                    pipe.hgetall(self.keys.worker(name))
                info, *rows = cast(list[dict[str, Any]], pipe.execute())
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        at = now_s()
        uptime_s = server_uptime_s(info)
        newest = newest_before_start([score for _, score in names], uptime_s, read_at=at)
        return [decode_heartbeat(name, score, row, at=at, server_uptime_s=uptime_s,
                                 gone_after_s=self.gone_after_s, newest_seen=newest)
                for (name, score), row in zip(names, rows, strict=True)]

    def list_running(self) -> list[WorkerHeartbeat]:
        """Return list_workers(), each live node's `jobs` the ones its job records say it runs.

        The one rule of every view that names a node's jobs (`jobtrail workers`,
        the dashboard): a heartbeat lists the node's jobs as they were when it
        beat, up to one interval ago, so a job finished since (or redelivered to
        another node) would still read as running there, and one started since
        would be missing. A job is listed under node N when, read in one atomic
        step, its record is processing with worker N; the candidates are the
        heartbeat's jobs and the first PROCESSING_READ ids of `jobs:processing`.
        A dead node lists none.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        beats = self.list_workers()
        if not any(b.alive for b in beats):
            return [replace(b, jobs=()) for b in beats]
        try:
            ids = {str(j) for j in self.client.zrange(
                self.keys.jobs_by_status(JobStatus.PROCESSING), 0, PROCESSING_READ - 1)}
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        ids.update(j for b in beats if b.alive for j in b.jobs)
        order = sorted(ids)
        rows = self._hmget([self.keys.job(j) for j in order], ["status", "worker"],
                           atomic=True)
        running: dict[str, list[str]] = {}
        for job_id, (status, worker) in zip(order, rows, strict=True):
            if status == JobStatus.PROCESSING.value and worker:
                running.setdefault(worker, []).append(job_id)
        return [replace(b, jobs=tuple(running.get(b.name, ())) if b.alive else ())
                for b in beats]


def _float_or_none(text: str | None) -> float | None:
    return float(text) if text else None


def decode_heartbeat(name: str, last_seen: float, fields: dict[str, str], *,
                     at: float | None = None, server_uptime_s: float | None = None,
                     gone_after_s: float = DEFAULT_GONE_AFTER_S,
                     newest_seen: float | None = None) -> WorkerHeartbeat:
    """Return the WorkerHeartbeat of a `worker:<name>` hash (empty hash: the worker is
    gone, or, by absence_unproven_s, not yet judged).

    Args:
        name: The node name.
        last_seen: Its score in the `workers` index, epoch seconds.
        fields: The hash.
        at: When it was read, epoch seconds (default: now); the poll's age is taken then.
        server_uptime_s: INFO server `uptime_in_seconds` read with the hash (None: not read).
        gone_after_s: Seconds without a heartbeat after which a worker is gone.
        newest_seen: The newest index score from before the server started
            (newest_before_start; None: not read).
    """
    read_at = now_s() if at is None else at
    if not fields:
        return WorkerHeartbeat(name, 0, 0.0, last_seen, (), alive=False, read_at=read_at,
                               restarted_s_ago=absence_unproven_s(
                                   server_uptime_s, gone_after_s, last_seen=last_seen,
                                   read_at=read_at, newest_seen=newest_seen))
    return WorkerHeartbeat(
        name=name, pid=int(fields.get("pid") or 0),
        started_at=float(fields.get("started_at") or 0.0),
        last_seen=float(fields.get("last_seen") or last_seen),
        jobs=tuple(json.loads(fields.get("jobs") or "[]")), alive=True,
        polled_at=_float_or_none(fields.get("polled_at")),
        stuck_after_s=_float_or_none(fields.get("stuck_after_s")),
        queue=fields.get("queue") or None, read_at=read_at)
