"""The API through a real uvicorn server, on real Redis, with a real Celery worker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from celery.contrib.testing.worker import start_worker

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.store import JobStore
from jobtrail.worker import tasks
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.submits import send_message_later
from tests.helpers.waiting import wait_until


@pytest.fixture
def api(settings: Settings, store: JobStore) -> Iterator[httpx.Client]:
    app = create_app(settings)
    with serve_in_thread(app) as base, client(base) as http:
        http.app = app  # type: ignore[attr-defined]
        yield http


@pytest.fixture
def worker(api: httpx.Client) -> Iterator[Any]:
    assert tasks.solve_job.name
    with start_worker(api.app.state.services.celery, pool="solo",  # type: ignore[attr-defined]
                      perform_ping_check=False, shutdown_timeout=10) as w:
        yield w


def _done(http: httpx.Client, job_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
    return body if body["status"] in ("completed", "failed") else None


def test_submit_watch_complete_and_trace(api: httpx.Client, worker: Any) -> None:
    created = api.post("/jobs", json={"problem": "solve x^2 - 5x + 6 = 0"})
    assert created.status_code == 202
    job = created.json()
    assert job["status"] == "pending" and job["problem"] == "solve x^2 - 5x + 6 = 0"

    done = wait_until(lambda: _done(api, job["id"]), timeout_s=20, message="job to finish")
    assert done["answer"] == "x = 2, x = 3" and done["attempts"] == 1
    assert done["verification"]["status"] == "verified"
    assert "polyroots" in done["verification"]["method"]

    trace = api.get(f"/jobs/{job['id']}/trace").json()
    assert trace["fate"] == "completed" and trace["id"] == job["id"]
    assert [t["event"] for t in trace["timeline"]][:3] == ["created", "started", "completed"]


def test_batch_submission(api: httpx.Client, store: JobStore) -> None:
    resp = api.post("/jobs", json={"problems": [f"{n} + 1" for n in range(25)]})
    assert resp.status_code == 202
    jobs = resp.json()["jobs"]
    assert [j["problem"] for j in jobs] == [f"{n} + 1" for n in range(25)]
    assert {store.get(j["id"]).status.value for j in jobs} == {"pending"}


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "give exactly one of 'problem' or 'problems'"),
    ({"problem": "1", "problems": ["2"]}, "give exactly one"),
    ({"problems": []}, "problems"),
    ({"problems": ["1"] * 1001}, "problems"),
    ({"problem": 5}, "problem"),
    ({"problem": "1", "extra": True}, "extra"),
])
def test_bad_submissions_are_422_json(api: httpx.Client, store: JobStore,
                                      body: dict[str, Any], fragment: str) -> None:
    resp = api.post("/jobs", json=body)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["type"] == "validation_error" and fragment in error["message"]
    assert sum(store.count_by_status().values()) == 0   # nothing half-written


def test_unknown_id_is_404_with_verdict(api: httpx.Client, store: JobStore) -> None:
    resp = api.get("/jobs/never-seen-7")
    assert resp.status_code == 404
    assert resp.json()["error"] == {
        "type": "job_not_found", "message": "job never-seen-7 not found",
        "job_id": "never-seen-7", "fate": "unknown",
        "verdict": "unknown: no store has ever seen this id"}
    assert api.get("/jobs/bad:id").status_code == 422


def test_cursor_pagination_is_stable_while_jobs_are_added(api: httpx.Client) -> None:
    ids = [api.post("/jobs", json={"problem": f"{n} * 2"}).json()["id"] for n in range(7)]
    newest_first = ids[::-1]

    page1 = api.get("/jobs", params={"limit": 3}).json()
    assert [j["id"] for j in page1["jobs"]] == newest_first[:3]
    # jobs added between pages do not shift the next page
    api.post("/jobs", json={"problems": ["1", "2", "3"]})
    page2 = api.get("/jobs", params={"limit": 3, "cursor": page1["next_cursor"]}).json()
    page3 = api.get("/jobs", params={"limit": 3, "cursor": page2["next_cursor"]}).json()
    assert [j["id"] for j in page2["jobs"]] == newest_first[3:6]
    assert [j["id"] for j in page3["jobs"]] == newest_first[6:]
    assert page3["next_cursor"] is None
    assert api.get("/jobs", params={"cursor": "garbage"}).status_code == 422
    pending = api.get("/jobs", params={"status": "pending", "limit": 1000}).json()
    assert len(pending["jobs"]) == 10


def test_health_and_metrics(api: httpx.Client, worker: Any) -> None:
    jobs = api.post("/jobs", json={"problems": ["2 + 2", "9^9^9"]}).json()["jobs"]
    for job in jobs:
        wait_until(lambda j=job: _done(api, j["id"]), timeout_s=20, message="jobs to finish")

    metrics = api.get("/metrics").text
    assert 'jobtrail_jobs{status="completed"} 1.0' in metrics
    assert 'jobtrail_jobs{status="failed"} 1.0' in metrics
    assert "jobtrail_jobs_submitted_total 2.0" in metrics
    assert "jobtrail_jobs_completed_total 1.0" in metrics
    assert "jobtrail_jobs_failed_total 1.0" in metrics
    assert "jobtrail_processing_latency_seconds_count 2.0" in metrics
    assert "jobtrail_queue_length 0.0" in metrics

    # the in-thread test worker sends no heartbeat: /health reports no live worker
    resp = api.get("/health")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["main"]["ok"] and checks["broker"]["ok"] and checks["results"]["ok"]
    assert checks["workers"] == {"ok": False, "live": [], "latency_ms": checks["workers"][
        "latency_ms"], "error": "no live worker: start one with `jobtrail worker`"}
    # /readyz reports the workers but needs only the stores; /livez only needs the process
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert ready.json()["checks"]["workers"]["ok"] is False
    assert ready.json()["checks"]["archive"]["ok"] is True
    assert api.get("/livez").json() == {"status": "ok"}


def test_redis_down_is_503_json(settings: Settings) -> None:
    down = settings.model_copy(update={"main_url": "redis://127.0.0.1:1/10",
                                       "broker_url": "redis://127.0.0.1:1/11"})
    with serve_in_thread(create_app(down)) as base, client(base) as http:
        for resp in (http.get("/jobs/abc"), http.post("/jobs", json={"problem": "1"}),
                     http.get("/jobs")):
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["type"] == "redis_unavailable"
        # stores down: not ready, but alive (a liveness probe must not restart it)
        assert http.get("/readyz").status_code == 503
        assert http.get("/livez").status_code == 200


def test_api_process_never_imports_sympy() -> None:
    code = ("import sys, jobtrail.api.app, jobtrail.cli.main; "
            "print('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_trace_of_a_job_whose_submit_is_sending_its_message_reads_pending(
        api: httpx.Client, settings: Settings, store: JobStore) -> None:
    # Given a submit that wrote its job's record and sends the message 0.2 s later
    job = store.create("solve x + 1 = 2")
    sending = send_message_later(settings, job, delay_s=0.2)

    # When the trace endpoint answers through that moment
    trace = api.get(f"/jobs/{job.id}/trace").json()
    sending.join()

    # Then the job is pending in the queue, not stale and lost (trace_job's second look)
    assert trace["fate"] == "pending", trace["verdict"]
    assert "lost" not in trace["verdict"]


def test_trace_of_an_id_no_store_has_seen_is_404_with_the_trace(api: httpx.Client) -> None:
    # Given an id nobody ever submitted
    missing = "0f0e0d0c-0000-4000-8000-000000000000"

    response = api.get(f"/jobs/{missing}/trace")

    # Then 404 (as the CLI exits 3), the body is the trace plus the error object
    assert response.status_code == 404
    body = response.json()
    assert body["fate"] == "unknown" and body["id"] == missing
    assert body["error"]["type"] == "job_not_found" and body["error"]["fate"] == "unknown"
