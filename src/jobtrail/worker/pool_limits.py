"""Pool limits: the solver's memory cap in each prefork pool process, and a warning
when the worker's pool enforces no solver limit at all.

Invariant: only signal receivers live here (Celery's celeryd_init,
worker_process_init, worker_ready); worker/tasks.py imports this module, so
every process that can run a solve task has them connected.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import celeryd_init, worker_process_init, worker_ready

from jobtrail.solver.limits import set_memory_limit
from jobtrail.worker.app import SETTINGS_KEY

__all__ = ["unlimited_pool_warning"]

logger = logging.getLogger(__name__)

_pool_memory_limit_bytes: int = 0


@celeryd_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _remember_memory_limit(conf: Any = None, **_: Any) -> None:
    """Note the solver memory limit when a worker starts (Celery's celeryd_init)."""
    global _pool_memory_limit_bytes
    if conf is not None and SETTINGS_KEY in conf:
        _pool_memory_limit_bytes = conf[SETTINGS_KEY].solver_memory_limit_bytes


@worker_process_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _limit_pool_process_memory(**_: Any) -> None:
    """Cap each prefork pool process's address space (Celery's worker_process_init)."""
    if _pool_memory_limit_bytes:
        set_memory_limit(_pool_memory_limit_bytes)


def unlimited_pool_warning(pool: object, settings: Any) -> str | None:
    """Return the warning a worker on *pool* must log, or None for the prefork pool.

    Celery enforces task time limits only in the prefork pool (the threads,
    solo, eventlet and gevent pools ignore them), and the solver's memory limit
    is set in each prefork pool process: on any other pool a runaway problem
    runs, and grows, until the worker is restarted.
    """
    if isinstance(pool, PreforkPool):
        return None
    name = type(pool).__module__.rsplit(".", 1)[-1]
    return (f"pool {name} enforces none of the solver's limits: no time limit "
            f"(SOLVER_TIME_LIMIT_S={settings.solver_time_limit_s:g}, "
            f"SOLVER_HARD_TIME_LIMIT_S={settings.solver_hard_time_limit_s:g}) and no memory "
            f"limit (SOLVER_MEMORY_LIMIT_BYTES={settings.solver_memory_limit_bytes}); a "
            f"runaway problem holds its slot until the worker restarts: use --pool prefork")


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _warn_unlimited_pool(sender: Any = None, **_: Any) -> None:
    """Warn, once the worker is up, when its pool cannot enforce the solver's limits."""
    conf = getattr(getattr(sender, "app", None), "conf", None)
    if conf is None or SETTINGS_KEY not in conf:
        return
    warning = unlimited_pool_warning(getattr(sender, "pool", None), conf[SETTINGS_KEY])
    if warning:
        logger.warning(warning)


