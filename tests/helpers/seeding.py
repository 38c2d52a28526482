"""Seed job records in any status with chosen timestamps, through JobStore's own Lua steps."""

from __future__ import annotations

import json
from typing import Any

import redis

from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import JobStore
from jobtrail.store.codec import dump_result


def seed_job(store: JobStore, status: JobStatus, at: float, *, job_id: str | None = None,
             problem: str = "1 + 1") -> str:
    """Create a job and move it to *status*, entering it at *at* (epoch seconds).

    For completed and failed jobs *at* is finished_at (the `jobs:<status>` score).
    """
    job = store.create(problem, job_id=job_id)
    if status is JobStatus.PENDING:
        store.transition(job.id, JobStatus.PROCESSING, count_attempt=True, now=at - 1)
        store.transition(job.id, JobStatus.PENDING, event=EventType.RETRIED, now=at)
        return job.id
    store.transition(job.id, JobStatus.PROCESSING, count_attempt=True, now=at - 1,
                     fields={"worker": "w1@host", "started_at": repr(at - 1)})
    if status is JobStatus.COMPLETED:
        store.transition(job.id, JobStatus.COMPLETED, now=at, fields={
            "result": dump_result({"text": "2", "latex": "2", "steps": ["add"]}),
            "finished_at": repr(at), "kind": "arithmetic"})
    elif status is JobStatus.FAILED:
        store.transition(job.id, JobStatus.FAILED, now=at, fields={
            "error": "timed out after 5 s", "finished_at": repr(at)},
            event_fields={"error": "timed out after 5 s"})
    return job.id


def seed_celery_meta(results: redis.Redis, keys: KeySpace, job_id: str,
                     ttl_s: int = 86_400) -> dict[str, Any]:
    """Write a Celery-shaped `celery-task-meta-<id>` to the results DB; return its JSON."""
    meta = {"status": "SUCCESS", "result": {"text": "2"}, "traceback": None,
            "children": [], "date_done": "2024-01-01T00:00:00", "task_id": job_id}
    results.set(keys.celery_result(job_id), json.dumps(meta), ex=ttl_s)
    return meta


def dump_db(client: redis.Redis) -> dict[str, tuple[str, Any, bool]]:
    """Return every key of a DB as key -> (type, value, has a TTL)."""
    out: dict[str, tuple[str, Any, bool]] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = None
        out[key] = (kind, value, client.pttl(key) > 0)
    return out
