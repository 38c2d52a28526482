"""The broker going down in the middle of submit_many: the caller learns which jobs were
accepted (they will run) and which were marked failed, from the service, the client, the
CLI and the API.

The broker is a real redis-server of its own (private_redis), killed between two
chunks (SIGKILL); the main DB stays on the session server. No mocks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobtrail import Client
from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.errors import PartialSubmitError
from jobtrail.jobs import SUBMIT_CHUNK
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from tests.conftest import BROKER_DB, make_settings
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.processes import settings_env
from tests.helpers.waiting import wait_until


@pytest.fixture
def split_settings(redis_server: EmbeddedRedis, private_redis: EmbeddedRedis,
                   main_db: redis.Redis, tmp_path: Path) -> Settings:
    """Main DB and result backend on the session server, the broker on private_redis."""
    base = make_settings(redis_server, tmp_path / "state", batch_max_jobs=10)
    return base.model_copy(update={"broker_url": private_redis.url(BROKER_DB)})


def _by_status(store: JobStore, keys: KeySpace, main_db: redis.Redis) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for job_id in main_db.zrange(keys.jobs(), 0, -1):
        found.setdefault(store.get(job_id).status.value, set()).add(job_id)
    return found


def _kill_when(main_db: redis.Redis, keys: KeySpace, server: EmbeddedRedis,
               records: int) -> threading.Thread:
    """Kill *server* (SIGKILL) once the main DB holds *records* job records."""
    def run() -> None:
        wait_until(lambda: main_db.zcard(keys.jobs()) >= records, timeout_s=60, interval_s=0.001)
        server.kill()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_broker_lost_after_the_first_chunk_names_accepted_and_failed_ids(
        split_settings: Settings, private_redis: EmbeddedRedis, main_db: redis.Redis,
        keys: KeySpace, store: JobStore) -> None:
    problems = [f"solve x + {i} = 0" for i in range(2 * SUBMIT_CHUNK + 50)]
    with Client(split_settings) as jt:
        with pytest.raises(PartialSubmitError) as caught:
            jt.jobs.submit_many(problems, on_progress=lambda n: private_redis.kill())
        exc = caught.value
        handles = jt.handles(exc.accepted)

    by_status = _by_status(store, keys, main_db)
    # chunk 1 went out whole, chunk 2's records were written and failed, chunk 3 never written
    assert len(exc.accepted) == SUBMIT_CHUNK and len(exc.failed) == SUBMIT_CHUNK
    assert exc.unsubmitted == 50
    assert set(exc.accepted) == by_status["pending"]
    assert set(exc.failed) == by_status["failed"]
    assert set(by_status) == {"pending", "failed"}
    assert [store.get(i).problem for i in exc.accepted] == problems[:SUBMIT_CHUNK]
    assert store.get(exc.failed[0]).error.startswith("could not enqueue the task: ")
    assert [h.id for h in handles] == exc.accepted
    assert (f"{SUBMIT_CHUNK} of {len(problems)} problems were accepted and will run, "
            f"{SUBMIT_CHUNK} could not be enqueued (marked failed), 50 were not submitted"
            in str(exc))


@pytest.mark.slow
@pytest.mark.parametrize("json_out", [False, True], ids=["plain", "json"])
def test_cli_submit_names_the_accepted_ids_and_counts_the_failed(
        split_settings: Settings, private_redis: EmbeddedRedis, main_db: redis.Redis,
        keys: KeySpace, store: JobStore, tmp_path: Path, json_out: bool) -> None:
    listing = tmp_path / "problems.txt"
    listing.write_text("".join(f"solve x + {i} = 0\n" for i in range(20_000)))
    killer = _kill_when(main_db, keys, private_redis, 3 * SUBMIT_CHUNK)
    proc = subprocess.run(
        [sys.executable, "-m", "jobtrail", "submit", "--file", str(listing),
         *(["--json"] if json_out else [])],
        env=settings_env(split_settings), capture_output=True, text=True, timeout=120)
    killer.join(timeout=5)

    by_status = _by_status(store, keys, main_db)
    # --json prints the list of accepted ids, as a whole submission prints its list
    accepted = json.loads(proc.stdout) if json_out else proc.stdout.split()
    assert isinstance(accepted, list)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert set(accepted) == by_status["pending"] and len(accepted) >= 3 * SUBMIT_CHUNK - 100
    failed = len(by_status["failed"])
    assert failed >= 1
    assert proc.stderr.startswith("error: Redis at ")
    assert (f"became unavailable after {len(accepted)} of 20000 problems were submitted; the "
            f"jobs above were accepted and will run; {failed} could not be enqueued and are "
            "marked failed (jobtrail list --status failed; ids in ") in proc.stderr
    # the failed ids reach the user: in a file the line names
    [named] = [w.rstrip(");,") for w in proc.stderr.split() if w.endswith(".ids);")]
    assert Path(named).parent == split_settings.state_dir
    assert set(Path(named).read_text().split()) == by_status["failed"]


@pytest.fixture
def split_api(split_settings: Settings) -> Iterator[object]:
    from jobtrail.api.app import create_app

    # one message per job: a chunk's sends take long enough for the kill to land among them
    one_per_message = split_settings.model_copy(update={"batch_max_jobs": 1})
    with serve_in_thread(create_app(one_per_message)) as base, client(base) as http:
        yield http


def test_api_batch_submit_answers_503_with_accepted_and_failed_ids(
        split_api: object, private_redis: EmbeddedRedis, main_db: redis.Redis,
        keys: KeySpace, store: JobStore) -> None:
    import httpx

    assert isinstance(split_api, httpx.Client)
    problems = [f"solve x + {i} = 0" for i in range(1000)]
    killer = _kill_when(main_db, keys, private_redis, 2 * SUBMIT_CHUNK)  # chunk 1 sent
    response = split_api.post("/jobs", json={"problems": problems}, timeout=60)
    killer.join(timeout=5)

    body = response.json()["error"]
    by_status = _by_status(store, keys, main_db)
    assert response.status_code == 503
    assert body["type"] == "partial_submit"
    assert set(body["accepted"]) == by_status["pending"]
    assert len(body["accepted"]) >= SUBMIT_CHUNK
    assert set(body["failed"]) == by_status.get(JobStatus.FAILED.value, set())
    assert len(body["failed"]) >= 1
    assert len(body["accepted"]) + len(body["failed"]) + body["unsubmitted"] == 1000
    assert "problems were accepted and will run" in body["message"]


@pytest.fixture
def one_server_settings(private_redis: EmbeddedRedis, tmp_path: Path) -> Settings:
    """Main DB, broker and result backend on one killable server (the embedded default)."""
    return make_settings(private_redis, tmp_path / "state", batch_max_jobs=10)


def test_a_chunk_whose_records_write_is_cut_off_is_named_uncertain_not_unsubmitted(
        one_server_settings: Settings, private_redis: EmbeddedRedis) -> None:
    # the one server dies after chunk 1 went out: chunk 2's records' write fails, and a
    # write cut off may have been applied, so its ids are named, not counted as never written
    problems = [f"solve x + {i} = 0" for i in range(2 * SUBMIT_CHUNK + 50)]
    with Client(one_server_settings) as jt:
        with pytest.raises(PartialSubmitError) as caught:
            jt.jobs.submit_many(problems, on_progress=lambda n: private_redis.kill())
    exc = caught.value
    assert len(exc.accepted) == SUBMIT_CHUNK and exc.failed == []
    assert len(exc.uncertain) == SUBMIT_CHUNK and exc.unsubmitted == 50
    assert not set(exc.uncertain) & set(exc.accepted)
    assert (f"{SUBMIT_CHUNK} of {len(problems)} problems were accepted and will run, 0 could "
            f"not be enqueued (marked failed), {SUBMIT_CHUNK} may be pending without a message, "
            "50 were not submitted") in str(exc)


def test_jobs_whose_failed_mark_cannot_be_written_are_uncertain_not_failed(
        one_server_settings: Settings, private_redis: EmbeddedRedis) -> None:
    # the one server dies between chunk 2's records and its first message: the messages
    # cannot go out and the failed marks cannot be written either; those jobs are pending
    # without a message, and the error must not call them "marked failed"
    from jobtrail.jobs import JobService
    from jobtrail.worker.app import create_celery_app

    settings = one_server_settings
    store = JobStore(redis.Redis.from_url(settings.main_url or "", decode_responses=True),
                     KeySpace(queue=settings.queue))
    service = JobService(store, create_celery_app(settings))
    real_send = service.app.send_task
    calls = {"n": 0}
    per_chunk = SUBMIT_CHUNK // 10  # batch_max_jobs 10: messages a chunk

    def send_task(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == per_chunk + 1:  # chunk 2's first message: its records are written
            private_redis.kill()
        return real_send(*args, **kwargs)  # the real Celery send, to the real dead broker

    service.app.send_task = send_task  # type: ignore[method-assign]
    problems = [f"solve x + {i} = 0" for i in range(2 * SUBMIT_CHUNK + 50)]
    with pytest.raises(PartialSubmitError) as caught:
        service.submit_many(problems)
    exc = caught.value
    assert len(exc.accepted) == SUBMIT_CHUNK
    assert exc.failed == [] and len(exc.uncertain) == SUBMIT_CHUNK
    assert exc.unsubmitted == 50
    assert "0 could not be enqueued (marked failed)" in str(exc)
