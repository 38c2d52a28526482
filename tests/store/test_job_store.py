"""JobStore on a real Redis: creation, lifecycle transitions, refusals, concurrency."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.connections import connect
from jobtrail.errors import (
    ConcurrentUpdateError,
    InvalidTransitionError,
    JobNotFoundError,
    MalformedRecordError,
)
from jobtrail.keys import KeySpace
from jobtrail.models import RECREATED_REASON, EventType, Job, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.store.codec import encode_job
from jobtrail.store.job_store import give_up_reason
from jobtrail.store.stats import LatencyHistogram, StatsStore, quantile
from tests.conftest import MAIN_DB
from tests.helpers.waiting import wait_until


def _dump(client: redis.Redis) -> dict[str, object]:
    """Every key with its type and value, for before/after comparisons."""
    out: dict[str, object] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = client.xrange(key)
        else:
            out[key] = kind
    return out


def test_create_writes_hash_indexes_and_event(store: JobStore, main_db: redis.Redis,
                                              keys: KeySpace, events: EventLog) -> None:
    job = store.create("solve x^2 = 4")

    assert main_db.hgetall(keys.job(job.id)) == {
        "id": job.id, "problem": "solve x^2 = 4", "kind": "", "status": "pending",
        "created_at": repr(job.created_at), "started_at": "", "finished_at": "",
        "worker": "", "attempts": "0", "result": "", "error": "", "version": "0",
    }
    assert main_db.hgetall(keys.job(job.id)) == encode_job(job)  # Lua and codec agree
    assert main_db.zscore(keys.jobs(), job.id) == pytest.approx(job.created_at)
    assert main_db.zrange(keys.jobs_by_status("pending"), 0, -1) == [job.id]
    assert [e.type for e in events.read(job.id)] == [EventType.CREATED]


def test_create_refuses_an_existing_id(store: JobStore) -> None:
    store.create("1 + 1", job_id="dup-1")
    with pytest.raises(ConcurrentUpdateError):
        store.create("2 + 2", job_id="dup-1")
    assert store.get("dup-1").problem == "1 + 1"


def test_racing_recreations_of_a_lost_record_write_it_once(
        redis_server: Any, main_db: redis.Redis, keys: KeySpace, events: EventLog) -> None:
    # Given a job whose record is missing, and eight workers (threads, a connection each)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def race(n: int) -> None:
        store = JobStore(redis_server.client(10), keys)
        barrier.wait()
        outcomes.append(store.recreate("lost-1", "2 + 2", worker=f"w{n}", batch="batch-b1",
                                       created_at=1000.0))

    # When they all recreate it from their message at once
    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Then exactly one writes it, pending in its batch, with one created event naming it
    assert sorted(outcomes) == ["created"] + ["exists"] * 7
    job = JobStore(main_db, keys).get("lost-1")
    assert (job.status, job.problem, job.batch, job.attempts, job.created_at) == (
        JobStatus.PENDING, "2 + 2", "batch-b1", 0, 1000.0)
    assert main_db.zscore(keys.jobs_by_status(JobStatus.PENDING), "lost-1") == 1000.0
    [created] = events.read("lost-1")
    assert created.type is EventType.CREATED and created.at > 1000.0
    assert created.fields["recreated"] == RECREATED_REASON
    assert created.fields["worker"].startswith("w")


def test_recreate_never_resurrects_a_purged_job(store: JobStore, main_db: redis.Redis,
                                                keys: KeySpace) -> None:
    # Given a purged job: no record, its tombstone there
    main_db.hset(keys.tombstone("gone-1"), mapping={"job_id": "gone-1", "purged_at": "5.0"})
    # When a worker would recreate it, nothing is written
    assert store.recreate("gone-1", "1 + 1", worker="w1") == "purged"
    assert main_db.keys("*gone-1*") == [keys.tombstone("gone-1")]
    assert main_db.zscore(keys.jobs(), "gone-1") is None


def test_full_lifecycle_moves_index_entries(store: JobStore, main_db: redis.Redis,
                                            keys: KeySpace, events: EventLog) -> None:
    job = store.create("2 + 2")
    started = store.start(job.id, worker="w1@host")
    assert started is not None
    assert (started.status, started.attempts, started.worker) == (
        JobStatus.PROCESSING, 1, "w1@host")
    assert main_db.zrange(keys.jobs_by_status("pending"), 0, -1) == []
    assert main_db.zrange(keys.jobs_by_status("processing"), 0, -1) == [job.id]

    done = store.complete(job.id, {"text": "4", "latex": "4", "steps": []}, kind="arithmetic")

    assert done.status is JobStatus.COMPLETED
    assert done.answer == "4" and done.kind == "arithmetic"
    assert done.finished_at is not None and done.finished_at >= started.started_at  # type: ignore[operator]
    assert main_db.zrange(keys.jobs_by_status("processing"), 0, -1) == []
    assert main_db.zrange(keys.jobs_by_status("completed"), 0, -1) == [job.id]
    assert [e.type for e in events.read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]


@pytest.mark.parametrize(("setup", "target"), [
    ([], JobStatus.COMPLETED),                                     # pending -> completed
    ([JobStatus.PROCESSING, JobStatus.COMPLETED], JobStatus.PROCESSING),
    ([JobStatus.PROCESSING, JobStatus.FAILED], JobStatus.PENDING),
    ([JobStatus.PROCESSING, JobStatus.COMPLETED], JobStatus.FAILED),
])
def test_illegal_transition_is_refused_and_changes_nothing(
        store: JobStore, main_db: redis.Redis, setup: list[JobStatus],
        target: JobStatus) -> None:
    job = store.create("1 + 2")
    for status in setup:
        store.transition(job.id, status)
    before = _dump(main_db)

    with pytest.raises(InvalidTransitionError) as info:
        store.transition(job.id, target)

    assert info.value.to == target.value
    assert info.value.from_ == (setup[-1].value if setup else "pending")
    assert _dump(main_db) == before


def test_transition_of_missing_job(store: JobStore, main_db: redis.Redis) -> None:
    with pytest.raises(JobNotFoundError):
        store.transition("nope", JobStatus.PROCESSING)
    assert main_db.dbsize() == 0


def test_version_check_refuses_stale_writer(store: JobStore) -> None:
    job = store.create("1 + 2")
    store.transition(job.id, JobStatus.PROCESSING)
    with pytest.raises(ConcurrentUpdateError):
        store.transition(job.id, JobStatus.COMPLETED, expected_version=0)
    assert store.get(job.id).status is JobStatus.PROCESSING


def test_concurrent_starts_let_exactly_one_worker_win(redis_server, main_db: redis.Redis,
                                                      keys: KeySpace) -> None:
    # Given a pending job and eight threads, each with its own connection
    job = JobStore(main_db, keys).create("3 * 3")
    barrier = threading.Barrier(8)
    wins: list[str] = []
    losses: list[str] = []

    def race(n: int) -> None:
        store = JobStore(redis_server.client(10), keys)
        barrier.wait()
        try:
            store.transition(job.id, JobStatus.PROCESSING, fields={"worker": f"w{n}"},
                             count_attempt=True)
            wins.append(f"w{n}")
        except InvalidTransitionError:
            losses.append(f"w{n}")

    # When they all try pending -> processing at once
    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Then one wins, the record names it, and attempts counted one start
    assert len(wins) == 1 and len(losses) == 7
    final = JobStore(main_db, keys).get(job.id)
    assert final.worker == wins[0]
    assert final.attempts == 1


def test_redelivery_goes_back_to_pending_and_counts_attempts(store: JobStore,
                                                            events: EventLog) -> None:
    job = store.create("4 / 2")
    store.start(job.id, worker="dead@host")

    again = store.start(job.id, worker="alive@host")

    assert again is not None
    assert (again.status, again.attempts, again.worker) == (
        JobStatus.PROCESSING, 2, "alive@host")
    history = events.read(job.id)
    assert [e.type for e in history] == [
        EventType.CREATED, EventType.STARTED, EventType.REDELIVERED, EventType.STARTED]
    assert history[2].fields["previous_worker"] == "dead@host"


def test_start_of_finished_job_changes_nothing(store: JobStore, main_db: redis.Redis) -> None:
    job = store.create("4 / 2")
    store.start(job.id, worker="w")
    store.complete(job.id, {"text": "2", "latex": "2", "steps": []})
    before = _dump(main_db)

    assert store.start(job.id, worker="w2") is None
    assert _dump(main_db) == before


def test_max_attempts_fails_a_job_whose_worker_keeps_dying(store: JobStore) -> None:
    job = store.create("4 / 2")
    for n in range(3):
        assert store.start(job.id, worker=f"w{n}", max_attempts=3) is not None

    assert store.start(job.id, worker="w3", max_attempts=3) is None

    final = store.get(job.id)
    assert final.status is JobStatus.FAILED
    assert "gave up after 3 attempts" in final.error


def test_list_count_and_iter(store: JobStore) -> None:
    jobs = store.create_many([f"{n} + 1" for n in range(5)])
    store.start(jobs[0].id, worker="w")

    assert [j.id for j in store.list_jobs(limit=3)] == [j.id for j in jobs[::-1][:3]]
    assert [j.id for j in store.list_jobs(status=JobStatus.PROCESSING)] == [jobs[0].id]
    assert store.count_by_status() == {JobStatus.PENDING: 4, JobStatus.PROCESSING: 1,
                                       JobStatus.COMPLETED: 0, JobStatus.FAILED: 0,
                                       JobStatus.CANCELLED: 0}
    batches = list(store.iter_ids_by_status(JobStatus.PENDING, batch_size=3))
    assert [len(b) for b in batches] == [3, 1]
    assert [i for b in batches for i, _ in b] == [j.id for j in jobs[1:]]


def test_events_stream_is_capped(main_db: redis.Redis, keys: KeySpace) -> None:
    store = JobStore(main_db, keys, events_max_len=1)
    job = store.create("1")
    for n in range(300):
        store.start(job.id, worker=f"w{n}")
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so the
    # stream stays within one node of the cap instead of growing to 600 entries.
    assert main_db.xlen(keys.events(job.id)) <= 101


def test_statistics_count_each_change_atomically(store: JobStore, main_db: redis.Redis,
                                                 keys: KeySpace) -> None:


    # Given two jobs, one completed and one failed
    a, b = store.create("1 + 1"), store.create("2 + 2")
    store.start(a.id, worker="w")
    store.start(b.id, worker="w")
    store.complete(a.id, {"text": "2", "latex": "2", "steps": []})
    store.fail(b.id, "no")

    counts, hist = StatsStore(main_db, keys).lifetime()

    assert counts == {"created": 2, "started": 2, "completed": 1, "failed": 1}
    assert hist.count == 2 and hist.buckets[0] == (0.01, 2)   # both took under 10 ms
    assert 0 < (quantile(hist, 0.5) or 0) <= 0.01
    minute = int(store.get(a.id).created_at // 60)
    [m] = StatsStore(main_db, keys).minutes(minute, minute)
    assert m.counts["created"] == 2
    assert 0 < main_db.ttl(keys.stats_minute(minute)) <= 8 * 86400
    feed = StatsStore(main_db, keys).recent_events(10)
    assert [(e["job_id"], e["type"]) for e in feed][:2] == [(b.id, "failed"), (a.id, "completed")]
    assert len(feed) == 6


def test_quantile_interpolates_like_prometheus() -> None:


    hist = LatencyHistogram(((1.0, 10), (2.0, 10), (float("inf"), 0)), 15.0)
    assert quantile(hist, 0.5) == 1.0
    assert quantile(hist, 0.75) == 1.5
    assert quantile(LatencyHistogram(((1.0, 0), (float("inf"), 0)), 0.0), 0.5) is None


def test_pipelined_start_and_finish_in_one_round_trip(store: JobStore, events: EventLog) -> None:
    job = store.create("1 + 1")

    ticket = store.send_start(job.id, worker="w1")
    started, finished = store.finish(ticket, JobStatus.COMPLETED,
                                     fields={"result": '{"text": "2"}', "error": ""})

    assert isinstance(started, Job) and started.status is JobStatus.PROCESSING
    assert isinstance(finished, Job) and finished.status is JobStatus.COMPLETED
    assert finished.attempts == 1 and finished.answer == "2"
    assert [e.type for e in events.read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]


def test_pipelined_finish_never_overwrites_a_later_delivery(store: JobStore) -> None:
    # Given delivery A started (pipelined, its reply not read yet)...
    job = store.create("1 + 1")
    ticket = store.send_start(job.id, worker="A")
    wait_until(lambda: store.get(job.id).worker == "A", timeout_s=5, message="A's start")
    # ...and then the broker redelivered the job to B, which started it too
    taken = store.start(job.id, worker="B")
    assert taken is not None and taken.attempts == 2

    # When A's outcome arrives
    started_a, finished_a = store.finish(ticket, JobStatus.COMPLETED,
                                         fields={"result": '{"text": "9"}', "error": ""})

    # Then A's start had been applied, but its outcome is refused: B's run is intact
    assert isinstance(started_a, Job) and started_a.worker == "A"
    assert isinstance(finished_a, ConcurrentUpdateError)
    current = store.get(job.id)
    assert (current.status, current.worker, current.result) == (JobStatus.PROCESSING, "B", None)
    done = store.complete(job.id, {"text": "2", "latex": "", "steps": []},
                          expected_version=taken.version)
    assert done.answer == "2" and done.attempts == 2


def test_a_foreign_record_is_reported_as_malformed_with_its_id(
        store: JobStore, main_db: redis.Redis, keys: KeySpace,
        caplog: pytest.LogCaptureFixture) -> None:
    main_db.hset(keys.job("abc-123"), mapping={"foo": "bar"})
    main_db.zadd(keys.jobs(), {"abc-123": 1.0})
    with pytest.raises(MalformedRecordError) as info:
        store.get("abc-123")
    assert info.value.job_id == "abc-123"
    store.create("1 + 1")
    # caplog's handler on the module's logger itself, which may log at WARNING: a logging
    # configuration made earlier in the session (an in-process CLI run's logconfig: the
    # `jobtrail` logger does not propagate; a library's dictConfig) must not hide it
    module_logger = logging.getLogger("jobtrail.store.job_store")
    caplog.set_level(logging.WARNING, logger=module_logger.name)
    disabled, module_logger.disabled = module_logger.disabled, False
    module_logger.addHandler(caplog.handler)
    try:
        listed = [j.problem for j in store.list_jobs()]
    finally:
        module_logger.removeHandler(caplog.handler)
        module_logger.disabled = disabled
    assert listed == ["1 + 1"]   # listings leave it out
    # and their log line names it (the record holds no id field of its own)
    assert any("job_id=abc-123" in r.getMessage() for r in caplog.records), caplog.text


def test_a_runs_start_and_finish_sent_again_change_nothing(
        store: JobStore, events: EventLog) -> None:
    # Given a run (token T) whose start and finish both landed, replies lost
    job = store.create("1 + 1")
    fields = {"result": '{"text": "2"}', "error": ""}
    store.finish(store.send_start(job.id, worker="w1", token="T"), JobStatus.COMPLETED,
                 fields=fields)
    before = store.get(job.id)

    # When the worker sends both again with the same token (a retry after a lost reply)
    started, finished = store.finish(store.send_start(job.id, worker="w1", token="T"),
                                     JobStatus.COMPLETED, fields=fields)

    # Then both are reported as this run's own, and nothing was written twice
    assert isinstance(started, Job) and isinstance(finished, Job)
    assert finished.status is JobStatus.COMPLETED and store.get(job.id) == before
    assert before.attempts == 1
    assert [e.type for e in events.read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]


def test_a_start_sent_again_is_no_redelivery_but_a_new_token_is(
        store: JobStore, events: EventLog) -> None:
    job = store.create("1 + 1")
    assert store.start(job.id, worker="w1", token="T1") is not None

    again = store.start(job.id, worker="w1", token="T1")    # the same run, retried
    assert again is not None and again.attempts == 1
    assert [e.type for e in events.read(job.id)] == [EventType.CREATED, EventType.STARTED]

    second = store.start(job.id, worker="w2", token="T2")   # the broker's next delivery
    assert second is not None and (second.attempts, second.worker) == (2, "w2")
    history = events.read(job.id)
    assert [e.type for e in history] == [EventType.CREATED, EventType.STARTED,
                                         EventType.REDELIVERED, EventType.STARTED]
    assert history[2].fields["previous_worker"] == "w1"
    assert store.count_by_status()[JobStatus.PROCESSING] == 1


def test_a_finish_after_a_solve_longer_than_the_health_check_interval_is_sent_once(
        redis_server: Any, settings: Settings, main_db: redis.Redis, keys: KeySpace,
        events: EventLog) -> None:
    # Given the worker's kind of client (redis-py PINGs a connection idle for 1 s first)
    # and a run whose start was sent, its reply still unread, before a 1.5 s solve
    checked = settings.model_copy(update={"redis_health_check_interval_s": 1})
    store = JobStore(connect(redis_server.url(MAIN_DB), settings=checked), keys)
    job = store.create("1 + 1")
    ticket = store.send_start(job.id, worker="w1", token="T")
    time.sleep(1.5)

    # When the outcome is sent on that connection, then both replies are read on it:
    # no health-check PING reads the start's reply as a bad PONG ("main DB unreachable")
    started, finished = store.finish(ticket, JobStatus.COMPLETED,
                                     fields={"result": '{"text": "2"}', "error": ""})
    assert isinstance(started, Job) and isinstance(finished, Job)
    assert (finished.status, finished.attempts, finished.answer) == (
        JobStatus.COMPLETED, 1, "2")
    assert [e.type for e in events.read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]


def test_the_give_up_reason_counts_its_attempts_in_words() -> None:
    # MAX_ATTEMPTS=1 read "gave up after 1 attempts: the worker was lost each time"
    assert give_up_reason(1) == "gave up after 1 attempt: the worker was lost"
    assert give_up_reason(3) == "gave up after 3 attempts: the worker was lost each time"


def test_a_recorded_loss_names_the_next_redelivery_and_the_give_up_once(
        store: JobStore, main_db: redis.Redis, keys: KeySpace, events: EventLog) -> None:
    # Given a job started by delivery A, two attempts at most
    job = store.create("solve x = 1")
    store.start(job.id, worker="w1", token="A", max_attempts=2)
    cause = "pool process exited by signal 9 (SIGKILL)"

    # When a stale delivery B and then A itself record a loss
    assert store.note_lost(job.id, cause, run="B") is None  # not B's: nothing written
    assert main_db.hget(keys.job(job.id), "lost") is None
    assert store.note_lost(job.id, cause, run="A") == 1

    # Then the redelivery's event names it and the start clears it
    store.start(job.id, worker="w1", token="C", max_attempts=2)
    redelivered = [e for e in events.read(job.id) if e.type is EventType.REDELIVERED]
    assert redelivered[-1].fields["reason"] == cause
    assert main_db.hget(keys.job(job.id), "lost") is None
    # and a loss nobody recorded gets no reason (never the earlier one)
    assert store.start(job.id, worker="w1", token="D", max_attempts=2) is None  # given up
    assert len([e for e in events.read(job.id) if e.type is EventType.REDELIVERED]) == 1
    assert store.get(job.id).error == "gave up after 2 attempts: the worker was lost each time"
    # a give-up after a recorded loss names it
    other = store.create("solve x = 2")
    store.start(other.id, worker="w1", token="E", max_attempts=1)
    store.note_lost(other.id, cause, run="E")
    assert store.start(other.id, worker="w1", token="F", max_attempts=1) is None
    assert store.get(other.id).error == f"gave up after 1 attempt: the worker was lost ({cause})"
