"""EventLog: reads a job's lifecycle events stream (`job:<id>:events`).

Invariant: events are written only inside the store's Lua scripts, in the same
atomic step as the change they record; this class only reads them.
"""

from __future__ import annotations

from typing import cast

import redis

from jobtrail.connections import REDIS_ERRORS, wrap_redis_error
from jobtrail.keys import KeySpace
from jobtrail.models import JobEvent
from jobtrail.store.codec import decode_event

__all__ = ["EventLog"]


class EventLog:
    """Reader of lifecycle events in the main DB.

    Args:
        client: redis-py client of the main DB (decode_responses=True).
        keys: Key builder.
    """

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self.client = client
        self.keys = keys

    def read(self, job_id: str, *, count: int | None = None) -> list[JobEvent]:
        """Return the job's events, oldest first (at most *count*).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            entries = cast(list[tuple[str, dict[str, str]]],
                           self.client.xrange(self.keys.events(job_id), count=count))
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        return [decode_event(event_id, fields) for event_id, fields in entries]
