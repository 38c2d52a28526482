"""RetentionStore: the Redis side of purge and restore (index pages, record reads, Lua steps).

Invariants:
- Reads are one script call (main DB) and one MGET (results DB) per batch; nothing
  here holds more than one batch.
- The only writes are store/lua/purge_one.lua and store/lua/restore_one.lua,
  each one atomic step per job, touching only that job's keys and its
  index entries. The results DB is only read (GET), never written.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
from redis.client import NEVER_DECODE

from jobtrail.clock import to_ms
from jobtrail.errors import RedisUnavailableError
from jobtrail.keys import KeySpace
from jobtrail.models import ArchivedJob, JobStatus
from jobtrail.store.archive import canonical_json
from jobtrail.store.job_store import STATS_MINUTE_TTL_S
from jobtrail.store.scripts import load_script

__all__ = ["PurgeItem", "RawRecord", "RetentionStore"]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """What the main and results DBs hold about one job, read in one batch.

    Attributes:
        job_id: The job.
        job: Every field of `job:<id>`.
        events: The events stream, oldest first, each entry's fields plus `event_id`.
        celery_meta: Parsed `celery-task-meta-<id>`, or None when absent.
    """

    job_id: str
    job: dict[str, str]
    events: list[dict[str, str]]
    celery_meta: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PurgeItem:
    """One job to delete, with the status and version its archive row holds."""

    job_id: str
    status: str
    version: str


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: A \uD800-\uDFFF escape: the only way JSON text in valid UTF-8 yields a surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: Brackets a JSON text may hold and still nest below every serializer's depth limit
#: (orjson's is 255); nesting is at most the number of brackets.
_SHALLOW_BRACKETS = 200


def _may_not_serialize(text: str) -> bool:
    """False when the JSON *text*, once parsed, certainly serializes canonically.

    Parsing already refused NaN, overflowing floats and duplicated keys; what
    is left is a lone surrogate (only from a \\uD8xx-\\uDFxx escape) and deep
    nesting. Two C-speed scans spare most results a second serialization.
    """
    return (text.count("[") + text.count("{") > _SHALLOW_BRACKETS
            or _SURROGATE_ESCAPE.search(text) is not None)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf, which the archive cannot write
        raise ValueError(f"{text} overflows a float")
    if value == 0.0 and text.lstrip("-").split("e")[0].split("E")[0].strip("0.") != "":
        raise ValueError(f"{text} underflows to zero")  # 1e-400 would be archived as 0.0
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # {"a":1,"a":2}: a dict would keep only the last value
        raise ValueError("duplicate key in a JSON object")
    return out


def _parse_meta(raw: bytes | None) -> dict[str, Any] | None:
    """Parse a `celery-task-meta-<id>` value as the archive will store it.

    JSON objects are kept as parsed; anything the canonical JSON of the
    archive cannot hold exactly (NaN, a float that overflows or underflows to
    zero, a duplicated key, a lone surrogate escape, nesting deeper than
    Python's recursion limit) is kept as its text under "raw", and bytes that are not
    UTF-8 (a pickle or msgpack result serializer) as base64 under "raw_base64".
    """
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"raw_base64": base64.b64encode(raw).decode("ascii")}
    try:
        meta = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
        if _may_not_serialize(text):
            canonical_json(meta)  # the archive's own serialization refuses what it cannot hold
    except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        return {"raw": text}
    return meta if isinstance(meta, dict) else {"value": meta}


def _pairs(flat: list[str]) -> dict[str, str]:
    """Return a flat [field, value, ...] reply as a dict."""
    it = iter(flat)
    return dict(zip(it, it))  # noqa: B905 (Redis replies are pairs; strict costs a third)


class RetentionStore:
    """Redis I/O of retention: the main DB (read and Lua writes) and the results DB (read).

    Args:
        main: redis-py client of the main DB (decode_responses=True).
        results: redis-py client of the result backend DB (decode_responses=True).
        keys: Key builder.
        events_max_len: Approximate cap of each events stream; 0 = none.
    """

    def __init__(self, main: redis.Redis, results: redis.Redis, keys: KeySpace, *,
                 events_max_len: int = 1000) -> None:
        self.main = main
        self.results = results
        self.keys = keys
        self.events_max_len = events_max_len
        self._read = load_script(main, "read_records")
        self._page_after = load_script(main, "page_after")
        self._purge = load_script(main, "purge_one")
        self._restore = load_script(main, "restore_one")

    @staticmethod
    def _unavailable(db: str, exc: redis.RedisError) -> RedisUnavailableError:
        return RedisUnavailableError(db, str(exc) or type(exc).__name__)

    # -- index reads --------------------------------------------------------------------

    def page_oldest(self, status: JobStatus, *, max_score: float,
                    after: tuple[float, str] | None, count: int,
                    ) -> tuple[list[tuple[str, float]], bool]:
        """Return the next (id, score) entries of `jobs:<status>` with score <= *max_score*.

        Keyset paging, ordered by (score, id) as Redis orders a sorted set:
        the entries strictly after the position *after* = (score, id), or from
        the start when it is None. Entries added or removed before the
        position by anyone (a purge's own deletes, a restore, an eviction)
        do not shift the page, as a rank offset would.

        Returns:
            (up to *count* entries, whether more may follow). A page can be
            short while more follow (entries at the position's score that sort
            before it are dropped).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        index = self.keys.jobs_by_status(status)
        try:
            if after is None:
                rows = cast(list[tuple[str, float]], self.main.zrangebyscore(
                    index, "-inf", repr(max_score), start=0, num=count, withscores=True))
                page = [(str(m), float(sc)) for m, sc in rows]
                return page, len(page) == count
            probe = after
            while True:
                flat = cast(list[str], self._page_after(
                    keys=[index], args=[probe[1], repr(probe[0]), count]))
                rows = [(m, float(sc)) for m, sc in _pairs(flat).items()]  # members unique
                page = [(m, sc) for m, sc in rows if (sc, m) > after and sc <= max_score]
                more = len(rows) == count and rows[-1][1] <= max_score
                if page or not more:
                    return page, more
                probe = (rows[-1][1], rows[-1][0])  # a page of ties before the position
        except redis.RedisError as exc:
            raise self._unavailable("main DB", exc) from exc

    def page_newest(self, status: JobStatus, *, offset: int,
                    count: int) -> list[tuple[str, float]]:
        """Return up to *count* (id, score) of `jobs:<status>`, newest first, from *offset*.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            rows = self.main.zrevrange(self.keys.jobs_by_status(status), offset,
                                       offset + count - 1, withscores=True)
        except redis.RedisError as exc:
            raise self._unavailable("main DB", exc) from exc
        return [(str(m), float(s)) for m, s in cast(list[tuple[str, float]], rows)]

    def count_older(self, statuses: Sequence[JobStatus], max_score: float,
                    ) -> dict[JobStatus, tuple[int, int]]:
        """Return, per status, (entries with score <= *max_score*, all entries).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            with self.main.pipeline(transaction=False) as pipe:
                for status in statuses:
                    index = self.keys.jobs_by_status(status)
                    pipe.zcount(index, "-inf", repr(max_score))
                    pipe.zcard(index)
                replies = [int(r) for r in pipe.execute()]
        except redis.RedisError as exc:
            raise self._unavailable("main DB", exc) from exc
        return {s: (replies[2 * i], replies[2 * i + 1]) for i, s in enumerate(statuses)}

    # -- record reads -------------------------------------------------------------------

    def read_records(self, job_ids: Sequence[str]) -> list[RawRecord | None]:
        """Read hash, events and Celery result metadata of each job, in two round trips.

        The main DB part is one read-only script (store/lua/read_records.lua)
        returning the batch's HGETALL and XRANGE replies as one JSON document:
        that keeps redis-py's per-reply cost out of the purge's hot path.

        Returns:
            One entry per id, in order; None where `job:<id>` no longer exists.

        Raises:
            RedisUnavailableError: The main or results DB could not be reached.
        """
        if not job_ids:
            return []
        k = self.keys
        try:
            doc = self._read(keys=[key for i in job_ids for key in (k.job(i), k.events(i))])
        except redis.RedisError as exc:
            raise self._unavailable("main DB", exc) from exc
        try:
            mget: Any = self.results.execute_command  # untyped in redis-py
            metas = cast(list[bytes | None], mget(
                "MGET", *(k.celery_result(i) for i in job_ids), **{NEVER_DECODE: True}))
        except redis.RedisError as exc:
            raise self._unavailable("results DB", exc) from exc
        out: list[RawRecord | None] = []
        for job_id, entry, meta in zip(job_ids, orjson.loads(doc), metas, strict=True):
            if not entry:
                out.append(None)
                continue
            flat, stream = entry
            events = [{"event_id": event_id, **_pairs(fields)} for event_id, fields in stream or ()]
            out.append(RawRecord(job_id, _pairs(flat), events, _parse_meta(meta)))
        return out

    # -- the atomic steps ---------------------------------------------------------------

    def purge_many(self, items: Sequence[PurgeItem], *, purged_at: float, policy: str,
                   archive: str, run_id: str, tombstone_ttl_s: float) -> list[str]:
        """Run purge_one.lua on *items* in one call; each job is one atomic step.

        Call only after the items' archive rows are committed and verified.
        Redis runs the whole call without interleaving other commands, so
        chunk large batches (purge's `redis_chunk_size`) to bound that pause.

        Returns:
            One outcome per item: "purged", "missing" or "changed".

        Raises:
            RedisUnavailableError: The main DB could not be reached (some items
                may have been purged; each is then fully purged or untouched).
        """
        if not items:
            return []
        k = self.keys
        status_keys = [k.jobs_by_status(s) for s in JobStatus]
        keys = [k.jobs(), *status_keys, k.stats(), k.stats_minute(int(purged_at // 60)),
                k.events_feed(),
                *(key for i in items for key in (k.job(i.job_id), k.events(i.job_id),
                                                 k.tombstone(i.job_id)))]
        args = [repr(purged_at), policy, archive, run_id, str(to_ms(tombstone_ttl_s)),
                str(self.events_max_len), str(len(status_keys)), str(STATS_MINUTE_TTL_S),
                *(x for i in items for x in (i.job_id, i.status, i.version))]
        try:
            return [str(r) for r in self._purge(keys=keys, args=args)]
        except redis.RedisError as exc:
            raise self._unavailable("main DB", exc) from exc

    def restore_one(self, record: ArchivedJob, *, restored_at: float, run_id: str,
                    archive: str) -> str:
        """Run restore_one.lua: hash, indexes, tombstone removal and `restored` event.

        The `jobs:<status>` score is finished_at for a finished job (as the
        worker wrote it), else created_at. The archived events are replayed,
        with their stream ids, only if the stream expired since the purge.

        Returns:
            "restored", or "conflict" when `job:<id>` exists (nothing written).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        k, job = self.keys, record.job
        created = job.get("created_at") or "0"
        score = job.get("finished_at") or created
        pairs = [x for item in job.items() for x in item]
        replay: list[str] = []
        for event in record.events:
            fields = [x for key, v in event.items() if key != "event_id" for x in (key, v)]
            replay += [event.get("event_id", "*"), str(len(fields) // 2), *fields]
        purged = ["type", "purged", "at", repr(record.purged_at), "policy", record.policy,
                  "archive", archive, "run_id", record.run_id, "status", record.status]
        replay += ["*", str(len(purged) // 2), *purged]
        args = [record.job_id, created, score, repr(restored_at), run_id, archive,
                str(self.events_max_len), str(len(job)), *pairs,
                str(len(record.events) + 1), *replay, str(STATS_MINUTE_TTL_S)]
        try:
            return str(self._restore(
                keys=[k.job(record.job_id), k.jobs(), k.jobs_by_status(record.status),
                      k.events(record.job_id), k.tombstone(record.job_id), k.stats(),
                      k.stats_minute(int(restored_at // 60)), k.events_feed()], args=args))
        except redis.RedisError as exc:
            raise self._unavailable("main DB", exc) from exc
