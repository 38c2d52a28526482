"""Redis clients for the main, broker and results DBs, built from Settings.

Invariant: a connection failure leaves this module as RedisUnavailableError
naming the URL (password masked), never as a bare redis-py exception.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from jobtrail.clock import monotonic_s
from jobtrail.config import Settings
from jobtrail.errors import (
    JobtrailError,
    RedisCommandError,
    RedisOutOfMemoryError,
    RedisUnavailableError,
    ReplicationError,
)
from jobtrail.failover import FailoverSentinel, FreshMasterPool, master_check_s, window_retry

__all__ = [
    "REDIS_ERRORS",
    "Clients",
    "DurableRedis",
    "Durability",
    "SentinelTarget",
    "connect",
    "failover_retry",
    "parse_sentinel_url",
    "sentinel_kwargs",
    "wait_for_replicas",
    "keepalive_options",
    "mask_url",
    "open_clients",
    "refuses_writes_now",
    "socket_kwargs",
    "wait_until_ready",
    "wrap_redis_error",
]

#: What a Redis call can raise; wrap_redis_error() turns each into a JobtrailError.
REDIS_ERRORS = (redis.RedisError,)

#: Redis's refusal of a write over maxmemory; redis-py maps it to OutOfMemoryError only
#: at the start of a reply, not inside a script's error (server.c, shared.oomerr).
_OOM_REPLY = "OOM command not allowed"
#: Refusals of a write by a server that cannot take writes now: a replica (READONLY; a
#: command's own is redis-py's ReadOnlyError, one inside a Lua script, "Error running
#: script ... -READONLY ...", a plain ResponseError) or a master short of the replicas
#: `min-replicas-to-write` asks for (NOREPLICAS, a plain ResponseError either way). Matched
#: anywhere: redis-py prefixes a pipeline's ("Command # 1 (...) of pipeline caused error: ").
_CANNOT_WRITE_NOW = ("READONLY You can't write", "NOREPLICAS Not enough good replicas")


def _reply_of(exc: redis.ResponseError) -> str:
    """The server's reply in *exc*, without redis-py's pipeline annotation, which quotes the
    command's arguments ("Command # 1 (HSET ... OOM ...) of pipeline caused error: ...")."""
    text = str(exc)
    marker = " of pipeline caused error: "
    return text.split(marker, 1)[1] if marker in text else text


def _cannot_write_now(exc: redis.ResponseError) -> bool:
    return any(code in _reply_of(exc) for code in _CANNOT_WRITE_NOW)


def refuses_writes_now(exc: BaseException) -> bool:
    """Return whether *exc* is a server's refusal of a write that passes later unchanged.

    Out of memory under noeviction (OOM), a replica (READONLY) or a master short
    of replicas (NOREPLICAS), as the command's own reply or inside a Lua
    script's error. Nothing of the refused command was written.
    """
    return isinstance(exc, redis.ResponseError) and (
        isinstance(exc, redis.OutOfMemoryError | redis.ReadOnlyError)
        or _OOM_REPLY in _reply_of(exc) or _cannot_write_now(exc))


def wrap_redis_error(what: str, exc: Exception) -> JobtrailError:
    """Return the JobtrailError for a redis-py exception raised while talking to *what*.

    Connection problems, timeouts, READONLY (the server is a replica now:
    a failover; a command's own reply or one inside a Lua script) and
    NOREPLICAS (too few replicas for `min-replicas-to-write`) become
    RedisUnavailableError; an OOM refusal (a command's own,
    or one inside a Lua script: "Error running script ... -OOM ...")
    RedisOutOfMemoryError; other error replies (WRONGTYPE, NOSCRIPT...)
    RedisCommandError.
    """
    if isinstance(exc, redis.OutOfMemoryError) or (
            isinstance(exc, redis.ResponseError) and _OOM_REPLY in _reply_of(exc)):
        text = _reply_of(exc)  # Redis's own words, without a pipeline's or a script's wrapping
        return RedisOutOfMemoryError(what, text[text.find(_OOM_REPLY):].rstrip(". ")
                                     if _OOM_REPLY in text else text)
    if isinstance(exc, redis.ResponseError) and not isinstance(exc, redis.ReadOnlyError) \
            and not _cannot_write_now(exc):
        return RedisCommandError(what, str(exc))
    return RedisUnavailableError(what, str(exc) or type(exc).__name__)


def mask_url(url: str) -> str:
    """Return *url* with any password replaced by `***`: the user part's and a `password`
    query parameter's (redis-py's unix:// form), in every part of a Sentinel URL."""
    if ";" in url:
        return ";".join(mask_url(part) for part in url.split(";"))
    parts = urlsplit(url)
    if parts.query:
        query = "&".join(f"{key}=***" if key.lower() == "password" else item
                         for item in parts.query.split("&")
                         for key in (item.partition("=")[0],))
        parts = parts._replace(query=query)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{netloc}")
    return urlunsplit(parts)


def _setting(settings: Settings | None, name: str) -> Any:
    """Return *settings*' value of *name*, or its documented default without settings."""
    if settings is not None:
        return getattr(settings, name)
    return Settings.model_fields[name].default


def keepalive_options(settings: Settings | None = None) -> dict[int, int]:
    """Return the TCP keepalive socket options (TCP_KEEPIDLE, KEEPINTVL, KEEPCNT) of *settings*.

    A constant the platform lacks is left out (macOS names TCP_KEEPIDLE
    TCP_KEEPALIVE). Without *settings*, the documented defaults.

    Source: tcp(7), https://man7.org/linux/man-pages/man7/tcp.7.html
    """
    wanted = (("TCP_KEEPIDLE", "redis_keepalive_idle_s"),
              ("TCP_KEEPALIVE", "redis_keepalive_idle_s"),
              ("TCP_KEEPINTVL", "redis_keepalive_interval_s"),
              ("TCP_KEEPCNT", "redis_keepalive_count"))
    options: dict[int, int] = {}
    for constant, name in wanted:
        number = getattr(socket, constant, None)
        if number is not None and number not in options:
            options[number] = int(_setting(settings, name))
    return options


def socket_kwargs(url: str, settings: Settings | None = None) -> dict[str, Any]:
    """Return the redis-py connection keywords that make a client to *url* notice a dead peer.

    A read deadline (`socket_timeout`), a connect deadline, a PING before
    using a connection idle for `health_check_interval` seconds, and TCP
    keepalive (not on unix sockets, which have no peer to lose). Without
    *settings*, the documented defaults of Settings.

    Source: redis-py Connection arguments,
    https://redis.readthedocs.io/en/stable/connections.html
    """
    kwargs: dict[str, Any] = {
        "socket_timeout": float(_setting(settings, "redis_socket_timeout_s")),
        "socket_connect_timeout": float(_setting(settings, "redis_connect_timeout_s")),
        "health_check_interval": int(_setting(settings, "redis_health_check_interval_s")),
    }
    if urlsplit(url).scheme != "unix":
        kwargs["socket_keepalive"] = True
        kwargs["socket_keepalive_options"] = keepalive_options(settings)
    return kwargs


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a `sentinel://h:p;sentinel://h:p/DB` URL names."""

    hosts: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Return the Sentinel addresses, DB and master credentials of a `sentinel://` URL.

    The DB and password may be written on any part (Celery's form names them
    once); config.normalize_sentinel_url has already refused conflicting ones.
    """
    hosts: list[tuple[str, int]] = []
    db, username, password = 0, None, None
    for chunk in url.split(";"):
        parts = urlsplit(chunk.strip())
        hosts.append((parts.hostname or "localhost", parts.port or 26379))
        if parts.path.lstrip("/"):
            db = int(parts.path.lstrip("/"))
        if parts.password:
            username, password = parts.username or None, parts.password
    return SentinelTarget(tuple(hosts), db, username, password)


def sentinel_kwargs(settings: Settings | None) -> dict[str, Any]:
    """Return the keywords of redis-py's connections to the Sentinels themselves.

    Their socket deadlines, the Sentinels' own password (`sentinel_password`,
    not the master's) and TLS (`sentinel_tls`, `sentinel_tls_ca_file`).

    Source: redis-py Sentinel, https://redis.readthedocs.io/en/stable/connections.html#sentinel-client
    """
    kwargs: dict[str, Any] = {
        "socket_timeout": float(_setting(settings, "redis_socket_timeout_s")),
        "socket_connect_timeout": float(_setting(settings, "redis_connect_timeout_s")),
        # one try per query: a Sentinel that does not answer passes the question to the
        # next one at once (redis-py's default retries each three times, with backoff)
        "retry": Retry(NoBackoff(), 0),
    }
    password = _setting(settings, "sentinel_password")
    if password is not None:
        kwargs["password"] = password.get_secret_value()
    kwargs.update(sentinel_tls_kwargs(settings))
    return kwargs


def sentinel_tls_kwargs(settings: Settings | None) -> dict[str, Any]:
    """redis-py's TLS keywords for the Sentinels and their masters (`sentinel_tls`,
    `sentinel_tls_ca_file`): {} without TLS, else `ssl`, `ssl_cert_reqs` "required" and
    the CA file as `ssl_ca_certs` when set."""
    if not _setting(settings, "sentinel_tls"):
        return {}
    kwargs: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required"}
    ca_file = _setting(settings, "sentinel_tls_ca_file")
    if ca_file:
        kwargs["ssl_ca_certs"] = ca_file
    return kwargs


def failover_retry(settings: Settings | None) -> Retry:
    """Return the redis-py Retry that rides out a failover for `redis_failover_retry_s`.

    Exponential backoff from 0.1 s, capped at 1 s, for at most the window in
    all (WindowRetry). A connection that finds its master gone (connection
    refused, MasterNotFoundError) or read-only (redis-py's Sentinel connection
    turns READONLY into ConnectionError) asks Sentinel for the master again.
    """
    return window_retry(float(_setting(settings, "redis_failover_retry_s")))


@dataclass(frozen=True, slots=True)
class Durability:
    """How many replicas must hold a write before it counts (Redis WAIT)."""

    min_replicas: int
    timeout_s: float
    what: str = "main DB"


def wait_for_replicas(client: redis.Redis, conn: Any) -> None:
    """Issue `WAIT` on *conn* (which just wrote) when *client* is a DurableRedis that asks.

    Raises:
        ReplicationError: Fewer replicas than required acknowledged in time.
        RedisUnavailableError: The connection failed.
    """
    durability = getattr(client, "durability", None)
    if durability is None or durability.min_replicas <= 0:
        return
    try:
        conn.send_command("WAIT", durability.min_replicas, int(durability.timeout_s * 1000))
        acked = int(conn.read_response())
    except REDIS_ERRORS as exc:
        conn.disconnect()
        raise wrap_redis_error(durability.what, exc) from exc
    except BaseException:
        # interrupted while WAIT blocks (Celery's soft time limit): its reply would be read
        # as the next command's, so the connection must not go back to the pool as is
        conn.disconnect()
        raise
    _check_acked(durability, acked)


def _check_acked(durability: Durability, acked: int) -> None:
    if acked < durability.min_replicas:
        raise ReplicationError(durability.what, acked, durability.min_replicas,
                               durability.timeout_s)


#: Commands after which a DurableRedis waits for replicas: jobtrail's writes are Lua steps.
_WRITES = frozenset({"EVALSHA", "EVAL"})


class DurableRedis(redis.Redis):
    """A redis-py client that follows each Lua step with `WAIT n timeout` on its connection.

    WAIT counts the replicas that acknowledged every write this connection
    made, so it must go on the connection that wrote: it is sent inside the
    command's (or the non-transactional pipeline's) round trip. A shortfall
    raises ReplicationError; the write stays on the master, unacknowledged.

    Source: Redis WAIT, https://redis.io/docs/latest/commands/wait/
    """

    durability: Durability | None = None

    def _send_command_parse_response(self, conn: Any, command_name: Any, *args: Any,
                                     **options: Any) -> Any:
        reply = super()._send_command_parse_response(  # type: ignore[no-untyped-call]
            conn, command_name, *args, **options)
        if self.durability is not None and str(command_name).upper() in _WRITES:
            wait_for_replicas(self, conn)
        return reply

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = _DurablePipeline(self.connection_pool, self.response_callbacks, transaction,
                                shard_hint)
        pipe.durability = self.durability
        return pipe


class _DurablePipeline(Pipeline):
    """A non-transactional pipeline whose Lua steps are followed by one WAIT."""

    durability: Durability | None = None

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        d = self.durability
        writes = any(str(args[0]).upper() in _WRITES for args, _ in self.command_stack)
        if d is None or d.min_replicas <= 0 or self.__dict__.get("transaction") or not writes:
            return _as_list(super().execute(raise_on_error))
        self.execute_command("WAIT", d.min_replicas, int(d.timeout_s * 1000))  # type: ignore[no-untyped-call]
        results = _as_list(super().execute(raise_on_error))
        _check_acked(d, int(results[-1]))
        return results[:-1]


def _as_list(value: Any) -> list[Any]:
    """Return a pipeline's replies as a list."""
    return list(value)


def connect(url: str, *, socket_timeout_s: float | None = None,
            settings: Settings | None = None) -> redis.Redis:
    """Return a redis-py client for *url* with decoded (str) responses.

    The client notices a dead or half-open peer within the socket timeout
    of *settings* (socket_kwargs); *socket_timeout_s* overrides the read
    deadline. No I/O happens here; the first command connects.

    A `sentinel://` URL gives a client of the master Sentinel names
    (`Sentinel.master_for`), which asks again after a failover and retries a
    command that found the master gone or read-only for `redis_failover_retry_s`.
    The client of the main DB (*url* is the settings' `main_url`) waits for
    `main_min_replicas` replicas after each Lua step (DurableRedis).
    """
    kwargs = socket_kwargs(url, settings)
    if socket_timeout_s is not None:
        kwargs["socket_timeout"] = socket_timeout_s
    durable = settings is not None and url == settings.main_url and settings.main_min_replicas > 0
    client: redis.Redis
    if url.startswith("sentinel://"):
        target = parse_sentinel_url(url)
        role = _role_of(url, settings)
        name = settings.master_name(role) if settings is not None else None
        if name is None:
            raise JobtrailError(f"no Sentinel master name for {mask_url(url)}")
        kwargs.pop("socket_keepalive_options", None)
        sentinel = FailoverSentinel(list(target.hosts),  # type: ignore[no-untyped-call, unused-ignore]
                            sentinel_kwargs=sentinel_kwargs(settings))
        client = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            name, redis_class=DurableRedis if durable else redis.Redis,
            connection_pool_class=FreshMasterPool, db=target.db,
            username=target.username, password=target.password, decode_responses=True,
            retry=failover_retry(settings), **sentinel_tls_kwargs(settings), **kwargs)
    else:
        client = (DurableRedis if durable else redis.Redis).from_url(
            url, decode_responses=True, **kwargs)
    if isinstance(client.connection_pool, FreshMasterPool):
        # a write that must reach a replica never goes out to a master Sentinel demoted
        client.connection_pool.check_s = master_check_s(settings)
    if durable and isinstance(client, DurableRedis) and settings is not None:
        client.durability = Durability(settings.main_min_replicas,
                                       settings.main_min_replicas_timeout_s)
    return client


def _role_of(url: str, settings: Settings | None) -> str:
    if settings is not None:
        for role in ("main", "broker", "results"):
            if getattr(settings, f"{role}_url") == url:
                return role
    return "main"


def wait_until_ready(client: redis.Redis, url: str, *, timeout_s: float = 5.0) -> None:
    """Block until *client* answers PING, for at most *timeout_s* seconds.

    Raises:
        RedisUnavailableError: No PONG before the deadline.
    """
    deadline = monotonic_s() + timeout_s
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if monotonic_s() >= deadline:
                raise RedisUnavailableError(mask_url(url), str(exc) or type(exc).__name__) from exc
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Clients:
    """The three Redis clients of a deployment and their URLs."""

    main: redis.Redis
    broker: redis.Redis
    results: redis.Redis
    main_url: str
    broker_url: str
    results_url: str

    def close(self) -> None:
        """Close every connection pool."""
        for client in (self.main, self.broker, self.results):
            client.close()


def open_clients(settings: Settings) -> Clients:
    """Return clients for the three DBs of *settings* (URLs must be resolved).

    Raises:
        ConfigError: A URL is unset.
    """
    main_url, broker_url, results_url = settings.require_urls()
    return Clients(connect(main_url, settings=settings), connect(broker_url, settings=settings),
                   connect(results_url, settings=settings), main_url, broker_url, results_url)
