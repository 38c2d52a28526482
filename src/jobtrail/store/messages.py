"""Where a task's message is in the broker: the one lookup trace and doctor share.

Invariant: read-only, one atomic Lua step (find_message.lua) per job, so a
message moving from the queue to kombu's `unacked` hash while it runs is seen
in one place or the other, never missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from jobtrail.keys import KeySpace
from jobtrail.store.scripts import load_script

__all__ = ["MAX_QUEUE_SCAN", "MAX_UNACKED_PAGES", "MessageSearch", "find_message"]

#: At most this many queued messages are scanned for the task id (the scan runs
#: inside Redis and blocks it: about 1 ms per 1,000 messages).
MAX_QUEUE_SCAN = 10_000
#: At most this many HSCAN pages of kombu's `unacked` hash are scanned.
MAX_UNACKED_PAGES = 10


@dataclass(frozen=True, slots=True)
class MessageSearch:
    """What find_message() saw: the queue, the task's place in it, or its unacked entry.

    Attributes:
        queue_length: Messages in the queue list.
        ahead: Messages delivered before this one; None when it is not queued
            (among the `examined`).
        examined: Queue entries examined, from the delivery end.
        unacked_tag: kombu's delivery tag when a worker holds it, else None.
        unacked_since: When kombu delivered it (epoch seconds), else None.
    """

    queue_length: int
    ahead: int | None
    examined: int
    unacked_tag: str | None
    unacked_since: float | None

    @property
    def lost(self) -> bool:
        """True when no message is left: not in the whole queue and not unacked."""
        return (self.ahead is None and self.unacked_tag is None
                and self.examined >= self.queue_length)


def find_message(broker: redis.Redis, keys: KeySpace, job_id: str, *,
                 scan_queue: bool = True) -> MessageSearch:
    """Find the message of *job_id*'s task in the queue and among kombu's unacked entries.

    Args:
        broker: The broker DB.
        keys: The key space (queue name).
        job_id: The job (= task) id.
        scan_queue: False: look among the unacked entries only.

    Raises:
        redis.RedisError: The broker could not be reached (callers wrap it).
    """
    script = load_script(broker, "find_message")
    length, ahead, examined, tag, since = script(
        keys=[keys.queue(), keys.unacked(), keys.unacked_index()],
        args=[f'"id": "{job_id}"', MAX_QUEUE_SCAN if scan_queue else 0, MAX_UNACKED_PAGES])
    return MessageSearch(queue_length=int(length), ahead=None if int(ahead) < 0 else int(ahead),
                         examined=int(examined), unacked_tag=str(tag) or None,
                         unacked_since=float(since) if since else None)
