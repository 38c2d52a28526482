"""A write the broker refuses under WATCH gives up at once instead of spinning.

kombu requeues and restores an unacknowledged message in a WATCH transaction
(redis-py Redis.transaction). jobtrail's broker connections read a refused write
(OOM, READONLY, NOREPLICAS) as a lost connection, which redis-py turns into a
WatchError while keys are watched, and redis-py retries every WatchError at once,
for ever: the worker's event loop would spin until the broker took writes again.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from kombu import Connection

from jobtrail.worker.transport import TRANSPORT


def test_a_refused_write_in_a_transaction_raises_a_connection_error_at_once(
        redis_server: Any) -> None:
    # Given the client of a jobtrail broker channel, and a server out of memory (noeviction)
    admin = redis.Redis.from_url(redis_server.url(0))
    with Connection(redis_server.url(1), transport=TRANSPORT) as conn:
        client = conn.default_channel.client
        client.hset("unacked", "tag", "payload")
        tries: list[int] = []
        outcome: list[BaseException | None] = []

        def requeue(pipe: Any) -> None:  # as kombu's restore_by_tag: read, then MULTI
            tries.append(1)
            pipe.hget("unacked", "tag")
            pipe.multi()
            pipe.lpush("queue", "payload")
            pipe.hdel("unacked", "tag")

        def run() -> None:
            try:
                client.transaction(requeue, "unacked")
                outcome.append(None)
            except redis.ConnectionError as exc:
                outcome.append(exc)

        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        try:
            # When the requeue runs while every write is refused
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(timeout=5)
            spun = worker.is_alive()
        finally:
            admin.config_set("maxmemory", "0")
        worker.join(timeout=5)

        # Then it gave up after one try with a lost connection naming the refusal, and wrote
        # nothing: the message is still unacknowledged, nothing was pushed
        assert not spun, f"the transaction spun: {len(tries)} tries"
        assert len(tries) == 1 and isinstance(outcome[0], redis.ConnectionError), outcome
        assert str(outcome[0]) == ("the broker refused a write: command not allowed when "
                                   "used memory > 'maxmemory'."), outcome[0]
        assert client.hget("unacked", "tag") == b"payload" and client.llen("queue") == 0
