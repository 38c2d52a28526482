"""The Python client and the public Celery task `jobtrail.solve`, against a real worker."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from jobtrail import Client, JobFailed
from jobtrail.config import Settings, settings_environ
from jobtrail.errors import JobCancelledError, ProblemError, WaitTimeoutError
from jobtrail.models import Fate, JobStatus
from jobtrail.store import JobStore
from jobtrail.worker import tasks
from jobtrail.worker.app import TASK_SOLVE_PROBLEM, create_celery_app

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def worker(settings: Settings, main_db: redis.Redis) -> Iterator[Celery]:
    """A real Celery worker (solo pool, in a thread) on the test settings."""
    assert tasks.solve_problem.name == TASK_SOLVE_PROBLEM
    app = create_celery_app(settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield app


@pytest.fixture
def client(settings: Settings, main_db: redis.Redis) -> Iterator[Client]:
    with Client(settings) as c:
        yield c


def _readme_python_block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under {heading}"
    return match.group(1)


def test_readme_client_snippet_runs_as_written(
        settings: Settings, worker: Celery, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given the settings in the environment, as a user's shell would have them
    for name, value in settings_environ(settings).items():
        monkeypatch.setenv(name, value)

    # When the README's Python client snippet runs as it is written
    exec(compile(_readme_python_block("### From Python"), "README.md", "exec"), {})

    # Then it printed the answers, the failure's reason and the trace verdict
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "x = 2, x = 3"
    assert "cos" in lines[1] and "sin" in lines[1]
    assert lines[2].startswith("failed: ") and "parse" in lines[2]
    assert lines[3].startswith("completed at ")


def test_wait_raises_job_failed_with_the_reason_and_it_pickles(
        client: Client, worker: Celery) -> None:
    job = client.submit("__import__('os').system('id')")
    with pytest.raises(JobFailed) as info:
        job.wait(timeout=30)
    assert info.value.reason == client.get(job.id).error
    assert "could not parse" in info.value.reason
    again = pickle.loads(pickle.dumps(info.value))
    assert (type(again), again.job_id, again.reason, str(again)) == (
        JobFailed, job.id, info.value.reason, str(info.value))


def test_wait_past_its_timeout_raises_and_a_cancel_ends_it(client: Client) -> None:
    # Given a job no worker takes
    job = client.submit("Solve x + 1 = 2")

    # Then a short wait times out, the job still pending
    with pytest.raises(WaitTimeoutError, match="did not finish within 0.2 s"):
        job.wait(timeout=0.2)
    assert job.status is JobStatus.PENDING

    # and once it is cancelled, a wait ends at once with JobCancelledError (a JobFailed)
    assert client.cancel(job.id).status is JobStatus.CANCELLED
    with pytest.raises(JobCancelledError, match="cancelled before start"):
        job.wait(timeout=5)


def test_send_task_solve_writes_the_record_first_and_get_returns_the_answer(
        settings: Settings, store: JobStore, client: Client) -> None:
    # Given no worker yet: a plain Celery send_task of the public task
    app = create_celery_app(settings)
    result = app.send_task("jobtrail.solve", args=["Solve x^2 - 5x + 6 = 0"])

    # Then the job record exists, pending, under the task id, before any worker ran
    assert store.get(result.id).status is JobStatus.PENDING
    assert client.trace(result.id).fate is Fate.PENDING

    # When a worker runs, AsyncResult.get() returns the client's answer payload
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        payload = result.get(timeout=30)
    assert payload == client.wait(result.id, timeout=5)
    assert payload["text"] == "x = 2, x = 3"
    assert app.AsyncResult(result.id).get(timeout=5) == payload


def test_a_solve_message_from_any_producer_gets_its_record_on_the_worker(
        settings: Settings, store: JobStore, worker: Celery) -> None:
    # Given a bare Celery app on the same broker (no jobtrail code on the producer)
    _, broker_url, results_url = settings.require_urls()
    bare = Celery("elsewhere", broker=broker_url, backend=results_url, set_as_current=False)
    try:
        result = bare.send_task("jobtrail.solve", args=["Solve 2x = 8"], queue=settings.queue)

        # Then the worker created the record and solved it
        answer: dict[str, Any] = result.get(timeout=30)
    finally:
        bare.close()
    job = store.get(result.id)
    assert (job.status, job.answer, answer["text"]) == (JobStatus.COMPLETED, "x = 4", "x = 4")


def test_send_task_solve_refuses_a_problem_that_is_not_text(
        settings: Settings, store: JobStore) -> None:
    app = create_celery_app(settings)
    with pytest.raises(ProblemError, match="must be text, not int"):
        app.send_task("jobtrail.solve", args=[42])
    assert store.list_jobs() == []


def test_importing_jobtrail_builds_nothing() -> None:
    code = ("import sys, jobtrail; jobtrail.JobFailed; "
            "print(sorted(m for m in ('celery', 'redis', 'sqlalchemy', 'jobtrail.client') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
