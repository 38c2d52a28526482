"""doctor: check a deployment for what loses or hides jobs; each finding with its evidence.

Invariant: read-only. Server checks read INFO and CONFIG (CONFIG may be
refused on managed Redis: that is reported, not fatal); consistency checks
stream the keyspace with SCAN and pipelines, so memory stays O(batch).

Modules: outcome (Finding, Severity), deployment (the Redis servers),
timeouts (timing and socket settings), consumers (workers), consistency
(records, indexes, results), lost_messages (pending jobs without a message),
reads (the batched and atomic reads they share).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis

from jobtrail.config import Settings
from jobtrail.doctor.consistency import check_consistency
from jobtrail.doctor.consumers import check_stale_processing, check_workers
from jobtrail.doctor.deployment import (
    check_clients,
    check_embedded_restarts,
    check_eviction,
    check_persistence,
    check_replication,
    check_servers,
)
from jobtrail.doctor.lost_messages import check_lost_pending
from jobtrail.doctor.outcome import Finding, Severity
from jobtrail.doctor.timeouts import check_connections, check_timing
from jobtrail.embedded.restarts import Restart
from jobtrail.keys import KeySpace
from jobtrail.worker.app import create_celery_app

__all__ = ["Finding", "Severity", "run_checks"]


def run_checks(settings: Settings, clients: dict[str, redis.Redis], keys: KeySpace, *,
               retention_ages_s: dict[str, float] | None = None,
               progress: Callable[[int], None] = lambda _n: None,
               consistency: bool = True,
               celery_conf: Mapping[str, Any] | None = None,
               embedded_port: int | None = None,
               embedded_restarts: list[Restart] | None = None) -> list[Finding]:
    """Run every check against a deployment.

    Args:
        settings: Resolved settings (URLs set).
        clients: Redis clients under "main", "broker" and "results".
        keys: Key builder of the main DB.
        retention_ages_s: Configured retention policies by name -> minimum age, seconds.
        progress: Called with the number of keys examined after each batch.
        consistency: Also scan the keyspaces for index/record/result mismatches
            (O(keys); the dashboard leaves it out).
        celery_conf: The Celery configuration workers run with (default: the one
            create_celery_app builds from *settings*); its socket settings are checked.
        embedded_port: Port of the embedded server, if one serves this deployment
            (the `servers` check names the DBs it serves).
        embedded_restarts: Recent restarts of the embedded server after a crash
            (embedded.recent_restarts), when it serves this deployment: reported
            as `embedded-server-restarted`; None leaves the check out.

    Returns:
        Findings in check order; severity ERROR means jobs can be lost or hidden.

    Raises:
        redis.RedisError: A DB could not be reached or refused a command (the
            interfaces wrap it with connections.wrap_redis_error).
    """
    findings = list(check_eviction(settings, clients))
    findings += check_clients(settings, clients)
    findings.append(check_persistence(settings, clients["main"]))
    findings += check_timing(settings, retention_ages_s or {})
    conf = celery_conf if celery_conf is not None else create_celery_app(settings).conf
    findings += check_connections(settings, conf)
    findings.append(check_servers(settings, clients, embedded_port))
    if embedded_restarts is not None:
        findings.append(check_embedded_restarts(embedded_restarts))
    findings += check_replication(settings, clients)
    findings.append(check_workers(keys, clients["main"], clients["broker"],
                                  gone_after_s=settings.gone_after_s))
    findings.append(check_stale_processing(settings, keys, clients["main"]))
    if consistency:
        findings += check_consistency(keys, clients["main"], clients["results"], progress)
        findings.append(check_lost_pending(keys, clients["main"], clients["broker"], progress))
    return findings
