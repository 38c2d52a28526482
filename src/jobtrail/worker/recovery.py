"""A dead worker's jobs back in seconds: hand its unacknowledged messages back to the queue.

A batch message (jobtrail.solve_batch) is handed back whole: each of its
unfinished jobs gets its `redelivered` event; its finished ones, and the ones
requeued alone since (their record no longer names the batch), are left alone.

Invariant: a message is taken back only when no live worker holds it, and
nothing is taken while a missing heartbeat proves nothing (the heartbeats'
server restarted less than the gone threshold ago: store.heartbeats'
absence_unproven_s; RecoveryReport.deferred says so). Every
live worker lists in its heartbeat the ids of all the messages it holds
(running and prefetched: `held`) and the arrival scores of its fetches whose
reply it has not read yet (`fetching`: worker.fetch), and a message is considered only once it
has been unacknowledged for the gone threshold (three heartbeat intervals,
the heartbeat's TTL), so a live holder has beaten at least twice since it got
it. A worker that was only slow (its heartbeat expired while it ran) and
comes back cannot write over the new delivery: its outcome carries its run
token, which the new start replaced. The visibility timeout stays the
backstop.

kombu's Redis transport keeps each delivered, unacknowledged message in the
`unacked` hash (delivery tag -> [message, exchange, routing key]) and its
delivery time in `unacked_index`; kombu itself restores those older than the
visibility timeout (QoS.restore_visible). This module restores the dead
worker's ones at once, with kombu's own QoS.restore_by_tag (a WATCH
transaction: a message acknowledged meanwhile is left alone).

Exactly one worker sweeps per heartbeat interval: a lock with a TTL
(`recovery:<queue>` in the broker DB, SET NX PX). A job found `processing`
goes back to `pending` first, with a `redelivered` event whose reason names
the dead worker ("worker <name> gone since <time>"), guarded by the record's
version; its message is then restored, and the next delivery starts it anew.

Source: kombu.transport.redis.QoS (unacked, unacked_index, restore_by_tag);
BullMQ's stalled-jobs check, https://docs.bullmq.io/guide/jobs/stalled;
Sidekiq Pro's super_fetch, https://github.com/sidekiq/sidekiq/wiki/Reliability
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import redis
from celery import Celery

from jobtrail.clock import now_s, to_ms
from jobtrail.config import Settings
from jobtrail.connections import REDIS_ERRORS, connect, wrap_redis_error
from jobtrail.errors import ConcurrentUpdateError, InvalidTransitionError, JobNotFoundError
from jobtrail.keys import KeySpace
from jobtrail.logconfig import REPORTED
from jobtrail.models import TERMINAL_STATUSES, EventType, Job, JobStatus
from jobtrail.store import JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.store.messages import BrokerMessage, as_text, parse_message
from jobtrail.worker.app import TASK_SOLVE_BATCH

__all__ = ["DeadWorkerSweep", "Recovered", "RecoveryReport", "gone_reason", "started_on"]

logger = logging.getLogger(__name__)

#: Unacked entries read per round trip.
BATCH = 500


@dataclass(frozen=True, slots=True)
class Recovered:
    """One message handed back to the queue."""

    job_id: str
    status: str            # the record's status when it was found
    worker: str            # the worker that held it ("" when the record does not say)
    reason: str
    restored: bool         # False: the message was acknowledged meanwhile (nothing to do)


@dataclass(slots=True)
class RecoveryReport:
    """What one sweep did."""

    recovered: list[Recovered] = field(default_factory=list)
    locked_out: bool = False   # another worker swept this interval
    examined: int = 0          # unacknowledged messages old enough to be looked at
    #: Why nothing was taken back although heartbeats are missing ("" when judged):
    #: the heartbeats' server restarted less than the gone threshold ago.
    deferred: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        return {"locked_out": self.locked_out, "examined": self.examined,
                "deferred": self.deferred,
                "recovered": [asdict(r) for r in self.recovered]}


def gone_reason(worker: str, last_seen: float | None, *,
                started_at: float | None = None) -> str:
    """Return "worker <name> gone since <UTC time>" (the redelivered event's reason).

    Args:
        worker: The node name.
        last_seen: Its last heartbeat, epoch seconds (None or 0: none on record).
        started_at: When it started the job it held, epoch seconds (None: not known):
            a sign of life too, so the worker is gone since the later of the two (a
            worker killed between heartbeats started its job after its last one).
    """
    if not last_seen:
        return f"worker {worker or '(unknown)'} gone (no heartbeat on record)"
    seen = max(last_seen, started_at or 0.0)
    at = datetime.fromtimestamp(seen, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"worker {worker} gone since {at}"


def started_on(jobs: Sequence[Job], worker: str) -> float | None:
    """The latest start (epoch s) of a processing job of *jobs* on *worker* (None: none)."""
    return max((j.started_at for j in jobs if j.status is JobStatus.PROCESSING
                and j.worker == worker and j.started_at), default=None)


def _batch_holder(jobs: list[Job], delivered_at: float) -> str:
    """The worker that held a batch message delivered at *delivered_at* (epoch seconds):
    the one its processing job names, else the one its latest job started since the
    delivery names ("" when none has: an earlier delivery's worker is not this one)."""
    running = [j for j in jobs if j.status is JobStatus.PROCESSING and j.worker]
    if running:
        return running[0].worker
    started = [j for j in jobs if (j.started_at or 0.0) >= delivered_at and j.worker]
    return max(started, key=lambda j: j.started_at or 0.0).worker if started else ""


class DeadWorkerSweep:
    """Hands the messages no live worker holds back to the queue.

    Args:
        app: The Celery app (its broker connection restores messages the kombu way).
        store: Job store of the main DB.
        heartbeats: Heartbeat store of the main DB.
        broker: redis-py client of the broker DB (the unacked hash and the lock).
        keys: Key builder.
        gone_after_s: Seconds without a heartbeat after which a worker is gone,
            and the least age of an unacknowledged message taken back.
        node: Name of the sweeping worker (logged), "" for an operator.
    """

    def __init__(self, app: Celery, store: JobStore, heartbeats: HeartbeatStore,
                 broker: redis.Redis, keys: KeySpace, *, gone_after_s: float,
                 node: str = "") -> None:
        self.app = app
        self.store = store
        self.heartbeats = heartbeats
        self.broker = broker
        self.keys = keys
        self.gone_after_s = gone_after_s
        self.node = node

    @classmethod
    def for_worker(cls, app: Celery, settings: Settings, *, node: str) -> DeadWorkerSweep:
        """Return the sweep a worker's heartbeat thread runs (clients of its own)."""
        main_url, broker_url, _ = settings.require_urls()
        main = connect(main_url, settings=settings)
        keys = KeySpace(settings.key_prefix, settings.queue)
        return cls(app, JobStore(main, keys, events_max_len=settings.events_max_len),
                   HeartbeatStore(main, keys, gone_after_s=settings.gone_after_s),
                   connect(broker_url, settings=settings), keys,
                   gone_after_s=settings.gone_after_s, node=node)

    def __call__(self) -> RecoveryReport:
        """Sweep once if no other worker did this interval (the lock)."""
        return self.sweep(lock=True)

    def _take_lock(self) -> bool:
        try:
            return bool(self.broker.set(self.keys.recovery_lock(), self.node or uuid.uuid4().hex,
                                        nx=True, px=max(1, to_ms(self.gone_after_s / 3))))
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("broker", exc) from exc

    def _old_unacked(self, older_than: float) -> Iterator[tuple[str, float, str]]:
        """Yield (delivery tag, delivered at in epoch seconds, raw entry) of messages
        unacknowledged since before *older_than*."""
        try:
            replies = cast(list[tuple[Any, float]], self.broker.zrangebyscore(
                self.keys.unacked_index(), "-inf", older_than, withscores=True))
            scored = [(as_text(t), float(at)) for t, at in replies]
            for start in range(0, len(scored), BATCH):
                batch = scored[start:start + BATCH]
                rows = cast(list[Any], self.broker.hmget(self.keys.unacked(),
                                                         [tag for tag, _ in batch]))
                for (tag, at), raw in zip(batch, rows, strict=True):
                    if raw is not None:
                        yield tag, at, as_text(raw)
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("broker", exc) from exc

    def sweep(self, *, lock: bool = True, only: set[str] | None = None,
              reason_prefix: str = "") -> RecoveryReport:
        """Take back every message no live worker holds that is old enough.

        Args:
            lock: Skip the sweep when another worker holds the lock this interval.
            only: Consider only the messages carrying these job ids (`jobtrail
                requeue`); a batch message brings back its other unfinished jobs too.
            reason_prefix: Put before the event's reason (e.g. "requeued: ").

        Raises:
            RedisUnavailableError: The main DB or the broker could not be reached.
        """
        report = RecoveryReport()
        if lock and not self._take_lock():
            report.locked_out = True
            return report
        now = now_s()
        workers = self.heartbeats.list_workers()
        unjudged = [b for b in workers if not b.alive and not b.gone]
        if unjudged:
            # a live worker may not have beaten since Redis came back: its `held` list is
            # missing, so no message is provably its own or not; take nothing yet
            report.deferred = (f"worker {unjudged[0].name}: {unjudged[0].absence_note}"
                               + (f" (and {len(unjudged) - 1} more)" if len(unjudged) > 1
                                  else ""))
            logger.info("dead-worker sweep deferred: %s", report.deferred)
            return report
        live = {b.name for b in workers if b.alive}
        last_seen = {b.name: b.last_seen for b in workers}
        held, fetching = self.heartbeats.holdings_of_live_workers(sorted(live))
        for tag, delivered_at, raw in self._old_unacked(now - self.gone_after_s):
            message = parse_message(raw)
            if message is None or message.task_id in held or delivered_at in fetching \
                    or message.routing_key != self.keys.queue_name:
                continue
            job_ids = message.job_ids if message.task == TASK_SOLVE_BATCH else (
                message.task_id,)
            if only is not None and not only & set(job_ids):
                continue
            report.examined += 1
            jobs = [j for j in (self.store.find(i) for i in job_ids) if j is not None]
            if not jobs:
                continue  # not a job of this keyspace
            outcomes = self._recover_message(tag, message, jobs, live, last_seen,
                                             reason_prefix, delivered_at=delivered_at)
            for outcome in outcomes:
                report.recovered.append(outcome)
                logger.warning("dead worker's job back to the queue job_id=%s status=%s "
                               "reason=%s message=%s by=%s", outcome.job_id, outcome.status,
                               outcome.reason, message.task_id, self.node or "operator",
                               extra=REPORTED)  # in the report too: recover, requeue print it
        return report

    def _recover_message(self, tag: str, message: BrokerMessage, jobs: list[Job],
                         live: set[str], last_seen: dict[str, float],
                         reason_prefix: str, *, delivered_at: float) -> list[Recovered]:
        """Send the jobs of one unacknowledged message back to pending, then restore it.

        A batch message's finished jobs are left as they are (the next delivery
        skips them); each unfinished one gets its `redelivered` event, naming
        the worker that held the batch (the one its job running names, else the
        one its latest job started in this delivery, since *delivered_at*,
        epoch seconds, names).
        """
        if message.task != TASK_SOLVE_BATCH:
            outcome = self._recover(jobs[0], live, last_seen, reason_prefix,
                                    started_at=started_on(jobs[:1], jobs[0].worker))
            if outcome is None:
                return []
            return [replace(outcome, restored=self._restore(tag))]
        # a job requeued alone since (its record no longer names the batch) rides its
        # own message: the batch's redelivery leaves it, and so does this
        jobs = [job for job in jobs if job.batch == message.task_id]
        holder = _batch_holder(jobs, delivered_at)
        started = started_on(jobs, holder)
        outcomes = [o for job in jobs if job.status not in TERMINAL_STATUSES
                    and (o := self._recover(job, live, last_seen, reason_prefix,
                                            holder=holder, started_at=started)) is not None]
        restored = self._restore(tag)
        return [replace(o, restored=restored) for o in outcomes]

    def _recover(self, job: Job, live: set[str], last_seen: dict[str, float],
                 reason_prefix: str, *, holder: str | None = None,
                 started_at: float | None = None) -> Recovered | None:
        """Put *job* back to pending with its `redelivered` event (None: it moved on).

        *holder* is the worker a batch message's jobs name (None: a single job's
        message, whose record names its worker; "": a batch none of whose jobs
        has started); *started_at* (epoch s) when that worker started the
        message's running job (gone_reason).
        """
        worker = job.worker if holder is None else holder
        if worker in live:
            # alive, but it no longer holds the message (its reject or ack was lost in a
            # failover): the heartbeat's `held` list is the authority, not the record
            reason = reason_prefix + f"worker {worker} no longer holds its message"
        else:
            reason = reason_prefix + gone_reason(worker, last_seen.get(worker),
                                                 started_at=started_at)
        if job.status is JobStatus.PROCESSING:
            try:
                self.store.transition(job.id, JobStatus.PENDING, event=EventType.REDELIVERED,
                                      event_fields={"reason": reason, "dead_worker": worker},
                                      expected_version=job.version)
            except (ConcurrentUpdateError, InvalidTransitionError, JobNotFoundError):
                return None  # it moved on meanwhile: whoever moved it owns it
        elif job.status is JobStatus.PENDING and holder:
            # a batch-mate waiting its turn on the worker that is gone: it stays pending
            self.store.note_redelivered(job.id, reason=reason, dead_worker=worker)
        elif job.status is JobStatus.PENDING:
            reason = reason_prefix + "prefetched by a worker that is gone, or its delivery " \
                "lost with its connection (no live worker holds its message)"
        else:
            reason = reason_prefix + f"already {job.status.value}; the message was never " \
                "acknowledged (its worker is gone)"
        return Recovered(job.id, job.status.value, worker, reason, False)

    def _restore(self, tag: str) -> bool:
        """Put the unacked message *tag* back on its queue under a new delivery tag; False
        if gone.

        kombu's QoS.restore_by_tag pushes the message back with its delivery tag, so
        the next delivery holds the same tag as the one taken back: a worker that was
        only stopped and comes back would then acknowledge (or reject) the new
        delivery's message on finishing its own, and a batch it gave up would go back
        to the queue while the new delivery runs it. A fresh tag makes the old
        delivery's ack a no-op. The same WATCH transaction as kombu's (a message
        acknowledged meanwhile is left alone).
        """
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            qos, unacked = channel.qos, self.keys.unacked()

            def restore(pipe: Any) -> None:
                raw = pipe.hget(unacked, tag)
                pipe.multi()
                qos._remove_from_indices(tag, pipe)
                if raw:
                    payload, exchange, routing_key = json.loads(raw)
                    payload["properties"]["delivery_tag"] = channel._next_delivery_tag()
                    channel._do_restore_message(payload, exchange, routing_key, pipe)
                found.append(bool(raw))

            found: list[bool] = []
            try:
                channel.client.transaction(restore, unacked)
            except REDIS_ERRORS as exc:
                raise wrap_redis_error("broker", exc) from exc
        return found[-1] if found else False

