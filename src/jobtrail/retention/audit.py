"""Audit of retention runs: who ran a purge or restore, where, with what selector.

Invariant: every purge and restore that may write records an audit row in the
archive database *before* its first write (outcome "running") and updates it
at the end ("done" or "failed"). A run whose process died stays "running".
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
import uuid
from collections.abc import Mapping
from typing import Any

from jobtrail.clock import now_s
from jobtrail.errors import ArchiveError, JobtrailError
from jobtrail.models import RetentionRun
from jobtrail.store.archive import ArchiveStore

__all__ = ["begin_run", "current_actor", "end_run", "history", "record_call"]

logger = logging.getLogger(__name__)


def current_actor() -> tuple[str, str]:
    """Return (OS user name, host name) of this process; the uid when it has no name."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return user, socket.gethostname()


def begin_run(archive: ArchiveStore, *, kind: str, policy: str,
              selector: Mapping[str, Any], actor: tuple[str, str] | None = None,
              ) -> RetentionRun:
    """Record the start of a run (outcome "running") and return it.

    *actor* is (user, host) of whoever asked for the run; default: this
    process's OS user and host (the API passes its caller's address).

    Raises:
        ArchiveError: The archive refused the audit row; the run must not start.
    """
    user, host = actor or current_actor()
    run = RetentionRun(run_id=str(uuid.uuid4()), kind=kind, started_at=now_s(),
                       finished_at=None, user=user, host=host, policy=policy,
                       selector=dict(selector), counts={}, archive=archive.location,
                       outcome="running")
    archive.start_run(run)
    logger.info("retention run started run_id=%s kind=%s policy=%s user=%s host=%s",
                run.run_id, kind, policy, user, host)
    return run


def end_run(archive: ArchiveStore, run: RetentionRun, counts: Mapping[str, int], *,
            error: str = "") -> None:
    """Record the end of *run* with its counts; "failed" when *error* is given.

    A failure to write the audit update is logged, not raised, when the run
    already failed (the first error is the one to report).

    Raises:
        ArchiveError: The archive refused the update of a successful run.
    """
    try:
        archive.finish_run(run.run_id, finished_at=now_s(), counts=counts,
                           outcome="failed" if error else "done", error=error)
    except ArchiveError:
        if not error:
            raise
        logger.warning("audit row not updated run_id=%s", run.run_id, exc_info=True)
    logger.info("retention run ended run_id=%s outcome=%s counts=%s", run.run_id,
                "failed" if error else "done", dict(counts))


def failure_text(exc: BaseException) -> str:
    """Return the audit's error text for a run that *exc* ended.

    A JobtrailError's own message; "interrupted" for Ctrl-C or SIGTERM
    (KeyboardInterrupt, SystemExit); the type and message of anything else.
    """
    if isinstance(exc, JobtrailError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def history(archive: ArchiveStore, *, limit: int = 50) -> list[RetentionRun]:
    """Return the latest *limit* purge and restore runs, newest first.

    Raises:
        ArchiveError: The archive cannot be read.
    """
    return archive.history(limit=limit)


def record_call(archive: ArchiveStore, *, kind: str, policy: str, selector: Mapping[str, Any],
                actor: tuple[str, str], outcome: str, counts: Mapping[str, int] | None = None,
                error: str = "") -> None:
    """Record one API call as a finished audit row: one that wrote nothing (a dry run, a
    refused call), or a single write done in one step (a cancel).

    Args:
        kind: "purge", "restore" or "cancel".
        outcome: "dry-run", "refused" or "done".

    Raises:
        ArchiveError: The archive refused the row.
    """
    user, host = actor
    run = RetentionRun(run_id=str(uuid.uuid4()), kind=kind, started_at=now_s(),
                       finished_at=None, user=user, host=host, policy=policy,
                       selector=dict(selector), counts={}, archive=archive.location,
                       outcome=outcome)
    archive.start_run(run)
    archive.finish_run(run.run_id, finished_at=now_s(), counts=dict(counts or {}),
                       outcome=outcome, error=error)
