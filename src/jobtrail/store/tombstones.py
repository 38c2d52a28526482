"""TombstoneStore: reads `tombstone:<id>` hashes, the main DB's record of a purge.

Invariant: tombstones are written only by store/lua/purge_one.lua, in the
same atomic step that deletes `job:<id>`, and removed only by
store/lua/restore_one.lua (or by their TTL, `tombstone_ttl_s`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import redis

from jobtrail.clock import to_s
from jobtrail.errors import RedisUnavailableError
from jobtrail.keys import KeySpace
from jobtrail.models import Tombstone

__all__ = ["TombstoneStore", "decode_tombstone"]


def decode_tombstone(job_id: str, fields: dict[str, str], pttl_ms: int) -> Tombstone:
    """Return the Tombstone of one hash and its PTTL (milliseconds; negative: no TTL)."""
    return Tombstone(job_id=fields.get("job_id") or job_id,
                     purged_at=float(fields.get("purged_at") or 0.0),
                     policy=fields.get("policy", ""), archive=fields.get("archive", ""),
                     run_id=fields.get("run_id", ""), status=fields.get("status", ""),
                     ttl_s=to_s(pttl_ms) if pttl_ms >= 0 else None)


class TombstoneStore:
    """Reader of tombstones in the main DB.

    Args:
        client: redis-py client of the main DB (decode_responses=True).
        keys: Key builder.
    """

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        self.client = client
        self.keys = keys

    def find(self, job_id: str) -> Tombstone | None:
        """Return the job's tombstone, or None when there is none (never purged, expired).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        found = self._read([job_id])
        return found[0] if found else None

    def _read(self, job_ids: list[str]) -> list[Tombstone]:
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    key = self.keys.tombstone(job_id)
                    pipe.hgetall(key)
                    pipe.pttl(key)
                replies = pipe.execute()
        except redis.ConnectionError as exc:
            raise RedisUnavailableError("main DB", str(exc)) from exc
        out: list[Tombstone] = []
        for job_id, fields, pttl in zip(job_ids, replies[::2], replies[1::2], strict=True):
            if fields:
                out.append(decode_tombstone(job_id, cast(dict[str, str], fields), int(pttl)))
        return out

    def iter_tombstones(self, *, batch_size: int = 500) -> Iterator[list[Tombstone]]:
        """Yield every tombstone in batches (SCAN order, each key at least once).

        Args:
            batch_size: SCAN COUNT hint and batch size; memory is O(batch_size).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        pattern = self.keys.tombstone_pattern()
        cursor = 0
        while True:
            try:
                cursor, found = self.client.scan(cursor, match=pattern, count=batch_size)
            except redis.ConnectionError as exc:
                raise RedisUnavailableError("main DB", str(exc)) from exc
            ids = [self.keys.tombstone_id(k) for k in cast(list[str], found)]
            if ids:
                batch = self._read(ids)
                if batch:
                    yield batch
            if cursor == 0:
                return
