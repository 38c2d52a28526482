"""The consumer takes a message off the queue only in the step that records it as unacked.

Each test drives jobtrail's kombu channel by hand on a real redis-server: it
sends the consumer's step (what the worker's event loop sends), lets the
server run it, then drops the connection without reading the reply, as a
CLIENT KILL, a reset or a half-open flow does. kombu's BRPOP lost the
message there (popped by the server, never recorded); now it is in the queue
or in `unacked`, where the dead-worker sweep or the visibility timeout takes
it back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport.virtual import Empty

from jobtrail.embedded import EmbeddedRedis
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.worker.app import create_celery_app
from jobtrail.worker.fetch import FETCH_CLIENT_NAME, fetches_in_flight
from jobtrail.worker.recovery import DeadWorkerSweep
from jobtrail.worker.transport import TRANSPORT
from tests.conftest import BROKER_DB, MAIN_DB, make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until

QUEUE = "fetch-test"


@pytest.fixture
def broker(private_redis: Any) -> redis.Redis:
    """The broker DB of a private redis-server, read directly."""
    return private_redis.client(BROKER_DB)  # type: ignore[no-any-return]


@pytest.fixture
def channel(private_redis: Any) -> Iterator[Any]:
    """A channel of jobtrail's transport with QUEUE declared."""
    with Connection(private_redis.url(BROKER_DB), transport=TRANSPORT) as conn:
        chan = conn.channel()
        Queue(QUEUE, Exchange(QUEUE, type="direct"), QUEUE)(chan).declare()
        yield chan
        chan._in_poll = None  # a test may leave a step unread: nothing to read at close
        chan.close()


def _publish(chan: Any, body: str) -> None:
    chan.connection.client.Producer(chan).publish(body, exchange=QUEUE, routing_key=QUEUE)


def _consume(chan: Any, *, no_ack: bool = False) -> list[Any]:
    got: list[Any] = []
    chan.basic_consume(QUEUE, no_ack=no_ack, callback=got.append, consumer_tag="t1")
    return got


def _send_step(chan: Any) -> None:
    """Send the consumer's next step as the event loop does (its connection registered)."""
    chan.connection.cycle._register_BRPOP(chan)


def _lose_the_reply(chan: Any) -> None:
    """Let the server run the step in flight, then drop its connection unread."""
    time.sleep(0.3)
    chan.client.connection.disconnect()
    chan._in_poll = None


def test_a_fetch_whose_reply_is_lost_leaves_the_message_recorded_as_unacked(
        channel: Any, broker: redis.Redis) -> None:
    # Given a queued message and a consumer
    _publish(channel, "job-1")
    got = _consume(channel)

    # When its fetch runs on the server and the reply is lost with the connection
    _send_step(channel)
    _lose_the_reply(channel)

    # Then the message left the queue only into kombu's unacked record of it
    assert got == []
    assert broker.llen(QUEUE) == 0
    [tag] = broker.hkeys("unacked")
    payload, exchange, routing_key = json.loads(broker.hget("unacked", tag))  # type: ignore[arg-type]
    assert (payload["properties"]["delivery_tag"], exchange, routing_key) == (tag, QUEUE, QUEUE)
    assert broker.zscore("unacked_index", tag) is not None


def test_a_wait_whose_reply_is_lost_leaves_the_message_queued(
        channel: Any, broker: redis.Redis) -> None:
    # Given a consumer of an empty queue, waiting for a message
    got = _consume(channel)
    _send_step(channel)
    with pytest.raises(Empty):
        channel._brpop_read()  # nothing to fetch: the next step waits
    _send_step(channel)

    # When a message arrives during the wait, and the wait's reply is lost
    _publish(channel, "job-2")
    _lose_the_reply(channel)

    # Then the message is still queued, unrecorded, for the next fetch
    assert got == []
    assert broker.llen(QUEUE) == 1
    assert broker.hlen("unacked") == 0

    # and the next fetch delivers it
    _send_step(channel)
    assert channel._brpop_read() is True
    assert [m.payload for m in got] == ["job-2"]


def test_a_fetched_message_is_delivered_recorded_once_and_its_ack_removes_the_record(
        channel: Any, broker: redis.Redis) -> None:
    # Given two queued messages
    _publish(channel, "a")
    _publish(channel, "b")
    got = _consume(channel)

    # When the consumer fetches one
    _send_step(channel)
    assert channel._brpop_read() is True

    # Then it is the oldest, recorded with the arrival score its QoS remembers
    [message] = got
    tag = message.delivery_tag
    assert message.payload == "a"
    assert broker.hkeys("unacked") == [tag]
    assert broker.zscore("unacked_index", tag) == channel.qos._arrived[tag]
    assert broker.llen(QUEUE) == 1

    # and its ack removes the record
    message.ack()
    channel.settle_unread()
    assert broker.hlen("unacked") == 0 and broker.zcard("unacked_index") == 0


def test_a_queue_consumed_without_acknowledgements_is_not_recorded(
        channel: Any, broker: redis.Redis) -> None:
    # Given a message on a queue consumed with no_ack (as a reply queue of `celery inspect`)
    _publish(channel, "reply")
    got = _consume(channel, no_ack=True)

    # When it is fetched
    _send_step(channel)
    assert channel._brpop_read() is True

    # Then it is delivered and nothing waits for an ack that never comes
    assert [m.payload for m in got] == ["reply"]
    assert broker.hlen("unacked") == 0 and broker.llen(QUEUE) == 0


def test_a_job_whose_fetch_reply_was_lost_is_taken_back_and_completes_once(
        private_redis: Any, tmp_path: Path, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a submitted job whose message a consumer fetched, the reply lost with its
    # connection (no worker holds it; it is recorded as unacked only)
    settings = make_settings(private_redis, tmp_path / "state", heartbeat_interval_s=1.0)
    keys = KeySpace()
    store = JobStore(private_redis.client(MAIN_DB), keys)
    job = JobService(store, create_celery_app(settings)).submit("solve x^2 - 4 = 0")
    broker = private_redis.client(BROKER_DB)
    with Connection(settings.broker_url, transport=TRANSPORT) as conn:
        chan = conn.channel()
        chan.basic_consume(settings.queue, no_ack=False, callback=lambda m: None,
                           consumer_tag="lost")
        _send_step(chan)
        _lose_the_reply(chan)
        assert (broker.llen(settings.queue), broker.hlen("unacked")) == (0, 1)
        chan.close()  # nothing delivered: nothing of it restored at the close

    # When a worker starts
    proc = worker_process(settings, hostname="sweeper")

    # Then its dead-worker sweep sends the message back, and the job completes, once
    wait_until(lambda: job_finished(store, job.id), timeout_s=60,
               message=lambda: f"the job to complete; log:\n{proc.log()[-3000:]}")
    done = store.get(job.id)
    assert (done.status, done.answer, done.attempts) == (JobStatus.COMPLETED, "x = -2, x = 2", 1)
    assert [e.type for e in EventLog(private_redis.client(MAIN_DB), keys).read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
    assert "prefetched by a worker that is gone, or its delivery lost" in proc.log()


def test_a_fetch_whose_reply_is_only_late_is_left_to_its_live_worker_by_the_sweep(
        private_redis: Any, tmp_path: Path, channel: Any, broker: redis.Redis) -> None:
    # Given a job whose message a live worker's fetch recorded, its reply still unread
    # (the prefetch full, the event loop busy), the fetch listed in the worker's heartbeat
    settings = make_settings(private_redis, tmp_path / "state", queue=QUEUE)
    keys = KeySpace(settings.key_prefix, QUEUE)
    main = private_redis.client(MAIN_DB)
    job = JobService(JobStore(main, keys), create_celery_app(settings)).submit("1 + 1")
    got = _consume(channel)
    _send_step(channel)
    time.sleep(0.3)  # the server ran the fetch; its reply waits in the socket
    heartbeats = HeartbeatStore(main, keys, gone_after_s=30.0)
    heartbeats.beat("late@host", pid=1, started_at=0.0, jobs=[], interval_s=10.0, held=[],
                    fetching=fetches_in_flight())
    sweep = DeadWorkerSweep(create_celery_app(settings), JobStore(main, keys), heartbeats,
                            broker, keys, gone_after_s=0.0)

    # When the dead-worker sweep runs
    report = sweep.sweep(lock=False)

    # Then it leaves the entry alone, and the late reply delivers the job, once
    assert (report.recovered, broker.llen(QUEUE), broker.hlen("unacked")) == ([], 0, 1)
    assert channel._brpop_read() is True
    assert [m.headers["id"] for m in got] == [job.id]

    # and, its reply read, the fetch is in flight no more
    assert fetches_in_flight() == []


def test_only_the_fetch_connection_is_named(channel: Any, private_redis: Any) -> None:
    # Given a consumer that fetched once, and a publish from the same connection
    _consume(channel)
    _send_step(channel)
    with pytest.raises(Empty):
        channel._brpop_read()
    _publish(channel, "x")

    # Then CLIENT LIST names one connection, the fetch's
    admin = private_redis.client(0)
    named = [int(c["id"]) for c in admin.client_list() if c["name"] == FETCH_CLIENT_NAME]
    channel.client.connection.send_command("CLIENT", "ID")
    assert named == [int(channel.client.connection.read_response())]


def test_kombus_global_keyprefix_is_refused_in_one_line(private_redis: Any) -> None:
    with Connection(private_redis.url(BROKER_DB), transport=TRANSPORT,
                    transport_options={"global_keyprefix": "p:"}) as conn:
        with pytest.raises(ValueError, match="does not support kombu's global_keyprefix"):
            conn.channel()


def test_the_prefix_is_refused_before_a_connection_is_opened(private_redis: Any) -> None:
    admin = private_redis.client(0)
    before = len(admin.client_list())
    with Connection(private_redis.url(BROKER_DB), transport=TRANSPORT,
                    transport_options={"global_keyprefix": "p:"}) as conn:
        for _ in range(3):  # a producer retrying its request
            with pytest.raises(ValueError):
                conn.channel()
    assert len(admin.client_list()) == before


def test_a_server_refusing_client_setname_still_serves_the_fetch(
        private_redis: Any, broker: redis.Redis) -> None:
    # Given a broker user whose ACL lacks CLIENT SETNAME
    admin = private_redis.client(0)
    admin.acl_setuser("nosetname", enabled=True, passwords=["+pw"], keys=["*"],
                      channels=["*"], commands=["+@all", "-client", "+client|id"])
    url = private_redis.url(BROKER_DB).replace("redis://", "redis://nosetname:pw@")
    with Connection(url, transport=TRANSPORT) as conn:
        chan = conn.channel()
        Queue(QUEUE, Exchange(QUEUE, type="direct"), QUEUE)(chan).declare()
        _publish(chan, "job-3")
        got = _consume(chan)

        # When the consumer fetches
        _send_step(chan)
        assert chan._brpop_read() is True

        # Then the message is delivered and recorded; the connection is only unnamed
        assert [m.payload for m in got] == ["job-3"]
        assert broker.hlen("unacked") == 1
        assert not [c for c in admin.client_list() if c["name"] == FETCH_CLIENT_NAME]
        chan.close()


@pytest.mark.parametrize(("renamed", "wait"), [(("BLMOVE",), "BRPOPLPUSH"),
                                                (("BLMOVE", "BRPOPLPUSH"), "XREAD")])
def test_a_server_without_blmove_waits_with_the_next_command_and_does_not_spin(
        tmp_path: Path, renamed: tuple[str, ...], wait: str) -> None:
    # Given a server where the wait's commands are missing (Redis before 6.2, or renamed)
    server = EmbeddedRedis(tmp_path / "renamed")
    server.start("--save", "", "--appendonly", "no",
                 *(arg for command in renamed for arg in ("--rename-command", command, "")))
    try:
        with Connection(server.url(BROKER_DB), transport=TRANSPORT) as conn:
            chan = conn.channel()
            Queue(QUEUE, Exchange(QUEUE, type="direct"), QUEUE)(chan).declare()
            got = _consume(chan)
            steps = 0
            # When the consumer runs its steps on an empty queue for about 2 s
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                _send_step(chan)
                steps += 1
                with pytest.raises(Empty):
                    chan._brpop_read()
            # Then it settled on the next wait, which blocks (a few steps, no spin)
            assert chan._wait_command == wait
            assert steps < 12, steps
            # and a message is still fetched
            _publish(chan, "late")
            for _ in range(3):  # the wait in flight ends, then the fetch delivers
                _send_step(chan)
                try:
                    if chan._brpop_read():
                        break
                except Empty:
                    pass
            assert [m.payload for m in got] == ["late"]
            chan.close()
    finally:
        server.stop(timeout_s=5)
