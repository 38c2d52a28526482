"""Pure parts: the lifecycle table and the key space."""

from __future__ import annotations

import pytest

import jobtrail
from jobtrail.errors import InvalidTransitionError
from jobtrail.keys import JOB_ID_PATTERN, KeyKind, KeySpace
from jobtrail.models import JobStatus, allowed_sources, check_transition


def test_lifecycle_table() -> None:
    assert allowed_sources(JobStatus.PROCESSING) == {JobStatus.PENDING}
    assert allowed_sources(JobStatus.PENDING) == {JobStatus.PROCESSING}
    assert allowed_sources(JobStatus.COMPLETED) == {JobStatus.PROCESSING}
    assert allowed_sources(JobStatus.FAILED) == {JobStatus.PENDING, JobStatus.PROCESSING}
    check_transition("j", JobStatus.PENDING, JobStatus.PROCESSING)
    with pytest.raises(InvalidTransitionError,
                       match="j is completed; only a processing job can become pending"):
        check_transition("j", JobStatus.COMPLETED, JobStatus.PENDING)


@pytest.mark.parametrize(("key", "kind"), [
    ("app:job:42", KeyKind.JOB),
    ("app:job:42:events", KeyKind.EVENTS),
    ("app:jobs", KeyKind.JOB_INDEX),
    ("app:jobs:failed", KeyKind.STATUS_INDEX),
    ("app:tombstone:42", KeyKind.TOMBSTONE),
    ("celery-task-meta-42", KeyKind.CELERY_RESULT),
    ("_kombu.binding.jobtrail", KeyKind.KOMBU_BINDING),
    ("unacked", KeyKind.KOMBU_UNACKED),
    ("unacked_index", KeyKind.KOMBU_UNACKED_INDEX),
    ("jobtrail", KeyKind.QUEUE),
    ("app:jobs:lost", KeyKind.OTHER),
    ("job:42", KeyKind.OTHER),          # outside the prefix
])
def test_classify_key(key: str, kind: KeyKind) -> None:
    assert KeySpace("app:", queue="jobtrail").classify_key(key) is kind


def test_keys_round_trip_through_classify() -> None:
    ks = KeySpace()
    assert ks.classify_key(ks.job("a")) is KeyKind.JOB
    assert ks.classify_key(ks.events("a")) is KeyKind.EVENTS
    assert ks.classify_key(ks.celery_result("a")) is KeyKind.CELERY_RESULT


@pytest.mark.parametrize(("job_id", "ok"), [
    ("0e0feb3e-7eac-45c3-a67b-2133fbb80653", True), ("job-1", True), ("a:b", False),
    ("", False), ("x" * 129, False), ("-lead", False), ("sp ace", False),
])
def test_job_id_pattern(job_id: str, ok: bool) -> None:
    assert bool(JOB_ID_PATTERN.match(job_id)) is ok


def test_public_api() -> None:
    assert jobtrail.__all__ == ["Client", "JobFailed", "JobtrailError", "__version__"]
    assert all(getattr(jobtrail, name) is not None for name in jobtrail.__all__)
    assert jobtrail.Client.__module__ == "jobtrail.client"
    assert jobtrail.__version__.count(".") == 2
