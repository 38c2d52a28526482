"""jobtrail's kombu Redis transport: no transparent reconnect under the event loop's feet.

kombu's Redis channel keeps two long-lived connections that the worker's
event loop polls by file descriptor: the consumer's BRPOP connection and the
pub/sub (LISTEN) connection of the control mailbox. redis-py retries a
command that failed on a connection error on a *new* socket when the
connection has a Retry with retries left, which `retry_on_timeout=True`
gives it (Retry(NoBackoff(), 1), on ConnectionError and TimeoutError). On
those two connections that retry hides the failure from kombu and leaves the
event loop behind:

- a pub/sub read of a killed connection (`CLIENT KILL`, a reset) reconnects
  and re-subscribes, then reads the new socket again with no timeout: the
  worker's main thread blocks there until some broadcast arrives, so the
  consumer neither consumes nor notices the lost broker;
- a health-check PING before a BRPOP reconnects on a new fd that kombu never
  registered with its poller, so the BRPOP reply is never read.

This transport gives the connections of the channel's asynchronous pool (the
ones the event loop polls) no retry, so the error reaches kombu and Celery,
which log "Connection to broker lost" and reconnect the consumer; the
synchronous pool, which runs every other command (publish, ack, the unacked
HSET), keeps the configured retry.

Source: redis-py AbstractConnection.__init__ (retry / retry_on_timeout),
PubSub.parse_response and _execute, AbstractConnection.check_health;
kombu.transport.redis Channel._connparams, MultiChannelPoller._register.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis
from celery.worker import state as worker_state
from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils import json as kombu_json
from redis.backoff import NoBackoff
from redis.exceptions import ReadOnlyError
from redis.retry import Retry

from jobtrail.connections import refuses_writes_now
from jobtrail.failover import MASTER_CHECK_S, follow_master_switch
from jobtrail.worker.celery_urls import KOMBU_TRANSPORT_ALIAS
from jobtrail.worker.fetch import ReliableFetch

__all__ = ["FAILOVER_RETRY_OPTION", "MASTER_CHECK_OPTION",
           "SENTINEL_TRANSPORT", "TRANSPORT", "Channel", "OwnDeliveryQoS", "SentinelChannel",
           "SentinelTransport", "Transport", "broker_transport", "running_deliveries"]

#: The Celery `broker_transport` naming this module's Transport.
TRANSPORT = "jobtrail.worker.transport:Transport"
#: The Celery `broker_transport` naming this module's SentinelTransport.
SENTINEL_TRANSPORT = "jobtrail.worker.transport:SentinelTransport"
#: broker_transport_options read by SentinelChannel (kombu keeps options it does not know).
MASTER_CHECK_OPTION = "jobtrail_master_check_s"
FAILOVER_RETRY_OPTION = "jobtrail_failover_retry_s"

logger = logging.getLogger(__name__)

#: kombu's virtual QoS (untyped): the local prefetch bookkeeping under the Redis one.
_VIRTUAL_QOS: Any = virtual.QoS


#: Acknowledge a delivery tag's unacked entry only if its unacked_index score is the
#: arrival this consumer recorded (ARGV[2]; "" when unknown: as kombu, unconditionally).
#: KEYS: unacked_index, unacked. Returns 1 when removed or absent, 0 when a newer
#: delivery holds the tag (left alone).
_ACK_IF_MINE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and ARGV[2] ~= '' and tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


@contextmanager
def _refusal_as_lost_connection() -> Iterator[None]:
    """Raise a write the broker refuses for now (OOM, READONLY, NOREPLICAS) as a lost
    connection: Celery then logs "Couldn't ack/reject" and the worker serves on (the
    entry left in `unacked` comes back after the visibility timeout), where kombu's
    channel error (ResponseError) ended the worker ("Unrecoverable error")."""
    try:
        yield
    except redis.ResponseError as exc:
        if not refuses_writes_now(exc):
            raise
        raise redis.ConnectionError(f"the broker refused a write: {exc}") from exc


def running_deliveries() -> frozenset[str]:
    """Return the delivery tags of the messages this worker process runs now.

    Those are Celery's active requests (accepted by a pool process, not yet
    finished), known in the worker's main process, where the consumer and its
    channel live; a request not yet accepted is no running delivery (Celery's
    pool drops it at a reconnect: it must be put back). None while the worker
    shuts down (Celery's should_stop or should_terminate set), nor in a process
    that is not a worker (a producer).

    Returns:
        The delivery tags (kombu's, one per delivery of a message), possibly empty.

    Source: celery.worker.state active_requests, should_stop, should_terminate
    (celery 5.7).
    """
    if worker_state.should_stop not in (None, False) \
            or worker_state.should_terminate not in (None, False):
        return frozenset()
    tags = (getattr(request.message, "delivery_tag", None)
            for request in list(worker_state.active_requests))
    return frozenset(str(tag) for tag in tags if tag)


class OwnDeliveryQoS(kombu_redis.QoS):
    """kombu's Redis QoS whose ack and reject act only on this consumer's own delivery.

    kombu's visibility-timeout restore (QoS.restore_visible -> restore_by_tag)
    pushes a message back under its delivery tag, so the next delivery's
    unacked entry has the old one's tag. A worker stopped past the visibility
    timeout (SIGSTOP, a long GC or swap) that resumes and then acks its
    message would remove the new delivery's entry (the message lost if that
    worker dies), and a reject with requeue (a batch handed back, a pool
    process lost) would queue the message again while the new delivery runs
    it (a third delivery). This QoS remembers the `unacked_index` score (epoch
    seconds) it wrote when the message arrived; an ack, a reject or the
    restore at shutdown whose tag now bears another score belongs to a newer
    delivery: it only frees the local prefetch slot. The check and the write
    are one step (a script; for a requeue, a WATCH transaction as kombu's).

    Source: kombu.transport.redis.QoS append, ack, reject, restore_by_tag,
    restore_visible (kombu 5.7).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        #: delivery tag -> the unacked_index score this consumer wrote on arrival
        self._arrived: dict[str, float] = {}
        self._ack_script: Any = None

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record the delivery as kombu does (unacked_index, unacked, in one MULTI),
        remembering its score; the reply is read later (_UnreadWrites). A message the
        channel's fetch recorded already (worker.fetch) is only remembered.

        A record the broker refuses (out of memory) is logged when its reply is read:
        the message runs all the same, and its ack removes nothing; were this worker
        lost meanwhile, the message could not be restored (the dead-worker sweep
        then sends its job again: worker.recovery). kombu raised instead, and its
        reconnect dropped the message, which BRPOP had already taken off the queue.
        """
        fetched = self.channel.take_fetched(delivery_tag)
        if fetched is not None:  # recorded in the step that took it off the queue (fetch)
            self._arrived[delivery_tag] = fetched
            _VIRTUAL_QOS.append(self, message, delivery_tag)
            return
        delivery = message.delivery_info
        arrived = time.time()
        raw = json.dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        if not self.channel.send_unread(
                [("MULTI",), ("ZADD", self.unacked_index_key, repr(arrived), delivery_tag),
                 ("HSET", self.unacked_key, delivery_tag, raw), ("EXEC",)],
                _record_handlers(delivery_tag)):
            with self.pipe_or_acquire() as pipe:
                pipe.zadd(self.unacked_index_key, {delivery_tag: arrived}).hset(
                    self.unacked_key, delivery_tag, raw).execute()
        self._arrived[delivery_tag] = arrived
        _VIRTUAL_QOS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        """Remove the unacked entry if it is still this delivery's; free the slot.

        The slot is freed even when Redis refuses the removal (read-only, out of
        memory): the entry left in `unacked` comes back after the visibility
        timeout, while a slot kept would stop the consumer for good.
        """
        arrived = self._arrived.pop(delivery_tag, None)
        keys, args = [self.unacked_index_key, self.unacked_key], [
            delivery_tag, "" if arrived is None else repr(arrived)]
        try:
            # the script's text with each ack (EVAL, not EVALSHA): a reply read later
            # cannot be answered NOSCRIPT by sending the text then
            if self.channel.send_unread([("EVAL", _ACK_IF_MINE, len(keys), *keys, *args)],
                                        [lambda reply: _log_ack(delivery_tag, reply)]):
                return
            with self.channel.conn_or_acquire() as client:
                if self._ack_script is None:  # EVALSHA an ack, the text sent once (NOSCRIPT)
                    self._ack_script = client.register_script(_ACK_IF_MINE)
                _log_ack(delivery_tag, self._ack_script(keys=keys, args=args, client=client))
        finally:
            _VIRTUAL_QOS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Reject this delivery (requeue: back to the head of its queue) if it is still this
        delivery's; free the slot either way, as ack() does, even when Redis refuses."""
        if not requeue:
            self.ack(delivery_tag)
            return
        try:
            self._restore_if_mine(delivery_tag, leftmost=True)
        finally:
            _VIRTUAL_QOS.ack(self, delivery_tag)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        """kombu's restore of deliveries past the visibility timeout, skipped for now (it
        runs again every few seconds) when the broker refuses its lock's SET (OOM,
        READONLY, NOREPLICAS): a ResponseError there, at a reconnect, ended the worker."""
        try:
            self.channel.settle_unread()
            super().restore_visible(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.ConnectionError as exc:
            if exc.__cause__ is None or not refuses_writes_now(exc.__cause__):
                raise
            logger.warning("deliveries past the visibility timeout not restored yet: the "
                           "broker refuses writes (%s)", exc)

    def restore_unacked(self, client: Any = None) -> None:
        """At the channel's close, put back this consumer's own unacknowledged deliveries,
        but at a reconnect not those still running in this worker.

        kombu closes the channel at shutdown and at every reconnect (Celery's consumer
        after a lost broker connection), when deliveries may still run in pool
        processes (Celery lets them run on). kombu put those back too: the
        reconnected consumer delivered the message again, an idle pool process
        started the job a second time, and the start counted an attempt and a
        `redelivered` event for a worker that was never lost (a few reconnects and
        the job failed "gave up after N attempts"). A running delivery
        (running_deliveries) is left unacknowledged in the broker instead, its
        `unacked` entry and arrival score as they are: its ack at the end removes
        it, a reject with requeue (its pool process lost) restores it, and if the
        whole worker dies, the dead-worker sweep or the visibility timeout does
        (at least once). Every other delivery (prefetched, not started: Celery
        drops it at the reconnect) and, at shutdown, every one is put back as
        kombu does; their arrival scores are kept, so that a late ack or reject
        through this closed channel's QoS leaves the next delivery of the
        restored message alone (an unconditional requeue queued it a third time;
        an ack removed the new delivery's entry).

        Source: kombu.transport.virtual.Channel.close (restore_unacked_once);
        celery.worker.consumer.Consumer.on_connection_error_after_connected
        (kombu 5.7, celery 5.7).
        """
        self.channel.settle_unread()
        running = running_deliveries()
        kept = [tag for tag in self._delivered if tag in running]
        # the client is taken even when every delivery is kept: kombu drops the channel's
        # pools before this restore and its transport after, so the pool built here is the
        # one a kept delivery's ack or reject at the end reaches the broker through
        with self.channel.conn_or_acquire(client) as conn:
            for tag in list(self._delivered):
                if tag not in running:
                    self._restore_if_mine(tag, leftmost=False, client=conn, forget=False)
        self._delivered.clear()
        if kept:
            logger.info("deliveries still running left unacknowledged at the channel's close "
                        "(not put back) tags=%s", ",".join(kept))

    def _restore_if_mine(self, tag: str, *, leftmost: bool, client: Any = None,
                         forget: bool = True) -> None:
        arrived = self._arrived.pop(tag, None) if forget else self._arrived.get(tag)

        def restore(pipe: Any) -> None:
            raw = pipe.hget(self.unacked_key, tag)
            score = pipe.zscore(self.unacked_index_key, tag)
            pipe.multi()
            if arrived is not None and score is not None and float(score) != arrived:
                pipe.zscore(self.unacked_index_key, tag)  # a newer delivery's: no write
                skipped.append(tag)
                return
            qos: Any = self
            qos._remove_from_indices(tag, pipe)
            if raw:
                payload, exchange, routing_key = json.loads(raw)
                self.channel._do_restore_message(payload, exchange, routing_key, pipe,
                                                 leftmost)

        skipped: list[str] = []
        self.channel.settle_unread()  # this delivery's record (and acks) applied first
        with self.channel.conn_or_acquire(client) as conn:
            conn.transaction(restore, self.unacked_key, self.unacked_index_key)
        if skipped:
            logger.warning("requeue of a delivery restored and delivered again left alone "
                           "tag=%s", tag)


def _log_ack(delivery_tag: str, reply: Any) -> None:
    """Log what an ack's reply says when it is not "removed" (OwnDeliveryQoS.ack)."""
    if isinstance(reply, Exception):
        logger.warning("ack not applied tag=%s (%s): the delivery's entry comes back after "
                       "the visibility timeout", delivery_tag, reply)
    elif not reply:
        logger.warning("ack of a delivery restored and delivered again left alone tag=%s",
                       delivery_tag)


def _record_handlers(delivery_tag: str) -> list[ReplyHandler]:
    """The handlers of an unacked record's MULTI, ZADD, HSET and EXEC replies
    (OwnDeliveryQoS.append): the first error among them (a write refused: OOM) is logged
    once the EXEC's reply is read."""
    first: list[Exception] = []

    def note(reply: Any) -> None:
        if isinstance(reply, Exception) and not first:
            first.append(reply)

    def done(reply: Any) -> None:
        note(reply)
        if first:
            logger.error("unacked record of a delivery not written tag=%s (%s): it runs, "
                         "but could not be restored were this worker lost", delivery_tag,
                         first[0])

    return [note, note, note, done]


def _refusing(connection_class: type) -> type:
    """Return *connection_class* whose replies refusing a write for now (OOM, READONLY,
    NOREPLICAS) raise ConnectionError: to kombu and Celery the broker is then down for
    now (the consumer reconnects, an ack or reject is "Couldn't ack") instead of a
    channel error that ends the worker ("Unrecoverable error"), wherever kombu writes
    (BRPOP pops, the restore lock, a queue's binding at a reconnect)."""

    class RefusalAsLostConnection(connection_class):  # type: ignore[misc]
        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            with _refusal_as_lost_connection():
                return super().read_response(*args, **kwargs)

    RefusalAsLostConnection.__name__ = f"RefusalAsLost{connection_class.__name__}"
    return RefusalAsLostConnection


def _refused_while_watching(exc: redis.WatchError) -> bool:
    """True when redis-py raised *exc* for a connection error that was a refused write
    (_refusing): it turns any ConnectionError while keys are watched into WatchError."""
    seen: BaseException | None = exc.__context__
    while seen is not None:
        if refuses_writes_now(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _refusal_aware(client_class: type) -> type:
    """Return redis-py client *client_class* whose transaction() gives up on a refused
    write instead of retrying it at once, for ever.

    redis-py's Redis.transaction retries every WatchError with no limit, and a refused
    write under WATCH (_refusing makes it a ConnectionError, which redis-py turns into a
    WatchError) would spin the worker's event loop until the broker takes writes again:
    kombu's restore of an unacked message, and a requeue (OwnDeliveryQoS), run there.
    A true WatchError (a watched key changed) is retried as redis-py does.
    """

    class RefusalAwareRedis(client_class):  # type: ignore[misc]
        def transaction(self, func: Any, *watches: Any, **kwargs: Any) -> Any:
            """redis-py's transaction(); raises redis.ConnectionError on a refused write."""
            value_from_callable = kwargs.pop("value_from_callable", False)
            watch_delay = kwargs.pop("watch_delay", None)
            with self.pipeline(True, kwargs.pop("shard_hint", None)) as pipe:
                while True:
                    try:
                        if watches:
                            pipe.watch(*watches)
                        value = func(pipe)
                        done = pipe.execute()
                        return value if value_from_callable else done
                    except redis.WatchError as exc:
                        if _refused_while_watching(exc):
                            raise redis.ConnectionError(str(exc.__context__)) from exc
                        if watch_delay:
                            time.sleep(watch_delay)

    RefusalAwareRedis.__name__ = f"RefusalAware{client_class.__name__}"
    return RefusalAwareRedis


class _LoopWithoutRetry:
    """Gives kombu's event-loop connections no redis-py retry (a mixin of both channels),
    every broker connection a refused write as a lost connection (_refusing), and its
    clients a transaction() that does not spin on one (_refusal_aware)."""

    def _get_client(self) -> Any:
        """Return kombu's redis-py client class, refusal-aware (never its key-prefixing
        partial: the channel refuses global_keyprefix, worker.fetch)."""
        return _refusal_aware(super()._get_client())  # type: ignore[misc]

    def _create_client(self, asynchronous: bool = False) -> Any:
        """Return a redis-py client of the channel's pool, one kept per synchronous pool.

        kombu built a new client for every command it runs outside the event loop
        (an arrival's unacked record, each ack, each publish): redis-py's client
        copies its table of reply callbacks when it is made, a tenth of a busy
        worker main process's time (py-spy). A client holds no connection of its
        own (each command checks one out of the pool), so one serves them all; a
        new pool (the channel's pools dropped at a reconnect) gets a new client.
        """
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool  # type: ignore[attr-defined]
        client = self.__dict__.get("_sync_client")
        if client is None or client.connection_pool is not pool:
            client = self.__dict__["_sync_client"] = super()._create_client()  # type: ignore[misc]
        return client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        """Return kombu's connection parameters, without retry for the asynchronous pool.

        Args:
            asynchronous: True for the pool of the fetch and pub/sub connections.

        Returns:
            The keyword arguments of the redis-py ConnectionPool.
        """
        params: dict[str, Any] = super()._connparams(  # type: ignore[misc]
            asynchronous=asynchronous)
        params["connection_class"] = _refusing(params.get("connection_class")
                                               or redis.Connection)
        if asynchronous:
            params["retry_on_timeout"] = False
            params["retry"] = Retry(NoBackoff(), 0)
        return params


#: What a write whose reply is read later does with that reply (the reply, or the error
#: reply as an exception): None for a reply nobody reads (an event's subscriber count).
ReplyHandler = Callable[[Any], None] | None


class _UnreadWrites:
    """Writes whose replies are read later: Celery's task events and the QoS's unacked
    bookkeeping (a mixin of both channels).

    kombu waits for the reply of each of them. A PUBLISH's reply is the number of
    subscribers that got the event, which nobody reads: a submit paid a broker
    round trip for its task-sent event after the task's own, and a worker one per
    event flush. A delivery's unacked record (QoS.append) and its ack are each a
    round trip of the worker's main process, which at prefetch 1 a pool process
    waits for between two jobs, while neither reply changes what the worker does:
    the record is written as soon as the server reads it (a reply says so later),
    and an ack's reply only says whether a newer delivery held the tag.

    This channel writes them on a connection it keeps out of the pool for that alone
    (in order, so an ack never overtakes its delivery's record) and reads the
    replies later: those already in before its next write (a closed connection is
    noticed there, before a write goes into it; one taken from the pool gets
    redis-py's health check first, as kombu's commands do), all of them once
    UNREAD_MAX are unread or after HOLD_S (the connection goes back to the pool, so
    a Sentinel pool's check of the master still runs), before a restore reads the
    unacked hash (settle_unread), and when the channel closes, so closing never
    resets a socket holding replies unread (a reset could drop a write the server
    had not read yet). Each reply goes to its write's handler: an error reply there
    is logged, not raised. A write whose connection fails is made again the normal
    way, reply awaited (kombu's retry); a reply lost with its connection only logs.
    Every other command (task messages, the control mailbox, restores) is kombu's,
    reply awaited.

    Source: kombu.transport.redis Channel._put_fanout, QoS.append, QoS.ack (kombu
    5.7); redis-py Connection.send_command(check_health=False), check_health,
    read_response, ConnectionPool.release.
    """

    #: Celery's `event_exchange` (its default; jobtrail does not change it).
    EVENT_EXCHANGE = "celeryev"
    #: Most replies left unread on the held connection before they are read.
    UNREAD_MAX = 64
    #: Seconds the held connection is kept out of the pool before it goes back.
    HOLD_S = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._events_lock = threading.RLock()
        self._events_conn: Any = None
        #: the handler of each unread reply, oldest first
        self._replies: deque[ReplyHandler] = deque()
        self._events_until = 0.0
        self._events_pid = 0
        self._events_sent_at = 0.0
        #: the held connection's socket when its replies were left unread
        self._events_sock: Any = None
        super().__init__(*args, **kwargs)

    @property
    def _events_unread(self) -> int:
        """How many replies the held connection holds unread."""
        return len(self._replies)

    def send_unread(self, commands: Sequence[tuple[Any, ...]],
                    handlers: Sequence[ReplyHandler]) -> bool:
        """Write *commands* (each a redis command and its arguments) on the held connection,
        their replies unread; each reply goes later to the handler at its index.

        Returns:
            False when the connection failed (dropped; nothing is known to have been
            applied), or the channel is closed (a late ack of a delivery that ran on
            through a reconnect: no later write or close would read its reply): the
            caller makes the write the normal way.

        Raises:
            BaseException: An exception interrupting the send (a signal handler's): the
                connection is dropped, its unread replies with it.
        """
        if getattr(self, "closed", False):
            return False
        with self._events_lock:
            try:
                conn = self._held_connection()
                if len(commands) != len(handlers):
                    raise ValueError("one reply handler per command")
                # one write for them all (redis-py's pipeline packing), however many
                conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                self._replies.extend(handlers)
                self._events_sent_at = time.monotonic()
                return True
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                logger.debug("write without its reply failed, made again: %s", exc)
                self._drop_event_connection()
            except BaseException:
                # interrupted halfway (a signal handler's exception): redis-py closed the
                # connection, whose unread replies went with it
                self._drop_event_connection()
                raise
        return False

    def settle_unread(self) -> None:
        """Read every unread reply now (each to its handler): before a restore reads the
        unacked hash on another connection, the records and acks written are applied."""
        with self._events_lock:
            self._read_event_replies(release=False)

    def _put_fanout(self, exchange: str, message: Any, routing_key: str,
                    **kwargs: Any) -> None:
        """Publish *message* to *exchange*; to the event exchange with its reply unread."""
        if exchange != self.EVENT_EXCHANGE or kwargs.get("_publish_batch") is not None:
            super()._put_fanout(exchange, message, routing_key, **kwargs)  # type: ignore[misc]
            return
        topics = self._get_publish_topics(exchange, routing_key)  # type: ignore[attr-defined]
        payload = kombu_json.dumps(message)  # type: ignore[no-untyped-call]
        if not self.send_unread([("PUBLISH", topic, payload) for topic in topics],
                                [None] * len(topics)):
            super()._put_fanout(exchange, message, routing_key, **kwargs)  # type: ignore[misc]

    def _held_connection(self) -> Any:
        """The held connection, its replies read first when due; checked out if none."""
        conn = self._held()
        if conn is not None and (len(self._replies) >= self.UNREAD_MAX
                                 or time.monotonic() >= self._events_until):
            self._read_event_replies(release=True)
            conn = self._held()  # None unless a handler wrote again
        if conn is not None:
            # replies already in (the usual case by the next write) are read now, and a
            # connection the server closed is noticed here, before a write goes into it
            while conn.can_read():
                if not self._replies:
                    raise redis.ConnectionError("the held connection was closed")
                self._read_one_reply(conn)
        else:
            conn = self.pool.get_connection()  # type: ignore[attr-defined]
            self._events_conn, self._events_pid = conn, os.getpid()
            # redis-py's health check (a PING if idle past health_check_interval, with the
            # pool's retry: a reconnect), which kombu's commands get from send_command: a
            # connection that went half-open in the pool would take the writes unchecked.
            # Only here, where no reply is unread: a PING behind unread replies would read
            # one of them ("Bad response from PING health check").
            conn.check_health()
            self._events_sock = conn._sock
            self._events_until = time.monotonic() + self.HOLD_S
        return conn

    def _read_one_reply(self, conn: Any) -> None:
        """Read the oldest unread reply and give it to its handler; an error reply (a
        write refused) is the handler's, read off the connection like any reply."""
        handler = self._replies.popleft()
        try:
            reply: Any = conn.read_response()
        except redis.ResponseError as exc:
            reply = exc
        except redis.ConnectionError as exc:
            if exc.__cause__ is None or not refuses_writes_now(exc.__cause__):
                raise  # _refusing made a refused write's reply a ConnectionError
            reply = exc.__cause__
        if handler is not None:
            try:
                handler(reply)
            except Exception:  # a handler only logs: never lose the replies after it
                logger.exception("the handler of a reply read late failed")

    def _read_event_replies(self, *, release: bool) -> None:
        """Read the held connection's unread replies; give it back to the pool if *release*."""
        conn = self._held()
        if conn is None:
            return
        try:
            while self._replies:
                self._read_one_reply(conn)
        except (redis.RedisError, OSError) as exc:
            logger.debug("replies of writes lost with their connection: %s", exc)
            self._drop_event_connection()
            return
        except BaseException:  # interrupted halfway: the count no longer matches
            self._drop_event_connection()
            raise
        if release and self._events_conn is conn:
            self._events_conn = None
            if conn.health_check_interval:
                # a reply read late says the connection lived when the reply came, not
                # now: redis-py's next health check counts from the last write instead
                conn.next_health_check = min(conn.next_health_check, self._events_sent_at
                                             + conn.health_check_interval)
            self.pool.release(conn)  # type: ignore[attr-defined]

    def _held(self) -> Any:
        """The held connection, if there is one this process may read: None for the
        parent's, inherited by a fork (forgotten, not touched), and for one closed under
        the channel (redis-py's pool.disconnect() closes connections in use too: its
        unread replies went with the socket, and a read on the socket can_read() would
        open waits for them until the socket timeout, for ever without one; dropped)."""
        conn = self._events_conn
        if conn is None:
            return None
        if self._events_pid != os.getpid():
            self._events_conn = None
            self._replies = deque()
            return None
        if conn._sock is not self._events_sock:
            self._drop_event_connection()
            return None
        return conn

    def _drop_event_connection(self) -> None:
        conn, self._events_conn = self._events_conn, None
        lost, self._replies = len(self._replies), deque()
        if lost:
            logger.debug("%d replies of writes lost with their connection", lost)
        if conn is not None:
            conn.disconnect()
            self.pool.release(conn)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Read the unread replies, then close as kombu does."""
        with self._events_lock:
            self._read_event_replies(release=True)
        super().close()  # type: ignore[misc]


class Channel(_UnreadWrites, ReliableFetch, _LoopWithoutRetry, kombu_redis.Channel):
    """kombu's Redis channel whose event-loop connections never reconnect by themselves,
    which takes a message off the queue only in the step that records it (ReliableFetch),
    whose acks and rejects touch only their own delivery (OwnDeliveryQoS), and whose
    task events, unacked records and acks do not wait for their replies (_UnreadWrites)."""

    QoS = OwnDeliveryQoS


class SentinelChannel(_UnreadWrites, ReliableFetch, _LoopWithoutRetry,
                      kombu_redis.SentinelChannel):
    """kombu's Sentinel channel, as Channel, that also follows a switch of master at once.

    kombu's pool asks Sentinel only when a connection connects, so after a
    failover its publishes and acks go on to the old master until Sentinel
    demotes it (10 s later), and those writes are discarded (a submitted job's
    message lost). connections.follow_master_switch makes the synchronous pool
    (publish, ack, the unacked hash) ask again. Acks and rejects as Channel's.
    """

    QoS = OwnDeliveryQoS

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        pool = super()._sentinel_managed_pool(asynchronous)  # type: ignore[no-untyped-call]
        # the event loop's BRPOP and pub/sub connections are registered with kombu's
        # poller by file descriptor: they must not be closed on checkout
        if asynchronous:
            return pool
        options = self.connection.client.transport_options
        return follow_master_switch(
            pool, check_s=float(options.get(MASTER_CHECK_OPTION, MASTER_CHECK_S)),
            retry_window_s=options.get(FAILOVER_RETRY_OPTION))


#: kombu's connection errors, and READONLY: the server was demoted to a replica (a failover
#: behind a redis:// address, or an endpoint that moves to the new master, as managed Redis
#: does). kombu calls it a channel error, so Celery ended the worker ("Unrecoverable error:
#: ReadOnlyError"); as a connection error the consumer reconnects until the address
#: takes writes again.
CONNECTION_ERRORS = (*kombu_redis.Transport.connection_errors, ReadOnlyError)


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with jobtrail's Channel; READONLY is a lost connection."""

    Channel = Channel
    connection_errors = CONNECTION_ERRORS


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Redis Sentinel transport with jobtrail's SentinelChannel."""

    Channel = SentinelChannel
    connection_errors = CONNECTION_ERRORS


def broker_transport(broker_url: str) -> str | None:
    """Return the Celery `broker_transport` for *broker_url*: this module's for redis://.

    redis:// and rediss:// get TRANSPORT (TLS comes from broker_use_ssl and the
    URL's `ssl_*` parameters, worker.celery_urls), sentinel:// SENTINEL_TRANSPORT;
    a socket URL names this transport by its kombu alias (`jobtrail+socket://`).

    Args:
        broker_url: The broker's URL as Celery is given it (celery_urls.broker_url_for_kombu).

    Returns:
        TRANSPORT, SENTINEL_TRANSPORT, or None (the URL's own prefix picks it).
    """
    scheme = urlsplit(broker_url).scheme
    return {"redis": TRANSPORT, "rediss": TRANSPORT,
            "sentinel": SENTINEL_TRANSPORT}.get(scheme)


#: A socket broker URL (`jobtrail+socket:///path`) runs this module's Transport: kombu
#: resolves a URL's `<name>+` prefix through its alias table only (no dotted path there).
kombu_transport.TRANSPORT_ALIASES.setdefault(KOMBU_TRANSPORT_ALIAS, TRANSPORT)
