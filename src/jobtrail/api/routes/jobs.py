"""/jobs: submit, read (with a bounded long-poll), list with cursor pagination, trace, cancel."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from jobtrail.api.deps import Services, TokenFirstRoute, api_actor, get_services
from jobtrail.api.schemas import (
    ErrorBody,
    JobIn,
    JobOut,
    JobPage,
    JobsOut,
    MissingJobOut,
    error_body,
)
from jobtrail.clock import monotonic_s
from jobtrail.errors import NotCancellableError
from jobtrail.jobs import WAIT_POLL_MAX_S, WAIT_POLL_MIN_S
from jobtrail.keys import JOB_ID_PATTERN
from jobtrail.models import TERMINAL_STATUSES, Fate, JobStatus
from jobtrail.retention.audit import record_call
from jobtrail.store.ids import resolve_job_id
from jobtrail.trace import trace_job

__all__ = ["router"]

router = APIRouter(tags=["jobs"])
#: The write endpoints: the token is checked before their parameters (included into router).
_protected = APIRouter(tags=["jobs"], route_class=TokenFirstRoute)
Svc = Annotated[Services, Depends(get_services)]
JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN.pattern, max_length=128)]

#: The longest `GET /jobs/{id}?wait=` a request may ask for (seconds).
MAX_WAIT_S = 60.0

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The id prefix names several jobs"},
    404: {"model": ErrorBody, "description": "No such job; the body carries its trace verdict"},
    422: {"model": ErrorBody, "description": "Invalid request"},
    503: {"model": ErrorBody, "description": "Redis unavailable"},
}


def _encode_cursor(position: tuple[float, str] | None) -> str | None:
    if position is None:
        return None
    return base64.urlsafe_b64encode(f"{position[0]!r}|{position[1]}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str] | None:
    try:
        score, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        value = float(score)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not math.isfinite(value) or not JOB_ID_PATTERN.match(job_id):
        return None
    return value, job_id


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED,
             response_model=JobOut | JobsOut, responses=_ERRORS)
def submit(body: JobIn, svc: Svc) -> JobOut | JobsOut:
    """Submit one problem (`problem`) or a batch of up to 1,000 (`problems`).

    The jobs are pending when this returns; poll `GET /jobs/{id}`.
    """
    if body.problems is not None:
        return JobsOut(jobs=[JobOut.of(j) for j in svc.jobs.submit_many(body.problems)])
    assert body.problem is not None
    return JobOut.of(svc.jobs.submit(body.problem))


@router.get("/jobs", response_model=JobPage, responses=_ERRORS)
def list_jobs(
    svc: Svc,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobPage | JSONResponse:
    """List jobs newest first, `limit` a page; `next_cursor` continues, stable under inserts."""
    after = None
    if cursor:
        after = _decode_cursor(cursor)
        if after is None:
            return JSONResponse(error_body("validation_error", "cursor: not a cursor this API "
                                           "returned"), status_code=422)
    entries, position = svc.store.page_entries(status=status_, limit=limit, after=after)
    rows: list[JobOut | MissingJobOut] = []
    for job_id, job in entries:
        if job is None:  # the record is gone: say what trace knows, do not hide the entry
            result = trace_job(svc.trace_sources(), job_id)
            rows.append(MissingJobOut(id=job_id, fate=result.fate.value, verdict=result.verdict))
        else:
            rows.append(JobOut.of(job))
    return JobPage(jobs=rows, next_cursor=_encode_cursor(position))


@router.get("/jobs/{job_id}", response_model=JobOut, responses=_ERRORS)
async def get_job(job_id: JobId, svc: Svc,
                  wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description=(
                      "Seconds to wait for the job to finish (long-poll); 0 answers at "
                      "once."))] = 0,
                  ) -> JobOut | JSONResponse:
    """Return one job (`job_id` may be a unique prefix of 8+ characters); a 404 says what
    became of it (purged, evicted, unknown, ...), a 400 that a prefix is ambiguous.

    With `wait`, answers as soon as the job is finished (completed, failed,
    cancelled), or after `wait` seconds with the job as it is then. A wait
    sleeps on the event loop and holds a worker thread only for each read of
    the record, so long-polls never starve other requests (/livez above all).
    """
    job_id = await run_in_threadpool(resolve_job_id, svc.clients.main, svc.keys, job_id)
    job = await run_in_threadpool(svc.store.find, job_id)
    deadline_s = monotonic_s() + wait
    delay_s = WAIT_POLL_MIN_S
    while job is not None and job.status not in TERMINAL_STATUSES:
        left_s = deadline_s - monotonic_s()
        if left_s <= 0:
            break
        await asyncio.sleep(min(delay_s, left_s))
        delay_s = min(delay_s * 2, WAIT_POLL_MAX_S)
        job = await run_in_threadpool(svc.store.find, job_id)
    if job is None:
        result = await run_in_threadpool(trace_job, svc.trace_sources(), job_id)
        return JSONResponse(error_body("job_not_found", f"job {job_id} not found",
                                       job_id=job_id, fate=result.fate.value,
                                       verdict=result.verdict), status_code=404)
    return JobOut.of(job)


@router.get("/jobs/{job_id}/trace", response_model=None, responses=_ERRORS)
def trace(job_id: JobId, svc: Svc) -> dict[str, object] | JSONResponse:
    """Return the fate of a job id with its verdict, timeline and the evidence of each store.

    An id no store has ever seen (fate `unknown`) answers 404, as `jobtrail trace` exits
    3 for it; the body is the trace itself plus the usual `error` object. `job_id` may
    be a unique prefix of 8+ characters.
    """
    job_id = resolve_job_id(svc.clients.main, svc.keys, job_id)
    result = trace_job(svc.trace_sources(), job_id)
    if result.fate is Fate.UNKNOWN:
        return JSONResponse({**result.to_dict(), **error_body(
            "job_not_found", f"job {job_id} not found", job_id=job_id, fate=result.fate.value,
            verdict=result.verdict)}, status_code=404)
    return result.to_dict()


@_protected.post("/jobs/{job_id}/cancel", response_model=JobOut, responses={
    **_ERRORS, 401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorBody, "description": "Write endpoints disabled (no api_token)"},
    409: {"model": ErrorBody, "description": "Finished, or processing without terminate"}})
def cancel(job_id: JobId, request: Request, svc: Svc,
           terminate: Annotated[bool, Query(description=(
               "Also cancel a processing job, killing its task (Celery revoke terminate)."
           ))] = False,
           authorization: Annotated[str | None, Header()] = None) -> JobOut | JSONResponse:
    """Cancel a pending job (its message is revoked), or with `terminate=true` a processing
    one (409 for a processing job of a batch message: its pool process runs the whole
    batch). Needs `Authorization: Bearer <api_token>` (checked first); every call is audited.
    """
    job_id = resolve_job_id(svc.clients.main, svc.keys, job_id)
    selector = {"ids": [job_id], "terminate": terminate}
    try:
        job = svc.jobs.cancel(job_id, terminate=terminate)
    except NotCancellableError as exc:
        told = exc.retold("terminate=true")  # the query parameter, not the CLI's flag
        record_call(svc.archive(), kind="cancel", policy="", selector=selector,
                    actor=api_actor(request), outcome="refused", error=str(told))
        raise told from None
    record_call(svc.archive(), kind="cancel", policy="", selector=selector,
                actor=api_actor(request), outcome="done", counts={"cancelled": 1})
    return JobOut.of(job)


router.include_router(_protected)
