"""The API reads ids as the CLI does: a text shorter than a prefix needs, and no job's id,
is a 400 invalid_id saying so on every /jobs/{id} route, not a 404 job_not_found.

A real API server on real Redis.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.store import JobStore
from tests.cli.test_cli import run
from tests.helpers.api_server import client, serve_in_thread

pytestmark = [pytest.mark.slow]

TOKEN = "short-id-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SAID = "no job has the id 'fedcba9', and an id prefix needs at least 8 characters"


def test_a_too_short_id_is_400_on_every_job_route_with_the_clis_words(
        settings: Settings, store: JobStore) -> None:
    # Given a job whose id starts with the short text, and one with a 7-character id
    store.create("1 + 1", job_id="fedcba98-0000-4000-8000-000000000001")
    exact = store.create("2 + 2", job_id="abc1234")
    conf = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        answers = {
            "status": http.get("/jobs/fedcba9"),
            "trace": http.get("/jobs/fedcba9/trace"),
            "cancel": http.post("/jobs/fedcba9/cancel", headers=AUTH),
            "restore": http.post("/jobs/fedcba9/restore", headers=AUTH),
        }
        # a short text that is a job's exact id is that job; an unknown long prefix is 404
        found = http.get(f"/jobs/{exact.id}")
        unknown = http.get("/jobs/00000000")
    for route, answer in answers.items():
        assert answer.status_code == 400, (route, answer.text)
        assert answer.json()["error"]["type"] == "invalid_id", (route, answer.text)
        assert answer.json()["error"]["message"] == SAID, (route, answer.text)
    assert found.status_code == 200 and found.json()["id"] == "abc1234"
    assert unknown.status_code == 404
    # and the CLI says the same words (exit 2)
    cli = run(settings, "status", "fedcba9")
    assert (cli.returncode, cli.stderr) == (2, f"error: Invalid value for JOB_ID: {SAID}\n")
