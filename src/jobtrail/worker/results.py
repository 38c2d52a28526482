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
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from celery import states
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

__all__ = ["OWNED_KEY", "PendingResults", "owned_results", "restore_result", "send_owned_results",
           "store_owned_results"]

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


def store_owned_results(backend: Any, outcomes: Sequence[tuple[str, Any, str, Any]]) -> None:
    """Store the Celery results of several jobs whose runs own their outcomes, in one
    round trip to the results DB: send_owned_results(), then its confirm().

    Raises:
        BackendStoreError: as PendingResults.confirm().
    """
    send_owned_results(backend, outcomes).confirm()


class PendingResults:
    """Results (*writes*: key, value, TTL in seconds or None) sent by send_owned_results()
    whose replies are still on *conn*; None when the send failed (confirm() writes them
    then). confirm() reads them; until then the connection is out of its pool."""

    def __init__(self, backend: Any, writes: list[tuple[str, str, int | None]],
                 first: tuple[str, str] | None, conn: Any) -> None:
        self.backend, self.writes, self.first, self.conn = backend, writes, first, conn

    def confirm(self) -> None:
        """Read the replies of the write; a write whose connection failed, or that Redis
        refused, is made again the backend's way (its retry policy, `ensure`, and
        `result_backend_always_retry`): SET and PUBLISH again change nothing a reader
        sees (a client waiting in `AsyncResult.get()` takes the first PUBLISH).

        Raises:
            BackendStoreError: The results DB still failing after the retries (naming
                the first job).
        """
        conn, self.conn = self.conn, None
        if not self.writes:
            return
        if conn is None:
            self._write_again()
            self.writes = []
            return
        pool = self.backend.client.connection_pool
        try:
            for _ in range(2 * len(self.writes)):  # SETEX (or SET), then PUBLISH, each
                conn.read_response()
        except Exception:  # noqa: BLE001 - made again the backend's way below
            conn.disconnect()
            pool.release(conn)
            self._write_again()
        else:
            pool.release(conn)
        self.writes = []

    def _write_again(self) -> None:
        backend, writes = self.backend, self.writes

        def write() -> None:
            with backend.client.pipeline(transaction=False) as pipe:
                for command in _result_commands(writes):
                    pipe.execute_command(*command)
                pipe.execute()

        first_id, first_state = self.first or ("", "")
        backend._ensure_retryable(
            lambda: backend.ensure(write, ()),
            fallback_exc=partial(BackendStoreError, task_id=first_id, state=first_state),
            fallback_msg="failed to store results on the backend")


def _result_commands(writes: Sequence[tuple[str, str, int | None]]) -> list[tuple[Any, ...]]:
    """The commands of results (key, value, TTL in seconds or None) as `RedisBackend._set`
    writes each: SETEX (SET without a TTL), then PUBLISH to the key's channel."""
    return [c for key, value, expires in writes
            for c in ((("SETEX", key, expires, value) if expires else ("SET", key, value)),
                      ("PUBLISH", key, value))]


def send_owned_results(backend: Any, outcomes: Sequence[tuple[str, Any, str, Any]],
                       ) -> PendingResults:
    """Write the Celery results of several jobs whose runs own their outcomes, replies
    unread: the returned PendingResults' confirm() reads them (a batch's group commit
    confirms one group's results at the next one, worker.batch).

    Each item of *outcomes* is (task_id, result, state, request): the return value
    of a SUCCESS or the exception of a FAILURE, and the request context the job's
    result is stored with. The meta of each is Celery's own, as
    `BaseKeyValueStoreBackend._store_result` builds it, and each is written as
    `RedisBackend._set` writes one (SETEX with `result_expires`, or
    `result_failure_expires` for a FAILURE, then PUBLISH to the key's channel for
    a client waiting in `AsyncResult.get()`), all in one write. A result whose
    request is not marked owned (OWNED_KEY), and every result on a backend that is
    not Redis's, is stored the backend's own way, at once.

    Raises:
        BackendStoreError: A value over the backend's size limit (nothing written of
            the owned results); as the backend's store_result for the others.
    """
    direct = hasattr(backend, "_set_with_state") and hasattr(backend, "client")
    owned = [item for item in outcomes if direct and getattr(item[3], OWNED_KEY, False)]
    for task_id, result, state, request in outcomes:
        if not (direct and getattr(request, OWNED_KEY, False)):
            backend.store_result(task_id, result, state, request=request)
    if not owned:
        return PendingResults(backend, [], None, None)
    writes: list[tuple[str, str, int | None]] = []
    for task_id, result, state, request in owned:
        meta = backend._get_result_meta(result=backend.encode_result(result, state),
                                        state=state, traceback=None, request=request)
        meta["task_id"] = bytes_to_str(task_id)  # type: ignore[no-untyped-call]
        value = backend.encode(meta)
        if isinstance(value, str) and len(value) > backend._MAX_STR_VALUE_SIZE:
            raise BackendStoreError("value too large for Redis backend", state=state,
                                    task_id=task_id)
        expires = (getattr(backend, "failure_expires", backend.expires)
                   if state == states.FAILURE else backend.expires)
        writes.append((backend.get_key_for_task(task_id), value, expires))
    pending = PendingResults(backend, writes, (owned[0][0], owned[0][2]), None)
    packed = _result_commands(writes)
    pool = backend.client.connection_pool
    try:
        conn = pool.get_connection()
    except Exception:  # noqa: BLE001 - written the backend's way at confirm()
        return pending
    try:
        conn.send_packed_command(conn.pack_commands(packed))
    except Exception:  # noqa: BLE001 - written again the backend's way at confirm()
        conn.disconnect()
        pool.release(conn)
        return pending
    pending.conn = conn
    return pending
