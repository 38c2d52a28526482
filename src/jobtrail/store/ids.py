"""Job ids from what users type: a whole id, or a unique prefix of at least 8 characters.

Invariant: the one place an id prefix is turned into an id, for the CLI and the
API alike. A text that is already a job's id (record or tombstone) is returned
as is without a scan; a prefix is looked up in the `jobs` index (ZSCAN, live
jobs and orphan index entries) and among tombstones (SCAN, purged jobs): a
live and a purged job sharing it make it ambiguous, as two live ones do. The
scans are O(index) and O(keyspace) on the server, in COUNT-sized steps; the
keyspace scan is skipped once the index alone holds more than the shown ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import cast

import redis

from jobtrail.connections import REDIS_ERRORS, wrap_redis_error
from jobtrail.errors import AmbiguousJobIdError, InvalidIdError
from jobtrail.keys import KeySpace, id_prefix_pattern

__all__ = ["MIN_PREFIX_CHARS", "check_prefix_length", "match_job_id", "resolve_job_id"]

#: Shorter texts are taken as whole ids only (a short prefix would match many jobs).
MIN_PREFIX_CHARS = 8
#: Ids named in the error of an ambiguous prefix.
_SHOWN = 3
_SCAN_COUNT = 1000


def resolve_job_id(client: redis.Redis, keys: KeySpace, text: str) -> str:
    """Return the job id *text* names: itself when it is an id, else the one id it begins.

    Args:
        client: The main DB.
        keys: Its key space.
        text: A job id, or a prefix of one of at least MIN_PREFIX_CHARS characters
            (callers check the id's characters first).

    Returns:
        The whole id; *text* unchanged when nothing matches (the caller's lookup
        then reports the id as not found, with trace's verdict).

    Raises:
        AmbiguousJobIdError: The prefix begins more than one job's id.
        InvalidIdError: *text* is no job's id and shorter than a prefix needs.
        RedisUnavailableError: The main DB could not be reached.
    """
    job_id = match_job_id(client, keys, text)
    if job_id is None:
        check_prefix_length(text)
    return job_id or text


def check_prefix_length(text: str) -> None:
    """Refuse *text*, which names no job, when it is too short to have been read as a prefix.

    Raises:
        InvalidIdError: *text* has fewer than MIN_PREFIX_CHARS characters.
    """
    if len(text) < MIN_PREFIX_CHARS:
        raise InvalidIdError(text, MIN_PREFIX_CHARS)


def match_job_id(client: redis.Redis, keys: KeySpace, text: str) -> str | None:
    """Return the id of the job *text* names in the main DB, or None when none matches.

    *text* names a job when it is its id (a record, an index entry or a
    tombstone has it), or, from MIN_PREFIX_CHARS characters on, the start of
    exactly one such id. A shorter text is never looked up as a prefix.

    Raises:
        AmbiguousJobIdError: The prefix begins more than one job's id.
        RedisUnavailableError: The main DB could not be reached.
    """
    try:
        pipe = client.pipeline(transaction=False)
        pipe.exists(keys.job(text), keys.tombstone(text))
        pipe.zscore(keys.jobs(), text)
        exists, score = pipe.execute()
        if exists or score is not None:
            return text
        if len(text) < MIN_PREFIX_CHARS:
            return None
        matches = _first_matches(chain(
            (cast(str, m) for m, _ in client.zscan_iter(
                keys.jobs(), match=id_prefix_pattern(text), count=_SCAN_COUNT)),
            (keys.tombstone_id(cast(str, k)) for k in client.scan_iter(
                match=keys.tombstone_pattern(text), count=_SCAN_COUNT))))
    except REDIS_ERRORS as exc:
        raise wrap_redis_error("main DB", exc) from exc
    if len(matches) > 1:
        raise AmbiguousJobIdError(text, sorted(matches)[:_SHOWN], more=len(matches) > _SHOWN)
    return matches[0] if matches else None


def _first_matches(ids: Iterable[str]) -> list[str]:
    found: list[str] = []
    for job_id in ids:
        if job_id not in found:
            found.append(job_id)
        if len(found) > _SHOWN:
            break
    return found
