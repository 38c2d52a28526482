"""doctor: each misconfiguration and inconsistency found on a real server; none on a sound one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.doctor import Finding, Severity, run_checks
from jobtrail.embedded import EmbeddedRedis
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import Fate, JobStatus
from jobtrail.store import JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.trace import TraceSources, trace_job
from jobtrail.worker.app import TASK_SOLVE, create_celery_app
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.waiting import wait_until
from tests.retention.test_crash import seed


def _check(private_redis: EmbeddedRedis, tmp_path: Path, **overrides: object,
           ) -> dict[str, Finding]:
    settings = make_settings(private_redis, tmp_path, **overrides)
    clients = {"main": private_redis.client(10), "broker": private_redis.client(11),
               "results": private_redis.client(12)}
    findings = run_checks(settings, clients, KeySpace(), retention_ages_s={"weekly": 604800})
    return {f.check: f for f in findings}


def test_sound_deployment_has_no_errors(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    private_redis.client().config_set("appendonly", "yes")
    store = JobStore(private_redis.client(10), KeySpace())
    JobService(store, create_celery_app(make_settings(private_redis, tmp_path))).submit("1 + 1")

    found = _check(private_redis, tmp_path, result_expires_s=0)

    assert {f.severity for f in found.values()} == {Severity.OK}, found
    assert found["unindexed-records"].evidence["examined"]["records"] == 1


def test_eviction_and_no_persistence_are_errors(private_redis: EmbeddedRedis,
                                                tmp_path: Path) -> None:
    # Given the fixture's server: no AOF, no RDB; and an evicting policy
    private_redis.client().config_set("maxmemory-policy", "allkeys-lru")

    found = _check(private_redis, tmp_path)

    eviction = found["eviction:main"]
    assert eviction.severity is Severity.ERROR
    assert "allkeys-lru" in eviction.message
    assert eviction.evidence["dbs_on_server"] == ["main (db 10)", "broker (db 11)",
                                                  "results (db 12)"]
    assert found["eviction:broker"].severity is Severity.ERROR
    assert found["persistence:main"].severity is Severity.ERROR
    assert "appendonly" in found["persistence:main"].fix


def test_results_expiring_before_retention_is_a_warning(private_redis: EmbeddedRedis,
                                                        tmp_path: Path) -> None:
    found = _check(private_redis, tmp_path, result_expires_s=86400)
    assert found["result-expires:weekly"].severity is Severity.WARNING


def test_inconsistencies_are_found(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    keys = KeySpace()
    main: redis.Redis = private_redis.client(10)
    store = JobStore(main, keys)
    orphan, unindexed, fine = store.create("1"), store.create("2"), store.create("3")
    main.delete(keys.job(orphan.id))                       # hash gone, index entries stay
    main.zrem(keys.jobs_by_status("pending"), unindexed.id)  # record missing from its index
    private_redis.client(12).set(keys.celery_result("ghost-1"), '{"status": "SUCCESS"}')

    found = _check(private_redis, tmp_path)

    assert found["orphan-index-entries"].evidence["sample"] == [orphan.id]
    assert found["unindexed-records"].evidence["sample"] == [unindexed.id]
    assert found["results-without-record"].evidence["sample"] == ["ghost-1"]
    assert all(found[c].severity is Severity.ERROR for c in (
        "orphan-index-entries", "unindexed-records", "results-without-record"))
    # (all three were created without a message: pending-without-message lists them)
    assert fine.id not in str([f.evidence for c, f in found.items()
                               if c != "pending-without-message"])


def test_pending_jobs_without_a_message_are_found_and_requeued(
        private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    # Given two old pending jobs: one whose task was sent, one whose submitter died first
    settings = make_settings(private_redis, tmp_path)
    keys = KeySpace()
    main: redis.Redis = private_redis.client(10)
    store = JobStore(main, keys)
    service = JobService(store, create_celery_app(settings))
    sent = service.submit("1 + 1")
    lost = store.create("2 + 2")
    old = time.time() - 3600
    main.zadd(keys.jobs_by_status("pending"), {sent.id: old, lost.id: old})

    found = _check(private_redis, tmp_path)["pending-without-message"]

    assert found.severity is Severity.ERROR
    assert found.evidence["sample"] == [lost.id]
    assert found.evidence["examined"] == {"queued_messages": 1}

    # When it is requeued, the finding clears
    service.requeue(lost.id)
    assert _check(private_redis, tmp_path)["pending-without-message"].severity is Severity.OK


def test_doctor_and_trace_agree_on_a_fresh_job_whose_message_is_gone(
        private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    # Given jobs submitted a moment ago whose messages were then lost (queue flushed)
    settings = make_settings(private_redis, tmp_path)
    keys = KeySpace()
    main: redis.Redis = private_redis.client(10)
    store = JobStore(main, keys)
    service = JobService(store, create_celery_app(settings))
    lost = [j.id for j in service.submit_many([f"{n} + 1" for n in range(12)])]
    private_redis.client(11).delete(keys.queue())
    kept = service.submit("5 + 5")

    # Then doctor reports each at once (no grace period), as trace calls each stale
    found = _check(private_redis, tmp_path)["pending-without-message"]
    sources = TraceSources(main=main, broker=private_redis.client(11),
                           results=private_redis.client(12), keys=keys,
                           visibility_timeout_s=3600, result_expires_s=0)
    assert found.severity is Severity.ERROR and found.evidence["count"] == 12
    assert set(found.evidence["sample"]) <= set(lost) and len(found.evidence["sample"]) == 10
    assert sorted(found.evidence["ids"]) == sorted(lost)
    assert {j for j in [*lost, kept.id] if trace_job(sources, j).fate is Fate.STALE} == set(lost)

    # and its plain output names the first ten ids and how many more
    env = {**settings_env(settings), "COLUMNS": "4000"}
    shown = subprocess.run([sys.executable, "-m", "jobtrail", "doctor"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    [line] = [x for x in shown.stdout.splitlines() if x.strip().startswith("ids:")]
    assert line.strip() == (f"ids: {', '.join(found.evidence['sample'])} "
                            "(and 2 more; jobtrail doctor --json lists all)")

    # and `doctor --json` lists every id, not the first ten
    as_json = subprocess.run([sys.executable, "-m", "jobtrail", "doctor", "--json"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    [listed] = [f for f in json.loads(as_json.stdout)["findings"]
                if f["check"] == "pending-without-message"]
    assert sorted(listed["evidence"]["ids"]) == sorted(lost)


def test_a_job_processing_on_a_gone_worker_is_one_stale_processing_error(
        private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    # Given a job started by a worker that was then SIGKILLed (no heartbeat left), and
    # one started by a worker whose heartbeat is live
    store = JobStore(private_redis.client(10), KeySpace())
    lost, held = store.create("1 + 1"), store.create("2 + 2")
    assert store.start(lost.id, worker="w-killed@host") is not None
    assert store.start(held.id, worker="w-live@host") is not None
    HeartbeatStore(private_redis.client(10), KeySpace()).beat(
        "w-live@host", pid=1, started_at=time.time(), jobs=[held.id], interval_s=30,
        polled_at=time.time())

    found = _check(private_redis, tmp_path, visibility_timeout_s=600)

    # Then one check, an error, names the stale job, its gone worker and who hands it back
    assert [name for name in found if name in ("stale-processing", "stranded-jobs")] == [
        "stale-processing"]
    stale = found["stale-processing"]
    assert stale.severity is Severity.ERROR
    assert stale.evidence["sample"] == {lost.id: "w-killed@host"}
    assert stale.evidence["count"] == 1 and stale.evidence["processing"] == 2
    assert "w-killed@host (1)" in stale.message and "live worker's sweep" in stale.message
    assert f"jobtrail trace {lost.id}" in stale.message

    # and with no live worker left, it says nothing hands the job back before the timeout
    HeartbeatStore(private_redis.client(10), KeySpace()).stop("w-live@host")
    alone = _check(private_redis, tmp_path, visibility_timeout_s=600)["stale-processing"]
    assert alone.severity is Severity.ERROR and alone.evidence["count"] == 2
    assert "no live worker sweeps" in alone.message and "600 s" in alone.message


def test_the_workers_check_counts_one_live_worker_in_the_singular(
        private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    # Given one live worker polling the broker, then a second
    beats = HeartbeatStore(private_redis.client(10), KeySpace())
    beats.beat("w-one@host", pid=1, started_at=time.time(), jobs=[], interval_s=30,
               polled_at=time.time())
    one = _check(private_redis, tmp_path)["workers"]
    beats.beat("w-two@host", pid=2, started_at=time.time(), jobs=[], interval_s=30,
               polled_at=time.time())
    two = _check(private_redis, tmp_path)["workers"]

    # Then doctor reads as English in both cases
    assert (one.severity, one.message) == (Severity.OK, "1 live worker, polling the broker")
    assert two.message == "2 live workers, each polling the broker"


#: The checks that compare records, indexes, messages, heartbeats and results.
CONSISTENCY_CHECKS = ("unindexed-records", "orphan-index-entries", "pending-without-message",
                      "stale-processing", "results-without-record")


@pytest.mark.slow
@pytest.mark.parametrize("batch_max_jobs", [32, 1])
def test_doctor_reports_nothing_false_while_a_worker_drains_jobs(
        settings: Settings, store: JobStore, main_db: redis.Redis, broker_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess], batch_max_jobs: int) -> None:
    # Given 120 queued jobs (in batch messages, or a message each) and a real worker
    # draining them, each a solve of some 15 ms (a batch of "n + 1" jobs drained in fewer
    # doctor runs than the test needs on a loaded machine)
    settings = settings.model_copy(update={"batch_max_jobs": batch_max_jobs})
    jobs = JobService(store, create_celery_app(settings)).submit_many(
        [f"solve x^2 - {n}x + 6 = 0" for n in range(120)])
    worker_process(settings, concurrency=2)
    clients = {"main": main_db, "broker": broker_db, "results": results_db}

    # When doctor runs again and again while the jobs move between statuses
    runs, moving, false = 0, 0, []
    while (left := store.count_by_status()) and (
            left[JobStatus.PENDING] + left[JobStatus.PROCESSING]):
        found = {f.check: f for f in run_checks(settings, clients, keys)}
        runs += 1
        moving += 0 < left[JobStatus.PENDING] < len(jobs)
        false += [(c, found[c].message) for c in CONSISTENCY_CHECKS
                  if found[c].severity is not Severity.OK]
    print(f"\n{runs} doctor runs, {moving} while jobs moved; false findings by check:",
          Counter(c for c, _ in false))

    # Then no run reported an inconsistency: every record was moving, none was lost
    assert moving >= 3
    assert false == []
    # and a record truly missing from its index is still reported
    main_db.zrem(keys.jobs_by_status(store.get(jobs[7].id).status), jobs[7].id)
    found = {f.check: f for f in run_checks(settings, clients, keys)}
    assert found["unindexed-records"].severity is Severity.ERROR
    assert found["unindexed-records"].evidence["sample"] == [jobs[7].id]


@pytest.mark.slow
def test_doctor_reports_nothing_false_while_a_purge_runs(
        store: JobStore, archive: ArchiveStore, archive_settings: Settings,
        main_db: redis.Redis, broker_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace) -> None:
    # Given 400 old completed jobs purged five a batch by `jobtrail retention purge` (slow
    # enough that doctor runs while records leave, even when the other test process
    # takes the CPU: ten a batch once finished before a third run)
    old, _ = seed(store, results_db, keys, 400)
    cmd = [sys.executable, "-m", "jobtrail", "retention", "purge", "--status", "completed",
           "--older-than", "1d", "--batch-size", "5", "--json"]
    clients = {"main": main_db, "broker": broker_db, "results": results_db}
    proc = subprocess.Popen(cmd, env=settings_env(archive_settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # When doctor runs again and again while records leave the main DB
    runs, moving, false = 0, 0, []
    while proc.poll() is None:
        found = {f.check: f for f in run_checks(archive_settings, clients, keys)}
        runs += 1
        moving += 0 < archive.count() < len(old)
        false += [(c, found[c].message) for c in CONSISTENCY_CHECKS
                  if found[c].severity is not Severity.OK]
    print(f"\n{runs} doctor runs, {moving} while the purge ran; false findings by check:",
          Counter(c for c, _ in false))

    # Then no run reported a record the purge was removing as an orphan or unindexed
    assert proc.returncode == 0 and archive.count() == len(old)
    assert moving >= 3
    assert false == []


def test_a_job_whose_submit_is_sending_its_message_is_not_reported_lost(
        settings: Settings, store: JobStore, main_db: redis.Redis, broker_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace) -> None:
    # Given a submit that wrote its job's record and sends the message a moment later
    # (0.2 s after doctor read the empty queue: the record first, as submit does)
    app = create_celery_app(settings)
    job = store.create("solve x + 1 = 2")
    sent = threading.Event()

    def send_late(n: int) -> None:
        if n == 0 and not sent.is_set():  # the pending check's pass over the empty queue
            sent.set()
            threading.Timer(0.2, lambda: app.send_task(
                TASK_SOLVE, args=[job.id, job.problem], task_id=job.id)).start()

    # When doctor runs through that moment
    clients = {"main": main_db, "broker": broker_db, "results": results_db}
    found = {f.check: f for f in run_checks(settings, clients, keys, progress=send_late)}

    # Then the job is not reported without a message: its message arrived
    assert sent.is_set()
    assert wait_until(lambda: broker_db.llen(keys.queue()) == 1, timeout_s=5)
    assert found["pending-without-message"].severity is Severity.OK, \
        found["pending-without-message"].message
