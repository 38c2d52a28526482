"""Where a job's message is in the broker: the one lookup trace, doctor and recovery share.

Invariant: read-only, one atomic Lua step (find_message.lua) per job, so a
message moving from the queue to kombu's `unacked` hash while it runs is seen
in one place or the other, never missed.

The rule that names a job's message (message_ids): a job sent alone rides
the message whose task id is the job id; a job of a batch rides its batch's
message (task id = the record's `batch`), or a message of its own (requeued
alone by an earlier jobtrail, which left `batch` on the record), so both are
looked for while the job is unfinished; a job `requeue` sent alone has left its batch (its record
names none: JobStore.leave_batch) and rides its own message only. A
finished job is looked for under its own id only: its batch's message stays
unacknowledged while its batch-mates run, and says nothing about it.

kombu's Redis transport stores a message as JSON with the Celery headers in
clear (`headers.id` is the task id, `headers.task` the task name) and the
body base64-encoded (Celery protocol 2: `[args, kwargs, embed]`); an
`unacked` entry is `[message, exchange, routing key]`.
Source: kombu/transport/redis.py (QoS.append, Channel._put), Celery's
message protocol, https://docs.celeryq.dev/en/stable/internals/protocol.html
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from jobtrail.keys import KeySpace
from jobtrail.models import TERMINAL_STATUSES, Job, JobStatus
from jobtrail.store.scripts import load_script

__all__ = ["BATCH_ID_PREFIX", "MAX_QUEUE_SCAN", "MAX_UNACKED_PAGES", "SETTLE_S", "BrokerMessage",
           "MessageSearch", "as_text", "confirm_lost", "find_job_message", "find_message",
           "message_ids", "parse_message"]

#: Task ids of batch messages start with this (worker.app.new_batch_id mints them).
BATCH_ID_PREFIX = "batch-"
#: At most this many queued messages are scanned for the task id (the scan runs
#: inside Redis and blocks it: about 1 ms per 1,000 messages).
MAX_QUEUE_SCAN = 10_000
#: At most this many HSCAN pages of kombu's `unacked` hash are scanned.
MAX_UNACKED_PAGES = 10
#: Seconds after which a pending job found without a message is looked for once more.
SETTLE_S = 0.5
#: Records re-read per MULTI by confirm_lost.
_REREAD_BATCH = 1000


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """A Celery message as kombu keeps it in the broker DB (queue entry or unacked entry).

    Attributes:
        task_id: Its task id (`headers.id`).
        task: Its task name (`headers.task`), "" when absent.
        routing_key: The routing key of an unacked entry ("" for a queue entry).
        job_ids: For a message whose arguments are `[job id, problem]` pairs (a
            batch: jobtrail.solve_batch), the job ids in order; else empty.
    """

    task_id: str
    task: str
    routing_key: str
    job_ids: tuple[str, ...] = ()


def as_text(value: Any) -> str:
    """A reply as str, whether the client decodes (jobtrail's) or not (kombu's)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _batch_ids(message: dict[str, Any]) -> tuple[str, ...]:
    """The job ids of a batch message's arguments `[[job id, problem], ...]`, or ()."""
    body = message.get("body")
    if not isinstance(body, str):
        return ()
    try:
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        payload = json.loads(body)
    except (ValueError, binascii.Error, UnicodeDecodeError, AttributeError):
        return ()
    pairs = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and p and isinstance(p[0], str) for p in pairs):
        return ()
    return tuple(p[0] for p in pairs)


def parse_message(raw: str | bytes) -> BrokerMessage | None:
    """Parse a queue entry or an `unacked` entry; None when it is not a Celery message."""
    try:
        message = json.loads(as_text(raw))
    except ValueError:
        return None
    routing_key = ""
    if isinstance(message, list):  # unacked entries are [message, exchange, routing key]
        routing_key = str(message[2]) if len(message) > 2 else ""
        message = message[0] if message else {}
    headers = message.get("headers") if isinstance(message, dict) else None
    if not isinstance(headers, dict) or not headers.get("id"):
        return None
    return BrokerMessage(task_id=str(headers["id"]), task=str(headers.get("task") or ""),
                         routing_key=routing_key, job_ids=_batch_ids(message))


def message_ids(job: Job) -> tuple[str, ...]:
    """The task ids under which *job*'s message may be in the broker (see the module rule)."""
    if job.batch and job.status not in TERMINAL_STATUSES:
        return (job.batch, job.id)
    return (job.id,)


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
        message: The message found (the queued one if both), else None.
    """

    queue_length: int
    ahead: int | None
    examined: int
    unacked_tag: str | None
    unacked_since: float | None
    message: BrokerMessage | None = None

    @property
    def lost(self) -> bool:
        """True when no message is left: not in the whole queue and not unacked."""
        return (self.ahead is None and self.unacked_tag is None
                and self.examined >= self.queue_length)


def find_message(broker: redis.Redis, keys: KeySpace, task_id: str, *,
                 scan_queue: bool = True, also: str = "") -> MessageSearch:
    """Find the message of task *task_id* (or of task *also*) in the queue and among
    kombu's unacked entries.

    Args:
        broker: The broker DB.
        keys: The key space (queue name).
        task_id: The task id (a job id, or a batch id).
        scan_queue: False: look among the unacked entries only.
        also: A second task id whose message counts as well ("" for none).

    Raises:
        redis.RedisError: The broker could not be reached (callers wrap it).
    """
    script = load_script(broker, "find_message")
    length, ahead, examined, tag, since, found = script(
        keys=[keys.queue(), keys.unacked(), keys.unacked_index()],
        args=[f'"id": "{task_id}"', MAX_QUEUE_SCAN if scan_queue else 0, MAX_UNACKED_PAGES,
              f'"id": "{also}"' if also else ""])
    return MessageSearch(queue_length=int(length), ahead=None if int(ahead) < 0 else int(ahead),
                         examined=int(examined), unacked_tag=as_text(tag) or None,
                         unacked_since=float(since) if since else None,
                         message=parse_message(found) if found else None)


def find_job_message(broker: redis.Redis, keys: KeySpace, job: Job, *,
                     scan_queue: bool = True) -> MessageSearch:
    """Find the message that carries *job* (message_ids: its batch's, or its own).

    Raises:
        redis.RedisError: The broker could not be reached (callers wrap it).
    """
    ids = message_ids(job)
    return find_message(broker, keys, ids[0], scan_queue=scan_queue,
                        also=ids[1] if len(ids) > 1 else "")


def confirm_lost(main: redis.Redis, broker: redis.Redis, keys: KeySpace,
                 seen: Mapping[str, Job]) -> list[str]:
    """The jobs of *seen* (read pending, no message found) still pending without a message.

    A pending job is without a message for a moment while it moves: a submit
    (or requeue) writes the record before it sends the message, and a consumer
    of kombu's own transport (not jobtrail's worker, whose fetch pops and
    records in one step: worker.fetch) pops a message before it writes its
    unacked entry (QoS.append). So each job is looked for again SETTLE_S
    later, then its record is read again in one MULTI: one that started,
    finished and was acknowledged meanwhile moved on (its version changed);
    one still pending with the same version was pending, with no message at
    either look, all along: its message is lost. Doctor's pending-without-message
    check and trace's `stale` verdict both decide by this function.

    Args:
        main: The main DB.
        broker: The broker DB.
        keys: The key space.
        seen: Job id -> the record as read when its message was not found.

    Returns:
        The ids of *seen* whose message is lost, in *seen*'s order; [] at once
        (no sleep) when *seen* is empty.

    Raises:
        redis.RedisError: A DB could not be reached (callers wrap it).

    Source: kombu/transport/redis.py (Channel._brpop_read, QoS.append).
    """
    if not seen:
        return []
    time.sleep(SETTLE_S)
    gone = [j for j, job in seen.items() if find_job_message(broker, keys, job).lost]
    lost: list[str] = []
    for start in range(0, len(gone), _REREAD_BATCH):
        batch = gone[start:start + _REREAD_BATCH]
        with main.pipeline(transaction=True) as pipe:
            for job_id in batch:
                pipe.hmget(keys.job(job_id), ["status", "version"])
            rows = cast(list[list[str | None]], pipe.execute())
        lost += [j for j, (status, version) in zip(batch, rows, strict=True)
                 if as_text(status or "") == JobStatus.PENDING.value
                 and as_text(version or "") == str(seen[j].version)]
    return lost
