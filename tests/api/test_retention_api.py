"""/retention/purge and /jobs/{id}/restore: disabled without a token, guarded with one, audited."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from pydantic import SecretStr

from jobtrail.api.app import create_app
from jobtrail.config import Settings, load_settings
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.worker.app import create_celery_app
from tests.helpers.api_server import client, serve_in_thread

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _finished_jobs(store: JobStore, n: int) -> list[str]:
    ids = []
    for i in range(n):
        job = store.create(f"{i} + 1")
        store.start(job.id, worker="w")
        store.complete(job.id, {"text": str(i + 1), "latex": "", "steps": []})
        ids.append(job.id)
    return ids


@pytest.fixture
def guarded(settings: Settings, store: JobStore) -> Iterator[httpx.Client]:
    conf = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        yield http


def test_empty_token_is_no_token(settings: Settings, store: JobStore,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBTRAIL_API_TOKEN", "  ")
    assert load_settings().api_token is None
    conf = settings.model_copy(update={"api_token": SecretStr("")})
    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        resp = http.post("/retention/purge", json={"statuses": ["completed"],
                                                   "older_than_s": 0, "dry_run": False},
                         headers={"Authorization": "Bearer"})
        assert resp.status_code == 403


def test_disabled_without_a_token(settings: Settings, store: JobStore) -> None:
    with serve_in_thread(create_app(settings)) as base, client(base) as http:
        resp = http.post("/retention/purge", json={"statuses": ["completed"],
                                                   "older_than_s": 0}, headers=AUTH)
        assert resp.status_code == 403
        assert "set JOBTRAIL_API_TOKEN" in resp.json()["error"]["message"]
        assert http.post("/jobs/abc/restore", headers=AUTH).status_code == 403


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_wrong_or_missing_token_is_401(guarded: httpx.Client, store: JobStore,
                                       settings: Settings, headers: dict[str, str]) -> None:
    ids = _finished_jobs(store, 1)
    resp = guarded.post("/retention/purge", json={"statuses": ["completed"],
                                                  "older_than_s": 0, "dry_run": False},
                        headers=headers)
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert store.get(ids[0]).status is JobStatus.COMPLETED   # nothing purged
    [run] = ArchiveStore(settings.effective_archive_url).history(limit=5)
    assert (run.outcome, run.user, run.error) == ("refused", "api", "HTTP 401")
    assert run.host.startswith("127.0.0.1:")


def test_dry_run_by_default_then_purge_restore_and_audit(
        guarded: httpx.Client, store: JobStore, settings: Settings) -> None:
    ids = _finished_jobs(store, 3)
    body = {"statuses": ["completed"], "older_than_s": 0, "keep_last": 1}

    dry = guarded.post("/retention/purge", json=body, headers=AUTH).json()
    assert (dry["dry_run"], dry["selected"], dry["purged"]) == (True, 2, 0)
    assert store.count_by_status()[JobStatus.COMPLETED] == 3

    real = guarded.post("/retention/purge", json=body | {"dry_run": False}, headers=AUTH)
    assert real.status_code == 200
    report = real.json()
    assert (report["selected"], report["archived"], report["purged"]) == (2, 2, 2)
    assert store.find(ids[0]) is None and store.find(ids[2]) is not None
    gone = guarded.get(f"/jobs/{ids[0]}")
    assert gone.status_code == 404 and gone.json()["error"]["fate"] == "purged"

    restored = guarded.post(f"/jobs/{ids[0]}/restore", headers=AUTH)
    assert restored.status_code == 200, restored.text
    assert restored.json()["job"]["answer"] == "1"
    assert guarded.post(f"/jobs/{ids[0]}/restore", headers=AUTH).status_code == 409
    assert guarded.post("/jobs/never-archived/restore", headers=AUTH).status_code == 404

    runs = ArchiveStore(settings.effective_archive_url).history(limit=10)
    assert [(r.kind, r.outcome) for r in runs] == [
        ("restore", "done"), ("purge", "done"), ("purge", "dry-run")]
    assert runs[2].counts == {"selected": 2}
    assert all(r.user == "api" and r.host.startswith("127.0.0.1:") for r in runs)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"statuses": ["pending"], "older_than_s": 0}, "pending jobs are never purged"),
    ({"policy": "nope"}, "no retention policy named 'nope'"),
    ({"keep_last": 3}, "give a policy name, or statuses and older_than_s"),
])
def test_bad_selectors_are_422(guarded: httpx.Client, store: JobStore,
                               body: dict[str, object], fragment: str) -> None:
    resp = guarded.post("/retention/purge", json=body, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert fragment in resp.json()["error"]["message"]


def test_recover_hands_a_gone_workers_message_back_to_the_queue(
        settings: Settings, main_db: redis.Redis, broker_db: redis.Redis) -> None:
    # Given a job whose message a worker took (as kombu does: popped from the queue into
    # `unacked` and `unacked_index`) a minute ago, and whose worker then vanished; a queue
    # of its own, so no other test's worker consumes the message given back
    conf = settings.model_copy(update={"api_token": SecretStr(TOKEN), "queue": "jt-recover"})
    store = JobStore(main_db, KeySpace(queue="jt-recover"))
    events = EventLog(main_db, store.keys)
    job = JobService(store, create_celery_app(conf)).submit("solve x - 1 = 0")
    raw = json.loads(str(broker_db.rpop(store.keys.queue())))
    broker_db.hset(store.keys.unacked(), "tag-1",
                   json.dumps([raw, "jt-recover", "jt-recover"]))
    broker_db.zadd(store.keys.unacked_index(), {"tag-1": time.time() - 60})
    store.start(job.id, worker="ghost@host")

    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        # When recovery is asked for without, then with the token
        assert http.post("/workers/recover").status_code == 401
        resp = http.post("/workers/recover", headers=AUTH)

    # Then the message is back on the queue and the record pending, the history says why
    assert resp.status_code == 200, resp.text
    [item] = resp.json()["recovered"]
    assert item == {"job_id": job.id, "status": "processing", "worker": "ghost@host",
                    "reason": "worker ghost@host gone (no heartbeat on record)",
                    "restored": True}
    assert broker_db.hlen(store.keys.unacked()) == 0
    [back] = broker_db.lrange(store.keys.queue(), 0, -1)
    assert json.loads(back)["headers"]["id"] == job.id
    assert store.get(job.id).status is JobStatus.PENDING
    assert events.read(job.id)[-1].fields["dead_worker"] == "ghost@host"


@pytest.mark.parametrize("path", ["/jobs/abcdef0123456789/cancel?terminate=banana",
                                  "/jobs/bad!id/cancel", "/jobs/bad!id/restore",
                                  "/workers/recover"])
def test_every_protected_endpoint_checks_the_token_before_its_parameters(
        guarded: httpx.Client, settings: Settings, path: str) -> None:
    # a bad path or query parameter without the token is a 401, never a 422 with the schema
    resp = guarded.post(path)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["type"] == "unauthorized"
    # and the refused call is audited as what it was (a recover is not a purge)
    [run] = ArchiveStore(settings.effective_archive_url).history(limit=5)
    kind = path.split("?")[0].rsplit("/", 1)[1]
    assert (run.kind, run.outcome) == (kind, "refused")
    assert run.selector != {"body": "not a valid purge request"}
