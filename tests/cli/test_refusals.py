"""Refusals on a job's state read for users: its state, what the command needs, what instead.

The same sentence leaves the CLI (one line, exit 1) and the API (the 409 body's
message, its fields kept). Real CLI subprocesses and a real API server on real Redis.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jobtrail.api.app import create_app
from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.errors import InvalidTransitionError
from jobtrail.models import JobStatus, check_transition
from jobtrail.store import JobStore
from tests.cli.test_cli import run
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.seeding import seed_job

pytestmark = [pytest.mark.slow]

C = "c0ffee00-0000-4000-8000-000000000003"
TOKEN = "refusal-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

#: What each command says of the completed job C.
REFUSED = {
    "requeue": f"job {C} is completed; only a pending job whose message was lost, or a "
               "processing job whose worker is gone, can be requeued; a finished job does "
               "not run again: submit its problem again as a new job",
    "cancel": f"job {C} is completed; only a pending job, or a processing job with "
              "terminate, can be cancelled; a finished job has nothing left to stop",
    "restore": f"job {C} is completed in the main DB, not purged; only a purged job can be "
               f"restored (its record is in the archive); see it with: jobtrail status {C}",
}


@pytest.mark.parametrize("command", REFUSED)
def test_a_refusal_names_the_state_the_need_and_what_instead(
        settings: Settings, store: JobStore, command: str) -> None:
    # Given a completed job
    seed_job(store, JobStatus.COMPLETED, now_s() - 60, job_id=C)
    # When a command that needs another state is run on it
    result = run(settings, command, C)
    # Then it is refused on one line, in the user's words, and the job is unchanged
    assert (result.returncode, result.stderr) == (1, f"error: {REFUSED[command]}\n")
    assert store.get(C).status is JobStatus.COMPLETED


def test_the_api_409_carries_the_same_message(settings: Settings, store: JobStore) -> None:
    # Given a completed job and an API that may change jobs
    seed_job(store, JobStatus.COMPLETED, now_s() - 60, job_id=C)
    conf = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        cancel = http.post(f"/jobs/{C}/cancel", headers=AUTH)
        restore = http.post(f"/jobs/{C}/restore", headers=AUTH)
    # Then each 409 says what the CLI says, with its fields as before
    assert cancel.status_code == 409
    error = cancel.json()["error"]
    assert error["message"] == REFUSED["cancel"]
    assert (error["type"], error["job_id"], error["status"]) == ("not_cancellable", C,
                                                                  "completed")
    assert restore.status_code == 409
    error = restore.json()["error"]
    assert error["message"] == REFUSED["restore"]
    assert (error["type"], error["job_id"]) == ("restore_conflict", C)


def test_a_lifecycle_refusal_says_which_states_may_move() -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        check_transition(C, JobStatus.COMPLETED, JobStatus.PROCESSING)
    assert str(caught.value) == (f"job {C} is completed; only a pending job can become "
                                 "processing")
    assert (caught.value.from_, caught.value.to) == ("completed", "processing")


P = "c0ffee00-0000-4000-8000-000000000004"


def test_cancel_of_a_processing_job_names_each_surfaces_own_terminate(
        settings: Settings, store: JobStore) -> None:
    # Given a processing job
    seed_job(store, JobStatus.PROCESSING, now_s() - 5, job_id=P)
    said = f"job {P} is processing; it runs on w1@host; cancelling it kills its task: use "
    # Then the CLI names its flag, the API its query parameter; neither the other's spelling
    result = run(settings, "cancel", P)
    assert (result.returncode, result.stderr) == (1, f"error: {said}--terminate\n")
    conf = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        cancel = http.post(f"/jobs/{P}/cancel", headers=AUTH)
    assert cancel.status_code == 409
    assert cancel.json()["error"]["message"] == f"{said}terminate=true"
    assert cancel.json()["error"]["needs_terminate"] is True
    assert store.get(P).status is JobStatus.PROCESSING


def test_cancel_refused_for_many_ids_is_one_line_each(settings: Settings,
                                                      store: JobStore) -> None:
    # Given 30 completed jobs
    ids = [seed_job(store, JobStatus.COMPLETED, now_s() - 60) for _ in range(30)]
    # When all are cancelled at once
    result = run(settings, "cancel", *ids)
    # Then each refusal is a line of its own, not one line of all of them joined by ';'
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 30, result.stderr
    assert all(line.startswith(f"error: job {i} is completed; ") and len(line) < 200
               for i, line in zip(ids, lines, strict=True))
