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

from typing import Any

from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

__all__ = ["OWNED_KEY", "owned_results"]

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
