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

from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from redis.backoff import NoBackoff
from redis.exceptions import ReadOnlyError
from redis.retry import Retry

from jobtrail.failover import MASTER_CHECK_S, follow_master_switch

__all__ = ["FAILOVER_RETRY_OPTION", "MASTER_CHECK_OPTION", "SENTINEL_TRANSPORT",
           "TRANSPORT", "Channel", "SentinelChannel",
           "SentinelTransport", "Transport", "broker_transport"]

#: The Celery `broker_transport` naming this module's Transport.
TRANSPORT = "jobtrail.worker.transport:Transport"
#: The Celery `broker_transport` naming this module's SentinelTransport.
SENTINEL_TRANSPORT = "jobtrail.worker.transport:SentinelTransport"
#: broker_transport_options read by SentinelChannel (kombu keeps options it does not know).
MASTER_CHECK_OPTION = "jobtrail_master_check_s"
FAILOVER_RETRY_OPTION = "jobtrail_failover_retry_s"


class _LoopWithoutRetry:
    """Gives kombu's event-loop connections no redis-py retry (a mixin of both channels)."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        """Return kombu's connection parameters, without retry for the asynchronous pool.

        Args:
            asynchronous: True for the pool of the BRPOP and pub/sub connections.

        Returns:
            The keyword arguments of the redis-py ConnectionPool.
        """
        params: dict[str, Any] = super()._connparams(  # type: ignore[misc]
            asynchronous=asynchronous)
        if asynchronous:
            params["retry_on_timeout"] = False
            params["retry"] = Retry(NoBackoff(), 0)
        return params


class Channel(_LoopWithoutRetry, kombu_redis.Channel):
    """kombu's Redis channel whose event-loop connections never reconnect by themselves."""


class SentinelChannel(_LoopWithoutRetry, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel, as Channel, that also follows a switch of master at once.

    kombu's pool asks Sentinel only when a connection connects, so after a
    failover its publishes and acks go on to the old master until Sentinel
    demotes it (10 s later), and those writes are discarded (a submitted job's
    message lost). connections.follow_master_switch makes the synchronous pool
    (publish, ack, the unacked hash) ask again.
    """

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

    A rediss:// URL keeps kombu's own transport, which derives the TLS
    parameters from the URL's scheme; None lets Celery pick by scheme.

    Args:
        broker_url: The broker's Redis URL.

    Returns:
        TRANSPORT for a redis:// URL, SENTINEL_TRANSPORT for sentinel://, else None.
    """
    scheme = urlsplit(broker_url).scheme
    return {"redis": TRANSPORT, "sentinel": SENTINEL_TRANSPORT}.get(scheme)
