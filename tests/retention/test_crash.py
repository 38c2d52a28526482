"""SIGKILL a real purge process at each step; no job is lost and a rerun finishes the work."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.retention import RetentionPolicy, purge
from jobtrail.store import ArchiveStore, JobStore, RetentionStore, TombstoneStore
from tests.helpers.processes import settings_env
from tests.helpers.seeding import seed_celery_meta, seed_job
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.crash

DAY = 86_400.0
CHILD = Path(__file__).resolve().parent.parent / "helpers" / "purge_child.py"


def seed(store: JobStore, results: redis.Redis, keys: KeySpace, n: int) -> tuple[list[str],
                                                                                  list[str]]:
    t = now_s() - 10 * DAY
    old = [seed_job(store, JobStatus.COMPLETED, t + i) for i in range(n)]
    for job_id in old[::3]:
        seed_celery_meta(results, keys, job_id)
    recent = [seed_job(store, JobStatus.COMPLETED, now_s() - 60) for _ in range(3)]
    return old, recent


def assert_nothing_lost(store: JobStore, archive: ArchiveStore, main_db: redis.Redis,
                        keys: KeySpace, ids: list[str]) -> int:
    """Every job is live or archived (or both); every tombstone has its archive row."""
    tombstones = TombstoneStore(main_db, keys)
    gone = 0
    for job_id in ids:
        live = store.find(job_id) is not None
        archived = archive.find(job_id)
        assert live or archived is not None, f"job {job_id} lost"
        if not live:
            gone += 1
            stone = tombstones.find(job_id)
            assert stone is not None and archived is not None
            assert archived.job["id"] == job_id and archived.purged_at == stone.purged_at
    return gone


def assert_rerun_finishes(store: JobStore, rstore: RetentionStore, archive: ArchiveStore,
                          main_db: redis.Redis, keys: KeySpace, old: list[str],
                          recent: list[str]) -> None:
    report = purge(rstore, archive, RetentionPolicy("crash", (JobStatus.COMPLETED,), DAY),
                   tombstone_ttl_s=3600, batch_size=4)
    assert report.skipped == 0
    assert not any(store.find(j) for j in old) and all(store.find(j) for j in recent)
    assert archive.count() == len(old)  # one row per job, none twice
    assert assert_nothing_lost(store, archive, main_db, keys, old) == len(old)
    assert main_db.zcard(keys.jobs_by_status(JobStatus.COMPLETED)) == len(recent)


@pytest.mark.parametrize(("step", "kill_at"), [
    ("read", 2),       # after the second batch was read, before its archive write
    ("archived", 2),   # after its archive COMMIT, before the read-back
    ("verified", 2),   # after the read-back, before any Redis step of the batch
    ("deleted", 3),    # between Redis steps: first chunk of the second batch deleted
])
def test_sigkill_at_each_step_loses_nothing(
        step: str, kill_at: int, store: JobStore, archive: ArchiveStore, settings: Settings,
        main_db: redis.Redis, results_db: redis.Redis, keys: KeySpace) -> None:
    # Given 14 old completed jobs, purged 6 per batch in Redis chunks of 2
    old, recent = seed(store, results_db, keys, 14)
    rstore = RetentionStore(main_db, results_db, keys)
    args = {"main_url": settings.main_url, "results_url": settings.results_url,
            "archive_url": archive.url,
            "table_prefix": archive.jobs_table.name.removesuffix("archived_jobs"),
            "older_than_s": DAY, "batch_size": 6, "chunk": 2 if step != "deleted" else 3,
            "kill_step": step, "kill_at": kill_at}
    # When the purge process is SIGKILLed at that step
    proc = subprocess.run([sys.executable, str(CHILD), json.dumps(args)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # Then no job is lost, and the killed run stays "running" in the audit
    gone = assert_nothing_lost(store, archive, main_db, keys, old)
    if step == "deleted":  # deletes run in order on one thread: the first batch and a chunk
        assert gone == 9
    else:  # the first batch's delete overlaps the second batch: done or not, never half-way
        assert gone in (0, 2, 4, 6), gone
    if step in ("archived", "verified"):  # batches are archived in order, on one thread
        assert archive.count() == 12
    assert [r.outcome for r in archive.history()] == ["running"]
    # And a rerun finishes the work without a duplicate row
    assert_rerun_finishes(store, rstore, archive, main_db, keys, old, recent)


@pytest.mark.slow
def test_random_sigkills_of_the_cli_purge(store: JobStore, archive: ArchiveStore,
                                          archive_settings: Settings, main_db: redis.Redis,
                                          results_db: redis.Redis, keys: KeySpace) -> None:
    # Given 150 old jobs purged one per batch by `jobtrail retention purge`
    old, recent = seed(store, results_db, keys, 150)
    rstore = RetentionStore(main_db, results_db, keys)
    rng = random.Random(7)
    cmd = [sys.executable, "-m", "jobtrail", "retention", "purge", "--status", "completed",
           "--older-than", "1d", "--batch-size", "1", "--json"]
    for _ in range(3):
        before = archive.count()
        proc = subprocess.Popen(cmd, env=settings_env(archive_settings),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # When it is SIGKILLed at a random moment once it has started archiving
        wait_until(lambda b=before, p=proc: archive.count() > b or p.poll() is not None,
                   timeout_s=30, interval_s=0.01, message="the purge to start archiving")
        time.sleep(rng.uniform(0.0, 0.05))
        proc.kill()
        assert proc.wait(timeout=10) == -signal.SIGKILL, "the purge ended before the kill"
        # Then every job is live or archived after each kill
        gone = assert_nothing_lost(store, archive, main_db, keys, old)
        assert 0 < gone < len(old)
    assert_rerun_finishes(store, rstore, archive, main_db, keys, old, recent)


def test_sigterm_stops_the_cli_purge_like_ctrl_c(
        store: JobStore, archive: ArchiveStore, archive_settings: Settings,
        main_db: redis.Redis, results_db: redis.Redis, keys: KeySpace) -> None:
    # Given 150 old jobs purged one per batch by `jobtrail retention purge`
    old, recent = seed(store, results_db, keys, 150)
    cmd = [sys.executable, "-m", "jobtrail", "retention", "purge", "--status", "completed",
           "--older-than", "1d", "--batch-size", "1", "--json"]
    proc = subprocess.Popen(cmd, env=settings_env(archive_settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_until(lambda: archive.count() > 0 or proc.poll() is not None, timeout_s=30,
               interval_s=0.01, message="the purge to start archiving")
    # When it gets SIGTERM (a service manager stopping it)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    # Then it stops like Ctrl-C: one line, exit 130, the audit row records the interruption
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].endswith("interrupted")
    (run,) = archive.history()
    assert run.outcome == "failed" and run.error == "interrupted"
    gone = assert_nothing_lost(store, archive, main_db, keys, old)
    assert 0 < gone < len(old) and run.counts["purged"] == gone
    # And a rerun finishes the work
    assert_rerun_finishes(store, RetentionStore(main_db, results_db, keys), archive, main_db,
                          keys, old, recent)


def test_sigterm_during_a_restore_step_is_taken_between_records(
        store: JobStore, archive: ArchiveStore, archive_settings: Settings,
        redis_server: EmbeddedRedis, main_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace) -> None:
    # Given 300 purged jobs being restored by `jobtrail retention restore --since 1d`
    old, _ = seed(store, results_db, keys, 300)
    purge(RetentionStore(main_db, results_db, keys), archive,
          RetentionPolicy("p", (JobStatus.COMPLETED,), DAY), tombstone_ttl_s=3600)
    cmd = [sys.executable, "-m", "jobtrail", "retention", "restore", "--since", "1d", "--json"]
    proc = subprocess.Popen(cmd, env=settings_env(archive_settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert redis_server.process is not None
    try:
        wait_until(lambda: main_db.exists(*(keys.job(j) for j in old)) > 0
                   or proc.poll() is not None, timeout_s=30, interval_s=0.005,
                   message="the restore to begin")
        # When redis-server stops answering mid-step and the command gets SIGTERM then
        # (the signal lands while a record's Lua step is sent and its reply unread)
        redis_server.process.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=30)
    # Then it stops between two records: exit 130, one line, and the audit row counts
    # exactly the jobs that are live again, each marked restored in the archive
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].endswith("interrupted")
    (run,) = [r for r in archive.history() if r.kind == "restore"]
    assert run.outcome == "failed" and run.error == "interrupted"
    live = [j for j in old if store.find(j) is not None]
    assert 0 < len(live) < len(old) and run.counts["restored"] == len(live)
    assert all(archive.get(j).restored_at is not None for j in live)
    assert all(archive.get(j).restored_at is None for j in old if j not in set(live))
