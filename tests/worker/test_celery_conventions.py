"""jobtrail as a Celery operator finds it: task events on, Celery's worker options honoured."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.bin.base import CLIContext
from celery.bin.worker import worker as celery_worker_command
from celery.concurrency.thread import TaskPool as ThreadTaskPool

from jobtrail.cli.main import worker_argv
from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.store import JobStore
from jobtrail.store.event_log import EventLog
from jobtrail.worker.app import create_celery_app
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

TASK_EVENTS = ["task-sent", "task-received", "task-started", "task-succeeded"]


def test_events_are_on_in_the_app_config(settings: Settings) -> None:
    conf = create_celery_app(settings).conf
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True


def test_the_task_sent_event_can_be_switched_off_in_the_app_config(settings: Settings) -> None:
    conf = create_celery_app(settings.model_copy(update={"task_sent_event": False})).conf
    assert conf.task_send_sent_event is False
    assert conf.worker_send_task_events is True  # the workers' events stay


def test_celery_options_given_to_jobtrail_worker_override_its_defaults(
        settings: Settings) -> None:
    # Given jobtrail's defaults followed by options a Celery operator passes
    argv = worker_argv("jobtrail", "jobtrail-1@h", "INFO", 2,
                       ["--pool", "threads", "-n", "mine@h", "-O", "fair",
                        "--max-tasks-per-child", "50", "--autoscale", "4,1", "-E"])

    # When Celery's own `worker` command parses them
    ctx = celery_worker_command.make_context("worker", argv[1:], obj=CLIContext(
        create_celery_app(settings), no_color=True, workdir=None))

    # Then the operator's values win and the rest are jobtrail's defaults
    assert ctx.params["pool"] is ThreadTaskPool
    assert (ctx.params["hostname"], ctx.params["optimization"]) == ("mine@h", "fair")
    assert (ctx.params["max_tasks_per_child"], ctx.params["autoscale"]) == (50, (4, 1))
    assert ctx.params["task_events"] is True
    assert (ctx.params["queues"], ctx.params["concurrency"]) == (["jobtrail"], 2)
    assert not ctx.params["without_mingle"] and not ctx.params["without_gossip"]


#: The hostname of the probe event EventCapture sends until its receiver sees one.
_PROBE = "probe@capture"


class EventCapture:
    """Celery's own event Receiver (what Flower and `celery events` run), in a thread."""

    def __init__(self, app: Celery) -> None:
        self._by_task: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.workers: set[str] = set()
        self._app = app
        self._conn = app.connection_for_read()
        self._receiver = app.events.Receiver(self._conn, handlers={"*": self._on_event})
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event["type"].startswith("task-"):
            self._by_task[event["uuid"]].append((float(event["timestamp"]), event["type"]))
        else:
            self.workers.add(str(event.get("hostname", "")))

    def of_task(self, task_id: str) -> list[str]:
        """The event types seen for *task_id*, in the order of their timestamps.

        Celery publishes task-sent after the task message itself, so the worker's
        task-received can be stamped (and arrive) before it; Flower orders by time.
        """
        return [kind for _, kind in sorted(self._by_task[task_id])]

    def _run(self) -> None:
        self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> EventCapture:
        self._thread.start()
        # events are Redis pub/sub: any published before the receiver has subscribed are
        # gone, so a probe event is sent until the receiver sees it
        with self._app.events.default_dispatcher(hostname=_PROBE) as dispatcher:
            wait_until(lambda: dispatcher.send("worker-heartbeat") or _PROBE in self.workers,
                       timeout_s=30, interval_s=0.2, message="the event receiver to subscribe")
        return self

    def __exit__(self, *_: object) -> None:
        self._receiver.should_stop = True
        self._thread.join(timeout=10)
        self._conn.release()


@pytest.fixture
def events_of(settings: Settings) -> Iterator[EventCapture]:
    with EventCapture(create_celery_app(settings)) as capture:
        yield capture


def test_a_submit_without_the_task_sent_event_still_writes_its_record_and_message(
        settings: Settings, store: JobStore, events: EventLog, broker_db: redis.Redis,
        events_of: EventCapture) -> None:
    # Given one app with the task-sent event (the default) and one with it switched off
    with_sent = JobService(store, create_celery_app(settings))
    without = JobService(store, create_celery_app(
        settings.model_copy(update={"task_sent_event": False})))

    # When each submits a job (the one with the event last, so its event marks the end)
    quiet = without.submit("1 + 1")
    loud = with_sent.submit("1 + 2")
    wait_until(lambda: events_of.of_task(loud.id) == ["task-sent"], timeout_s=30,
               message=lambda: f"the task-sent event of {loud.id}")

    # Then only the default app's job has a task-sent event, and both have their
    # record with its `created` event and their message on the queue
    assert events_of.of_task(quiet.id) == []
    for job in (quiet, loud):
        assert store.get(job.id).status.value == "pending"
        assert [str(e.type) for e in events.read(job.id)] == ["created"]
    queued = [json.loads(m)["headers"]["id"] for m in broker_db.lrange(settings.queue, 0, -1)]
    assert sorted(queued) == sorted([quiet.id, loud.id])


@pytest.mark.slow
def test_a_plain_event_receiver_sees_a_job_from_sent_to_succeeded(
        settings: Settings, store: JobStore, events_of: EventCapture,
        worker_process: Callable[..., WorkerProcess],
) -> None:
    # Given a `jobtrail worker` started with Celery options and no remote switch (no -E,
    # no `celery control enable_events`), and Celery's event receiver listening
    proc = worker_process(settings, hostname="ev", celery_args=(
        "--without-mingle", "--prefetch-multiplier", "3", "--max-tasks-per-child", "7"))
    wait_until(lambda: any(w.startswith("ev@") for w in events_of.workers), timeout_s=60,
               message=lambda: f"the worker's first event; log:\n{proc.log()[-2000:]}")

    # When a job is submitted and solved
    app = create_celery_app(settings)
    job = JobService(store, app).submit("Solve x^2 - 5x + 6 = 0")
    wait_until(lambda: len(events_of.of_task(job.id)) >= len(TASK_EVENTS), timeout_s=60,
               message=lambda: f"the job's events; seen {events_of.of_task(job.id)}")

    # Then the receiver saw every step of the job under its id, the worker's in order
    seen = events_of.of_task(job.id)
    assert sorted(seen) == sorted(TASK_EVENTS), seen
    assert [e for e in seen if e != "task-sent"] == TASK_EVENTS[1:]
    assert store.get(job.id).answer == "x = 2, x = 3"
    # and the worker runs with the options it was given
    stats = app.control.inspect(destination=[next(
        w for w in events_of.workers if w.startswith("ev@"))], timeout=5).stats()
    (node_stats,) = stats.values()
    assert node_stats["prefetch_count"] == 3
    assert node_stats["pool"]["max-tasks-per-child"] == 7


@pytest.mark.slow
def test_a_busy_worker_publishes_every_jobs_events_a_few_at_a_time(
        settings: Settings, store: JobStore, events_of: EventCapture,
        worker_process: Callable[..., WorkerProcess], redis_server: Any,
) -> None:
    # Given forty jobs queued before a worker starts (it drains them back to back)
    service = JobService(store, create_celery_app(settings))
    jobs = [service.submit(f"evaluate {n} + 1") for n in range(40)]
    listener = redis_server.client(0).pubsub()
    listener.psubscribe("*celeryev*")  # kombu's fanout channels of the celeryev exchange

    # When the worker solves them and stops
    proc = worker_process(settings, hostname="busy", celery_args=("--without-mingle",))
    wait_until(lambda: all(len(events_of.of_task(j.id)) >= len(TASK_EVENTS) for j in jobs),
               timeout_s=90, message=lambda: f"every job's events; log:\n{proc.log()[-2000:]}")
    publishes = 0
    while (message := listener.get_message(timeout=1.0)) is not None:
        publishes += message["type"] == "pmessage"
    listener.close()

    # Then each job's four events arrived, the worker's in order, in fewer event PUBLISHes
    # than jobs (the worker sends 3 a job: EventBatchStep publishes them a few at a time)
    for job in jobs:
        seen = events_of.of_task(job.id)
        assert [e for e in seen if e != "task-sent"] == TASK_EVENTS[1:], seen
    assert 0 < publishes < len(jobs), publishes


@pytest.mark.slow
def test_a_worker_on_the_threads_pool_warns_that_no_solver_limit_applies_and_still_solves(
        settings: Settings, store: JobStore, worker_process: Callable[..., WorkerProcess],
) -> None:
    # Given `jobtrail worker --pool threads`, where Celery enforces no time limit
    # and no pool process gets the solver's memory limit
    proc = worker_process(settings, hostname="thr", celery_args=(
        "--without-mingle", "--without-gossip", "--pool", "threads"))

    # When it starts and solves a job
    job = JobService(store, create_celery_app(settings)).submit("Solve x + 1 = 3")
    wait_until(lambda: store.get(job.id).status.value == "completed", timeout_s=60,
               message=lambda: f"the job; log:\n{proc.log()[-2000:]}")

    # Then its log says plainly which limits are off and what to use instead
    log = proc.log()
    assert "WARNING" in log and "pool thread enforces none of the solver's limits" in log
    assert "SOLVER_TIME_LIMIT_S=" in log and "use --pool prefork" in log
    assert "memory limit set" not in log
