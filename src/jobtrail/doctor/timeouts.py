"""doctor's checks of the timing settings: visibility timeout, result expiry, socket timeouts.

Pure: reads settings and the Celery configuration only, no Redis.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import kombu

from jobtrail.config import Settings
from jobtrail.connections import socket_kwargs
from jobtrail.doctor.outcome import Finding, Severity

__all__ = ["KOMBU_BRPOP_CHECK", "check_connections", "check_timing"]


def check_timing(settings: Settings, retention_ages_s: dict[str, float]) -> Iterator[Finding]:
    """Is the visibility timeout above the hard time limit, and do results outlive records?

    Args:
        settings: Resolved settings.
        retention_ages_s: Retention policies by name -> minimum age, seconds.
    """
    hard, vt = settings.solver_hard_time_limit_s, settings.visibility_timeout_s
    evidence = {"solver_hard_time_limit_s": hard, "visibility_timeout_s": vt}
    if hard >= vt:
        yield Finding("visibility-timeout", Severity.ERROR,
                      "the visibility timeout is not above the solver's hard time limit: the "
                      "broker redelivers jobs that are still running", evidence,
                      "JOBTRAIL_VISIBILITY_TIMEOUT_S")
    else:
        yield Finding("visibility-timeout", Severity.OK, f"visibility timeout {vt} s is above "
                      f"the hard time limit {hard:g} s", evidence)
    expires = settings.result_expires_s
    for name, age_s in retention_ages_s.items():
        if expires and expires < age_s:
            yield Finding(
                f"result-expires:{name}", Severity.WARNING,
                f"Celery results expire after {expires} s, before retention policy {name} purges "
                f"records at {age_s:g} s: their archive rows will lack the Celery result",
                {"result_expires_s": expires, "older_than_s": age_s}, "JOBTRAIL_RESULT_EXPIRES_S")


#: The first kombu whose redis transport drops a BRPOP connection whose reply is overdue.
KOMBU_BRPOP_CHECK = (5, 7)
_TIMEOUT_FIX = ("JOBTRAIL_REDIS_SOCKET_TIMEOUT_S and JOBTRAIL_REDIS_HEALTH_CHECK_INTERVAL_S "
                "(and remove any override that unsets them)")


def _seconds(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _kombu_version() -> tuple[int, ...]:
    parts = []
    for piece in str(kombu.__version__).split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_connections(settings: Settings, conf: Mapping[str, Any]) -> Iterator[Finding]:
    """Does every client the workers open notice a dead or half-open peer in bounded time?"""
    transport = dict(conf.get("broker_transport_options") or {})
    broker = {"socket_timeout": transport.get("socket_timeout"),
              "socket_connect_timeout": transport.get("socket_connect_timeout"),
              "health_check_interval": transport.get("health_check_interval"),
              "socket_keepalive": transport.get("socket_keepalive"),
              "kombu": str(kombu.__version__)}
    missing = [name for name in ("socket_timeout", "health_check_interval")
               if _seconds(broker[name]) is None]
    if missing:
        yield Finding("connections:broker", Severity.ERROR,
                      f"the broker transport has no {' and no '.join(missing)}: a worker whose "
                      "broker connection goes half-open (a NAT or firewall forgot it) waits "
                      "for ever, consumes nothing and ignores SIGTERM", broker, _TIMEOUT_FIX)
    elif _kombu_version() < KOMBU_BRPOP_CHECK:
        yield Finding("connections:broker", Severity.WARNING,
                      f"kombu {kombu.__version__} does not check the consumer's BRPOP "
                      "connection: a half-open one is noticed only when another command on it "
                      "times out", broker, "pip install 'kombu>=5.7'")
    elif not broker["socket_keepalive"] and "socket_keepalive" in socket_kwargs(
            settings.broker_url or "", settings):  # what a broker URL gets (no socket's)
        yield Finding("connections:broker", Severity.WARNING,
                      "the broker transport has no TCP keepalive: idle connections a NAT "
                      "forgot are noticed only when next used", broker,
                      "remove the override of broker_transport_options socket_keepalive")
    else:
        yield Finding("connections:broker", Severity.OK,
                      f"broker commands time out after {broker['socket_timeout']:g} s and the "
                      f"consumer's connection is checked every {broker['health_check_interval']}"
                      " s", broker)
    results = {"redis_socket_timeout": conf.get("redis_socket_timeout"),
               "redis_socket_connect_timeout": conf.get("redis_socket_connect_timeout"),
               "redis_backend_health_check_interval":
                   conf.get("redis_backend_health_check_interval"),
               "redis_socket_keepalive": conf.get("redis_socket_keepalive")}
    results_timeout_s = _seconds(results["redis_socket_timeout"])
    if results_timeout_s is None:
        yield Finding("connections:results", Severity.ERROR,
                      "the result backend has no socket timeout: a pool process storing a "
                      "result on a half-open connection waits for ever", results, _TIMEOUT_FIX)
    else:
        yield Finding("connections:results", Severity.OK,
                      f"result backend commands time out after {results_timeout_s:g} s",
                      results)
    main_url, _, _ = settings.require_urls()
    main = socket_kwargs(main_url, settings)
    yield Finding("connections:main", Severity.OK,
                  f"main DB commands time out after {main['socket_timeout']:g} s",
                  {k: v for k, v in main.items() if k != "socket_keepalive_options"})
