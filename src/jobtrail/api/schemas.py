"""Request and response bodies of the API (pydantic, validated at the boundary)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobtrail.models import Job

__all__ = ["ErrorBody", "ErrorDetail", "JobIn", "JobOut", "JobPage", "JobsOut", "MissingJobOut"]

#: Batch submissions hold at most this many problems.
MAX_BATCH = 1000


class JobIn(BaseModel):
    """A submission: one `problem`, or a batch of up to 1,000 `problems`."""

    model_config = ConfigDict(extra="forbid")

    # the text itself (length, blank, control characters: tab and line breaks too) is checked
    # by JobService with the same rule and message as the CLI: a 422
    # `problem_too_large`/`problem_parse`
    problem: str | None = Field(None, examples=["solve x^2 - 5x + 6 = 0"])
    problems: list[str] | None = Field(None, min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _exactly_one(self) -> JobIn:
        if (self.problem is None) == (self.problems is None):
            raise ValueError("give exactly one of 'problem' or 'problems'")
        return self


class JobOut(BaseModel):
    """A job as clients see it; times are epoch seconds, null until reached."""

    id: str
    status: str
    problem: str
    kind: str
    answer: str
    answer_latex: str
    steps: list[str]
    verification: dict[str, Any] | None = Field(
        None, description="How the answer was checked independently: status "
        "(verified | unverified | contradicted), method, detail, max_error; null without "
        "an answer.")
    error: str
    attempts: int
    worker: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    batch: str = Field("", description="Task id of the batch message that carries the job "
                       "(several jobs in one Celery message); \"\" for a job sent alone.")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """Build from a Job."""
        data = job.to_dict()
        data.pop("version", None)
        return cls(**data)


class JobsOut(BaseModel):
    """The jobs created by a batch submission, in the order given."""

    jobs: list[JobOut]


class MissingJobOut(BaseModel):
    """An index entry whose job record is gone: its id, and what trace says became of it."""

    id: str
    record_missing: Literal[True] = True
    fate: str
    verdict: str


class JobPage(BaseModel):
    """A page of jobs, newest first; pass `next_cursor` back as `cursor` for the next page.

    An index entry whose record is gone is a `MissingJobOut` row (`record_missing`:
    true, with trace's fate and verdict) in its place, not left out.
    """

    jobs: list[JobOut | MissingJobOut]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    """What went wrong: a stable `type`, a message, and fields specific to the type."""

    model_config = ConfigDict(extra="allow")

    type: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: {"error": {"type": ..., "message": ..., ...}}."""

    error: ErrorDetail


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """Return the JSON of an error response."""
    return {"error": {"type": type_, "message": message, **extra}}
