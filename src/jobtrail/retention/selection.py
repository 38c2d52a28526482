"""Selection of a policy's jobs from the Redis indexes, batch by batch, oldest first.

Applies policy.py's rule to the `jobs:<status>` sorted sets without loading
them: each status is paged by keyset within the range `score <= cutoff`
(from the last (finished_at, id) fetched on), the pages are merged in
(finished_at, id) order, and the keep-last boundary is found by walking the
newest entries first.

Invariant: memory is O(page size x statuses) (plus keep-last's walk, which
holds one page at a time). Keyset pages do not depend on what was removed
before them: the purge deletes batches while later ones are selected, and a
restore or an eviction may add or leave entries behind the position; no
entry is handed out twice and none after the position is skipped.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from jobtrail.models import JobStatus
from jobtrail.retention.policy import Entry, RetentionPolicy, is_selected, keep_boundary
from jobtrail.store.retention_store import RetentionStore

__all__ = ["Candidate", "Selection"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One selected job: its status index, id and finished_at (epoch seconds)."""

    status: JobStatus
    job_id: str
    finished_at: float


@dataclass
class _Cursor:
    status: JobStatus
    after: Entry | None = None  # the last (score, id) fetched: the next page starts past it
    more: bool = True
    buffer: deque[Entry] = field(default_factory=deque)


class Selection:
    """The jobs *policy* selects at *now*, handed out batch by batch.

    Args:
        store: Redis reads of the indexes.
        policy: The policy.
        now: Epoch seconds; ages are counted from it.
        page_size: Index entries fetched per round trip.
    """

    def __init__(self, store: RetentionStore, policy: RetentionPolicy, now: float, *,
                 page_size: int = 1000) -> None:
        self.store = store
        self.policy = policy
        self.page_size = page_size
        self.cutoff_at = policy.cutoff_at(now)
        self.boundary = keep_boundary(self._newest_first(), policy.keep_last)
        self.max_score = self.cutoff_at if self.boundary is None else min(
            self.cutoff_at, self.boundary[0])
        self.handed_out = 0
        self._cursors = {s: _Cursor(s) for s in policy.statuses}

    def _newest_pages(self, status: JobStatus) -> Iterator[Entry]:
        offset = 0
        while True:
            page = self.store.page_newest(status, offset=offset, count=self.page_size)
            yield from ((score, job_id) for job_id, score in page)
            if len(page) < self.page_size:
                return
            offset += len(page)

    def _newest_first(self) -> Iterator[Entry]:
        if self.policy.keep_last <= 0:
            return iter(())
        return heapq.merge(*(self._newest_pages(s) for s in self.policy.statuses),
                           reverse=True)

    def _refill(self, cursor: _Cursor) -> None:
        page, cursor.more = self.store.page_oldest(
            cursor.status, max_score=self.max_score, after=cursor.after, count=self.page_size)
        if page:
            cursor.after = (page[-1][1], page[-1][0])
        cursor.buffer.extend((score, job_id) for job_id, score in page)

    def _room(self, limit: int) -> int:
        cap = self.policy.max_per_run
        return limit if cap is None else min(limit, cap - self.handed_out)

    def next_batch(self, limit: int) -> list[Candidate]:
        """Return up to *limit* more selected jobs, oldest first; [] when done.

        A batch may be shorter than *limit* when a status's page runs out
        before the others (the next call fetches the next page).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        for cursor in self._cursors.values():
            if not cursor.buffer and cursor.more:
                self._refill(cursor)
        batch: list[Candidate] = []
        room = self._room(limit)
        while len(batch) < room:
            ready = [c for c in self._cursors.values() if c.buffer]
            if not ready or any(not c.buffer and c.more for c in self._cursors.values()):
                break
            cursor = min(ready, key=lambda c: c.buffer[0])
            entry = cursor.buffer.popleft()
            if not is_selected(entry, self.cutoff_at, self.boundary):
                cursor.buffer.clear()  # the rule selects a prefix: nothing after this is due
                cursor.more = False
                continue
            batch.append(Candidate(cursor.status, entry[1], entry[0]))
        self.handed_out += len(batch)
        return batch
