"""The timeline and the disagreements of a trace: what each store dates, where stores differ.

Pure: no I/O. Read from the Evidence only (trace/facts.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.trace.facts import Evidence

__all__ = ["celery_status", "disagreements", "timeline"]

#: Index names as MainFacts.index_scores holds them (without the key prefix).
_INDEX_NAMES = KeySpace("")


_CELERY_TO_STATUS = {"SUCCESS": JobStatus.COMPLETED, "FAILURE": JobStatus.FAILED,
                     "REVOKED": JobStatus.FAILED, "STARTED": JobStatus.PROCESSING,
                     "RETRY": JobStatus.PENDING}


def celery_status(state: str) -> JobStatus | None:
    """Map a Celery state to our status (the one place this is done); PENDING maps to None."""
    return _CELERY_TO_STATUS.get(state.upper())


def disagreements(ev: Evidence) -> list[str]:
    """Where the stores contradict each other about the job, one sentence each.

    The record's status against Celery's result state (a cancelled job's
    REVOKED agrees), the record against its index entries, a finished job
    against a message still queued for it. Pure.
    """
    out: list[str] = []
    job = ev.main.job
    meta = ev.results.meta if ev.results else None
    if job is not None and meta is not None:
        theirs = celery_status(str(meta.get("status", "")))
        revoked = theirs is JobStatus.FAILED and job.status is JobStatus.CANCELLED \
            and str(meta.get("status", "")).upper() == "REVOKED"
        if theirs is not None and theirs is not job.status and not revoked:
            detail = meta.get("result")
            why = (f": {detail.get('exc_type')} {detail.get('exc_message')}"
                   if isinstance(detail, dict) and "exc_type" in detail else "")
            out.append(f"job record says {job.status.value}, Celery's result says "
                       f"{meta.get('status')}{why}")
    if job is not None:
        want = {_INDEX_NAMES.jobs(), _INDEX_NAMES.jobs_by_status(job.status)}
        have = set(ev.main.index_scores)
        if want - have:
            out.append("job record missing from " + ", ".join(sorted(want - have)))
        if have - want:
            out.append("job also listed in " + ", ".join(sorted(have - want)))
    if job is not None and job.status in (JobStatus.COMPLETED, JobStatus.FAILED) \
            and ev.broker is not None and (ev.broker.ahead is not None):
        out.append("the job is finished but a message for it still waits in the broker")
    return out


def timeline(ev: Evidence) -> list[dict[str, Any]]:
    """Merge what every store dates into one list, oldest first (undated last).

    Returns:
        Dicts with `at` (epoch seconds, or None), `source` (events, broker,
        results, main), `event`, and the event's own fields. Pure.
    """
    items: list[dict[str, Any]] = []
    for e in ev.main.events:
        extra = {k: v for k, v in e.fields.items() if k not in ("type", "at")}
        items.append({"at": e.at, "source": "events", "event": e.type.value, **extra})
    if ev.broker is not None and ev.broker.unacked_since is not None:
        items.append({"at": ev.broker.unacked_since, "source": "broker",
                      "event": "delivered (unacked)",
                      **({"message": ev.broker.message_id} if ev.batch is not None else {})})
    if ev.results is not None and ev.results.meta is not None:
        done = ev.results.meta.get("date_done")
        items.append({"at": _iso_to_s(done) if isinstance(done, str) else None,
                      "source": "results", "event": f"celery {ev.results.meta.get('status')}"})
        if ev.results.ttl_s is not None:
            items.append({"at": ev.at + ev.results.ttl_s, "source": "results",
                          "event": "celery result expires"})
    if ev.main.tombstone_ttl_s is not None:
        items.append({"at": ev.at + ev.main.tombstone_ttl_s, "source": "main",
                      "event": "tombstone expires"})
    items.sort(key=lambda i: (i["at"] is None, i["at"] or 0.0))
    return items


def _iso_to_s(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
