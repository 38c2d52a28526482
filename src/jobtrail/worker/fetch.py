"""Reliable fetch: a message leaves the queue only in the step that records it as unacked.

kombu's Redis consumer takes a message with BRPOP and records it in the
`unacked` hash (QoS.append) only once the reply has reached it. When that
reply is lost with its connection (CLIENT KILL, a reset, a NAT that forgot
an idle consumer's flow, a proxy or failover dropping it), the server has
removed the message and nobody holds it: the job stays pending for ever,
with no message anywhere (trace: `stale`). An idle consumer whose connection
went half-open is the usual victim: its BRPOP stays blocked on the server,
which hands the next message to the dead socket.

This channel never pops a message it has not recorded in the same step:

- to take a message it runs FETCH_SCRIPT, one Lua step that pops from the
  first non-empty queue list (kombu's BRPOP order: priority, then queue
  cycle) and writes kombu's own unacked entry (`unacked` hash, arrival score
  in `unacked_index`) for it. Whether or not the reply arrives, the message
  is in the queue or in `unacked`: a lost reply leaves an entry no live
  worker holds, which the dead-worker sweep (worker.recovery) takes back
  after the gone threshold, and kombu's restore after the visibility
  timeout at the latest;
- to wait while the queues are empty it blocks in `BLMOVE q q RIGHT RIGHT`
  (a move of a list's last element to its own end: the list is unchanged),
  which returns as soon as a message arrives and takes nothing; the fetch
  follows. A reply lost there loses nothing. The wait is on the first queue
  list of the cycle only (Redis has no blocking move from several lists): a
  message to another list (a priority or another queue) is fetched when the
  wait times out, within `brpop_timeout` (1 s) of arriving on an idle
  worker. Each message arriving while workers are idle wakes every one of
  them (the list stays non-empty), and each fetches: one gets it, and each
  served wait is an LMOVE in the AOF and the replication stream (BRPOP woke
  one). Redis before 6.2 has no BLMOVE: BRPOPLPUSH q q is used, which, on a
  list holding several messages when it is served, moves the oldest behind
  the others (order, not content); a server with neither polls (XREAD).

The script pops before it writes, so a broker out of memory (noeviction)
still lets a message be taken and recorded (Redis lets a script that has
written go on; the message moves from the list to the hash). BLMOVE is
refused then (it may create a list): the wait sleeps on the server instead
(XREAD BLOCK on a stream nobody writes) and the fetch polls every
`brpop_timeout` for OOM_POLL_S seconds before it tries BLMOVE again. A queue consumed without
acknowledgements (a reply queue of `celery inspect`) is popped and not
recorded, as kombu does. A fetch whose reply is only late (unread in the
socket while the prefetch is full or the event loop busy) is listed in the
worker's heartbeat (fetches_in_flight), so the sweep leaves its entry alone.
kombu's `global_keyprefix` is refused (jobtrail's QoS writes kombu's keys
unprefixed).

Source: kombu.transport.redis Channel._brpop_start, _brpop_read, QoS.append
(kombu 5.7); the reliable-queue pattern of the Redis LMOVE documentation,
https://redis.io/docs/latest/commands/lmove/#pattern-reliable-queue; Redis
script OOM handling (a script may continue once it has written),
https://redis.io/docs/latest/develop/interact/programmability/eval-intro/.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

import redis
from kombu.transport.virtual import Empty
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

__all__ = ["FETCH_CLIENT_NAME", "FETCH_SCRIPT", "OOM_POLL_S", "ReliableFetch",
           "fetches_in_flight"]

logger = logging.getLogger(__name__)

#: The name (CLIENT SETNAME) of a consumer's fetch connection, in CLIENT LIST.
FETCH_CLIENT_NAME = "jobtrail-fetch"
#: Seconds the consumer polls (the wait only sleeps, XREAD BLOCK) once the broker refused
#: its BLMOVE for want of memory; BLMOVE is tried again after them.
OOM_POLL_S = 10.0
#: Appended to the first queue list's name: the stream the polling wait blocks on, which
#: nothing writes (kombu's separator first, as its priority lists).
WAIT_STREAM_SUFFIX = "\x06\x16wait"

#: KEYS: the queue lists in kombu's BRPOP order, then unacked_index, then unacked.
#: ARGV[1]: the arrival score (epoch seconds, the consumer's clock, as kombu's QoS);
#: ARGV[1 + i]: "1" when the message of KEYS[i] is to be recorded (its queue is consumed
#: with acknowledgements), "0" when not.
#: Returns false (no message), or {list, message, recorded}: recorded 1 when the unacked
#: entry was written ([message, exchange, routing key], kombu's shape), 0 when the message
#: is not kombu's (no delivery tag or delivery info: kombu's own append then fails as it
#: does) or its queue takes no acknowledgements.
FETCH_SCRIPT = """
local lists = #KEYS - 2
for i = 1, lists do
  local raw = redis.call('RPOP', KEYS[i])
  if raw then
    if ARGV[1 + i] ~= '1' then return {KEYS[i], raw, 0} end
    local ok, msg = pcall(cjson.decode, raw)
    local tag, exchange, rkey
    if ok and type(msg) == 'table' and type(msg.properties) == 'table' then
      tag = msg.properties.delivery_tag
      local info = msg.properties.delivery_info
      if type(info) == 'table' then exchange, rkey = info.exchange, info.routing_key end
    end
    if type(tag) ~= 'string' or type(exchange) ~= 'string' or type(rkey) ~= 'string' then
      return {KEYS[i], raw, 0}
    end
    redis.call('ZADD', KEYS[lists + 1], ARGV[1], tag)
    redis.call('HSET', KEYS[lists + 2], tag,
               '[' .. raw .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(rkey) .. ']')
    return {KEYS[i], raw, 1}
  end
end
return false
"""


def _unknown_command(exc: redis.ResponseError) -> bool:
    return str(exc).lower().startswith("unknown command")


#: Every channel that fetched in this process (the heartbeat reads their fetch in flight).
_CHANNELS: weakref.WeakSet[Any] = weakref.WeakSet()


def fetches_in_flight() -> list[str]:
    """The arrival scores (repr of epoch seconds) of this process's fetches whose reply is
    not read yet, on connections still open.

    Such a fetch may have recorded a message as unacked that no request of this worker
    names yet (its reply waits in the socket: the prefetch is full, or the event loop
    is busy): the worker's heartbeat lists them, and the dead-worker sweep leaves the
    unacked entry with that score alone. A fetch whose connection died is not listed:
    its entry, if any, is the sweep's to take back.
    """
    scores = []
    # WeakSet.data copied in C (atomic under the GIL): iterating the WeakSet itself from
    # this thread raised "Set changed size" when the event loop added a channel
    for ref in list(_CHANNELS.data):  # type: ignore[attr-defined]
        chan = ref()
        if chan is None:
            continue
        conn = getattr(chan, "_in_poll", None)
        if conn and not chan._waiting and chan._fetch_sock is not None \
                and getattr(conn, "_sock", None) is chan._fetch_sock:
            scores.append(repr(chan._fetch_score))
    return scores


class ReliableFetch:
    """A mixin of kombu's Redis Channel: BRPOP replaced by FETCH_SCRIPT and a BLMOVE wait.

    The event loop drives it as it drives BRPOP (the connection, its
    registration, `_in_poll` and `_brpop_sent_at` are kombu's): each
    `_brpop_start` sends either the fetch or, after a fetch found nothing,
    the wait; each `_brpop_read` reads the reply, delivers a fetched message
    (its QoS finds it recorded: take_fetched) or raises Empty, and the next
    turn sends the next step. The fetch connection is named FETCH_CLIENT_NAME
    (CLIENT SETNAME, once a connection).

    Raises:
        ValueError: At the channel's creation, when kombu's `global_keyprefix` is set:
            jobtrail's QoS writes kombu's unacked keys unprefixed (give the broker a DB
            of its own instead).
    """

    #: The socket on which a fetch last found the queues empty: the next step there is the
    #: wait (on a new connection, after a reconnect, a fetch comes first).
    _wait_sock: Any = None
    #: The wait's command: BLMOVE; BRPOPLPUSH on a server without it (before 6.2); XREAD
    #: (the poll) on a server with neither.
    _wait_command = "BLMOVE"
    #: (delivery tag, arrival score) of the message being delivered, recorded by the fetch.
    _fetched: tuple[str, float] | None = None
    #: The arrival score the fetch in flight records a message with, and its socket.
    _fetch_score = 0.0
    _fetch_sock: Any = None
    #: The socket named FETCH_CLIENT_NAME last.
    _named_sock: Any = None
    #: True while the step in flight is the wait.
    _waiting = False
    #: The command of the wait in flight.
    _wait_sent = "BLMOVE"
    #: Until when (monotonic seconds) the wait only sleeps: the broker refused BLMOVE (OOM).
    _poll_until = 0.0

    def __init__(self, connection: Any, *args: Any, **kwargs: Any) -> None:
        # refused before kombu's __init__ opens a connection and joins the poller
        options = getattr(getattr(connection, "client", None), "transport_options", {}) or {}
        if options.get("global_keyprefix"):
            raise ValueError("jobtrail's broker transport does not support kombu's "
                             "global_keyprefix: give the broker a Redis DB of its own")
        super().__init__(connection, *args, **kwargs)  # type: ignore[call-arg]

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        """kombu's basic_consume, remembering whether *queue* takes acknowledgements."""
        no_ack = bool(kwargs["no_ack"] if "no_ack" in kwargs else (args[0] if args else False))
        noack: set[str] = self.__dict__.setdefault("_fetch_noack", set())
        if no_ack:
            noack.add(queue)
        else:
            noack.discard(queue)
        return super().basic_consume(queue, *args, **kwargs)  # type: ignore[misc]

    def _brpop_start(self, timeout: float | None = None) -> None:
        """Send this turn's step on the event loop's connection (kombu's BRPOP slot).

        Raises:
            redis.ConnectionError, redis.TimeoutError: The connection failed (kombu's
                consumer reconnects, as for a BRPOP that could not be sent).
        """
        chan: Any = self
        if timeout is None:
            timeout = chan.brpop_timeout
        queues = chan._queue_cycle.consume(len(chan.active_queues))
        if not queues:
            return
        pairs = [(chan._q_for_pri(queue, pri), queue) for pri in chan.priority_steps
                 for queue in queues]
        lists = [key for key, _ in pairs]
        conn = chan.client.connection  # connected and registered by kombu's poller
        if conn._sock is not self._named_sock:  # a new connection: named once, its reply read
            self._named_sock = conn._sock
            conn.send_command("CLIENT", "SETNAME", FETCH_CLIENT_NAME)
            try:
                conn.read_response()
            except redis.ResponseError as exc:  # a label only (an ACL without it, renamed)
                logger.info("the fetch connection is not named (%s)", exc)
        chan._in_poll = conn
        chan._brpop_sent_at = time.monotonic()
        self._waiting = self._wait_sock is not None and self._wait_sock is conn._sock
        if self._waiting:
            args: list[Any] = self._wait_args(lists[0], timeout)
        else:
            qos = chan.qos
            self._fetch_score, self._fetch_sock = time.time(), conn._sock
            _CHANNELS.add(self)
            noack = self.__dict__.get("_fetch_noack", ())
            args = ["EVAL", FETCH_SCRIPT, len(lists) + 2, *lists, qos.unacked_index_key,
                    qos.unacked_key, repr(self._fetch_score),
                    *("0" if queue in noack else "1" for _, queue in pairs)]
        conn.send_command(*args)

    def _wait_args(self, first_list: str, timeout: float) -> list[Any]:
        """The wait's command: BLMOVE (BRPOPLPUSH before Redis 6.2), or, while the broker
        refuses it for want of memory or has neither, XREAD BLOCK on a stream nobody
        writes (it only sleeps *timeout* seconds, 1 s for 0, on the server: the fetch
        polls)."""
        if self._wait_command == "XREAD" or time.monotonic() < self._poll_until:
            self._wait_sent = "XREAD"
            return ["XREAD", "BLOCK", int(timeout * 1000) or 1000, "STREAMS",
                    first_list + WAIT_STREAM_SUFFIX, "$"]
        self._wait_sent = self._wait_command
        moves = ("RIGHT", "RIGHT") if self._wait_command == "BLMOVE" else ()
        return [self._wait_command, first_list, first_list, *moves, timeout]

    def _brpop_read(self, **options: Any) -> bool:
        """Read this turn's reply: deliver a fetched message (True), else raise Empty.

        Raises:
            kombu Empty: Nothing fetched this turn (the queues were empty, or the wait
                ended: the next turn fetches).
            redis.ConnectionError and kombu's other connection errors: the connection
                failed (it is dropped: the next turn reconnects, as kombu's).
        """
        chan: Any = self
        waited, self._wait_sock = self._waiting, None
        try:
            try:
                reply = chan.client.parse_response(
                    chan.client.connection, self._wait_sent if waited else "EVAL", **options)
            except chan.connection_errors as exc:
                if waited and isinstance(exc.__cause__, redis.OutOfMemoryError):
                    # BLMOVE may create a list (denied under OOM); BRPOP was not. The
                    # refusal is a reply: the connection is sound, the fetch polls a while
                    logger.warning("the broker is out of memory: the consumer polls the "
                                   "queue every %s s for %s s (%s)", chan.brpop_timeout,
                                   OOM_POLL_S, exc.__cause__)
                    self._poll_until = time.monotonic() + OOM_POLL_S
                    raise Empty() from exc
                chan.client.connection.disconnect()
                raise
            except redis.ResponseError as exc:
                if not (waited and _unknown_command(exc)):
                    raise
                if self._wait_sent == "XREAD":  # Redis < 5 under OOM: BLMOVE again after it
                    self._poll_until = 0.0
                    raise Empty() from exc
                fallback = "BRPOPLPUSH" if self._wait_sent == "BLMOVE" else "XREAD"
                logger.info("the broker has no %s: waiting with %s", self._wait_sent, fallback)
                self._wait_command = fallback
                raise Empty() from exc
            if waited:
                raise Empty()  # a message arrived, or the wait timed out: fetch next turn
            if not reply:
                self._wait_sock = chan.client.connection._sock
                raise Empty()
            dest, item, recorded = reply
            payload = loads(bytes_to_str(item))  # type: ignore[no-untyped-call]
            dest = bytes_to_str(dest).rsplit(chan.sep, 1)[0]  # type: ignore[no-untyped-call]
            chan._queue_cycle.rotate(dest)
            tag = (payload.get("properties") or {}).get("delivery_tag")
            self._fetched = (str(tag), self._fetch_score) if int(recorded) else None
            try:
                chan.connection._deliver(payload, dest)
            finally:
                self._fetched = None
            return True
        finally:
            chan._in_poll = None
            self._fetch_sock = None
            flush = getattr(chan, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def take_fetched(self, delivery_tag: str) -> float | None:
        """The arrival score of *delivery_tag* when the fetch delivering it now recorded its
        unacked entry (the QoS then writes nothing); None when it did not."""
        fetched, self._fetched = self._fetched, None
        if fetched is not None and fetched[0] == delivery_tag:
            return fetched[1]
        return None
