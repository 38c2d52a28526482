"""Job <-> Redis hash fields: the single serialization point of a job record.

Invariant: every field is stored as a string; an absent time is "" and reads
back as None; `result` is compact JSON with sorted keys.
"""

from __future__ import annotations

import json
from typing import Any

from jobtrail.errors import MalformedRecordError
from jobtrail.models import EventType, Job, JobEvent, JobStatus

__all__ = ["decode_event", "decode_job", "dump_result", "encode_job"]


def dump_result(result: dict[str, Any] | None) -> str:
    """Serialize a result dict for the `result` field ("" for None)."""
    return "" if result is None else json.dumps(result, separators=(",", ":"), sort_keys=True)


def _time(value: str | None) -> float | None:
    return float(value) if value else None


def encode_job(job: Job) -> dict[str, str]:
    """Return the hash fields of *job*."""
    fields = {
        "id": job.id,
        "problem": job.problem,
        "kind": job.kind,
        "status": job.status.value,
        "created_at": repr(job.created_at),
        "started_at": "" if job.started_at is None else repr(job.started_at),
        "finished_at": "" if job.finished_at is None else repr(job.finished_at),
        "worker": job.worker,
        "attempts": str(job.attempts),
        "result": dump_result(job.result),
        "error": job.error,
        "version": str(job.version),
    }
    if job.batch:  # written only for a job of a batch: a single job's record is unchanged
        fields["batch"] = job.batch
    return fields


def decode_job(fields: dict[str, str]) -> Job:
    """Return the Job a `job:<id>` hash holds.

    Raises:
        MalformedRecordError: A field is missing or malformed (a record written
            by something else).
    """
    try:
        return _decode_job(fields)
    except (KeyError, ValueError, TypeError) as exc:
        raise MalformedRecordError(fields.get("id", "?"), f"{type(exc).__name__}: {exc}"
                                   ) from exc


def _decode_job(fields: dict[str, str]) -> Job:
    result = fields.get("result") or ""
    return Job(
        id=fields["id"],
        problem=fields.get("problem", ""),
        status=JobStatus(fields["status"]),
        created_at=float(fields.get("created_at") or 0.0),
        kind=fields.get("kind", ""),
        started_at=_time(fields.get("started_at")),
        finished_at=_time(fields.get("finished_at")),
        worker=fields.get("worker", ""),
        attempts=int(fields.get("attempts") or 0),
        result=json.loads(result) if result else None,
        error=fields.get("error", ""),
        version=int(fields.get("version") or 0),
        batch=fields.get("batch", ""),
    )


def decode_event(event_id: str, fields: dict[str, str]) -> JobEvent:
    """Return the JobEvent of one stream entry."""
    return JobEvent(event_id=event_id, type=EventType(fields["type"]),
                    at=float(fields.get("at") or 0.0), fields=dict(fields))
