"""Cap the solving process's memory, and report running out as ``SolverMemoryLimitError``.

Invariant: only the address-space limit (``RLIMIT_AS``) of the *calling*
process is touched, and only by ``set_memory_limit()``; time limits are the
Celery worker's job (soft/hard task time limits), not this module's.

Source:
    ``resource.setrlimit`` and ``RLIMIT_AS``:
    https://docs.python.org/3/library/resource.html#resource.RLIMIT_AS;
    ``/proc/self/statm`` (first field: total program size in pages): proc(5).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from jobtrail.errors import SolverMemoryLimitError

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no resource module
    resource = None  # type: ignore[assignment]

__all__ = ["current_virtual_size_bytes", "memory_guard", "set_memory_limit"]

logger = logging.getLogger(__name__)

_STATM = "/proc/self/statm"


def current_virtual_size_bytes() -> int | None:
    """Return this process's virtual memory size in bytes, or None where unknown.

    Returns:
        Total program size from ``/proc/self/statm`` times the page size;
        None where ``/proc`` is not mounted (macOS, Windows).
    """
    try:
        with open(_STATM, encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def set_memory_limit(limit_bytes: int) -> None:
    """Cap this process's address space at its current virtual size plus *limit_bytes*.

    Call it once in the worker process after SymPy is imported, so the cap
    applies to solving, not to loading. The soft limit is set and never
    raised above the existing hard limit. Where the platform cannot do it
    (no ``resource`` module, no ``/proc``, or ``setrlimit`` refuses), it
    logs a warning and does nothing.

    Args:
        limit_bytes: Extra address space allowed for solving, in bytes; must
            be positive.

    Raises:
        ValueError: *limit_bytes* is not positive (a programming error).
    """
    if limit_bytes <= 0:
        raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
    if resource is None or not hasattr(resource, "RLIMIT_AS"):
        logger.warning("memory limit unsupported on this platform limit_bytes=%d", limit_bytes)
        return
    current = current_virtual_size_bytes()
    if current is None:
        logger.warning("memory limit skipped: virtual size unknown limit_bytes=%d", limit_bytes)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    target = current + limit_bytes
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (target, hard))
    except (ValueError, OSError) as exc:
        logger.warning(
            "memory limit not set limit_bytes=%d target_bytes=%d error=%s",
            limit_bytes,
            target,
            exc,
        )
        return
    logger.info(
        "memory limit set limit_bytes=%d address_space_bytes=%d previous_soft=%s",
        limit_bytes,
        target,
        soft,
    )


@contextmanager
def memory_guard(limit_bytes: int) -> Iterator[None]:
    """Turn a ``MemoryError`` raised inside the block into ``SolverMemoryLimitError``.

    Example::

        with memory_guard(settings.solver_memory_limit_bytes):
            answer = solve(problem)

    Args:
        limit_bytes: The limit in force, in bytes, reported in the error.

    Yields:
        Nothing; the block runs unchanged.

    Raises:
        SolverMemoryLimitError: The block raised ``MemoryError``.
    """
    try:
        yield
    except MemoryError as exc:
        raise SolverMemoryLimitError(limit_bytes) from exc
