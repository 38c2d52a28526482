"""Celery's task events are published without waiting for their replies, and none is lost.

A submit paid a broker round trip for its task-sent event after the task's
own (kombu waits for each PUBLISH's reply, a subscriber count nobody reads).
jobtrail's channel writes event publishes on a connection of their own and
reads the replies later (worker/transport.py _UnreadWrites).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from typing import Any

import redis
from kombu import Connection, Exchange, Producer

from jobtrail.worker.transport import TRANSPORT
from tests.helpers.tcp_proxy import TcpProxy

#: Celery's event exchange as Celery declares it on a Redis broker (fanout).
EVENTS = Exchange("celeryev", type="fanout")


def _subscriber(url: str) -> Any:
    pubsub = redis.Redis.from_url(url).pubsub()
    pubsub.psubscribe("*celeryev*")
    assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
    return pubsub


def _received(pubsub: Any, timeout_s: float = 2.0) -> list[int]:
    """The "n" of each event message the subscriber got, in order."""
    got: list[int] = []
    while (message := pubsub.get_message(timeout=timeout_s)) is not None:
        body = json.loads(message["data"])["body"]
        got.append(json.loads(base64.b64decode(body))["n"])
    return got


def test_an_event_publish_does_not_wait_for_the_reply(private_redis: Any) -> None:
    # Given a producer on a jobtrail broker channel, and a broker that stops answering
    # (SIGSTOP: the kernel still takes what is written, nothing is read or replied)
    url = private_redis.url(1)
    subscriber = _subscriber(url)
    with Connection(url, transport=TRANSPORT) as conn:
        producer = Producer(conn.default_channel, exchange=EVENTS)
        producer.publish({"n": 0}, routing_key="task.sent")
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            # When task events are published meanwhile
            done = threading.Event()

            def publish() -> None:
                for n in range(1, 4):
                    producer.publish({"n": n}, routing_key="task.sent")
                done.set()

            threading.Thread(target=publish, daemon=True).start()
            returned = done.wait(timeout=3)
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
        # Then each returned at once, without the reply (kombu's publish waited for it)
        assert returned, "an event publish waited for the stopped broker's reply"
        done.wait(timeout=10)
    # and once the channel closed, every event had reached the subscriber, in order
    assert _received(subscriber) == [0, 1, 2, 3]


def test_closing_right_after_many_event_publishes_loses_none(private_redis: Any) -> None:
    # Given a channel that has just published 500 events, replies unread
    url = private_redis.url(1)
    subscriber = _subscriber(url)
    with Connection(url, transport=TRANSPORT) as conn:
        channel = conn.default_channel
        producer = Producer(channel, exchange=EVENTS)
        for n in range(500):
            producer.publish({"n": n}, routing_key="task.sent")
        unread = channel._events_unread
    # When the connection is closed at once (above), then every event arrived, and the
    # publishes had left replies unread (the close read them before closing the socket)
    assert unread > 0
    assert _received(subscriber) == list(range(500))


def test_an_event_connection_the_server_closed_is_replaced_before_a_publish(
        private_redis: Any) -> None:
    # Given a channel whose event connection the server closed (CLIENT KILL) after a publish
    url = private_redis.url(1)
    subscriber = _subscriber(url)
    admin = redis.Redis.from_url(private_redis.url(0))
    with Connection(url, transport=TRANSPORT) as conn:
        producer = Producer(conn.default_channel, exchange=EVENTS)
        producer.publish({"n": 0}, routing_key="task.sent")
        time.sleep(0.2)  # its reply is in
        killed = admin.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        time.sleep(0.2)  # the server's close has reached the client
        # When the next events are published
        producer.publish({"n": 1}, routing_key="task.sent")
        producer.publish({"n": 2}, routing_key="task.sent")
    # Then none went into the closed socket: every one arrived
    assert _received(subscriber) == [0, 1, 2]


def test_other_fanout_publishes_keep_waiting_for_their_replies(private_redis: Any) -> None:
    # Given a jobtrail broker channel, when a control broadcast (celery.pidbox) is published
    url = private_redis.url(1)
    with Connection(url, transport=TRANSPORT) as conn:
        channel = conn.default_channel
        Producer(channel, exchange=Exchange("celery.pidbox", type="fanout")).publish(
            {"method": "revoke"}, routing_key="")
        # Then it went kombu's way (reply read): no event connection was taken
        assert channel._events_conn is None and channel._events_unread == 0


def test_an_event_connection_gone_half_open_in_the_pool_loses_no_event(
        private_redis: Any) -> None:
    # Given a channel whose pooled connection went half-open while idle past the health
    # check interval (a NAT forgot it: writes accepted, nothing ever comes back); kombu's
    # own publish PINGs such a connection first (redis-py's health check), times out and
    # reconnects, so no event is lost (redis/redis-py#2239, #1720: the check runs only
    # before a command is sent)
    subscriber = _subscriber(private_redis.url(1))
    proxy = TcpProxy("127.0.0.1", private_redis.port)
    options = {"socket_timeout": 0.5, "health_check_interval": 1, "retry_on_timeout": True}
    try:
        with Connection(proxy.url(1), transport=TRANSPORT, transport_options=options) as conn:
            channel = conn.default_channel
            producer = Producer(channel, exchange=EVENTS)
            producer.publish({"n": 0}, routing_key="task.sent")
            time.sleep(channel.HOLD_S + 0.3)
            producer.publish({"n": 1}, routing_key="task.sent")  # reads 0's reply, gives it back
            time.sleep(1.5)  # idle in the pool past the health check interval
            assert proxy.black_hole() >= 1
            # When events are published on it
            for n in range(2, 6):
                producer.publish({"n": n}, routing_key="task.sent")
                time.sleep(0.2)
        # Then every one arrived (none went into the black hole unchecked)
        assert _received(subscriber) == [0, 1, 2, 3, 4, 5]
    finally:
        proxy.close()


def test_an_event_connection_closed_under_the_channel_waits_for_no_lost_reply(
        private_redis: Any) -> None:
    # Given a channel holding its event connection with replies unread, which something
    # else closes (redis-py's pool.disconnect() closes the connections in use too)
    url = private_redis.url(1)
    subscriber = _subscriber(url)
    with Connection(url, transport=TRANSPORT, transport_options={"socket_timeout": 3}) as conn:
        channel = conn.default_channel
        producer = Producer(channel, exchange=EVENTS)
        for n in range(3):
            producer.publish({"n": n}, routing_key="task.sent")
        time.sleep(0.2)  # the replies are in, unread
        channel.pool.disconnect()
        # When events are published after it, the last past the hold of the event connection
        for n in range(3, 6):
            producer.publish({"n": n}, routing_key="task.sent")
        time.sleep(channel.HOLD_S + 0.2)
        started = time.monotonic()
        producer.publish({"n": 6}, routing_key="task.sent")
        elapsed = time.monotonic() - started
    # Then it did not wait for the replies lost with the closed socket (it waited the
    # socket timeout, 3 s here; for ever without one: the new socket never sends them)
    assert elapsed < 1.0
    # and every event published after the close arrived
    assert _received(subscriber)[-4:] == [3, 4, 5, 6]
