"""Request and response bodies of the API (pydantic, validated at the boundary)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobtrail.models import Job

__all__ = ["ErrorBody", "ErrorDetail", "JobIn", "JobOut", "JobPage", "JobsOut"]

#: Batch submissions hold at most this many problems.
MAX_BATCH = 1000
#: Problem text longer than this is refused with 422 (the solver's own limit is smaller).
MAX_PROBLEM_CHARS = 100_000


class JobIn(BaseModel):
    """A submission: one `problem`, or a batch of up to 1,000 `problems`."""

    model_config = ConfigDict(extra="forbid")

    problem: str | None = Field(None, max_length=MAX_PROBLEM_CHARS,
                                examples=["solve x^2 - 5x + 6 = 0"])
    problems: list[str] | None = Field(None, min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _exactly_one(self) -> JobIn:
        if (self.problem is None) == (self.problems is None):
            raise ValueError("give exactly one of 'problem' or 'problems'")
        if self.problems is not None and any(len(p) > MAX_PROBLEM_CHARS for p in self.problems):
            raise ValueError(f"each problem is at most {MAX_PROBLEM_CHARS} characters")
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

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """Build from a Job."""
        data = job.to_dict()
        data.pop("version", None)
        return cls(**data)


class JobsOut(BaseModel):
    """The jobs created by a batch submission, in the order given."""

    jobs: list[JobOut]


class JobPage(BaseModel):
    """A page of jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""

    jobs: list[JobOut]
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
