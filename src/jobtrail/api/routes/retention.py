"""/retention/purge and /jobs/{id}/restore: retention through the API, behind a bearer token.

Invariant: with no `api_token` configured these endpoints are disabled (403),
never open; every call that may write is recorded in the retention audit with
the caller's address.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobtrail.api.deps import Services, TokenFirstRoute, api_actor, get_services
from jobtrail.api.schemas import ErrorBody
from jobtrail.errors import PolicyError
from jobtrail.keys import JOB_ID_PATTERN
from jobtrail.models import JobStatus
from jobtrail.retention.audit import record_call
from jobtrail.retention.policy import RetentionPolicy, policies_from_settings
from jobtrail.retention.purge import purge
from jobtrail.retention.restore import restore_ids
from jobtrail.store.ids import resolve_job_id

__all__ = ["router"]

logger = logging.getLogger(__name__)
Svc = Annotated[Services, Depends(get_services)]

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorBody, "description": "Retention endpoints disabled (no api_token)"},
    404: {"model": ErrorBody, "description": "No archive row for the id"},
    409: {"model": ErrorBody, "description": "The job is live in the main DB"},
    422: {"model": ErrorBody, "description": "Invalid request"},
    503: {"model": ErrorBody, "description": "Redis or the archive unavailable"},
}


class PurgeIn(BaseModel):
    """A purge request: a configured `policy`, or an ad-hoc selector. Dry run by default."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = Field(None, max_length=64, examples=["old-completed"])
    statuses: list[JobStatus] | None = Field(None, min_length=1, max_length=3)
    older_than_s: float | None = Field(None, ge=0, le=10 * 365 * 86_400)
    keep_last: int = Field(0, ge=0, le=100_000_000)
    max_per_run: int | None = Field(None, ge=1, le=100_000_000)
    dry_run: bool = True


def _policy(svc: Services, body: PurgeIn) -> RetentionPolicy:
    if body.policy is not None:
        if body.statuses or body.older_than_s is not None:
            raise PolicyError("give a policy name or a selector, not both")
        named = policies_from_settings(svc.settings)
        if body.policy not in named:
            raise PolicyError(f"no retention policy named {body.policy!r}", policy=body.policy)
        return named[body.policy]
    if not body.statuses or body.older_than_s is None:
        raise PolicyError("give a policy name, or statuses and older_than_s")
    return RetentionPolicy(name="adhoc", statuses=tuple(body.statuses),
                           older_than_s=body.older_than_s, keep_last=body.keep_last,
                           max_per_run=body.max_per_run)


class _PurgeTokenFirst(TokenFirstRoute):
    """The token-first route of these endpoints: a refused purge's audit row names its body."""

    async def refused_selector(self, request: Request) -> dict[str, Any]:
        """Return the selector of a refused call; a purge's is the body it sent."""
        if self.audit_kind != "purge":
            return await super().refused_selector(request)
        try:
            return PurgeIn.model_validate_json(await request.body()).model_dump(mode="json")
        except ValidationError:
            return {"body": "not a valid purge request"}


router = APIRouter(tags=["retention"], route_class=_PurgeTokenFirst)


@router.post("/retention/purge", responses=_ERRORS)
def purge_route(body: PurgeIn, request: Request, svc: Svc,
                authorization: Annotated[str | None, Header()] = None,
                ) -> JSONResponse:
    """Purge (archive, then delete) the records a policy selects; a dry run unless
    `"dry_run": false`. Needs `Authorization: Bearer <api_token>` (checked first)."""
    policy = _policy(svc, body)
    report = purge(svc.retention_store(), svc.archive(), policy,
                   tombstone_ttl_s=svc.settings.tombstone_ttl_s,
                   batch_size=svc.settings.purge_batch_size, dry_run=body.dry_run,
                   actor=api_actor(request))
    if body.dry_run:  # purge() writes nothing for a dry run; the API call is still audited
        record_call(svc.archive(), kind="purge", policy=policy.name,
                    selector=policy.selector(), actor=api_actor(request), outcome="dry-run",
                    counts={"selected": report.selected})
    return JSONResponse(report.to_dict())


@router.post("/jobs/{job_id}/restore", responses=_ERRORS)
def restore_route(job_id: Annotated[str, PathParam(pattern=JOB_ID_PATTERN.pattern,
                                                   max_length=128)],
                  request: Request, svc: Svc,
                  authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Put an archived job back into the main DB. Needs `Authorization: Bearer <api_token>`.

    `job_id` may be a unique prefix of 8+ characters of a purged job's id."""
    job_id = resolve_job_id(svc.clients.main, svc.keys, job_id)
    report = restore_ids(svc.retention_store(), svc.archive(), [job_id], actor=api_actor(request))
    body: dict[str, Any] = report.to_dict()
    body["job"] = svc.store.get(job_id).to_dict()
    return JSONResponse(body)


@router.post("/workers/recover", responses=_ERRORS)
def recover_route(svc: Svc, authorization: Annotated[str | None, Header()] = None,
                  ) -> JSONResponse:
    """Hand every message no live worker holds back to the queue now (a dead worker's jobs).

    What `jobtrail recover` does; live workers do it on their own three heartbeat
    intervals after a worker is gone. Needs `Authorization: Bearer <api_token>`.
    """
    report = svc.jobs.recover(gone_after_s=svc.settings.gone_after_s)
    return JSONResponse(report.to_dict())
