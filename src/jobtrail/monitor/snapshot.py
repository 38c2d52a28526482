"""take_snapshot(): every key of one Redis DB with its type, expiry and job status.

Invariant: the keyspace is read with SCAN in steps of `batch_size` keys (never
KEYS), one Lua call per step (monitor/lua/scan_batch.lua) returning each key's
type, absolute expiry and `status` field; the next step is sent as soon as a
reply's cursor is known, so Redis works on step i+1 while Python decodes step
i. Memory is one short string per key (its encoded entry) plus one step's
reply.
"""

from __future__ import annotations

import gc
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

import redis

from jobtrail.clock import monotonic_s, now_s, to_s
from jobtrail.connections import mask_url
from jobtrail.errors import RedisUnavailableError
from jobtrail.keys import KeySpace

__all__ = [
    "CommandHook",
    "KeyState",
    "ServerFigures",
    "Snapshot",
    "take_snapshot",
]

logger = logging.getLogger(__name__)

#: Called once per Redis command the monitor issues: (db label, command text,
#: duration in seconds, short description of the reply).
CommandHook = Callable[[str, str, float, str], None]

#: Hash field read as a job record's status (models.Job's `status`).
STATUS_FIELD = "status"
#: A SCAN step of the benchmark-tested size: ~1 ms of server time per call.
DEFAULT_BATCH_SIZE = 1000


class KeyState(NamedTuple):
    """What one snapshot saw of one key (parsed from its encoded entry).

    Attributes:
        type: Redis type name (`string`, `hash`, `list`, `set`, `zset`, `stream`...).
        expire_at_ms: Absolute expiry in epoch milliseconds (server clock), -1
            for a key without TTL. Absolute, so the countdown is no change.
        status: The hash's `status` field (job records), None when absent.
    """

    type: str
    expire_at_ms: int
    status: str | None

    @classmethod
    def parse(cls, entry: str) -> KeyState:
        """Parse an encoded entry `<type>,<expire_at_ms>,[=<status>]` (scan_batch.lua's format).

        Raises:
            ValueError: *entry* is not in that format.
        """
        ktype, expire_at, status = entry.split(",", 2)
        return cls(ktype, int(expire_at),
                   status[1:].replace("\\n", "\n") if status else None)

    def encode(self) -> str:
        """Return the encoded entry that parse() reads back."""
        status = "" if self.status is None else "=" + self.status.replace("\n", "\\n")
        return f"{self.type},{self.expire_at_ms},{status}"


@dataclass(frozen=True, slots=True)
class ServerFigures:
    """The INFO figures of a snapshot.

    Attributes:
        used_memory: Bytes allocated by Redis.
        maxmemory: Configured limit in bytes, 0 for none.
        maxmemory_policy: Eviction policy (`noeviction`, `allkeys-lru`, ...).
        expired_keys: Keys removed by expiry since the server started (counter).
        evicted_keys: Keys removed by eviction since the server started (counter).
        keyspace: Keys and keys-with-TTL per DB: {"db10": {"keys": n, "expires": m}}.
        redis_version: Server version string.
        run_id: Changes when the server restarts (counters start again at 0).

    Source: https://redis.io/docs/latest/commands/info/ (memory, stats, keyspace).
    """

    used_memory: int = 0
    maxmemory: int = 0
    maxmemory_policy: str = ""
    expired_keys: int = 0
    evicted_keys: int = 0
    keyspace: dict[str, dict[str, int]] = field(default_factory=dict)
    redis_version: str = ""
    run_id: str = ""

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ServerFigures:
        """Pick the figures out of redis-py's parsed INFO reply."""
        keyspace = {
            name: {"keys": int(v.get("keys", 0)), "expires": int(v.get("expires", 0))}
            for name, v in info.items()
            if name.startswith("db") and name[2:].isdigit() and isinstance(v, dict)
        }
        return cls(
            used_memory=int(info.get("used_memory", 0)),
            maxmemory=int(info.get("maxmemory", 0)),
            maxmemory_policy=str(info.get("maxmemory_policy", "")),
            expired_keys=int(info.get("expired_keys", 0)),
            evicted_keys=int(info.get("evicted_keys", 0)),
            keyspace=keyspace,
            redis_version=str(info.get("redis_version", "")),
            run_id=str(info.get("run_id", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready data (field names as above)."""
        return {
            "used_memory": self.used_memory, "maxmemory": self.maxmemory,
            "maxmemory_policy": self.maxmemory_policy, "expired_keys": self.expired_keys,
            "evicted_keys": self.evicted_keys, "keyspace": self.keyspace,
            "redis_version": self.redis_version, "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerFigures:
        """Rebuild figures written by to_dict()."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key of one DB at one time, with the server's INFO figures.

    Attributes:
        db: Label of the DB (`main`, `broker`, `results`, or the URL's `host:port/db`).
        url: The DB's URL, password masked.
        db_index: The logical DB number.
        taken_at: Epoch seconds when the scan began (monitor's clock).
        elapsed_s: Seconds the scan and INFO took.
        server_time_ms: The server's clock at the last scan step, epoch ms.
        exact_expiry: True when expiries came from PEXPIRETIME (Redis >= 7.0);
            else they are TIME + PTTL, exact to a few milliseconds.
        match: The SCAN MATCH pattern.
        info: INFO figures read right after the scan.
        entries: key -> encoded entry `<type>,<expire_at_ms>,[=<status>]`
            (one short string a key: compact, and equal strings mean an
            unchanged key, so a diff compares strings and parses only what
            differs). Read them with state() or KeyState.parse().
    """

    db: str
    url: str
    db_index: int
    taken_at: float
    elapsed_s: float
    server_time_ms: int
    exact_expiry: bool
    match: str
    info: ServerFigures
    entries: dict[str, str]

    def state(self, key: str) -> KeyState | None:
        """Return what the snapshot saw of *key*, None when it was absent."""
        entry = self.entries.get(key)
        return None if entry is None else KeyState.parse(entry)

    def ttl_s(self, key: str) -> float | None:
        """Return *key*'s TTL in seconds at the snapshot's server time, None without TTL."""
        state = self.state(key)
        if state is None or state.expire_at_ms < 0:
            return None
        return max(0.0, to_s(state.expire_at_ms - self.server_time_ms))

    def counts_by_type(self) -> dict[str, int]:
        """Return {redis type: number of keys}."""
        return dict(Counter(entry.partition(",")[0] for entry in self.entries.values()))

    def counts_by_kind(self, keys: KeySpace) -> dict[str, int]:
        """Return {KeyKind value, or `other:<type>` for unknown keys: number of keys}."""
        counts: Counter[str] = Counter()
        classify = keys.classify_key
        for key, entry in self.entries.items():
            kind = classify(key).value
            counts[kind if kind != "other" else "other:" + entry.partition(",")[0]] += 1
        return dict(counts)

    def header(self) -> dict[str, Any]:
        """Return everything but the entries, JSON-ready."""
        return {
            "db": self.db, "url": self.url, "db_index": self.db_index,
            "taken_at": self.taken_at, "elapsed_s": round(self.elapsed_s, 6),
            "server_time_ms": self.server_time_ms, "exact_expiry": self.exact_expiry,
            "match": self.match, "keys": len(self.entries), "info": self.info.to_dict(),
        }

    def iter_entries(self) -> Iterator[tuple[str, list[Any]]]:
        """Yield (key, [type, expire_at_ms or None, status]) in key order, JSON-ready."""
        for key in sorted(self.entries):
            state = KeyState.parse(self.entries[key])
            yield key, [state.type, state.expire_at_ms if state.expire_at_ms >= 0 else None,
                        state.status]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a snapshot from header() plus an `entries` mapping as iter_entries() yields.

        Raises:
            KeyError, TypeError, ValueError: The data is not a snapshot.
        """
        entries = {
            key: KeyState(str(v[0]), -1 if v[1] is None else int(v[1]), v[2]).encode()
            for key, v in data["entries"].items()
        }
        return cls(
            db=str(data["db"]), url=str(data["url"]), db_index=int(data["db_index"]),
            taken_at=float(data["taken_at"]), elapsed_s=float(data["elapsed_s"]),
            server_time_ms=int(data["server_time_ms"]), exact_expiry=bool(data["exact_expiry"]),
            match=str(data["match"]), info=ServerFigures.from_dict(data["info"]),
            entries=entries,
        )


@cache
def _script_source() -> str:
    return resources.files("jobtrail.monitor").joinpath("lua", "scan_batch.lua").read_text()


def _version_at_least(version: str, major: int, minor: int) -> bool:
    try:
        parts = [int(p) for p in version.split(".")[:2]]
    except ValueError:
        return False
    return (parts + [0, 0])[:2] >= [major, minor]


def _db_index(client: redis.Redis) -> int:
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def _url_of(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}?db={_db_index(client)}"
    auth = ":***@" if kw.get("password") else ""
    scheme = "rediss" if issubclass(client.connection_pool.connection_class,
                                    redis.SSLConnection) else "redis"
    return mask_url(f"{scheme}://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
                    f"/{_db_index(client)}")


class _Timed:
    """Runs and times one command, reporting it to the hook."""

    def __init__(self, db: str, hook: CommandHook | None) -> None:
        self.db = db
        self.hook = hook

    def report(self, command: str, started: float, reply: str, *,
               ended: float | None = None) -> None:
        if self.hook is not None:
            end = monotonic_s() if ended is None else ended
            self.hook(self.db, command, end - started, reply)


def _decode(keys_json: bytes, meta: bytes, entries: dict[str, str]) -> int:
    """Add one step's keys and their encoded entries (one line each) to *entries*.

    Returns:
        The number of keys in the step.
    """
    names = json.loads(keys_json.decode("utf-8", "surrogateescape"))
    if not names:
        return 0
    lines = meta.decode("utf-8", "surrogateescape").split("\n")
    if len(lines) != len(names):
        raise redis.ResponseError(f"scan_batch.lua returned {len(names)} keys and "
                                  f"{len(lines)} entries")
    entries.update(zip(names, lines, strict=True))
    return len(names)


def take_snapshot(
    client: redis.Redis,
    *,
    db: str = "main",
    match: str = "*",
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_command: CommandHook | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Snapshot:
    """Read every key of *client*'s DB with its type, expiry and status, then INFO.

    The scan is SCAN-based, so keys added or removed while it runs may or may
    not appear (Redis's SCAN guarantee: a key present for the whole scan is
    returned). Each step is one EVALSHA of scan_batch.lua.

    Args:
        client: redis-py client of the DB (any DB of any Redis >= 5).
        db: Label of the DB in the snapshot and the command log.
        match: SCAN MATCH glob pattern; `*` for every key.
        batch_size: SCAN COUNT hint: keys per step and per reply.
        on_command: Called with (db, command, duration_s, reply summary) for
            every command sent.
        on_progress: Called with the number of keys read so far after each step.

    Returns:
        The Snapshot.

    Raises:
        RedisUnavailableError: The server cannot be reached or refused a command.

    Source: https://redis.io/docs/latest/commands/scan/ (guarantees, COUNT, MATCH).
    """
    timer = _Timed(db, on_command)
    started_mono, taken_at = monotonic_s(), now_s()
    url = _url_of(client)
    try:
        t0 = monotonic_s()
        version = str(client.info("server").get("redis_version", ""))
        timer.report("INFO server", t0, f"redis_version={version}")
        t0 = monotonic_s()
        sha = str(client.script_load(_script_source()))
        timer.report("SCRIPT LOAD scan_batch.lua", t0, sha)
        exact = _version_at_least(version, 7, 0)
        entries: dict[str, str] = {}
        server_time_ms = _scan_all(client, sha, match, batch_size, exact, timer, entries,
                                   on_progress)
        t0 = monotonic_s()
        info = ServerFigures.from_info(client.info())
        timer.report("INFO", t0, f"used_memory={info.used_memory} "
                     f"expired_keys={info.expired_keys} evicted_keys={info.evicted_keys}")
    except redis.RedisError as exc:
        raise RedisUnavailableError(url, str(exc) or type(exc).__name__) from exc
    return Snapshot(db=db, url=url, db_index=_db_index(client), taken_at=taken_at,
                    elapsed_s=monotonic_s() - started_mono, server_time_ms=server_time_ms,
                    exact_expiry=exact, match=match, info=info, entries=entries)


def _scan_all(client: redis.Redis, sha: str, match: str, batch_size: int, exact: bool,
              timer: _Timed, entries: dict[str, str],
              on_progress: Callable[[int], None] | None) -> int:
    """Run scan_batch.lua until the cursor returns to 0; return the last server time (ms)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    args = [str(batch_size), match, STATUS_FIELD, "1" if exact else "0"]
    server_time_ms = 0
    ok = False
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of new tuples would trigger full collections over the entries
    try:
        cursor = "0"
        conn.send_command("EVALSHA", sha, 0, cursor, *args)  # type: ignore[no-untyped-call]
        sent = monotonic_s()
        while True:
            reply = conn.read_response(disable_decoding=True)
            received = monotonic_s()
            next_cursor = reply[0].decode()
            if next_cursor != "0":  # Redis starts the next step while we decode this one
                conn.send_command(  # type: ignore[no-untyped-call]  # redis-py untyped
                    "EVALSHA", sha, 0, next_cursor, *args)
            next_sent = monotonic_s()
            n = _decode(reply[2], reply[3], entries)
            server_time_ms = int(reply[1])
            timer.report(f"EVALSHA scan_batch cursor={cursor} (SCAN MATCH {match} COUNT "
                         f"{batch_size}; TYPE, {'PEXPIRETIME' if exact else 'PTTL'}, "
                         f"HGET {STATUS_FIELD} per key)", sent, f"cursor={next_cursor} keys={n}",
                         ended=received)
            sent = next_sent
            if on_progress is not None:
                on_progress(len(entries))
            if next_cursor == "0":
                break
            cursor = next_cursor
        ok = True
    finally:
        if gc_was_enabled:
            gc.enable()
        if not ok:
            conn.disconnect()  # type: ignore[no-untyped-call]  # a reply may be in flight
        pool.release(conn)
    return server_time_ms
