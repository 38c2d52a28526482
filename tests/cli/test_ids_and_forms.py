"""What a newcomer types and reads: id prefixes, a purged job's status, submit --json's form.

Subprocesses of the real CLI (and a real API server) on real Redis.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from jobtrail.api.app import create_app
from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.errors import AmbiguousJobIdError, InvalidIdError
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from jobtrail.store.ids import resolve_job_id
from tests.cli.test_cli import run
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.seeding import seed_job

pytestmark = [pytest.mark.slow]

A = "abcdef01-0000-4000-8000-000000000001"
B = "abcdef01-0000-4000-8000-000000000002"
C = "fedcba98-0000-4000-8000-000000000003"


def test_prefix_lookup_in_the_store(store: JobStore, keys: KeySpace) -> None:
    for job_id in (A, B, C):
        store.create("x = 1", job_id=job_id)
    client = store.client
    assert resolve_job_id(client, keys, "fedcba98") == C          # unique prefix
    assert resolve_job_id(client, keys, A) == A                   # whole id, no scan
    with pytest.raises(InvalidIdError, match="an id prefix needs at least 8 characters"):
        resolve_job_id(client, keys, "fedcba9")                   # too short: refused
    assert resolve_job_id(client, keys, "00000000") == "00000000"  # no match: as typed
    with pytest.raises(AmbiguousJobIdError, match=r"id prefix abcdef01 matches several jobs \("
                       f"{A}, {B}\\); give more characters"):
        resolve_job_id(client, keys, "abcdef01")


def test_every_id_command_takes_a_unique_prefix(settings: Settings, store: JobStore) -> None:
    # Given two jobs sharing a prefix and a third, finished job
    store.create("x = 1", job_id=A)
    store.create("x = 2", job_id=B)
    seed_job(store, JobStatus.COMPLETED, now_s() - 86_400, job_id=C, problem="x = 3")
    # Then status, trace and requeue accept an 8-character prefix
    status = run(settings, "status", "fedcba98", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["id"] == C
    trace = run(settings, "trace", "fedcba98", "--json")
    assert trace.returncode == 0 and json.loads(trace.stdout)["id"] == C
    requeued = run(settings, "requeue", "abcdef01-0000-4000-8000-000000000002")
    assert requeued.stdout.strip() == f"requeued {B}", requeued.stderr
    # and an ambiguous one is a one-line usage error naming the candidates
    ambiguous = run(settings, "status", "abcdef01")
    assert ambiguous.returncode == 2
    assert ambiguous.stderr == (f"error: Invalid value for JOB_ID: id prefix abcdef01 matches "
                                f"several jobs ({A}, {B}); give more characters\n")
    assert run(settings, "trace", "abcdef01").returncode == 2
    # and a prefix nothing matches is an unknown job
    assert run(settings, "status", "00000000").returncode == 3
    # and a text too short to be a prefix, and no job's id, is a usage error saying so
    short = run(settings, "trace", "fedcba9")
    assert short.returncode == 2
    assert short.stderr == ("error: Invalid value for JOB_ID: no job has the id 'fedcba9', "
                            "and an id prefix needs at least 8 characters\n")

    # When the finished job is purged
    purged = run(settings, "retention", "purge", "--status", "completed", "--older-than", "1h")
    assert purged.returncode == 0, purged.stderr
    assert store.find(C) is None
    # Then status (by prefix) names its fate and how to restore it, still exit 3
    gone = run(settings, "status", "fedcba98")
    assert gone.returncode == 3
    assert gone.stderr.startswith(f"error: job {C} not found: purged")
    assert gone.stderr.endswith(f"; restore it with: jobtrail restore {C}\n"), gone.stderr
    # and restore takes the prefix too (the tombstone knows the id)
    restored = run(settings, "restore", "fedcba98")
    assert restored.returncode == 0, restored.stderr
    assert store.get(C).status is JobStatus.COMPLETED


def test_the_api_takes_a_unique_prefix(settings: Settings, store: JobStore) -> None:
    store.create("x = 1", job_id=A)
    store.create("x = 2", job_id=B)
    store.create("x = 3", job_id=C)
    with serve_in_thread(create_app(settings)) as base, client(base) as http:
        one: httpx.Response = http.get("/jobs/fedcba98")
        trace = http.get("/jobs/fedcba98/trace")
        ambiguous = http.get("/jobs/abcdef01")
    assert one.status_code == 200 and one.json()["id"] == C
    assert trace.status_code == 200 and trace.json()["id"] == C
    assert ambiguous.status_code == 400
    assert ambiguous.json()["error"]["type"] == "ambiguous_job_id"


def test_submit_json_form_follows_the_request(settings: Settings, store: JobStore,
                                              tmp_path: Path) -> None:
    one = json.loads(run(settings, "submit", "x = 1", "--json").stdout)
    assert isinstance(one, dict) and one["problem"] == "x = 1"
    several = json.loads(run(settings, "submit", "x = 1", "x = 2", "--json").stdout)
    assert [j["problem"] for j in several] == ["x = 1", "x = 2"]
    listing = tmp_path / "problems.txt"
    listing.write_text("x = 5\n\n   \n")
    from_file = run(settings, "submit", "--file", str(listing), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert [j["problem"] for j in json.loads(from_file.stdout)] == ["x = 5"]  # a list of one
    assert store.client.zcard(store.keys.jobs()) == 4


def test_ids_print_whole_on_one_line(settings: Settings, store: JobStore) -> None:
    ids = {store.create(f"x = {i}").id for i in range(3)}
    shown = run(settings, "list", env={"COLUMNS": "60"})
    assert shown.returncode == 0, shown.stderr
    assert ids <= {w.strip("│ ") for line in shown.stdout.splitlines() for w in line.split("│")}


def test_a_prefix_of_a_live_and_a_purged_job_is_ambiguous(settings: Settings,
                                                          store: JobStore) -> None:
    # Given a live job and a purged one whose ids share their first 8 characters
    store.create("x = 1", job_id=A)
    seed_job(store, JobStatus.COMPLETED, now_s() - 86_400, job_id=B, problem="x = 3")
    purged = run(settings, "retention", "purge", "--status", "completed", "--older-than", "1h")
    assert purged.returncode == 0, purged.stderr
    # Then the prefix names both, for status and restore alike, instead of picking the live one
    for command in ("status", "restore", "trace"):
        shown = run(settings, command, "abcdef01")
        assert shown.returncode == 2, (command, shown.stdout, shown.stderr)
        assert f"({A}, {B})" in shown.stderr, shown.stderr


def test_restore_takes_a_prefix_after_the_tombstone_is_gone(settings: Settings,
                                                            store: JobStore) -> None:
    # Given a purged job whose tombstone has expired (TOMBSTONE_TTL_S later): only the
    # archive still knows its id
    seed_job(store, JobStatus.COMPLETED, now_s() - 86_400, job_id=C, problem="x = 3")
    purged = run(settings, "retention", "purge", "--status", "completed", "--older-than", "1h")
    assert purged.returncode == 0, purged.stderr
    store.client.delete(store.keys.tombstone(C))
    # Then restore finds it by its prefix, as it does by its whole id
    restored = run(settings, "restore", "fedcba98")
    assert restored.returncode == 0, restored.stderr
    assert store.get(C).status is JobStatus.COMPLETED
