"""High availability on Redis Sentinel, with real processes: master, replica, sentinel, worker.

A failover (SENTINEL FAILOVER, or the master SIGKILLed) in the middle of a stream
of submissions solved by a real prefork worker: every job whose submit returned
success ends completed or failed with a true reason, none is unknown, the worker
survives and new submits work on the new master.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobtrail.config import Settings
from jobtrail.connections import connect
from jobtrail.doctor import Finding, Severity, run_checks
from jobtrail.embedded import free_port
from jobtrail.errors import JobtrailError, ReplicationError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import RECREATED_REASON, EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.trace import TraceSources, trace_job
from jobtrail.worker.app import create_celery_app
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.sentinel import MASTER_NAME, SentinelCluster, sentinel_cluster
from tests.helpers.waiting import wait_until

__all__ = ["sentinel_cluster"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.slow, pytest.mark.crash]

PROBLEMS = ("solve x^2 - 5x + 6 = 0", "derivative of x^3", "solve 2x + 3 = 7")


def _settings(cluster: SentinelCluster, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "main_url": cluster.url(10), "broker_url": cluster.url(11),
        "results_url": cluster.url(12), "sentinel_master_name": MASTER_NAME,
        "state_dir": tmp_path / "state", "solver_time_limit_s": 5.0,
        "solver_hard_time_limit_s": 8.0, "heartbeat_interval_s": 1.0,
        "redis_failover_retry_s": 15.0, "main_min_replicas_timeout_s": 2.0}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _longest_outage_s(attempts: list[tuple[float, bool]]) -> float:
    """Seconds from the first refused submit of a streak to the next accepted one (longest)."""
    longest, since = 0.0, None
    for at, ok in attempts:
        if not ok and since is None:
            since = at
        elif ok and since is not None:
            longest, since = max(longest, at - since), None
    return longest


@dataclass
class Submitter:
    """Submits problems in a thread until stopped; keeps what each submit answered."""

    service: JobService
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    attempts: list[tuple[float, bool]] = field(default_factory=list)
    cli_accepted: list[str] = field(default_factory=list)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                self.accepted.append(self.service.submit(PROBLEMS[n % len(PROBLEMS)]).id)
                self.attempts.append((time.monotonic(), True))
            except JobtrailError as exc:
                self.refused.append(str(exc))
                self.attempts.append((time.monotonic(), False))
            n += 1
            time.sleep(0.1)

    def run_cli(self, settings: Settings) -> None:
        """Submit through `jobtrail submit` processes until stopped (exit 0: the id printed)."""
        env = settings_env(settings)
        while not self.stop.is_set():
            done = subprocess.run([sys.executable, "-m", "jobtrail", "submit", PROBLEMS[1]],
                                  env=env, capture_output=True, text=True, timeout=120,
                                  check=False)
            if done.returncode == 0:
                self.cli_accepted.append(done.stdout.strip())
                self.accepted.append(done.stdout.strip())
            else:
                self.refused.append(done.stderr.strip())


def _outcome(settings: Settings, store: JobStore, ids: list[str]) -> dict[str, list[str]]:
    """Each accepted job's status, or what trace names it."""
    main_url, broker_url, results_url = settings.require_urls()
    sources = TraceSources(main=store.client, broker=connect(broker_url, settings=settings),
                           results=connect(results_url, settings=settings), keys=store.keys,
                           visibility_timeout_s=settings.visibility_timeout_s,
                           result_expires_s=settings.result_expires_s)
    found: dict[str, list[str]] = {}
    for job_id in ids:
        job = store.find(job_id)
        if job is None:
            fate = trace_job(sources, job_id).fate
            found.setdefault(f"missing:{fate.value}", []).append(job_id)
        elif job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            found.setdefault(job.status.value, []).append(job_id)
        else:
            found.setdefault(f"{job.status.value}:{trace_job(sources, job_id).fate.value}",
                             []).append(job_id)
    return found


def _run_under_failovers(cluster: SentinelCluster, tmp_path: Path,
                         worker_process: Callable[..., WorkerProcess],
                         disrupt: Callable[[], float], times: int,
                         min_replicas: int = 1, cli: bool = False) -> Submitter:
    """Submit a stream (in process, and through the CLI when *cli*) through *times* disruptions.

    Every accepted job must end completed or failed; with *min_replicas* 0 a job
    whose message was lost with the old master may stay pending, named stale by trace,
    and one whose creation was lost with it is named lost in the failover.
    """
    settings = _settings(cluster, tmp_path, main_min_replicas=min_replicas)
    keys = KeySpace(queue=settings.queue)
    store = JobStore(connect(settings.main_url or "", settings=settings), keys)
    service = JobService(store, create_celery_app(settings))
    worker = worker_process(settings, concurrency=2)
    first = service.submit(PROBLEMS[0])
    wait_until(lambda: store.get(first.id).status is JobStatus.COMPLETED,
               timeout_s=60, interval_s=0.2, message="a first job (the worker is up)")
    submitter = Submitter(service)
    threads = [threading.Thread(target=submitter.run, daemon=True)]
    if cli:
        threads.append(threading.Thread(target=submitter.run_cli, args=(settings,), daemon=True))
    for thread in threads:
        thread.start()
    recover_s: list[float] = []
    try:
        for _ in range(times):
            time.sleep(1.5)
            recover_s.append(disrupt())
        time.sleep(1.5)
    finally:
        submitter.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    accepted = list(submitter.accepted)
    assert len(accepted) > 10, submitter.refused[:5]
    assert not cli or submitter.cli_accepted, submitter.refused[:5]

    final = {"completed", "failed"}
    allowed = final if min_replicas else final | {"pending:stale", "missing:lost_in_failover"}
    deadline = time.monotonic() + 60
    outcome = _outcome(settings, store, accepted)
    settled_at = None
    while not set(outcome) <= final and time.monotonic() < deadline:
        if set(outcome) <= allowed:  # only lost messages left: give the worker 10 s more
            settled_at = settled_at or time.monotonic()
            if time.monotonic() - settled_at > 10:
                break
        time.sleep(1.0)
        outcome = _outcome(settings, store, accepted)
    counts = {k: len(v) for k, v in outcome.items()}
    stuck = [j for k, v in outcome.items() if k not in allowed for j in v]
    events = EventLog(store.client, keys)
    assert not stuck, (f"{counts}: " + "; ".join(
        f"{store.find(j)} {[e.fields for e in events.read(j)]}" for j in stuck[:3]))
    failed = [store.get(j) for j in outcome.get("failed", [])]
    print(f"\nHA: accepted={len(accepted)} refused={len(submitter.refused)} "
          f"completed={counts.get('completed', 0)} failed={len(failed)} "
          f"lost={counts.get('missing:lost_in_failover', 0)} "
          f"new_master_after_s={[round(s, 2) for s in recover_s]} "
          f"longest_submit_outage_s={_longest_outage_s(submitter.attempts):.2f} "
          f"refusals={sorted(set(r[:90] for r in submitter.refused))[:3]}")
    for job in failed:
        assert job.error and "unknown" not in job.error.lower(), job
    assert worker.proc.poll() is None, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()
    # a new submit on the new master is solved, once the cluster has a synced replica again
    # (a loaded machine can make Sentinel fail over once more; MAIN_MIN_REPLICAS=1 then rightly
    # refuses a write until the demoted node follows the new master)
    cluster.wait_ready()
    fresh = service.submit(PROBLEMS[2])
    wait_until(lambda: store.get(fresh.id).status is JobStatus.COMPLETED, timeout_s=30,
               message="a submit after the failover to complete")
    return submitter


def test_two_sentinel_failovers_under_load_lose_no_accepted_job(
        sentinel_cluster: SentinelCluster, tmp_path: Path,
        worker_process: Callable[..., WorkerProcess]) -> None:
    _run_under_failovers(sentinel_cluster, tmp_path, worker_process,
                         sentinel_cluster.failover, times=2)


def test_two_failovers_without_min_replicas_refuse_no_submit(
        sentinel_cluster: SentinelCluster, tmp_path: Path,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # MAIN_MIN_REPLICAS=0, submits in process and through the CLI: no write goes to the old
    # master after Sentinel switched (redis-py's pool kept writing there until Sentinel
    # demoted it, 10 s later: 210 of 444 accepted jobs were unknown), none waits for a
    # replica, so every submit rides out the switch and no accepted job is unknown. The old
    # master is left for Sentinel to demote (demote=False): that window is what this guards.
    submitter = _run_under_failovers(sentinel_cluster, tmp_path, worker_process,
                                     lambda: sentinel_cluster.failover(demote=False),
                                     times=2, min_replicas=0,
                                     cli=True)
    assert submitter.refused == []


def test_master_killed_under_load_loses_no_accepted_job(
        sentinel_cluster: SentinelCluster, tmp_path: Path,
        worker_process: Callable[..., WorkerProcess]) -> None:
    _run_under_failovers(sentinel_cluster, tmp_path, worker_process,
                         sentinel_cluster.kill_master_and_bring_it_back, times=1)


def test_min_replicas_refuses_a_submit_no_replica_holds(
        sentinel_cluster: SentinelCluster, tmp_path: Path) -> None:
    # Given MAIN_MIN_REPLICAS=1 on a master with one synced replica: submits are acknowledged
    settings = _settings(sentinel_cluster, tmp_path, main_min_replicas=1,
                         main_min_replicas_timeout_s=0.5)
    store = JobStore(connect(settings.main_url or "", settings=settings),
                     KeySpace(queue=settings.queue))
    service = JobService(store, create_celery_app(settings))
    held = service.submit(PROBLEMS[0])
    many = service.submit_many(list(PROBLEMS))
    replica_db = sentinel_cluster.replica().client(10)
    assert replica_db.exists(*(store.keys.job(j.id) for j in [held, *many])) == 4

    # When the replica stops acknowledging (it is paused)
    replica = sentinel_cluster.replica()
    replica.proc.send_signal(19)  # SIGSTOP
    try:
        with pytest.raises(ReplicationError) as caught:
            service.submit(PROBLEMS[1])
        with pytest.raises(ReplicationError):  # the pipelined path waits too
            service.submit_many(list(PROBLEMS))
        cli = subprocess.run([sys.executable, "-m", "jobtrail", "submit", PROBLEMS[2]],
                             env=settings_env(settings), capture_output=True, text=True,
                             timeout=60, check=False)
    finally:
        replica.proc.send_signal(18)  # SIGCONT
    assert cli.returncode == 1, cli
    assert cli.stderr.strip().splitlines() == [
        "error: Redis at main DB is unavailable: 0 of 1 required replicas acknowledged the "
        "write within 0.5 s (JOBTRAIL_MAIN_MIN_REPLICAS)"], cli.stderr

    # Then the submit fails with a one-line reason naming the setting
    assert "0 of 1 required replicas acknowledged the write within 0.5 s" in str(caught.value)
    assert "JOBTRAIL_MAIN_MIN_REPLICAS" in str(caught.value)


def _finished(store: JobStore, job_id: str) -> bool:
    job = store.find(job_id)
    return job is not None and job.status in (JobStatus.COMPLETED, JobStatus.FAILED)


def _create_lost_in_failover(cluster: SentinelCluster, tmp_path: Path,
                             ) -> tuple[Settings, JobStore, TraceSources, str]:
    """Submit with MAIN_MIN_REPLICAS=0 through a failover so that the record reaches the
    old master after Sentinel promoted the replica (a client still connected to it: a
    pool's answer from before the switch, or a race with it) while the message goes,
    through Sentinel, to the new master; the old master is then demoted (it resyncs from
    the new one: what it took is discarded). Returns the job's id and where to read it."""
    settings = _settings(cluster, tmp_path, main_min_replicas=0)
    keys = KeySpace(queue=settings.queue)
    submitted: list[str] = []

    def submit_on(old_port: int) -> None:
        old = JobStore(connect(f"redis://127.0.0.1:{old_port}/10", settings=settings), keys)
        submitted.append(JobService(old, create_celery_app(settings)).submit(PROBLEMS[0]).id)

    cluster.failover(meanwhile=submit_on)
    [job_id] = submitted
    store = JobStore(connect(settings.main_url or "", settings=settings), keys)
    assert store.find(job_id) is None
    _, broker_url, results_url = settings.require_urls()
    sources = TraceSources(main=store.client, broker=connect(broker_url, settings=settings),
                           results=connect(results_url, settings=settings), keys=keys,
                           visibility_timeout_s=settings.visibility_timeout_s,
                           result_expires_s=settings.result_expires_s)
    return settings, store, sources, job_id


def test_a_record_the_replaced_master_took_is_named_lost_in_a_failover(
        sentinel_cluster: SentinelCluster, tmp_path: Path) -> None:
    # Given a job whose create a failover discarded, its message waiting on the new master
    settings, store, sources, job_id = _create_lost_in_failover(sentinel_cluster, tmp_path)

    # Then, with no worker yet, trace names the loss in the failover, with its evidence,
    # not a deletion by some other client
    assert _outcome(settings, store, [job_id]) == {"missing:lost_in_failover": [job_id]}
    verdict = trace_job(sources, job_id).verdict
    print(f"\nlost in a failover (no worker): {verdict}")
    assert verdict.startswith(f"lost in a failover: no key of job:{job_id} is on the main "
                              "DB's master, which was promoted from a replica"), verdict
    assert "deleted" not in verdict, verdict
    assert "still present: a broker message" in verdict, verdict


def test_a_job_whose_create_a_failover_lost_is_recreated_from_its_message_and_solved(
        sentinel_cluster: SentinelCluster, tmp_path: Path,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a job whose create a failover discarded, its message waiting on the new master
    settings, store, sources, job_id = _create_lost_in_failover(sentinel_cluster, tmp_path)

    # When a worker gets the message: it waits for the record, then recreates it from
    # the message (the create step was lost whole) and runs the job
    proc = worker_process(settings, concurrency=1)
    wait_until(lambda: _finished(store, job_id), timeout_s=60,
               message=lambda: f"the job to finish; log:\n{proc.log()[-3000:]}")

    # Then it is an ordinary completed job, solved once, whose history shows the
    # recreation; trace says so, and names no loss
    done = store.get(job_id)
    assert (done.status, done.attempts, done.answer) == (JobStatus.COMPLETED, 1,
                                                         "x = 2, x = 3"), done.error
    assert _outcome(settings, store, [job_id]) == {"completed": [job_id]}
    history = EventLog(store.client, store.keys).read(job_id)
    assert [e.type for e in history] == [EventType.CREATED, EventType.STARTED,
                                         EventType.COMPLETED]
    assert {k: v for k, v in history[0].fields.items() if k not in ("type", "at")} == {
        "status": "pending", "recreated": RECREATED_REASON, "worker": done.worker}
    verdict = trace_job(sources, job_id).verdict
    print(f"\nrecreated after a failover: {verdict}")
    assert verdict.startswith("completed at "), verdict
    assert f"record recreated from its message by worker {done.worker}" in verdict, verdict
    assert "lost" not in verdict.split("; record recreated")[0], verdict
    assert f"recreated from the message job_id={job_id}" in proc.log()


def test_doctor_reports_each_dbs_sentinel_master_and_replication(
        sentinel_cluster: SentinelCluster, tmp_path: Path) -> None:
    def check(**overrides: object) -> dict[str, Finding]:
        settings = _settings(sentinel_cluster, tmp_path, **overrides)
        main_url, broker_url, results_url = settings.require_urls()
        clients = {role: connect(url, settings=settings) for role, url in
                   (("main", main_url), ("broker", broker_url), ("results", results_url))}
        return {f.check: f for f in run_checks(settings, clients, KeySpace(), consistency=False)}

    # Given a master with one replica and asynchronous replication
    found = check()
    master = f"127.0.0.1:{sentinel_cluster.master_port()}"
    assert found["servers"].evidence["main"] == {
        "kind": "sentinel", "master_name": MASTER_NAME, "master": master, "db": "10"}
    assert f"main: sentinel master {MASTER_NAME} at {master} db 10" in found["servers"].message
    replication = found["replication:main"]
    assert replication.severity is Severity.WARNING
    assert "can be lost" in replication.message
    assert replication.fix == "JOBTRAIL_MAIN_MIN_REPLICAS=1"
    assert replication.evidence["role"] == "master"
    assert replication.evidence["connected_replicas"] == 1
    assert replication.evidence["min_replicas_to_write"] == 0
    assert replication.evidence["max_lag_s"] is not None
    assert found["replication:broker"].severity is Severity.WARNING

    # When jobtrail waits for the replica, the main DB's writes survive a failover
    assert check(main_min_replicas=1)["replication:main"].severity is Severity.OK
    # and asking for more replicas than there are is an error (every submit would fail)
    assert check(main_min_replicas=2)["replication:main"].severity is Severity.ERROR


def _cli_submit(settings: Settings) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "jobtrail", "submit", PROBLEMS[0]],
                          env=settings_env(settings), capture_output=True, text=True,
                          timeout=300, check=False)
    return done, time.monotonic() - started


def test_a_wrong_master_name_or_no_sentinel_is_one_short_line_within_the_window(
        sentinel_cluster: SentinelCluster, tmp_path: Path) -> None:
    # Given a master name no Sentinel monitors: the submit stops at once (not a failover)
    wrong, took_s = _cli_submit(_settings(sentinel_cluster, tmp_path,
                                          sentinel_master_name="nosuch"))
    assert wrong.returncode == 1, wrong
    [line] = wrong.stderr.strip().splitlines()
    assert "no Sentinel monitors a master named 'nosuch' (they monitor: mymaster)" in line
    assert took_s < 8.0

    # And with no Sentinel listening, the submit gives up once the failover window is over
    # (redis-py nests its retries three deep: a count-bounded retry waited minutes)
    port = free_port()
    nobody = {role: f"sentinel://127.0.0.1:{port}/{db}" for role, db in
              (("main_url", 10), ("broker_url", 11), ("results_url", 12))}
    dead, took_s = _cli_submit(_settings(sentinel_cluster, tmp_path, redis_failover_retry_s=2.0,
                                         **nobody))
    assert dead.returncode == 1, dead
    [line] = dead.stderr.strip().splitlines()
    assert line.startswith("error: Redis at sentinel://127.0.0.1:") and len(line) < 300, line
    assert f"Sentinel 127.0.0.1:{port}: " in line and "Connection refused" in line
    assert took_s < 12.0, took_s


def test_a_worker_on_a_redis_url_survives_its_server_turning_replica(
        sentinel_cluster: SentinelCluster, tmp_path: Path,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker pointed at the master's own address (redis://, no Sentinel), as behind
    # a managed endpoint that moves to the new master
    port = sentinel_cluster.master_port()
    plain = {role: f"redis://127.0.0.1:{port}/{db}" for role, db in
             (("main_url", 10), ("broker_url", 11), ("results_url", 12))}
    settings = _settings(sentinel_cluster, tmp_path, **plain)
    store = JobStore(connect(plain["main_url"], settings=settings),
                     KeySpace(queue=settings.queue))
    service = JobService(store, create_celery_app(settings))
    worker = worker_process(settings, concurrency=1)
    first = service.submit(PROBLEMS[0])
    wait_until(lambda: store.get(first.id).status is JobStatus.COMPLETED, timeout_s=60,
               interval_s=0.2, message="a first job (the worker is up)")

    # When a failover makes that address a replica (READONLY to every write) for a while
    sentinel_cluster.failover()
    assert sentinel_cluster.nodes[port].client().info("replication")["role"] == "slave"
    time.sleep(5.0)

    # Then the worker is alive: READONLY is a lost connection, not "Unrecoverable error"
    assert worker.proc.poll() is None, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()

    # and once the address is the master again, a new job is solved
    sentinel_cluster.failover()
    assert sentinel_cluster.master_port() == port
    fresh = service.submit(PROBLEMS[2])
    wait_until(lambda: store.get(fresh.id).status is JobStatus.COMPLETED, timeout_s=60,
               interval_s=0.2, message="a job after the address took writes again")
    assert worker.proc.poll() is None
