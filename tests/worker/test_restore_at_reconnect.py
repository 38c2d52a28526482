"""A delivery its channel restored at a reconnect, still running, must leave the next
delivery of its message alone when it is acked or rejected at last.

kombu's channel close (Celery closes it when the broker connection is lost, CLIENT
KILL or a restart) restores every unacknowledged delivery (QoS.restore_unacked_once),
the ones still running in a pool process too; they are delivered again under the
same delivery tag. The running delivery acks or rejects later through its closed
channel's QoS: OwnDeliveryQoS must still know the arrival it recorded, or a reject
with requeue queues the message a third time (seen: a batch passed to and fro
between two pool processes until its jobs failed "gave up after 3 attempts: the
worker was lost each time", no worker lost) and an ack removes the new delivery's
entry. Real Redis, kombu's own consumer path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from kombu import Connection, Producer, Queue

from jobtrail.worker import kombu_guard
from jobtrail.worker.transport import TRANSPORT

QUEUE = "restored"


def _deliver(conn: Connection) -> Any:
    """One delivery of QUEUE's next message on *conn*, not acknowledged (kombu's basic_get
    records it as unacked, as a consumer's delivery is)."""
    message = conn.default_channel.basic_get(QUEUE, no_ack=False)
    assert message is not None
    return message


@contextmanager
def _restored_and_delivered_again(url: str, broker: redis.Redis) -> Iterator[tuple[Any, float]]:
    """A first delivery whose channel closed (its message restored), and the score of
    the second delivery's unacked entry."""
    with Connection(url, transport=TRANSPORT) as first_conn, \
            Connection(url, transport=TRANSPORT) as second_conn:
        Producer(first_conn.default_channel).publish({"n": 1}, routing_key=QUEUE,
                                                     declare=[Queue(QUEUE)])
        first = _deliver(first_conn)
        first.channel.close()  # what a reconnect does: the running delivery is restored
        assert broker.llen(QUEUE) == 1 and broker.hlen("unacked") == 0
        second = _deliver(second_conn)
        [(tag, score)] = broker.zrange("unacked_index", 0, -1, withscores=True)
        assert tag.decode() == first.delivery_tag == second.delivery_tag
        yield first, score


def test_a_restored_delivery_rejected_with_requeue_leaves_the_new_one_alone(
        private_redis: Any) -> None:
    # Given a delivery restored at a reconnect while it ran, and delivered again
    url = private_redis.url(1)
    broker = redis.Redis.from_url(url)
    with _restored_and_delivered_again(url, broker) as (first, second_score):
        # When the first delivery's task ends and is rejected with requeue (a batch whose
        # jobs another delivery took over, a lost pool process)
        first.reject(requeue=True)
        # Then the message is not queued a third time, and the new delivery's entry stays
        assert broker.llen(QUEUE) == 0
        assert broker.zscore("unacked_index", first.delivery_tag) == second_score
        assert broker.hexists("unacked", first.delivery_tag)


def test_a_restored_delivery_acked_leaves_the_new_one_alone(private_redis: Any) -> None:
    # Given a delivery restored at a reconnect while it ran, and delivered again
    url = private_redis.url(1)
    broker = redis.Redis.from_url(url)
    with _restored_and_delivered_again(url, broker) as (first, second_score):
        # When the first delivery's task ends and is acked
        first.ack()
        # Then the new delivery's entry stays (its worker dying would lose the message)
        assert broker.zscore("unacked_index", first.delivery_tag) == second_score
        assert broker.hexists("unacked", first.delivery_tag)


def test_an_ack_through_a_closed_channel_without_a_pool_is_a_lost_connection(
        private_redis: Any) -> None:
    # Given a channel closed as at a reconnect: kombu dropped its pools, then its transport
    kombu_guard.install()
    with Connection(private_redis.url(1), transport=TRANSPORT) as conn:
        channel = conn.channel()
        channel.close()
        assert channel.connection is None
        # When a delivery of it that ran on is acked at last (nothing rebuilt its pool)
        # Then the ack fails as a lost connection (Celery: "Couldn't ack", the entry comes
        # back after the visibility timeout), not AttributeError ("Unrecoverable error":
        # the worker ended)
        with pytest.raises(redis.ConnectionError, match="already closed"):
            channel.qos.ack("a-tag")
