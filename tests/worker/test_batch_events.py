"""Flower's view: a job of a batch sends the Celery task events a single job sends, under
its own id (task events are on for Flower, `celery events` and celery-exporter)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.jobs import JobService
from jobtrail.store import JobStore
from jobtrail.worker.app import TASK_SOLVE, create_celery_app
from jobtrail.worker.batch_events import REPR_MAXSIZE, short_repr
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until

pytestmark = [pytest.mark.slow]


def _capture(service: JobService, seen: list[dict[str, Any]], stop: threading.Event,
             ready: threading.Event) -> None:
    with service.app.connection_for_read() as conn:
        receiver = service.app.events.Receiver(conn, handlers={"*": seen.append})
        ready.set()
        while not stop.is_set():
            try:
                for _ in receiver.itercapture(limit=None, timeout=0.5, wakeup=False):
                    if stop.is_set():
                        return
            except TimeoutError:  # idle for 0.5 s: look at *stop* again
                continue


def test_a_job_of_a_batch_sends_the_task_events_of_a_single_job(
        settings: Settings, store: JobStore,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker, and an event receiver (as Flower runs one)
    service = JobService(store, create_celery_app(settings))
    seen: list[dict[str, Any]] = []
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=_capture, args=(service, seen, stop, ready), daemon=True)
    thread.start()
    assert ready.wait(10)
    proc = worker_process(settings)

    # When a single job and a batch of a good and a bad problem run
    single, single_bad = service.submit("solve x + 1 = 2"), service.submit("solve x^2 = ")
    batched = service.submit_many(["solve x + 2 = 3", "solve x^2 = "])
    assert batched[0].batch
    jobs = [single, single_bad, *batched]
    wait_until(lambda: all(job_finished(store, j.id) for j in jobs), timeout_s=60,
               message=lambda: f"the jobs to finish; log:\n{proc.log()[-3000:]}")

    # Then each batched job's events, by its id, are the single job's in kind and order
    def kinds(job_id: str) -> list[str]:
        return [e["type"] for e in seen if e.get("uuid") == job_id and e["type"] != "task-sent"]

    wait_until(lambda: len(kinds(batched[1].id)) >= 3 and len(kinds(single_bad.id)) >= 3,
               timeout_s=15, message=lambda: f"the events; seen {[e['type'] for e in seen]}")
    stop.set()
    assert kinds(single.id) == ["task-received", "task-started", "task-succeeded"]
    assert kinds(batched[0].id) == kinds(single.id)
    assert kinds(single_bad.id) == ["task-received", "task-started", "task-failed"]
    assert kinds(batched[1].id) == kinds(single_bad.id)
    [received] = [e for e in seen if e.get("uuid") == batched[0].id
                  and e["type"] == "task-received"]
    assert received["name"] == TASK_SOLVE
    [done] = [e for e in seen if e.get("uuid") == batched[0].id
              and e["type"] == "task-succeeded"]
    assert "x = 1" in done["result"] and done["runtime"] >= 0
    thread.join(timeout=10)
    assert not thread.is_alive()


def _succeeded_ids(pubsub: Any, seen: set[str]) -> set[str]:
    """The job ids of the task-succeeded events read so far from *pubsub* (psubscribed to
    the events exchange: kombu's envelope, a base64 JSON body of buffered events)."""
    while (message := pubsub.get_message(timeout=0.05)) is not None:
        if message["type"] != "pmessage":
            continue
        body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
        for event in body if isinstance(body, list) else [body]:
            if event.get("type") == "task-succeeded":
                seen.add(event["uuid"])
    return seen


def test_a_pool_process_keeps_its_event_connection_from_batch_to_batch(
        settings: Settings, store: JobStore, private_redis: EmbeddedRedis,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a broker on a server of its own (its connection count is the broker's), one
    # connection that reads the task events there, and a worker with one pool process
    # that has run two batches (its first connections are made, and the submitter's second
    # one: a connection its task-sent events hold out of the pool)
    settings = settings.model_copy(update={"broker_url": private_redis.url(1)})
    broker = private_redis.client(1)
    pubsub = broker.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("*celeryev*")
    service = JobService(store, create_celery_app(settings))
    proc = worker_process(settings, concurrency=1)
    succeeded: set[str] = set()

    def run_batch() -> None:
        jobs = service.submit_many(["1 + 1", "2 + 2", "3 + 3"])
        assert jobs[0].batch
        wait_until(lambda: all(job_finished(store, j.id) for j in jobs), timeout_s=60,
                   message=lambda: f"the batch to finish; log:\n{proc.log()[-3000:]}")
        wait_until(lambda: _succeeded_ids(pubsub, succeeded) >= {j.id for j in jobs},
                   timeout_s=15, message="the batch's task events")

    try:
        run_batch()
        run_batch()
        connections = broker.info("stats")["total_connections_received"]

        # When three more batches run in the same pool process
        for _ in range(3):
            run_batch()

        # Then their events arrived (run_batch waited for them) and the broker saw no
        # new connection (before, each batch opened one for its events and closed it)
        assert broker.info("stats")["total_connections_received"] == connections
    finally:
        pubsub.close()
        broker.close()


def test_a_worker_with_task_events_off_sends_none_and_still_runs_every_job(
        settings: Settings, store: JobStore, private_redis: EmbeddedRedis,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker started with JOBTRAIL_WORKER_TASK_EVENTS=false (the broker on a
    # server of its own, its events read on one connection), no task-sent events either
    settings = settings.model_copy(update={"broker_url": private_redis.url(1),
                                           "worker_task_events": False,
                                           "task_sent_event": False})
    broker = private_redis.client(1)
    pubsub = broker.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("*celeryev*")
    service = JobService(store, create_celery_app(settings))
    proc = worker_process(settings)
    try:
        # When a single job and a batch run
        jobs = [service.submit("1 + 1"), *service.submit_many(["2 + 2", "solve x^2 = "])]
        wait_until(lambda: all(job_finished(store, j.id) for j in jobs), timeout_s=60,
                   message=lambda: f"the jobs to finish; log:\n{proc.log()[-3000:]}")

        # Then every job ended as it would with events on, and no task event was
        # published (the worker's own heartbeats may be)
        assert [store.get(j.id).status.value for j in jobs] == ["completed", "completed",
                                                                 "failed"]
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 2.5  # past a worker heartbeat (2 s) and FLUSH_S
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)  # None also for the psubscribe reply
            if message is not None and message["type"] == "pmessage":
                body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
                events.extend(body if isinstance(body, list) else [body])
        assert any(e.get("type") == "worker-heartbeat" for e in events)  # the reader reads
        assert [e for e in events if str(e.get("type", "")).startswith("task-")] == []
    finally:
        pubsub.close()
        broker.close()


def test_an_events_result_is_the_payloads_repr_cut_to_celerys_size() -> None:
    # Given an answer payload nested four levels deep, and one longer than Celery's 1,024
    payload = {"kind": "equation", "steps": ["x = 1"],
               "verification": {"status": "verified", "points": [[1, 2]]}}
    long_payload = {"text": "x" * 5000}
    # Then its event text is its repr, whole (saferepr wrote "..." past the third level),
    # and a long one is cut to 1,024 characters ending in "..."
    assert short_repr(payload) == repr(payload)
    cut = short_repr(long_payload)
    assert len(cut) == REPR_MAXSIZE and cut == repr(long_payload)[:1021] + "..."
