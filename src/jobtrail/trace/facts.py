"""The facts trace gathers about a job id, one dataclass per store (gather.py fills them).

Pure: no I/O. classify() (fate.py) decides a fate from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobtrail.models import Job, JobEvent, WorkerHeartbeat

__all__ = ["ArchiveFacts", "BatchFacts", "BrokerFacts", "Evidence", "MainFacts", "ResultFacts"]


@dataclass(frozen=True, slots=True)
class MainFacts:
    """What the main DB holds about the id.

    `index_scores` maps `jobs` and each `jobs:<status>` index the id is in to
    its score (epoch seconds); `tombstone_ttl_s` is None without a TTL;
    `evicted_keys` is the server's INFO counter since its start.
    `promoted_from` is the replication id the server followed before it was
    promoted from a replica to master (INFO replication `master_replid2`), ""
    when it has not been since it started; `promoted_at_offset` is the
    replication offset it took over at (`second_repl_offset`), -1 without one.
    """

    job: Job | None
    index_scores: dict[str, float]
    tombstone: dict[str, str] | None
    tombstone_ttl_s: float | None
    events: tuple[JobEvent, ...]
    evicted_keys: int
    maxmemory_policy: str
    raw_job: dict[str, str] = field(default_factory=dict)
    promoted_from: str = ""
    promoted_at_offset: int = -1

    @property
    def untouched(self) -> bool:
        """True when no key of the job is here: no record (not even one jobtrail did not
        write), index entry, event or tombstone. Its creation writes the record, its
        index entries and its `created` event in one step, so a record deleted since
        leaves the others; a creation the server never got leaves none."""
        return (self.job is None and not self.raw_job and not self.index_scores
                and not self.events and self.tombstone is None)


@dataclass(frozen=True, slots=True)
class BrokerFacts:
    """Where the task's message is: `ahead` messages before it in the queue, or unacked.

    `unacked_since` is the delivery time kombu recorded (epoch seconds);
    `message_id` the task id of the message found (the job's own id, or its
    batch's), None when none was found; `job_ids` the jobs a batch message
    found carries, in order (empty for a single job's).
    """

    queue: str
    queue_length: int
    ahead: int | None
    unacked_tag: str | None
    unacked_since: float | None
    examined: int = 0
    message_id: str | None = None
    job_ids: tuple[str, ...] = ()

    @property
    def lost(self) -> bool:
        """True when no message was found: not in the whole queue and not unacked.

        store.messages.MessageSearch.lost's rule; for a pending job it is only
        a first look (store.messages.confirm_lost decides).
        """
        return self.ahead is None and self.unacked_tag is None \
            and self.examined >= self.queue_length


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """A batched job's batch message, read for a job whose record names one.

    `found`: the message found in the broker is the batch's (False: none, or a
    message of the job's own, sent by requeue). `position` is the job's place
    in the batch (1-based) and `size` the batch's job count (0: not read);
    `statuses` counts the batch's jobs by record status ("gone": no record);
    `running` lists the batch-mates processing now, as (job id, worker);
    `mate_worker` is the heartbeat of the first one's worker (None: never heard
    of, or none running) and `mate_started_at` when that job started (epoch s).
    """

    batch_id: str
    found: bool
    position: int = 0
    size: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    running: tuple[tuple[str, str], ...] = ()
    mate_worker: WorkerHeartbeat | None = None
    mate_started_at: float | None = None


@dataclass(frozen=True, slots=True)
class ResultFacts:
    """Celery's `celery-task-meta-<id>`: the parsed meta, and seconds to expiry (None: no TTL)."""

    meta: dict[str, Any] | None
    ttl_s: float | None


@dataclass(frozen=True, slots=True)
class ArchiveFacts:
    """The archive row of a purged job (summary)."""

    location: str
    purged_at: float
    policy: str
    run_id: str
    status: str
    had_celery_result: bool
    restored_at: float | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything gathered about one id, at time `at` (epoch seconds).

    A store other than the main DB that could not be read is None here and
    named in `unreachable` with the reason. `workers` are the live workers
    (heartbeat not expired) of the job's queue, read for a pending job only;
    `batch` is read for an unfinished job whose record names a batch message.
    """

    job_id: str
    at: float
    visibility_timeout_s: float
    result_expires_s: int
    main: MainFacts
    broker: BrokerFacts | None
    results: ResultFacts | None
    archive: ArchiveFacts | None
    worker: WorkerHeartbeat | None
    unreachable: dict[str, str] = field(default_factory=dict)
    workers: tuple[WorkerHeartbeat, ...] = ()
    batch: BatchFacts | None = None
