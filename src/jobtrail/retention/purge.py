"""Purge: archive, verify, then delete the jobs a retention policy selects.

The protocol, batch by batch (memory O(batch_size x (1 + IN_FLIGHT))):

1. read: one read-only script (HGETALL + XRANGE of each job) on the main DB
   and one MGET of `celery-task-meta-<id>` on the results DB;
2. archive: insert or replace one row per job and COMMIT (ArchiveStore.put_many);
3. verify: read the rows back and check their checksums;
4. delete: store/lua/purge_one.lua, one atomic call per chunk of jobs: for
   each job whose record still has the status and version that were
   archived, DEL `job:<id>`, write `tombstone:<id>` (TTL), append a `purged`
   event (the stream gets the same TTL) and ZREM it from `jobs` and every
   `jobs:<status>`. Any other job is skipped ("changed after it was read").

Successive batches overlap on three threads: while batch k is archived and
verified (step 2-3, the archive thread), batch k-1 is deleted (step 4, the
delete thread) and batch k+1 read (step 1, the caller's thread). Each batch
still goes through the steps in order, and its step 4 starts only after its
step 3 succeeded. The overlap keeps both cores busy: the Python side
(parsing, sealing, the archive) and the Redis side (the scripts) each take
about half of a batch's time.

A SIGKILL anywhere leaves each job live, archived, or both; a rerun archives
again (replacing the row, never adding one) and finishes. An archive failure
raises ArchiveError before step 4 of its batch, so nothing of it is deleted,
and stops the run: no later batch is archived or deleted.
The broker and results DBs are never written.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobtrail.clock import monotonic_s, now_s
from jobtrail.models import JobStatus
from jobtrail.retention.audit import begin_run, end_run, failure_text
from jobtrail.retention.policy import RetentionPolicy, count_selected
from jobtrail.retention.selection import Candidate, Selection
from jobtrail.store.archive import ArchiveStore, SealedRecord, seal
from jobtrail.store.retention_store import PurgeItem, RetentionStore

__all__ = ["PurgeReport", "PurgeStep", "count_candidates", "purge"]

logger = logging.getLogger(__name__)

SAMPLE_SIZE = 10
#: Batches archived or being deleted while the next one is read (memory: that many batches).
IN_FLIGHT = 2


class PurgeStep(StrEnum):
    """Points of the protocol reported to the progress callback, in order per batch."""

    READ = "read"            # records read from Redis; nothing written yet
    ARCHIVED = "archived"    # archive rows committed
    VERIFIED = "verified"    # archive rows read back and checked
    DELETED = "deleted"      # one pipelined chunk of purge_one.lua steps ran
    SKIPPED = "skipped"      # jobs skipped at read time (gone, or moved status)


#: on_progress(step, job ids concerned). It runs in the purging process, between steps.
ProgressFn = Callable[[PurgeStep, Sequence[str]], None]


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge (or dry run) selected and did.

    Attributes:
        run_id: Audit id of the run ("" for a dry run, which writes nothing).
        policy: Policy name.
        selector: The policy's selection (statuses, older_than_s, keep_last, max_per_run).
        dry_run: True when nothing was written.
        selected: Jobs the policy selected.
        archived: Archive rows committed and verified.
        purged: Jobs deleted from the main DB (tombstone written).
        skipped: Selected jobs left alone: gone already, or changed after they were read.
        skipped_reasons: skipped, by reason ("missing", "changed").
        elapsed_s: Wall time of the run, seconds.
        archive: Archive location (password masked).
        oldest_finished_at: finished_at of the oldest selected job, epoch seconds.
        newest_finished_at: finished_at of the newest selected job, epoch seconds.
        sample_ids: Up to 10 selected ids, oldest first.
        stuck: Pending and processing jobs older than the policy's age, by
            status: never purged, reported for a person to look at.
    """

    run_id: str
    policy: str
    selector: dict[str, Any]
    dry_run: bool
    selected: int
    archived: int
    purged: int
    skipped: int
    skipped_reasons: dict[str, int]
    elapsed_s: float
    archive: str
    oldest_finished_at: float | None
    newest_finished_at: float | None
    sample_ids: list[str] = field(default_factory=list)
    stuck: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as the JSON object `retention purge --json` prints."""
        return {"run_id": self.run_id, "policy": self.policy, "selector": dict(self.selector),
                "dry_run": self.dry_run, "selected": self.selected, "archived": self.archived,
                "purged": self.purged, "skipped": self.skipped,
                "skipped_reasons": dict(self.skipped_reasons),
                "elapsed_s": round(self.elapsed_s, 6), "archive": self.archive,
                "oldest_finished_at": self.oldest_finished_at,
                "newest_finished_at": self.newest_finished_at,
                "sample_ids": list(self.sample_ids), "stuck": dict(self.stuck)}


def count_candidates(store: RetentionStore, policy: RetentionPolicy, now: float) -> int:
    """Return how many jobs *policy* selects at *now* (two counts per status, O(log n)).

    Raises:
        RedisUnavailableError: The main DB could not be reached.
    """
    return count_selected(store.count_older(policy.statuses, policy.cutoff_at(now)), policy)


def _stuck(store: RetentionStore, policy: RetentionPolicy, now: float) -> dict[str, int]:
    counts = store.count_older((JobStatus.PENDING, JobStatus.PROCESSING), policy.cutoff_at(now))
    return {s.value: c[0] for s, c in counts.items()}


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """Keep the objects that exist now out of the cyclic GC's full collections meanwhile.

    A purge allocates a few containers per job, and the batches in flight
    survive into the oldest generation, so full collections keep coming; each
    one walked every object of the process (SQLAlchemy, redis-py, ...), a
    fifth of the reading thread's time. gc.freeze() is CPython's tool for
    this (https://docs.python.org/3/library/gc.html#gc.freeze); the objects
    go back to the oldest generation afterwards, so nothing is leaked.
    """
    if gc.get_freeze_count():  # the host process froze its objects itself: leave them so
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class _Tally:
    def __init__(self) -> None:
        self.selected = self.archived = self.purged = 0
        self.skipped: Counter[str] = Counter()
        self.oldest: float | None = None
        self.newest: float | None = None
        self.sample: list[str] = []

    def select(self, batch: Sequence[Candidate]) -> None:
        self.selected += len(batch)
        if self.oldest is None:
            self.oldest = batch[0].finished_at
        self.newest = batch[-1].finished_at if self.newest is None else max(
            self.newest, batch[-1].finished_at)
        self.sample += [c.job_id for c in batch[:SAMPLE_SIZE - len(self.sample)]]

    def counts(self) -> dict[str, int]:
        return {"selected": self.selected, "archived": self.archived, "purged": self.purged,
                "skipped": sum(self.skipped.values())}


class _Stages:
    """The three stages of a purge and the state they share, for one run.

    Stage 1 (the calling thread) selects, reads and seals a batch; stage 2
    (one archive thread) writes, commits and verifies it; stage 3 (one delete
    thread) runs the Redis steps. Each stage takes batches in order, and a
    batch enters stage 3 only once its stage 2 has succeeded. `lock` guards
    the tally and the selection's max_per_run count (the selection pages by
    keyset, so the deletes running meanwhile do not move it). `stop` is set
    by the first failure (or an interrupt); no stage starts a batch after it.
    `interrupted` is asked before each batch (see purge).
    """

    def __init__(self, store: RetentionStore, archive: ArchiveStore, selection: Selection,
                 *, policy: str, run_id: str, tombstone_ttl_s: float, chunk: int,
                 on_progress: ProgressFn | None,
                 interrupted: Callable[[], bool] | None = None) -> None:
        self.store = store
        self.archive = archive
        self.selection = selection
        self.policy = policy
        self.run_id = run_id
        self.tombstone_ttl_s = tombstone_ttl_s
        self.chunk = chunk
        self.on_progress = on_progress
        self.interrupted = interrupted or (lambda: False)
        self.tally = _Tally()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def _progress(self, step: PurgeStep, ids: Sequence[str]) -> None:
        if self.on_progress:
            self.on_progress(step, ids)

    def next_batch(self, size: int) -> list[Candidate]:
        """Stage 1: the next selected batch (tallied), or [] when the selection is done."""
        with self.lock:
            batch = self.selection.next_batch(size)
            if batch:
                self.tally.select(batch)
            return batch

    def read_and_seal(self, batch: Sequence[Candidate],
                      ) -> tuple[list[SealedRecord], list[PurgeItem]]:
        """Stage 1: read the batch's records and seal those still in their selected status."""
        raws = self.store.read_records([c.job_id for c in batch])
        purged_at = now_s()
        sealed: list[SealedRecord] = []
        items: list[PurgeItem] = []
        gone: list[str] = []
        changed: list[Candidate] = []
        for cand, raw in zip(batch, raws, strict=True):
            if raw is None:
                gone.append(cand.job_id)
                continue
            if raw.job.get("status") != cand.status.value:
                changed.append(cand)
                continue
            sealed.append(seal(cand.job_id, raw.job, raw.events, raw.celery_meta,
                               purged_at=purged_at, policy=self.policy, run_id=self.run_id))
            items.append(PurgeItem(cand.job_id, cand.status.value,
                                   raw.job.get("version", "0")))
        with self.lock:
            self.tally.skipped["missing"] += len(gone)
            self.tally.skipped["changed"] += len(changed)
            # entries skipped before archiving (a record gone, or moved to another status)
            # do not use up max_per_run: a dangling index entry must not stall capped runs
            self.selection.handed_out -= len(gone) + len(changed)
        self._progress(PurgeStep.READ, [c.job_id for c in batch])
        if gone or changed:
            self._progress(PurgeStep.SKIPPED, gone + [c.job_id for c in changed])
        return sealed, items

    def archive_batch(self, sealed: Sequence[SealedRecord]) -> bool:
        """Stage 2: write and COMMIT the rows, then read them back; False if stopped first.

        Raises:
            ArchiveError: The archive refused, lost or garbled a row (`stop` is set).
        """
        if self.stop.is_set():
            return False
        try:
            self.archive.put_many(sealed)
            self._progress(PurgeStep.ARCHIVED, [s.job_id for s in sealed])
            self.archive.verify(sealed)
        except BaseException:
            self.stop.set()
            raise
        with self.lock:
            self.tally.archived += len(sealed)
        self._progress(PurgeStep.VERIFIED, [s.job_id for s in sealed])
        return True

    def delete_batch(self, archived: Future[bool], items: Sequence[PurgeItem],
                     purged_at: float) -> None:
        """Stage 3: once *archived* succeeded, run purge_one.lua on *items*, chunk by chunk.

        A batch whose rows are committed and verified is deleted in full even
        after `stop` is set (an interrupt, or a later batch's failure): at most
        IN_FLIGHT batches, and a rerun would otherwise archive them again.

        Raises:
            ArchiveError: Stage 2 of this batch failed; nothing of it is deleted.
            RedisUnavailableError: The main DB could not be reached (`stop` is set).
        """
        if not archived.result():
            return
        try:
            for start in range(0, len(items), self.chunk):
                self._delete_chunk(items[start:start + self.chunk], purged_at)
        except BaseException:
            self.stop.set()
            raise

    def _delete_chunk(self, part: Sequence[PurgeItem], purged_at: float) -> None:
        outcomes = self.store.purge_many(
            part, purged_at=purged_at, policy=self.policy, archive=self.archive.location,
            run_id=self.run_id, tombstone_ttl_s=self.tombstone_ttl_s)
        with self.lock:
            for item, outcome in zip(part, outcomes, strict=True):
                if outcome == "purged":
                    self.tally.purged += 1
                else:
                    self.tally.skipped[outcome] += 1
                    logger.info("purge skipped job_id=%s reason=%s", item.job_id, outcome)
        self._progress(PurgeStep.DELETED, [i.job_id for i in part])

    def run(self, batch_size: int, *, dry_run: bool) -> None:
        """Drive every batch through the stages; return once all are done or stopped.

        Raises:
            ArchiveError, RedisUnavailableError: The first failure of any stage,
                after every batch in flight has finished or stopped.
            KeyboardInterrupt: `interrupted` said so before a batch, once the batches
                in flight have finished.
        """
        if dry_run:
            while not (asked := self.interrupted()) and self.next_batch(batch_size):
                pass
            if asked:
                raise KeyboardInterrupt("interrupted")
            return
        inflight: deque[Future[None]] = deque()
        asked = False
        with ThreadPoolExecutor(1, thread_name_prefix="jobtrail-archive") as archiver, \
                ThreadPoolExecutor(1, thread_name_prefix="jobtrail-delete") as deleter:
            try:
                while not self.stop.is_set() \
                        and not (asked := self.interrupted()) \
                        and (batch := self.next_batch(batch_size)):
                    sealed, items = self.read_and_seal(batch)
                    if not sealed:
                        continue
                    archived = archiver.submit(self.archive_batch, sealed)
                    inflight.append(deleter.submit(self.delete_batch, archived, items,
                                                   sealed[0].purged_at))
                    while len(inflight) > IN_FLIGHT:
                        inflight.popleft().result()
                while inflight:
                    inflight.popleft().result()
                if asked:  # the work left was not begun: the run ends interrupted
                    raise KeyboardInterrupt("interrupted")
            except BaseException:
                self.stop.set()
                wait(inflight)  # batches in flight finish their current chunk, then stop
                raise


def purge(store: RetentionStore, archive: ArchiveStore, policy: RetentionPolicy, *,
          tombstone_ttl_s: float, batch_size: int = 1000, dry_run: bool = False,
          redis_chunk_size: int | None = None, now: float | None = None,
          on_progress: ProgressFn | None = None,
          actor: tuple[str, str] | None = None,
          interrupted: Callable[[], bool] | None = None) -> PurgeReport:
    """Archive, then delete, every job record that *policy* selects.

    Each record's archive row is committed and read back before its
    `job:<id>` hash is deleted; the delete, the `tombstone:<id>` hash and the
    `purged` event are one atomic Redis step (store/lua/purge_one.lua). A rerun
    after a crash finishes the work and never archives a job twice. A real
    run is recorded in the audit table (outcome "running", then "done" or
    "failed"); a dry run writes nothing anywhere.

    Args:
        store: Redis side (main DB reads and Lua steps, results DB reads).
        archive: The archive (and audit table).
        policy: Which records to purge.
        tombstone_ttl_s: TTL of each tombstone and purged events stream, seconds.
        batch_size: Jobs read, archived and deleted per batch; memory is O(batch_size).
        dry_run: Select and count only; write nothing.
        redis_chunk_size: purge_one.lua steps per pipelined round trip
            (default: the whole batch).
        now: The time ages are counted from, epoch seconds (default: the clock).
        on_progress: Called after each protocol step with the job ids concerned.
        actor: (user, host) recorded in the audit; default this process's.
        interrupted: Asked before each batch; once it returns True no batch starts,
            the batches in flight finish, the audit row ends "interrupted" and
            KeyboardInterrupt is raised. The CLI passes its held Ctrl-C and SIGTERM
            (cli.output.interrupt_between_steps): an interrupt raised inside the
            stages' own steps could land between a thread pool's start of its
            delete thread and its record of it, and the audit counted a batch whose
            delete was still running as not purged.

    Returns:
        PurgeReport: selected, archived, purged and skipped counts, elapsed_s,
        the archive location, oldest/newest finished_at, sample ids and stuck jobs.

    Raises:
        ArchiveError: The archive refused, lost or garbled a row; nothing of
            that batch was deleted (earlier batches stay purged and archived).
        RedisUnavailableError: The main or results DB could not be reached.
        KeyboardInterrupt: Ctrl-C, or *interrupted* said so (the audit row ended first).
    """
    started = monotonic_s()
    at = now_s() if now is None else now
    selection = Selection(store, policy, at, page_size=batch_size)
    stuck = _stuck(store, policy, at)
    run_id = ""
    if not dry_run:
        run = begin_run(archive, kind="purge", policy=policy.name,
                        selector=policy.selector() | {"now": at, "batch_size": batch_size},
                        actor=actor)
        run_id = run.run_id
    stages = _Stages(store, archive, selection, policy=policy.name, run_id=run_id,
                     tombstone_ttl_s=tombstone_ttl_s, chunk=redis_chunk_size or batch_size,
                     on_progress=on_progress, interrupted=interrupted)
    tally = stages.tally
    try:
        with _gc_frozen():
            stages.run(batch_size, dry_run=dry_run)
    except BaseException as exc:  # Ctrl-C too: the row must not stay "running"
        if not dry_run:  # batches in flight have finished: the counts are final
            end_run(archive, run, tally.counts(), error=failure_text(exc))
        raise
    if not dry_run:
        end_run(archive, run, tally.counts())
    report = PurgeReport(
        run_id=run_id, policy=policy.name, selector=policy.selector(), dry_run=dry_run,
        selected=tally.selected, archived=tally.archived, purged=tally.purged,
        skipped=sum(tally.skipped.values()), skipped_reasons=dict(tally.skipped),
        elapsed_s=monotonic_s() - started, archive=archive.location,
        oldest_finished_at=tally.oldest, newest_finished_at=tally.newest,
        sample_ids=tally.sample, stuck=stuck)
    logger.info("purge finished policy=%s dry_run=%s selected=%d archived=%d purged=%d "
                "skipped=%d elapsed_s=%.3f", policy.name, dry_run, report.selected,
                report.archived, report.purged, report.skipped, report.elapsed_s)
    return report
