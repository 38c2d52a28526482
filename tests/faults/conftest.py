"""The fault suite's fixtures: a private redis-server that a test stops, restarts or
reconfigures on the same port, real prefork workers on it, and assert_true_fates().

No fakes: the server is a real redis-server (jobtrail.embedded) with its AOF
fsynced on every write, so a stop/start keeps the broker's unacked messages
and the job records as a real restart does; workers are `jobtrail worker`
subprocesses (Celery prefork).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.client import Client
from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.errors import JobtrailError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Job, JobEvent, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker.app import create_celery_app
from jobtrail.worker.fetch import FETCH_CLIENT_NAME
from tests.conftest import BROKER_DB, MAIN_DB, RESULTS_DB, make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

#: Takes SymPy minutes in pure Python: only the soft time limit ends it, at a known time.
SLOW_PROBLEM = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"
#: Solved in milliseconds; what a fresh job after a fault is.
QUICK_PROBLEM, QUICK_ANSWER = "evaluate 2^10 / 4", "256"

#: The suite's short windows (the defaults are 30 s and 3600 s): an outage "longer than
#: the retry window" is then a few seconds, and a task handed back is redelivered soon.
RETRY_S = 5.0
VISIBILITY_TIMEOUT_S = 15
SOFT_LIMIT_S = 3.0
#: The reason of a SLOW_PROBLEM job: "timed out after 3 s", or, when SymPy swallows the
#: soft limit's exception (raised inside a weakref callback), the hard limit's reason;
#: assert_true_fates checks that a hard limit is claimed only by a job that ran that long.
TIMED_OUT = "timed out after"

#: redis-server options of the fault server: the AOF written and fsynced on every write.
SERVER_ARGS = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


def _retrying(read: Callable[[], Any], *, timeout_s: float = 20.0) -> Any:
    """Return *read*(), retried while Redis is (still) coming back."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except (JobtrailError, redis.RedisError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


#: The three DBs a fault can take down, by their names in the glossary.
DBS = ("main", "broker", "results")


@dataclass
class FaultRig:
    """Redis server(s) for the three DBs, settings on them, and clients of them.

    *servers* maps each DB ("main", "broker", "results") to the server that
    holds it: one server for all three, or one each (split_rig).
    """

    servers: dict[str, EmbeddedRedis]
    settings: Settings
    store: JobStore
    events: EventLog
    service: JobService
    results: redis.Redis
    admin: redis.Redis
    workers: list[WorkerProcess] = field(default_factory=list)

    # -- faults -----------------------------------------------------------------------

    def _servers(self, dbs: tuple[str, ...]) -> list[EmbeddedRedis]:
        chosen: list[EmbeddedRedis] = []
        for db in dbs or DBS:
            if self.servers[db] not in chosen:
                chosen.append(self.servers[db])
        return chosen

    def stop(self, *dbs: str) -> None:
        """Stop the server(s) of *dbs* (default all; SIGTERM: the AOF is flushed)."""
        for server in self._servers(dbs):
            server.stop(timeout_s=10)

    def start(self, *dbs: str) -> None:
        """Start the server(s) of *dbs* again on the same port and data directory."""
        for server in self._servers(dbs):
            server.start(*SERVER_ARGS)

    def outage(self, seconds: float, *dbs: str) -> None:
        """Stop the server(s) of *dbs* (default all) for *seconds*, then start them again."""
        self.stop(*dbs)
        time.sleep(seconds)
        self.start(*dbs)

    def kill_clients(self) -> int:
        """CLIENT KILL every client but this one; return how many were killed."""
        killed = 0
        for client in _retrying(self.admin.client_list):
            if int(client["id"]) != _retrying(self.admin.client_id):
                try:
                    killed += int(self.admin.client_kill_filter(_id=client["id"]))
                except redis.ResponseError:
                    pass  # gone meanwhile
        return killed

    def answers_ping(self) -> bool:
        """True when a worker answers a Celery ping (its consumer is connected); False also
        when the ping's own connection was one of those killed."""
        try:
            return bool(self.service.app.control.ping(timeout=0.5))
        except (redis.RedisError, OSError):
            return False

    def reconnected(self) -> None:
        """Wait until a worker answers a Celery ping again after a fault (30 s at most)."""
        time.sleep(0.5)  # the consumer's own error handling first, not a ping before it
        wait_until(self.answers_ping, timeout_s=30, interval_s=0.1,
                   message=lambda: f"the worker to reconnect; log:\n{self.worker_logs()}")

    # -- reading back -----------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        """The job record, read back through the store (retried across a restart)."""
        return _retrying(lambda: self.store.get(job_id))  # type: ignore[no-any-return]

    def history(self, job_id: str) -> list[JobEvent]:
        """The job's events, oldest first."""
        return _retrying(lambda: self.events.read(job_id))  # type: ignore[no-any-return]

    def wait_status(self, job_id: str, *statuses: JobStatus, timeout_s: float = 60.0) -> Job:
        """Wait until the job reaches one of *statuses*; return it."""
        def reached() -> Job | None:
            try:
                job = self.store.get(job_id)
            except (JobtrailError, redis.RedisError):
                return None
            return job if job.status in statuses else None
        return wait_until(reached, timeout_s=timeout_s, interval_s=0.1,  # type: ignore[return-value]
                          message=lambda: f"job {job_id} to be {'/'.join(statuses)};"
                                          f" {self.stall_report(job_id)}")

    def wait_finished(self, job_id: str, *, timeout_s: float = 60.0,
                      with_result: bool = True) -> Job:
        """Wait until the job is completed or failed and (*with_result*) Celery stored
        its result."""
        job = self.wait_status(job_id, JobStatus.COMPLETED, JobStatus.FAILED,
                               timeout_s=timeout_s)
        if with_result:
            wait_until(lambda: _retrying(lambda: self.results.exists(
                self.store.keys.celery_result(job_id))), timeout_s=timeout_s, interval_s=0.1,
                message=lambda: f"the Celery result of {job_id}; {self.stall_report(job_id)}")
        return self.job(job.id)

    def busy(self, factory: Callable[..., WorkerProcess], *, solving_s: float = 0.5,
             ) -> tuple[WorkerProcess, str]:
        """Start a worker and give it SLOW_PROBLEM; return once it solved *solving_s*.

        Returns:
            (the worker, the job id).
        """
        proc = self.start_worker(factory)
        job = self.service.submit(SLOW_PROBLEM)
        self.wait_status(job.id, JobStatus.PROCESSING, timeout_s=30)
        time.sleep(solving_s)
        return proc, job.id

    def stall_report(self, job_id: str) -> str:
        """What a wait that timed out shows: the job's trace (fate, verdict, timeline) and
        the workers' logs as they are at the timeout."""
        try:
            with Client(self.settings) as client:
                found = client.trace(job_id).to_dict()
            told = json.dumps({k: found[k] for k in ("fate", "verdict", "timeline")},
                              indent=1, default=str)
        except (JobtrailError, redis.RedisError) as exc:
            told = f"(no trace: {exc})"
        return f"trace:\n{told}\nworker log:\n{self.worker_logs(tail_chars=12000)}"

    def worker_logs(self, tail_chars: int = 3000) -> str:
        """The tail (*tail_chars* characters) of every worker's log."""
        return "\n".join(w.log()[-tail_chars:] for w in self.workers)

    def start_worker(self, factory: Callable[..., WorkerProcess], *,
                     concurrency: int = 1) -> WorkerProcess:
        """Start a `jobtrail worker` and wait until it consumes (answers a Celery ping)."""
        proc = factory(self.settings, concurrency=concurrency,
                       hostname=f"fault{len(self.workers) + 1}")
        self.workers.append(proc)
        wait_until(lambda: self.service.app.control.ping(timeout=0.5), timeout_s=60,
                   interval_s=0.1,
                   message=lambda: f"the worker to answer a ping; log:\n{proc.log()[-3000:]}")
        return proc


def _server(data_dir: Path) -> EmbeddedRedis:
    server = EmbeddedRedis(data_dir)
    server.start(*SERVER_ARGS)
    return server


def _rig(servers: dict[str, EmbeddedRedis], state_dir: Path, *,
         urls: dict[str, str] | None = None, password: str | None = None) -> FaultRig:
    """Return a FaultRig on *servers* (DB name -> server).

    Args:
        servers: The server of each DB.
        state_dir: The settings' state directory.
        urls: DB name -> the URL jobtrail is given for it (a rediss:// or unix://
            form, say); default each server's redis:// URL of its DB.
        password: The servers' `requirepass`, for the test's own clients (given
            to jobtrail in *urls*).
    """
    urls = urls or {"main": servers["main"].url(MAIN_DB),
                    "broker": servers["broker"].url(BROKER_DB),
                    "results": servers["results"].url(RESULTS_DB)}
    settings = make_settings(
        servers["main"], state_dir, main_url=urls["main"], broker_url=urls["broker"],
        results_url=urls["results"], redis_retry_s=RETRY_S,
        visibility_timeout_s=VISIBILITY_TIMEOUT_S, solver_time_limit_s=SOFT_LIMIT_S,
        solver_hard_time_limit_s=10.0)
    keys = KeySpace(settings.key_prefix, settings.queue)
    main = redis.Redis.from_url(urls["main"], decode_responses=True, socket_timeout=5)
    results = redis.Redis.from_url(urls["results"], decode_responses=True, socket_timeout=5)
    admin = redis.Redis.from_url(servers["main"].url(0), decode_responses=True,
                                 socket_timeout=5, password=password)
    store = JobStore(main, keys)
    return FaultRig(servers, settings, store, EventLog(main, keys),
                    JobService(store, create_celery_app(settings)), results, admin)


def _teardown(rig: FaultRig) -> None:
    for client in (rig.store.client, rig.results, rig.admin):
        client.close()
    for server in rig._servers(DBS):
        server.stop(timeout_s=10)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[FaultRig]:
    """One private redis-server holding the three DBs, that the test may stop and start."""
    server = _server(tmp_path / "fault-redis")
    rig = _rig(dict.fromkeys(DBS, server), tmp_path / "state")
    try:
        yield rig
    finally:
        _teardown(rig)


@pytest.fixture
def split_rig(tmp_path: Path) -> Iterator[FaultRig]:
    """One private redis-server per DB, so that a fault can take down one DB alone."""
    servers: dict[str, EmbeddedRedis] = {}
    try:
        for db in DBS:
            servers[db] = _server(tmp_path / f"fault-redis-{db}")
        rig = _rig(servers, tmp_path / "state")
    except BaseException:
        for server in servers.values():
            server.stop(timeout_s=10)
        raise
    try:
        yield rig
    finally:
        _teardown(rig)


def _kill_consumer_connections(rig: FaultRig, stop: threading.Event, killed: list[int],
                               every_s: float) -> None:
    while not stop.is_set():
        try:
            for c in rig.admin.client_list():
                if c["name"] == FETCH_CLIENT_NAME or int(c["psub"]) or int(c["sub"]):
                    killed.append(int(rig.admin.client_kill_filter(_id=c["id"])))
        except redis.ResponseError:
            pass  # gone meanwhile
        time.sleep(every_s)


def submit_while_killing_consumers(rig: FaultRig, jobs: int, *, kill_every_s: float = 0.2,
                                   submit_every_s: float = 0.3) -> tuple[list[str], int]:
    """Submit *jobs* QUICK_PROBLEM jobs, one every *submit_every_s* seconds, while a thread
    CLIENT KILLs the workers' consumer connections (the fetch connection, by its name, and
    every pub/sub one) every *kill_every_s* seconds, until a second after the last.

    Returns:
        (the job ids, how many connections were killed).
    """
    stop, killed = threading.Event(), []  # type: ignore[var-annotated]
    killer = threading.Thread(target=_kill_consumer_connections,
                              args=(rig, stop, killed, kill_every_s))
    killer.start()
    try:
        ids = []
        for _ in range(jobs):
            ids.append(rig.service.submit(QUICK_PROBLEM).id)
            time.sleep(submit_every_s)
        time.sleep(1.0)
    finally:
        stop.set()
        killer.join()
    return ids, sum(killed)


def assert_true_fates(rig: FaultRig, expected: dict[str, tuple[JobStatus, str]], *,
                      redeliveries: int = 0, result_may_be_lost: bool = False) -> None:
    """Check that each job ended as expected, told truly, and that the workers still serve.

    Args:
        rig: The rig the jobs ran on.
        expected: job id -> (final status, a fragment of its answer or reason).
        redeliveries: How many true broker redeliveries the fault may cause per job
            (a task handed back after the retry window, a killed pool process).
        result_may_be_lost: The result backend was unreachable past Celery's retries:
            the Celery result may be missing, Celery's BackendStoreError ("failed to
            store result on the backend"), or TimeLimitExceeded (the pool process was
            killed by the hard limit while it retried storing it); the record is checked.

    Checks, for every job: its status and answer/reason; one terminal event,
    last; every `started` counted in `attempts` and every start after the first
    preceded by a `redelivered` event (no phantom redelivery, no silent
    restart); the Celery result agreeing with the record (never solved twice
    with different results); no hard time limit claimed by a job that did not run
    that long. Then every
    worker process is alive and a fresh job submitted now completes.
    """
    for job_id, (status, fragment) in expected.items():
        job = rig.wait_finished(job_id, with_result=not result_may_be_lost)
        told = job.answer if status is JobStatus.COMPLETED else job.error
        assert job.status is status, (job, rig.worker_logs())
        assert fragment in told, (job, rig.worker_logs())
        if "hard limit" in job.error:  # true only of a job that ran that long
            ran_s = job.finished_at - job.started_at  # type: ignore[operator]
            assert ran_s >= rig.settings.solver_hard_time_limit_s - 1.0, (job, ran_s)
        types = [e.type for e in rig.history(job_id)]
        terminal = [t for t in types if t in (EventType.COMPLETED, EventType.FAILED)]
        assert terminal == [types[-1]] and types[0] is EventType.CREATED, types
        starts = [i for i, t in enumerate(types) if t is EventType.STARTED]
        assert len(starts) == job.attempts >= 1, (types, job.attempts)
        assert job.attempts <= 1 + redeliveries, (types, job.attempts, rig.worker_logs())
        redelivered = [i for i, t in enumerate(types) if t is EventType.REDELIVERED]
        assert [i + 1 for i in redelivered] == starts[1:], types  # each one before a start
        meta = json.loads(_retrying(partial(rig.results.get,
                                            rig.store.keys.celery_result(job_id))) or "{}")
        if result_may_be_lost and meta.get("status") == "FAILURE" and \
                meta["result"]["exc_type"] in ("BackendStoreError", "TimeLimitExceeded"):
            meta = {}  # Celery's account of a result it could not store in time, not a fate
        if status is JobStatus.COMPLETED and (meta or not result_may_be_lost):
            assert meta["status"] == "SUCCESS" and meta["result"]["text"] == job.answer, meta
        elif meta or not result_may_be_lost:
            assert meta["status"] == "FAILURE", meta
            if "hard limit" in job.error:  # Celery's own account of its hard limit
                hard_s = rig.settings.solver_hard_time_limit_s
                assert (meta["result"]["exc_type"], meta["result"]["exc_message"]) == (
                    "TimeLimitExceeded", [hard_s]), meta
            else:
                assert job.error in " ".join(map(str, meta["result"]["exc_message"])), meta
    assert rig.workers and all(w.proc.poll() is None for w in rig.workers), rig.worker_logs()
    fresh = _retrying(lambda: rig.service.submit(QUICK_PROBLEM))
    done = rig.wait_finished(fresh.id, timeout_s=60)
    assert (done.status, done.answer) == (JobStatus.COMPLETED, QUICK_ANSWER), done
