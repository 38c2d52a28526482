"""Following a Sentinel failover: which node may take a write, and how long to retry.

Invariant: no write goes to a node Sentinel no longer names master. redis-py
asks Sentinel only when a connection connects, keeps pooled connections on the
old master until Sentinel demotes it (10 s after the switch on Redis 7: every
write there is discarded), names the old master while the switch is under way,
and nests its count-bounded retries three deep. The classes here close each gap;
connections.connect() and kombu's Sentinel channel (worker/transport.py) use them.

Source: redis-py redis/sentinel.py (Sentinel.discover_master,
SentinelConnectionPool, SentinelManagedConnection), redis/retry.py;
Redis Sentinel, https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from jobtrail.clock import monotonic_s
from jobtrail.config import Settings

__all__ = [
    "MASTER_CHECK_BACKOFF_S",
    "MASTER_CHECK_S",
    "FailoverInProgressError",
    "FailoverSentinel",
    "FreshMasterPool",
    "UnknownMasterError",
    "WindowRetry",
    "follow_master_switch",
    "master_check_s",
    "window_retry",
]


class WindowRetry(Retry):
    """A redis-py Retry bounded by a time window, however deeply redis-py nests it.

    redis-py calls one connection's Retry at three levels (the command, the
    Sentinel connection's connect, the socket connect), so a count-bounded
    Retry multiplies: a Sentinel that does not answer held a command for
    minutes. Here only the outermost call of a thread retries, with backoff,
    until *window_s* has passed since it began; a nested call tries once and
    lets its failure reach the outer one (which reconnects through Sentinel).
    """

    def __init__(self, backoff: Any, window_s: float,
                 supported_errors: tuple[type[Exception], ...]) -> None:
        super().__init__(backoff, -1, supported_errors)
        self.window_s = window_s
        self._local = threading.local()

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = Retry.__hash__

    def __getstate__(self) -> dict[str, Any]:
        # redis-py copies a client's Retry into each connection: a copy starts idle
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def call_with_retry(self, do: Any, fail: Any, is_retryable: Any = None,
                        with_failure_count: bool = False) -> Any:
        if getattr(self._local, "busy", False):
            return do()  # nested: the outermost call retries
        self._local.busy = True
        try:
            deadline = monotonic_s() + self.window_s
            self._backoff.reset()  # type: ignore[no-untyped-call]
            failures = 0
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if is_retryable and not is_retryable(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        fail(error, failures)
                    else:
                        fail(error)
                    pause_s = self._backoff.compute(failures)
                    if monotonic_s() + pause_s >= deadline:
                        raise
                    time.sleep(pause_s)
        finally:
            self._local.busy = False


class UnknownMasterError(redis.RedisError):
    """Every Sentinel answered and none monitors the master name: a setting, not a failover.

    Not a ConnectionError, so redis-py's failover retry does not wait it out.
    """


class FailoverInProgressError(MasterNotFoundError):
    """Sentinel is switching masters: no node may take a write until it names the new one.

    A ConnectionError: redis-py's failover retry waits it out.
    """


class FailoverSentinel(Sentinel):
    """redis-py's Sentinel that names no master while a failover is under way.

    From Sentinel's `+try-failover` to its `+switch-master` the old master
    still answers as master, but the replica it is promoting has stopped
    copying it: a write there is discarded when it is demoted. So a master
    whose flags hold `failover_in_progress` is no master (the write waits for
    the switch, within redis_failover_retry_s). redis-py's "no master found"
    embeds the repr of each Sentinel client; this one names each Sentinel by
    address. A name no reachable Sentinel monitors raises UnknownMasterError
    at once instead of being retried as a failover.
    """

    def check_master_state(self, state: dict[str, Any], service_name: str) -> bool:
        if "failover_in_progress" in str(state.get("flags", "")):
            return False
        return bool(super().check_master_state(state, service_name))  # type: ignore[no-untyped-call]

    def discover_master(self, service_name: str) -> Any:
        try:
            return super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except MasterNotFoundError:
            pass
        failures: list[str] = []
        known: set[str] = set()
        switching = False
        for sentinel in self.sentinels:
            kwargs = sentinel.connection_pool.connection_kwargs
            where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 26379)}"
            try:
                masters = cast(dict[str, dict[str, Any]], sentinel.sentinel_masters())
            except redis.RedisError as exc:
                failures.append(f"Sentinel {where}: {str(exc) or type(exc).__name__}")
                continue
            if service_name in masters:
                switching |= "failover_in_progress" in str(masters[service_name].get("flags"))
                failures.append(f"Sentinel {where} has no usable master for it "
                                f"(flags {masters[service_name].get('flags', '?')})")
            known.update(masters)
        if not failures:
            raise UnknownMasterError(
                f"no Sentinel monitors a master named {service_name!r} (they monitor: "
                f"{', '.join(sorted(known)) or 'none'}); check JOBTRAIL_SENTINEL_MASTER_NAME")
        cls = FailoverInProgressError if switching else MasterNotFoundError
        raise cls(f"no master found for {service_name!r}: " + "; ".join(failures))


#: Seconds between two questions to Sentinel about which node is master (per pool).
MASTER_CHECK_S = 0.2
#: Seconds until the next question after Sentinel could not be asked.
MASTER_CHECK_BACKOFF_S = 5.0


class FreshMasterPool(SentinelConnectionPool):
    """A Sentinel pool that follows a switch of master within MASTER_CHECK_S.

    redis-py asks Sentinel for the master only when a connection connects,
    so a pooled connection to the old master keeps writing there after
    Sentinel has switched, until Sentinel demotes it (`+convert-to-slave`,
    10 s later on Redis 7), and every one of those writes is discarded when
    it resyncs: acknowledged jobs vanish. This pool asks again on checkout
    at most every MASTER_CHECK_S; a changed answer closes the idle
    connections (redis-py's get_master_address), and a connection handed out
    that still points at the old node is closed, so it reconnects to the new
    master through Sentinel.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check_at = 0.0
        self.check_s = MASTER_CHECK_S

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = monotonic_s()
        if self.is_master and now >= self._next_check_at:
            self._next_check_at = now + self.check_s
            try:
                self.get_master_address()  # type: ignore[no-untyped-call]
            except FailoverInProgressError:
                # no write until Sentinel names the new master: every connection
                # reconnects through Sentinel, which waits (failover_retry)
                self._next_check_at = now
                self.disconnect(inuse_connections=False)
                conn = super().get_connection(*args, **kwargs)
                conn.disconnect()  # type: ignore[no-untyped-call]
                return conn
            except redis.RedisError:
                # no Sentinel answered: the connection's own retry meets it if the
                # master is gone too; do not make every checkout wait for Sentinel
                self._next_check_at = now + MASTER_CHECK_BACKOFF_S
        conn = super().get_connection(*args, **kwargs)
        address = self.master_address
        if (self.is_master and address is not None and conn._sock is not None
                and (conn.host, conn.port) != tuple(address)):
            conn.disconnect()  # points at a node Sentinel no longer names master
        return conn


def master_check_s(settings: Settings | None) -> float:
    """Seconds between a pool's questions to Sentinel: 0 (every checkout) with MAIN_MIN_REPLICAS."""
    return 0.0 if settings is not None and settings.main_min_replicas > 0 else MASTER_CHECK_S


def follow_master_switch(pool: SentinelConnectionPool, *, check_s: float = MASTER_CHECK_S,
                         retry_window_s: float | None = None) -> SentinelConnectionPool:
    """Make a Sentinel pool built elsewhere (kombu's) behave as connect()'s own.

    Its Sentinel manager names no master during a failover, and the pool
    follows a switch of master within *check_s* seconds (0: on every
    checkout; see FreshMasterPool). Both classes only override methods of
    the ones they replace. With *retry_window_s*, its connections ride out a
    failover for that long (WindowRetry) instead of redis-py's three tries.

    Returns:
        *pool*, changed in place.
    """
    manager = pool.sentinel_manager
    if type(manager) is Sentinel:
        manager.__class__ = FailoverSentinel
    if type(pool) is SentinelConnectionPool:
        pool.__class__ = FreshMasterPool
        pool._next_check_at = 0.0  # type: ignore[attr-defined]
    pool.check_s = check_s  # type: ignore[attr-defined]
    if retry_window_s is not None:
        pool.connection_kwargs["retry"] = window_retry(retry_window_s)
    return pool


def window_retry(window_s: float) -> WindowRetry:
    """Return the WindowRetry of a failover: backoff from 0.1 s capped at 1 s, for *window_s*."""
    return WindowRetry(ExponentialBackoff(cap=1.0, base=0.1), window_s,
                       (redis.ConnectionError, redis.TimeoutError))
