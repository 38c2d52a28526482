"""Batched delivery with real prefork workers: each job of a batch keeps every guarantee."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.errors import JobLeftBatchError, MessageStillQueuedError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Job, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.store.node_stats import NodeStatsStore
from jobtrail.worker.app import TASK_SOLVE, TASK_SOLVE_BATCH, create_celery_app
from jobtrail.worker.batch import hard_limit_reason
from tests.cli.test_cli import run
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.waiting import job_finished, wait_until

pytestmark = [pytest.mark.slow]

#: Takes SymPy minutes in pure Python, so only a time limit or a kill ends it.
SLOW = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"
QUICK = [f"solve x^2 - {n * n} = 0" for n in range(1, 9)]


def _answer(n: int) -> str:
    return f"x = {-n}, x = {n}"


def _rig(redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
         **overrides: Any) -> tuple[Settings, JobStore, JobService, EventLog]:
    settings = make_settings(redis_server, tmp_path / "state", **overrides)
    store = JobStore(main_db, keys)
    return settings, store, JobService(store, create_celery_app(settings)), EventLog(main_db,
                                                                                   keys)


def _heartbeats(store: JobStore) -> list[Any]:
    from jobtrail.store.heartbeats import HeartbeatStore

    return HeartbeatStore(store.client, store.keys).list_workers()


def _messages(broker: redis.Redis, keys: KeySpace) -> list[dict[str, Any]]:
    """The broker's queued messages, oldest first: headers (task, id) and args."""
    out = []
    for raw in reversed(broker.lrange(keys.queue(), 0, -1)):
        message = json.loads(raw)
        headers = message["headers"]
        body = json.loads(base64.b64decode(message["body"]))
        out.append({"task": headers["task"], "id": headers["id"], "args": body[0]})
    return out


def _history(events: EventLog, job_id: str) -> list[EventType]:
    return [e.type for e in events.read(job_id)]


def _all_finished(store: JobStore, jobs: list[Job], results: redis.Redis | None = None,
                  ) -> bool:
    return all(job_finished(store, j.id, results) for j in jobs)


def test_a_batch_is_one_message_and_each_job_gets_a_single_jobs_record_and_result(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given batches of at most 4 jobs, and a single job solved the old way for comparison
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            batch_max_jobs=4)
    single = service.submit(QUICK[0])
    single_bad = service.submit("solve x^2 = ")

    # When six problems (one of them malformed) are submitted together
    jobs = service.submit_many([*QUICK[1:5], "solve x^2 = ", QUICK[5]])

    # Then two batch messages carry them, in order, each named in its jobs' records
    messages = _messages(broker_db, keys)
    assert [m["task"] for m in messages] == [TASK_SOLVE, TASK_SOLVE, TASK_SOLVE_BATCH,
                                             TASK_SOLVE_BATCH]
    batches = messages[2:]
    assert [m["args"] for m in batches] == [[[j.id, j.problem] for j in jobs[:4]],
                                            [[j.id, j.problem] for j in jobs[4:]]]
    assert all(m["id"].startswith("batch-") and m["id"] not in {j.id for j in jobs}
               for m in batches)
    assert [store.get(j.id).batch for j in jobs] == [batches[0]["id"]] * 4 + [
        batches[1]["id"]] * 2
    assert store.get(single.id).batch == "" and "batch" not in main_db.hgetall(
        keys.job(single.id))

    # When a worker runs them
    proc = worker_process(settings)
    wait_until(lambda: _all_finished(store, [single, single_bad, *jobs], results_db),
               timeout_s=60, message=lambda: f"jobs to finish; log:\n{proc.log()[-3000:]}")

    # Then each job has its own answer, history and attempt count
    finals = [store.get(j.id) for j in jobs]
    assert [f.answer for f in finals] == [_answer(n) for n in (2, 3, 4, 5)] + ["", _answer(6)]
    assert finals[4].status is JobStatus.FAILED and finals[4].error
    assert all(f.attempts == 1 for f in finals)
    for f in finals:
        assert _history(events, f.id) == [EventType.CREATED, EventType.STARTED,
                                          EventType.COMPLETED if f.answer else EventType.FAILED]
    # and its own Celery result, read by job id, shaped as a single job's
    app = service.app
    assert app.AsyncResult(jobs[0].id).get(timeout=5) == finals[0].result
    for mine, theirs in ((jobs[0], single), (jobs[4], single_bad)):
        batch_meta = json.loads(results_db.get(keys.celery_result(mine.id)))
        single_meta = json.loads(results_db.get(keys.celery_result(theirs.id)))
        assert batch_meta.keys() == single_meta.keys()
        for key in ("status", "name", "kwargs", "worker", "retries", "queue", "children"):
            assert batch_meta[key] == single_meta[key], key
        assert batch_meta["args"] == [mine.id, mine.problem]
        assert batch_meta["task_id"] == mine.id
        assert 0 < results_db.ttl(keys.celery_result(mine.id)) <= settings.result_expires_s
    assert json.loads(results_db.get(keys.celery_result(jobs[4].id)))["result"] == json.loads(
        results_db.get(keys.celery_result(single_bad.id)))["result"]
    # and no result is stored under a batch's own id
    assert not any(results_db.exists(keys.celery_result(m["id"])) for m in batches)


def test_batch_max_jobs_1_sends_one_solve_job_message_per_job_as_before(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            batch_max_jobs=1)
    jobs = service.submit_many(QUICK[:3])
    assert _messages(broker_db, keys) == [
        {"task": TASK_SOLVE, "id": j.id, "args": [j.id, j.problem]} for j in jobs]
    assert not any("batch" in main_db.hgetall(keys.job(j.id)) for j in jobs)
    worker_process(settings)
    wait_until(lambda: _all_finished(store, jobs), timeout_s=60, message="jobs to finish")
    assert [store.get(j.id).answer for j in jobs] == [_answer(n) for n in (1, 2, 3)]


@pytest.mark.crash
def test_pool_process_killed_mid_batch_resumes_without_solving_finished_jobs_again(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch of two quick jobs, a slow one and two more quick ones, the slow one running
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            solver_time_limit_s=2.0,
                                            solver_hard_time_limit_s=20.0)
    jobs = service.submit_many([QUICK[0], QUICK[1], SLOW, QUICK[2], QUICK[3]])
    proc = worker_process(settings)
    wait_until(lambda: store.get(jobs[2].id).status is JobStatus.PROCESSING, timeout_s=30,
               message=lambda: f"the slow job to start; log:\n{proc.log()[-2000:]}")
    before = [store.get(j.id) for j in jobs[:2]]
    assert all(b.status is JobStatus.COMPLETED for b in before)

    # When the pool process is SIGKILLed mid-batch
    [child] = proc.pool_children()
    child.send_signal(signal.SIGKILL)

    # Then the batch is redelivered: none lost, none left processing
    wait_until(lambda: _all_finished(store, jobs), timeout_s=60,
               message=lambda: f"jobs to finish; log:\n{proc.log()[-3000:]}")
    finals = [store.get(j.id) for j in jobs]
    # the finished jobs keep their answers and were not solved again
    assert finals[:2] == before
    log = proc.log()
    for f in finals[:2]:
        assert f"finished job of a redelivered batch skipped job_id={f.id}" in log
        assert f"duplicate delivery ignored job_id={f.id}" not in log
    for f in (*finals[:2], *finals[3:]):
        assert _history(events, f.id) == [EventType.CREATED, EventType.STARTED,
                                          EventType.COMPLETED]
        assert f.attempts == 1
    assert [f.answer for f in (*finals[:2], *finals[3:])] == [_answer(n) for n in (1, 2, 3, 4)]
    # the running one counts a new attempt, and then times out at its own soft limit
    slow = finals[2]
    assert (slow.status, slow.attempts, slow.error) == (JobStatus.FAILED, 2,
                                                         "timed out after 2 s")
    assert _history(events, slow.id) == [EventType.CREATED, EventType.STARTED,
                                         EventType.REDELIVERED, EventType.STARTED,
                                         EventType.FAILED]


def test_soft_time_limit_fails_one_job_of_a_batch_alone(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            solver_time_limit_s=1.0,
                                            solver_hard_time_limit_s=20.0)
    jobs = service.submit_many([QUICK[0], SLOW, QUICK[1], SLOW, QUICK[2]])
    proc = worker_process(settings)
    wait_until(lambda: _all_finished(store, jobs, results_db), timeout_s=60,
               message=lambda: f"jobs to finish; log:\n{proc.log()[-3000:]}")
    finals = [store.get(j.id) for j in jobs]
    assert [f.answer for f in finals[::2]] == [_answer(n) for n in (1, 2, 3)]
    for slow in finals[1::2]:
        assert (slow.status, slow.error, slow.attempts) == (JobStatus.FAILED,
                                                             "timed out after 1 s", 1)
        assert slow.finished_at - slow.started_at == pytest.approx(1.0, abs=0.5)  # type: ignore[operator]
    assert json.loads(results_db.get(keys.celery_result(jobs[1].id)))["status"] == "FAILURE"


def test_memory_limit_fails_one_job_of_a_batch_alone(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            solver_memory_limit_bytes=16 * 1024 * 1024,
                                            solver_time_limit_s=20.0,
                                            solver_hard_time_limit_s=30.0)
    jobs = service.submit_many([QUICK[0], "expand (1+x+y+z+w)^40", QUICK[1]])
    proc = worker_process(settings)
    wait_until(lambda: _all_finished(store, jobs), timeout_s=60,
               message=lambda: f"jobs to finish; log:\n{proc.log()[-3000:]}")
    finals = [store.get(j.id) for j in jobs]
    assert (finals[1].status, finals[1].error) == (JobStatus.FAILED,
                                                   "memory limit exceeded (16 MiB)")
    assert [finals[0].answer, finals[2].answer] == [_answer(1), _answer(2)]
    assert all(f.attempts == 1 for f in finals)


def test_cancelling_one_job_of_a_pending_batch_skips_it(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys)
    jobs = service.submit_many(QUICK[:3])
    service.cancel(jobs[1].id)
    worker_process(settings)
    wait_until(lambda: job_finished(store, jobs[0].id) and job_finished(store, jobs[2].id)
               and results_db.exists(keys.celery_result(jobs[1].id)), timeout_s=60,
               message="the batch to run")
    assert [store.get(jobs[0].id).answer, store.get(jobs[2].id).answer] == [
        _answer(1), _answer(3)]
    cancelled = store.get(jobs[1].id)
    assert (cancelled.status, cancelled.attempts) == (JobStatus.CANCELLED, 0)
    assert _history(events, cancelled.id) == [EventType.CREATED, EventType.CANCELLED,
                                              EventType.SKIPPED]
    assert json.loads(results_db.get(keys.celery_result(jobs[1].id)))["status"] == "REVOKED"


@pytest.mark.crash
def test_a_stuck_job_is_killed_by_the_hard_limit_and_its_batch_resumes(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch [quick, slow, quick], two attempts a job, and the slow one stuck where no
    # soft limit reaches it (its pool process stopped) on each delivery
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            solver_time_limit_s=1.0,
                                            solver_hard_time_limit_s=2.0, max_attempts=2)
    jobs = service.submit_many([QUICK[0], SLOW, QUICK[1]])
    proc = worker_process(settings)
    for attempt in (1, 2):
        wait_until(lambda a=attempt: (j := store.get(jobs[1].id)).status
                   is JobStatus.PROCESSING and j.attempts == a, timeout_s=60,
                   message=lambda a=attempt: f"attempt {a}; log:\n{proc.log()[-3000:]}")
        [child] = proc.pool_children()
        child.send_signal(signal.SIGSTOP)   # SIGALRM and the watchdog thread stop with it

    # When the batch's hard limit passes each time
    wait_until(lambda: _all_finished(store, jobs), timeout_s=90,
               message=lambda: f"jobs to finish; log:\n{proc.log()[-3000:]}")

    # Then the stuck job failed with the hard limit as its reason once its attempts ran out,
    # the first job was not solved again and the last one ran once
    stuck = store.get(jobs[1].id)
    assert (stuck.status, stuck.attempts, stuck.error) == (
        JobStatus.FAILED, 2, hard_limit_reason(2.0))
    assert _history(events, stuck.id) == [EventType.CREATED, EventType.STARTED,
                                          EventType.REDELIVERED, EventType.STARTED,
                                          EventType.FAILED]
    # and the worker's own statistics count it as a timeout (its main process did)
    node = NodeStatsStore(main_db, keys)
    stats = wait_until(lambda: (s := node.read(f"w1@{socket.gethostname()}")).completed == 2
                       and sum(s.failed_by_reason.values()) == 1 and s, timeout_s=10,
                       message="the worker to count the three jobs")
    assert stats.failed_by_reason == {"timeout": 1}
    for j, n in ((jobs[0], 1), (jobs[2], 2)):
        final = store.get(j.id)
        assert (final.answer, final.attempts) == (_answer(n), 1)
        assert _history(events, j.id) == [EventType.CREATED, EventType.STARTED,
                                          EventType.COMPLETED]


def test_the_per_job_watchdog_ends_a_process_stuck_where_the_soft_limit_cannot_reach() -> None:
    # Given a job holding the GIL in one C call (SIGALRM's Python handler never runs)
    script = textwrap.dedent("""
        from jobtrail.worker.batch import _watchdog, job_limits
        with _watchdog(1.0), job_limits(0.2):
            sum(range(10 ** 12))
        print("not stopped")
    """)
    # When it runs past the hard limit
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    # Then the watchdog ended the process (exit code 1) at the hard limit, with its stack
    assert done.returncode == 1 and "not stopped" not in done.stdout
    assert time.monotonic() - started < 10
    assert "Timeout" in done.stderr


def test_a_soft_limit_swallowed_once_is_raised_again_until_the_solve_ends() -> None:
    # Given a job whose first SoftTimeLimitExceeded is swallowed (raised inside a finalizer,
    # Python prints "Exception ignored" and drops it; or a broad except in library code)
    script = textwrap.dedent("""
        import time
        from billiard.exceptions import SoftTimeLimitExceeded
        from jobtrail.worker.batch import job_limits
        swallowed = 0
        started = time.monotonic()
        try:
            with job_limits(0.2):
                while time.monotonic() - started < 5:
                    try:
                        sum(range(10 ** 4))
                    except SoftTimeLimitExceeded:
                        if swallowed == 0:
                            swallowed += 1  # the first one lost, as in a finalizer
                            continue
                        raise
            print("ran on", round(time.monotonic() - started, 2))
        except SoftTimeLimitExceeded:
            print("stopped", swallowed, round(time.monotonic() - started, 2))
        time.sleep(1.2)  # no SIGALRM after the limit's end
        print("after")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    # Then the limit was raised again SOFT_LIMIT_REPEAT_S later and ended the job (before, it
    # ran on to the hard limit, whose kill counted an attempt of its own), and once the
    # limit's block ended no SIGALRM came
    assert done.returncode == 0, done.stderr
    word, swallowed, took = done.stdout.split("\n")[0].split()
    assert (word, swallowed) == ("stopped", "1") and 0.6 <= float(took) < 1.5, done.stdout
    assert done.stdout.split("\n")[1] == "after"


def test_cli_submit_file_from_stdin_batches_and_waits_for_all(
        settings: Settings, store: JobStore, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker and 70 problems on standard input (one a line, blank lines ignored)
    worker_process(settings)
    lines = [f"evaluate {n} + {n}" for n in range(70)]
    # When `jobtrail submit --file - --wait --json` reads them
    done = subprocess.run([sys.executable, "-m", "jobtrail", "submit", "--file", "-", "--wait",
                           "--json", "--timeout", "120"], input="\n".join(lines) + "\n\n",
                          env=settings_env(settings), capture_output=True, text=True,
                          timeout=180, check=False)
    # Then it prints the list of the 70 jobs, all finished, and no progress bar in the JSON
    assert done.returncode == 0, done.stderr
    jobs = json.loads(done.stdout)
    assert [j["answer"] for j in jobs] == [str(2 * n) for n in range(70)]
    assert done.stderr == ""
    # and they went in batches of at most batch_max_jobs, in order
    batches = [store.get(j["id"]).batch for j in jobs]
    assert batches == sorted(batches, key=batches.index) and len(set(batches)) == 3
    assert all(b.startswith("batch-") for b in batches)


def test_requeue_of_a_job_of_a_batch_sends_it_alone_under_its_own_id(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace) -> None:
    # Given a batch whose message was lost
    _, store, service, _ = _rig(redis_server, tmp_path, main_db, keys)
    jobs = service.submit_many(QUICK[:3])
    broker_db.delete(keys.queue())
    # When one of its jobs is requeued
    service.requeue(jobs[1].id)
    # Then one solve_job message carries it, under the job's own id (never the batch's)
    assert _messages(broker_db, keys) == [
        {"task": TASK_SOLVE, "id": jobs[1].id, "args": [jobs[1].id, jobs[1].problem]}]


def test_requeue_of_a_pending_job_whose_message_is_still_queued_is_refused_and_runs_once(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch and a single job whose messages are queued (no worker yet)
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys)
    jobs = service.submit_many(QUICK[:3])
    single = service.submit(QUICK[3])
    queued = _messages(broker_db, keys)
    # When a job of the batch and the single job are requeued (Python, then the CLI)
    for job, message_id, ahead in ((jobs[1], jobs[0].batch, 0), (single, single.id, 1)):
        with pytest.raises(MessageStillQueuedError) as refused:
            service.requeue(job.id)
        # Then each is refused, naming the message that will run it, and nothing is sent
        assert str(refused.value) == (
            f"job {job.id} not requeued: its message {message_id} is still in the broker "
            f"(queued, {ahead} ahead); it will run from there")
    cli = run(settings, "requeue", jobs[2].id)
    assert cli.returncode != 0 and cli.stdout == ""
    assert f"job {jobs[2].id} not requeued: its message {jobs[0].batch}" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert _messages(broker_db, keys) == queued
    # and once a worker runs them, each job started exactly once, from its own message
    worker_process(settings)
    wait_until(lambda: _all_finished(store, [*jobs, single]), timeout_s=120)
    for job in [*jobs, single]:
        assert store.get(job.id).status is JobStatus.COMPLETED
        history = _history(events, job.id)
        assert history.count(EventType.STARTED) == 1, history
        assert EventType.REDELIVERED not in history, history


def test_requeue_of_a_pending_job_whose_batch_a_worker_holds_is_refused(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch whose first job runs for minutes on a live worker (message unacked)
    settings, store, service, _ = _rig(redis_server, tmp_path, main_db, keys)
    jobs = service.submit_many([SLOW, QUICK[0]])
    worker_process(settings)
    wait_until(lambda: store.get(jobs[0].id).status is JobStatus.PROCESSING, timeout_s=60)
    # When its second, still pending job is requeued
    with pytest.raises(MessageStillQueuedError) as refused:
        service.requeue(jobs[1].id)
    # Then it is refused (the worker holding the batch will run it) and nothing is sent
    assert refused.value.message_id == jobs[0].batch
    assert refused.value.where.startswith("held unacknowledged by a worker")
    assert broker_db.llen(keys.queue()) == 0
    assert store.get(jobs[1].id).status is JobStatus.PENDING


def test_requeue_of_a_pending_job_whose_batch_a_gone_worker_holds_sends_it_alone(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch whose first job runs on a worker, its second pending behind it
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            heartbeat_interval_s=1.0)
    jobs = service.submit_many([SLOW, QUICK[0]])
    worker = worker_process(settings)
    wait_until(lambda: store.get(jobs[0].id).status is JobStatus.PROCESSING, timeout_s=60)
    # When that worker dies (main process and pool) and is gone past the threshold (3 s),
    # no other worker running to sweep
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    gone = time.monotonic()
    wait_until(lambda: not any(b.alive for b in _heartbeats(store)), timeout_s=30,
               message="the heartbeat to expire")
    time.sleep(max(0.0, 3.5 - (time.monotonic() - gone)))
    assert broker_db.hlen(keys.unacked()) == 1 and broker_db.llen(keys.queue()) == 0
    # and its pending job is requeued
    back = service.requeue(jobs[1].id)
    # Then that job alone leaves the batch and is sent under its own id; the batch
    # message stays unacknowledged (the dead-worker sweep's to take back), the running
    # job as it was
    assert back.status is JobStatus.PENDING and back.batch == ""
    assert broker_db.hlen(keys.unacked()) == 1
    assert _messages(broker_db, keys) == [
        {"task": TASK_SOLVE, "id": jobs[1].id, "args": [jobs[1].id, jobs[1].problem]}]
    assert store.get(jobs[0].id).status is JobStatus.PROCESSING
    assert EventType.REDELIVERED not in _history(events, jobs[0].id)
    [left] = [e for e in events.read(jobs[1].id) if e.type is EventType.REDELIVERED]
    assert left.fields["left_batch"] == jobs[0].batch


def test_requeue_refusal_of_a_message_a_gone_worker_holds_names_the_sweep() -> None:
    refused = MessageStillQueuedError(
        "j1", "batch-1", "held unacknowledged by a worker, delivery tag t, which no live "
        "worker lists", outlook="it does not run from there if its worker is gone: the "
        "dead-worker sweep takes it back once unacknowledged for 30 s (then `jobtrail "
        "recover`, or requeue again)")
    assert "it will run from there" not in str(refused)
    assert "`jobtrail recover`" in str(refused)


def test_the_watchdog_stays_armed_between_jobs_and_is_disarmed_when_the_batch_ends() -> None:
    # Given jobs of a batch arming the watchdog one after another (a hard limit of 1 s)
    script = textwrap.dedent("""
        import time
        from types import SimpleNamespace
        from jobtrail.worker.app import TASK_SOLVE_BATCH
        from jobtrail.worker.batch import _armed_at, _disarm_after_batch, _watchdog
        for _ in range(500):
            with _watchdog(1.0):
                pass
        first = _armed_at[0]
        # When the batch task ends (task_postrun) and the process idles past the limit
        _disarm_after_batch(task=SimpleNamespace(name=TASK_SOLVE_BATCH))
        time.sleep(1.5)
        print("alive", first is not None and _armed_at[0] is None)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    # Then the process lives on: the arm was kept across the jobs and cancelled at the end
    assert (done.returncode, done.stdout.strip()) == (0, "alive True"), done.stderr


def _main_process_stopped_mid_job(settings: Settings, store: JobStore,
                                  worker_process: Callable[..., WorkerProcess],
                                  job: Job) -> WorkerProcess:
    """A worker w1 whose main process is stopped (SIGSTOP) once *job* is processing: its
    heartbeat stops, its pool process solves on. The caller sends SIGCONT."""
    holder = worker_process(settings, hostname="w1")
    wait_until(lambda: store.get(job.id).status is JobStatus.PROCESSING, timeout_s=60)
    os.kill(holder.proc.pid, signal.SIGSTOP)
    return holder


@pytest.mark.crash
def test_requeue_of_one_job_of_a_batch_leaves_its_processing_batch_mate_alone(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch whose first job a worker's pool process solves right now, while the
    # worker's main process is stopped: its heartbeat expires, the solve goes on
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            heartbeat_interval_s=1.0,
                                            solver_time_limit_s=60.0,
                                            solver_hard_time_limit_s=80.0)
    jobs = service.submit_many([SLOW, QUICK[0], QUICK[1]])
    holder = _main_process_stopped_mid_job(settings, store, worker_process, jobs[0])
    [child] = holder.pool_children()
    try:
        wait_until(lambda: not any(b.alive for b in _heartbeats(store)), timeout_s=30,
                   message="the heartbeat to expire")
        time.sleep(3.5)  # the batch message unacknowledged past the gone threshold
        assert child.is_running() and child.status() != "stopped"
        # When one pending job of the batch is requeued
        back = service.requeue(jobs[1].id)
        # Then that job alone is sent, under its own id; the batch message stays with
        # its holder, the processing job and the other pending one untouched
        assert back.status is JobStatus.PENDING
        assert _messages(broker_db, keys) == [
            {"task": TASK_SOLVE, "id": jobs[1].id, "args": [jobs[1].id, jobs[1].problem]}]
        assert broker_db.hlen(keys.unacked()) == 1
        running = store.get(jobs[0].id)
        assert (running.status, running.worker.split("@")[0]) == (JobStatus.PROCESSING, "w1")
        for job in (jobs[0], jobs[2]):
            assert EventType.REDELIVERED not in _history(events, job.id)
        assert store.get(jobs[2].id).status is JobStatus.PENDING
        # and a second worker (no sweep of its own) runs the requeued job once, and not
        # the batch
        other = worker_process(settings.model_copy(update={"recover_dead_workers": False}),
                               hostname="w2")
        wait_until(lambda: job_finished(store, jobs[1].id), timeout_s=60,
                   message=lambda: f"the requeued job; log:\n{other.log()[-3000:]}")
        assert store.get(jobs[1].id).answer == _answer(1)
        assert _history(events, jobs[1].id).count(EventType.STARTED) == 1
        assert store.get(jobs[0].id).status is JobStatus.PROCESSING
        assert _history(events, jobs[0].id).count(EventType.STARTED) == 1
        assert store.get(jobs[2].id).status is JobStatus.PENDING
    finally:
        os.kill(holder.proc.pid, signal.SIGCONT)


@pytest.mark.crash
def test_a_requeued_processing_job_keeps_its_own_message_when_its_old_run_fails_late(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch whose first job a pool process solves while the worker's main process
    # is stopped (its heartbeat expires: the worker reads gone), that job requeued alone
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            heartbeat_interval_s=1.0,
                                            solver_time_limit_s=8.0,
                                            solver_hard_time_limit_s=10.0)
    jobs = service.submit_many([SLOW, QUICK[0]])
    holder = _main_process_stopped_mid_job(settings, store, worker_process, jobs[0])
    try:
        wait_until(lambda: not any(b.alive for b in _heartbeats(store)), timeout_s=30,
                   message="the heartbeat to expire")
        back = service.requeue(jobs[0].id)
        assert (back.status, back.batch) == (JobStatus.PENDING, "")
        # When the old run's solve fails afterwards (its soft time limit) and sends its finish
        wait_until(lambda: "outcome dropped" in holder.log()
                   or store.get(jobs[0].id).status is JobStatus.FAILED, timeout_s=30,
                   message=lambda: f"the old run's finish; log:\n{holder.log()[-3000:]}")
        # Then the old run's outcome is dropped: the job waits for its own message, still
        # queued, as a requeued job whose old run succeeded late does
        requeued = store.get(jobs[0].id)
        assert (requeued.status, requeued.error) == (JobStatus.PENDING, "")
        assert [m["id"] for m in _messages(broker_db, keys)] == [jobs[0].id]
        assert _history(events, jobs[0].id) == [EventType.CREATED, EventType.STARTED,
                                                EventType.REDELIVERED]
    finally:
        os.kill(holder.proc.pid, signal.SIGCONT)


def test_a_batch_delivery_leaves_the_job_requeued_alone_and_runs_the_rest(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a queued batch, one of whose jobs left it (as requeue does before it sends the
    # job alone), and a start by that batch's delivery sent after the job left
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys)
    jobs = service.submit_many(QUICK[:3])
    left = store.leave_batch(store.get(jobs[1].id), reason="requeued: sent alone")
    assert (left.status, left.batch) == (JobStatus.PENDING, "")
    ticket = store.send_start(jobs[1].id, worker="w9@host", token="t9", batch=jobs[0].batch)
    refused = store.read_start(ticket)
    assert isinstance(refused, JobLeftBatchError) and refused.batch == ""
    # When a worker runs the batch
    worker_process(settings)
    wait_until(lambda: _all_finished(store, [jobs[0], jobs[2]]), timeout_s=60)
    # Then its other jobs ran, and the job that left it did not (its own message would)
    assert [store.get(j.id).answer for j in (jobs[0], jobs[2])] == [_answer(1), _answer(3)]
    assert store.get(jobs[1].id).status is JobStatus.PENDING
    assert EventType.STARTED not in _history(events, jobs[1].id)
