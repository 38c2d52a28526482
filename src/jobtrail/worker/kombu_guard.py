"""A guard for a kombu/Celery defect that kills a worker when its broker goes away mid-task.

When the consumer's connection breaks, Celery (5.7,
Consumer.on_connection_error_after_connected) first collects the connection,
which detaches its transport (`transport.client = None`), then closes it.
The close closes the default channel, which requeues the unacknowledged
messages of the tasks still running; to do so the redis channel builds a new
client from `transport.client`, now None, and raises AttributeError. That is
no connection error, so Celery logs "Unrecoverable error" and the worker
shuts down: with a late-acked task in flight, a Redis restart (or kill -9)
stopped consuming for good.

The guard makes that late rebuild fail as what it is, a connection error
(kombu's and Celery's error handling then ignore it, as for any dead
broker): the messages stay unacknowledged in the broker, the running task
finishes and records its outcome, and the broker delivers them again after
the visibility timeout (a delivery that finds the job finished writes
nothing). The same holds for a channel already closed (its transport is then
None): an ack or reject, at its end, of a task that ran on through the reconnect,
when nothing rebuilt the channel's pool before the close let the transport go.

Source: kombu.transport.redis.Channel._connparams and
celery.worker.consumer.consumer.Consumer.on_connection_error_after_connected
(kombu 5.7.0, celery 5.7.0).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

__all__ = ["install"]

_MARK = "_jobtrail_guarded"


def install() -> None:
    """Make a detached redis channel's client rebuild raise a connection error (idempotent)."""
    channel = kombu_redis.Channel
    original: Any = channel._connparams
    if getattr(original, _MARK, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError(
                "broker connection already closed (its transport was detached)")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _MARK, True)
    channel._connparams = _connparams  # type: ignore[method-assign]
