"""Restore: put archived job records back into the main DB.

Each job is one atomic Redis step (store/lua/restore_one.lua): the hash with
every archived field, its `jobs` and `jobs:<status>` entries (score
finished_at for a finished job), the tombstone removed, the events stream
made persistent again (or replayed from the archive if it expired) and a
`restored` event appended. A live job is never overwritten. The archive row
stays (marked restored), so a later purge replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobtrail.clock import monotonic_s, now_s
from jobtrail.errors import RestoreConflictError
from jobtrail.models import ArchivedJob
from jobtrail.retention.audit import begin_run, end_run, failure_text
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.retention_store import RetentionStore

__all__ = ["RestoreReport", "restore_ids", "restore_matching"]

logger = logging.getLogger(__name__)

#: on_progress(job ids handled): called after each restored batch.
RestoreProgressFn = Callable[[Sequence[str]], None]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore run did.

    Attributes:
        run_id: Audit id of the run.
        selector: What was asked: ids, or policy and purged_since (epoch seconds).
        selected: Archive rows considered.
        restored: Jobs put back into the main DB.
        conflicts: Ids left alone because they are live in the main DB.
        elapsed_s: Wall time, seconds.
        archive: Archive location (password masked).
    """

    run_id: str
    selector: dict[str, Any]
    selected: int
    restored: int
    conflicts: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    archive: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the report as the JSON object `jobtrail restore --json` prints."""
        return {"run_id": self.run_id, "selector": dict(self.selector),
                "selected": self.selected, "restored": self.restored,
                "conflicts": list(self.conflicts), "elapsed_s": round(self.elapsed_s, 6),
                "archive": self.archive}


def _restore_batch(store: RetentionStore, archive: ArchiveStore, records: Sequence[ArchivedJob],
                   run_id: str, conflicts: list[str],
                   interrupted: Callable[[], bool] | None = None) -> tuple[int, bool]:
    """Restore *records* one by one and mark those restored in the archive.

    Returns:
        (how many were restored, whether *interrupted* stopped the batch before a record).
    """
    at = now_s()
    done: list[str] = []
    stopped = False
    for record in records:
        if interrupted is not None and interrupted():
            stopped = True
            break
        outcome = store.restore_one(record, restored_at=at, run_id=run_id,
                                    archive=archive.location)
        if outcome == "restored":
            done.append(record.job_id)
        else:
            conflicts.append(record.job_id)
            logger.info("restore skipped job_id=%s reason=live", record.job_id)
    archive.mark_restored(done, at)
    return len(done), stopped


def restore_ids(store: RetentionStore, archive: ArchiveStore, job_ids: Sequence[str], *,
                on_progress: RestoreProgressFn | None = None,
                actor: tuple[str, str] | None = None,
                interrupted: Callable[[], bool] | None = None) -> RestoreReport:
    """Restore the named jobs, all or none checked first.

    Every id must have an archive row and no live `job:<id>`; the check runs
    before any write (and the Lua step checks liveness again, atomically).
    *interrupted* is asked before each record (see restore_matching).

    Raises:
        ArchivedJobNotFoundError: An id has no archive row; nothing restored.
        RestoreConflictError: An id is live in the main DB; nothing restored.
        ArchiveError: The archive cannot be read or updated.
        RedisUnavailableError: The main DB could not be reached.
    """
    started = monotonic_s()
    ids = list(dict.fromkeys(job_ids))
    for job_id, raw in zip(ids, store.read_records(ids), strict=True):
        if raw is not None:  # live: say so, whether or not it was ever archived
            raise RestoreConflictError(job_id, raw.job.get("status", ""))
    records = [archive.get(job_id) for job_id in ids]
    selector: dict[str, Any] = {"ids": [r.job_id for r in records]}
    run = begin_run(archive, kind="restore", policy="", selector=selector, actor=actor)
    conflicts: list[str] = []
    restored = 0
    try:
        restored, stopped = _restore_batch(store, archive, records, run.run_id, conflicts,
                                           interrupted)
        if stopped:
            raise KeyboardInterrupt("interrupted")
        if on_progress:
            on_progress([r.job_id for r in records])
        if conflicts:
            raise RestoreConflictError(conflicts[0])
    except BaseException as exc:  # Ctrl-C too: the row must not stay "running"
        end_run(archive, run, {"selected": len(records), "restored": restored,
                               "conflicts": len(conflicts)}, error=failure_text(exc))
        raise
    end_run(archive, run, {"selected": len(records), "restored": restored, "conflicts": 0})
    return RestoreReport(run.run_id, selector, len(records), restored, [],
                         monotonic_s() - started, archive.location)


def restore_matching(store: RetentionStore, archive: ArchiveStore, *, policy: str | None = None,
                     purged_since: float | None = None, batch_size: int = 500,
                     on_progress: RestoreProgressFn | None = None,
                     interrupted: Callable[[], bool] | None = None) -> RestoreReport:
    """Restore every archived job not yet restored, purged by *policy* and/or since a time.

    Jobs that are live in the main DB (for example archived by a purge that
    died before deleting them) are left alone and listed as conflicts.

    Args:
        store: Redis side.
        archive: The archive.
        policy: Only rows purged by this policy name.
        purged_since: Only rows purged at or after this time, epoch seconds.
        batch_size: Archive rows per batch; memory is O(batch_size).
        on_progress: Called after each batch with its job ids.
        interrupted: Asked before each record; once it returns True the records
            restored so far are marked, the audit row ends "interrupted" with their
            count, and KeyboardInterrupt is raised. The CLI passes its held Ctrl-C
            and SIGTERM (cli.output.interrupt_between_steps): an interrupt raised
            inside a step could land after a record's Lua step and before its
            archive mark, leaving a job live whose row says it was never restored.

    Raises:
        ArchiveError: The archive cannot be read or updated.
        RedisUnavailableError: The main DB could not be reached.
    """
    started = monotonic_s()
    selector: dict[str, Any] = {"policy": policy, "purged_since": purged_since}
    run = begin_run(archive, kind="restore", policy=policy or "", selector=selector)
    selected = restored = 0
    conflicts: list[str] = []
    try:
        for batch in archive.iter_archived(batch_size=batch_size, policy=policy,
                                           purged_since=purged_since, only_unrestored=True):
            selected += len(batch)
            count, stopped = _restore_batch(store, archive, batch, run.run_id, conflicts,
                                            interrupted)
            restored += count
            if stopped:
                raise KeyboardInterrupt("interrupted")
            if on_progress:
                on_progress([r.job_id for r in batch])
    except BaseException as exc:  # Ctrl-C too: the row must not stay "running"
        end_run(archive, run, {"selected": selected, "restored": restored,
                               "conflicts": len(conflicts)}, error=failure_text(exc))
        raise
    end_run(archive, run, {"selected": selected, "restored": restored,
                           "conflicts": len(conflicts)})
    return RestoreReport(run.run_id, selector, selected, restored, conflicts,
                         monotonic_s() - started, archive.location)
