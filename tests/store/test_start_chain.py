"""A batch's chain: each job's finish and the next job's start in one write, one connection.

JobStore.send_finish *then_start* sends the next start with a finish; the
tickets share the connection, read their replies in order, and give it back to
the pool once, after the last of them. Real redis-server (the session fixture).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from jobtrail.errors import InvalidTransitionError, RedisUnavailableError
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Job, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.store.job_store import PendingFinish
from tests.conftest import MAIN_DB
from tests.helpers.tcp_proxy import TcpProxy

FIELDS = {"result": '{"text": "2"}', "error": ""}


def _in_use(store: JobStore) -> int:
    return len(store.client.connection_pool._in_use_connections)  # type: ignore[attr-defined]


def _chain(store: JobStore, ids: list[str]) -> list[PendingFinish]:
    """Start ids[0], then send each finish with the next job's start; return the finishes."""
    ticket = store.send_start(ids[0], worker="w1", token="T0")
    pending = []
    for n in range(len(ids)):
        then = ({"job_id": ids[n + 1], "worker": "w1", "token": f"T{n + 1}"}
                if n + 1 < len(ids) else None)
        finish = store.send_finish(ticket, JobStatus.COMPLETED, fields=FIELDS, then_start=then)
        pending.append(finish)
        if finish.next_ticket is not None:
            assert finish.next_ticket.conn is ticket.conn  # the same connection
            ticket = finish.next_ticket
    return pending


def test_chained_finishes_and_starts_are_read_in_order_and_the_connection_given_back_once(
        store: JobStore, events: EventLog) -> None:
    # Given three pending jobs and the pool's connections in use before
    ids = [store.create(f"{n} + 1").id for n in range(3)]
    before = _in_use(store)

    # When they run as a chain (one connection, each finish sent with the next start)
    pending = _chain(store, ids)
    assert _in_use(store) == before + 1
    outcomes = [store.read_finish(p) for p in pending]

    # Then each start and finish is its own job's, and the connection went back once
    for job_id, (started, finished) in zip(ids, outcomes, strict=True):
        assert isinstance(started, Job) and started.id == job_id
        assert isinstance(finished, Job) and finished.status is JobStatus.COMPLETED
        assert [e.type for e in events.read(job_id)] == [
            EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
    assert _in_use(store) == before
    assert store.client.ping()


def test_a_chain_whose_server_lost_its_scripts_sends_each_step_again(
        store: JobStore, main_db: redis.Redis, events: EventLog) -> None:
    # Given a chain of three jobs sent while the server had the script
    ids = [store.create(f"{n} + 2").id for n in range(3)]
    before = _in_use(store)
    first = store.send_start(ids[0], worker="w1", token="T0")
    # When the server loses its scripts (a restart, SCRIPT FLUSH) before the rest is sent
    main_db.script_flush()
    finish = store.send_finish(first, JobStatus.COMPLETED, fields=FIELDS,
                               then_start={"job_id": ids[1], "worker": "w1", "token": "T1"})
    assert finish.next_ticket is not None
    second = store.send_finish(finish.next_ticket, JobStatus.COMPLETED, fields=FIELDS,
                               then_start={"job_id": ids[2], "worker": "w1", "token": "T2"})
    assert second.next_ticket is not None
    third = store.send_finish(second.next_ticket, JobStatus.COMPLETED, fields=FIELDS)

    # Then each read finds its NOSCRIPT replies, sends its steps again and applies them
    # once, and every connection went back to the pool
    for job_id, p in zip(ids, (finish, second, third), strict=True):
        started, finished = store.read_finish(p)
        assert isinstance(finished, Job) and finished.status is JobStatus.COMPLETED, finished
        assert store.get(job_id).attempts == 1
        assert [e.type for e in events.read(job_id)].count(EventType.STARTED) == 1
    assert _in_use(store) == before


def test_a_chained_start_of_a_job_finished_meanwhile_is_refused_and_read_alone(
        store: JobStore) -> None:
    # Given a chain whose second job another delivery finished before its start came
    a, b = store.create("1 + 1").id, store.create("2 + 2").id
    store.finish(store.send_start(b, worker="other", token="X"), JobStatus.COMPLETED,
                 fields=FIELDS)
    before = _in_use(store)
    finish = store.send_finish(store.send_start(a, worker="w1", token="T0"),
                               JobStatus.COMPLETED, fields=FIELDS,
                               then_start={"job_id": b, "worker": "w1", "token": "T1"})
    assert finish.next_ticket is not None

    # When the first job's finish is read, then the second's start alone (the batch skips it)
    started, finished = store.read_finish(finish)
    refused = store.read_start(finish.next_ticket)

    # Then the first completed, the second's start was refused and changed nothing, and the
    # shared connection went back once
    assert isinstance(finished, Job) and finished.status is JobStatus.COMPLETED
    assert isinstance(refused, InvalidTransitionError)
    assert store.get(b).worker == "other" and store.get(b).attempts == 1
    assert _in_use(store) == before


def test_a_chained_start_whose_connection_was_lost_is_never_read_from_a_new_one(
        redis_server: Any, store: JobStore, keys: KeySpace, events: EventLog) -> None:
    # Given three pending jobs, and a store on the main DB through a proxy
    a, b, c = (store.create(f"{n} + 3").id for n in range(3))
    proxy = TcpProxy("127.0.0.1", redis_server.port)
    client = redis.Redis.from_url(proxy.url(MAIN_DB), socket_timeout=2, decode_responses=True)
    try:
        proxied = JobStore(client, keys)
        first = proxied.send_start(a, worker="w1", token="T0")
        assert isinstance(proxied.read_start(first), Job)
        # When the first job's finish and the second's chained start go into a black hole
        # (the server never sees them), the connection is then reset, and the first
        # finish's read fails
        assert proxy.black_hole() >= 1
        finish = proxied.send_finish(first, JobStatus.COMPLETED, fields=FIELDS,
                                     then_start={"job_id": b, "worker": "w1", "token": "T1"})
        assert finish.next_ticket is not None
        assert proxy.close_black_holed() >= 1
        with pytest.raises(RedisUnavailableError):
            proxied.read_finish(finish)

        # Then the second job's finish (with the third's start) is not sent on a new
        # connection whose replies its ticket would take for its start's: it fails as a
        # lost connection (the caller sends both again, the same token), and no read ever
        # hands one job another job's record
        try:
            second = proxied.send_finish(
                finish.next_ticket, JobStatus.COMPLETED, fields=FIELDS,
                then_start={"job_id": c, "worker": "w1", "token": "T2"})
        except RedisUnavailableError:
            pass
        else:
            started, finished = proxied.read_finish(second)
            assert not (isinstance(finished, Job) and finished.id != b), (
                f"job {b}'s finish read job {finished.id}'s record")  # type: ignore[union-attr]
        assert store.get(c).status is JobStatus.PENDING  # the third's start was not sent
        # the caller's retry (JobRun.finish: the start again, the same token) then applies once
        _, done = proxied.finish(proxied.send_start(b, worker="w1", token="T1"),
                                 JobStatus.COMPLETED, fields=FIELDS)
        assert isinstance(done, Job) and done.id == b and done.status is JobStatus.COMPLETED
        assert [e.type for e in events.read(b)] == [
            EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
        assert len(client.connection_pool._in_use_connections) == 0  # type: ignore[attr-defined]
    finally:
        client.close()
        proxy.close()


def test_a_reply_that_is_another_jobs_record_is_raised_as_out_of_step(
        store: JobStore, main_db: redis.Redis) -> None:
    # Given job A's reply to its start, as the script returns it
    a, b = store.create("1 + 1").id, store.create("2 + 2").id
    started = store.read_start(store.send_start(a, worker="w1", token="T"))
    assert isinstance(started, Job)
    flat = [x for pair in main_db.hgetall(store.keys.job(a)).items() for x in pair]

    # When that reply is read as job B's (a connection out of step)
    # Then it is raised as a lost connection (the caller sends B's step again), never
    # taken for B's record or for a refusal of B's step
    with pytest.raises(RedisUnavailableError, match="out of step"):
        store._outcome(b, JobStatus.PROCESSING, ["ok", flat])
    assert isinstance(store._outcome(a, JobStatus.PROCESSING, ["ok", flat]), Job)
    store.read_finish(store.send_finish(store.send_start(a, worker="w1", token="T"),
                                        JobStatus.COMPLETED, fields=FIELDS))
