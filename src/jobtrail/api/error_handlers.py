"""Exception handlers: every error leaves the API as JSON of one shape, never a traceback.

JobtrailError subclasses map to 4xx/503; request validation to 422; anything
unexpected to a 500 whose body says only that (the traceback goes to the log).
"""

from __future__ import annotations

import logging
import re

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobtrail.api.schemas import error_body
from jobtrail.errors import (
    ArchivedJobNotFoundError,
    ArchiveError,
    ConcurrentUpdateError,
    InvalidTransitionError,
    JobNotFoundError,
    JobtrailError,
    NotCancellableError,
    PolicyError,
    ProblemError,
    RedisCommandError,
    RedisUnavailableError,
    RestoreConflictError,
)

__all__ = ["install_error_handlers"]

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[JobtrailError], int], ...] = (
    (JobNotFoundError, 404),
    (InvalidTransitionError, 409),
    (NotCancellableError, 409),
    (ConcurrentUpdateError, 409),
    (ProblemError, 422),
    (RedisUnavailableError, 503),
    (RedisCommandError, 503),
    (PolicyError, 422),
    (ArchivedJobNotFoundError, 404),
    (RestoreConflictError, 409),
    (ArchiveError, 503),
)


def _type_name(exc: BaseException) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _status_of(exc: JobtrailError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


async def _jobtrail_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobtrailError)
    # scalars, and lists of ids (PartialSubmitError's accepted and failed jobs)
    extra = {k: v for k, v in vars(exc).items() if isinstance(v, str | int | float)
             or (isinstance(v, list) and all(isinstance(x, str) for x in v))}
    return JSONResponse(error_body(_type_name(exc), str(exc), **extra),
                        status_code=_status_of(exc))


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body("redis_unavailable", f"Redis is unavailable: {exc}"),
                        status_code=503)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [{"loc": list(e.get("loc", ())), "message": str(e.get("msg", ""))}
               for e in exc.errors()]
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["message"]).removeprefix("Value error, ")
    return JSONResponse(error_body("validation_error", f"{where}: {message}",
                                   details=details), status_code=422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
            403: "forbidden"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(kind, str(exc.detail)), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error path=%s", request.url.path)
    return JSONResponse(error_body("internal_error", "internal error; see the server log"),
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on *app*."""
    app.add_exception_handler(JobtrailError, _jobtrail_error)
    app.add_exception_handler(redis.RedisError, _redis_down)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
