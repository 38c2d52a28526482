"""Celery results of jobs whose outcome their own run wrote: stored in one round trip.

Celery's key-value backends read a task's stored result before writing one
and keep a SUCCESS already there (so a lost duplicate never overwrites it):
a second round trip to the results DB for every job. A job's run knows
better: its finish was applied under its run token (JobStore.finish), so no
other delivery wrote, or will write, an outcome of that job. JobRun.finish
marks the request context (OWNED_KEY) the job's result is stored with, and
such a result is written without the read. Every other store (a hard time
limit's failure in the main process, a revoke, any foreign task) keeps
Celery's read.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

__all__ = ["OWNED_KEY", "owned_results", "restore_result"]

#: The request-context attribute JobRun.finish sets once the job's outcome is its run's.
OWNED_KEY = "jobtrail_owned"


_classes: dict[Any, type] = {}


def owned_results(base: Any) -> type:
    """Return a subclass of the backend class *base* that stores an owned outcome directly.

    The meta written is Celery's own (`_get_result_meta`, `encode`,
    `_set_with_state`, as `BaseKeyValueStoreBackend._store_result` builds it),
    so `AsyncResult(job_id).get()` reads exactly what it reads otherwise.
    One subclass per *base*, made on first use.
    """
    if base in _classes:
        return _classes[base]

    class OwnedResults(base):  # type: ignore[misc]  # celery ships no types
        def _store_result(self, task_id: str, result: Any, state: str,
                          traceback: Any = None, request: Any = None, **kwargs: Any) -> Any:
            if not getattr(request, OWNED_KEY, False) or not hasattr(self, "_set_with_state"):
                return super()._store_result(task_id, result, state, traceback,
                                             request=request, **kwargs)
            meta = self._get_result_meta(result=result, state=state, traceback=traceback,
                                         request=request)
            meta["task_id"] = bytes_to_str(task_id)  # type: ignore[no-untyped-call]
            try:
                self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)
            except BackendStoreError as exc:
                raise BackendStoreError(str(exc), state=state, task_id=task_id) from exc
            return result

    OwnedResults.__name__ = OwnedResults.__qualname__ = base.__name__
    OwnedResults.__module__ = base.__module__
    _classes[base] = OwnedResults
    return OwnedResults


def restore_result(backend: Any, task_id: str, result: Any, state: str, request: Any, *,
                   done_at: float, now: float) -> bool:
    """Store the Celery result of a task that finished at *done_at* (epoch seconds) as
    Celery stored it then: its meta's date_done *done_at*, its TTL what is left at *now*
    of the backend's `expires` (seconds; 0 or None: kept forever).

    *result* is the return value, or the exception of a FAILURE (encoded as Celery
    encodes it). The caller checked that no result is stored.

    Returns:
        True if stored; False if the result would have expired already (nothing written).

    Raises:
        BackendStoreError, redis errors: as the backend's own set().
    """
    expires = backend.expires or 0
    left_s = expires - (now - done_at)
    if expires and left_s <= 0:
        return False
    meta = backend._get_result_meta(result=backend.encode_result(result, state), state=state,
                                    traceback=None, request=request)
    meta["task_id"] = bytes_to_str(task_id)  # type: ignore[no-untyped-call]
    meta["date_done"] = datetime.fromtimestamp(done_at, UTC).astimezone(
        backend.app.timezone).isoformat()
    backend.set(backend.get_key_for_task(task_id), backend.encode(meta),
                expires=max(1, math.ceil(left_s)) if expires else None)
    return True
