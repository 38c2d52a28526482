"""diff(): what changed between two snapshots of one DB, and the causes of removals.

Pure: no I/O. A key's expiry is compared as an absolute time, so the
ordinary countdown of a TTL is no change; only a TTL set, removed or moved
(reset) is. Removals carry a cause once attribute() has matched them with
the keyspace events recorded between the two snapshots; without an event
their cause is `unknown`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from jobtrail.clock import to_s
from jobtrail.keys import KeySpace
from jobtrail.monitor.snapshot import KeyState, Snapshot

__all__ = [
    "ChangeKind",
    "KeyChange",
    "Removal",
    "RemovalCause",
    "SnapshotDiff",
    "attribute",
    "diff",
]

#: Expiry moves smaller than this are clock jitter when a snapshot's expiries
#: come from TIME + PTTL (Redis < 7.0), milliseconds.
INEXACT_TTL_TOLERANCE_MS = 1000
#: Counters of INFO whose deltas a diff reports.
COUNTERS = ("expired_keys", "evicted_keys")


class ChangeKind(StrEnum):
    """What happened to one key between two snapshots."""

    ADDED = "added"
    REMOVED = "removed"
    TYPE_CHANGED = "type_changed"
    STATUS_CHANGED = "status_changed"
    TTL_SET = "ttl_set"
    TTL_REMOVED = "ttl_removed"
    TTL_RESET = "ttl_reset"


class RemovalCause(StrEnum):
    """Why a key left the DB, from the keyspace event Redis published for it.

    Source: https://redis.io/docs/latest/develop/use/keyspace-notifications/
    (`del` for DEL and UNLINK, `expired`, `evicted`, `rename_from`, `move_from`).
    """

    DEL = "del"
    EXPIRED = "expired"
    EVICTED = "evicted"
    RENAMED = "renamed"
    MOVED = "moved"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Removal:
    """One removal event received from Redis.

    Attributes:
        key: The removed key.
        cause: Why it was removed.
        at: Epoch seconds when the monitor received the event (Redis's
            notifications carry no time; delivery is immediate on a live
            subscription).
        event: The raw event name (`del`, `expired`, `evicted`, ...).
    """

    key: str
    cause: RemovalCause
    at: float
    event: str


@dataclass(frozen=True, slots=True)
class KeyChange:
    """One change of one key.

    Attributes:
        key: The key.
        kind: Its KeyKind label (`job`, `celery_result`, ... or `other`).
        type: Its Redis type (after the change; before it for a removal).
        change: What happened.
        before: The old value: status, type, or TTL in seconds, by change.
        after: The new value, likewise.
        cause: For a removal: why (RemovalCause), else None.
        by: Who removed it when known (`purge` when a tombstone was left,
            `redis` for expiry and eviction), else None.
        at: Epoch seconds of the removal event, None without one.
    """

    key: str
    kind: str
    type: str
    change: ChangeKind
    before: str | float | None = None
    after: str | float | None = None
    cause: RemovalCause | None = None
    by: str | None = None
    at: float | None = None

    @property
    def cause_label(self) -> str:
        """Return e.g. `del by purge`, `expired`, `evicted`, `del`, `unknown`."""
        if self.cause is None:
            return ""
        if self.by and self.by != "redis":
            return f"{self.cause.value} by {self.by}"
        return self.cause.value

    def to_dict(self) -> dict[str, Any]:
        """Return the change as JSON-ready data (None fields left out)."""
        data: dict[str, Any] = {"key": self.key, "kind": self.kind, "type": self.type,
                                "change": self.change.value}
        for name in ("before", "after", "by", "at"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.cause is not None:
            data["cause"] = self.cause.value
            data["cause_label"] = self.cause_label
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyChange:
        """Rebuild a change written by to_dict()."""
        cause = data.get("cause")
        return cls(key=data["key"], kind=data["kind"], type=data["type"],
                   change=ChangeKind(data["change"]), before=data.get("before"),
                   after=data.get("after"), cause=RemovalCause(cause) if cause else None,
                   by=data.get("by"), at=data.get("at"))


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """Changes between two snapshots of one DB.

    Attributes:
        db: The DB label.
        before_at: Epoch seconds of the first snapshot.
        after_at: Epoch seconds of the second.
        changes: Every key change, sorted by key then change.
        counters: INFO counter deltas: `expired_keys`, `evicted_keys`, and
            `keys` (the DB's key count).
        server_restarted: The server's run_id changed (counters restarted at 0).
        transient: Keys created and removed between the snapshots, seen only
            through their removal event: {cause label: count}.
        recreated: Keys removed (by an event) and back by the second
            snapshot: {cause label: count}.
    """

    db: str
    before_at: float
    after_at: float
    changes: list[KeyChange]
    counters: dict[str, int]
    server_restarted: bool = False
    transient: dict[str, int] = field(default_factory=dict)
    recreated: dict[str, int] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when no key changed and no counter moved."""
        return not (self.changes or self.transient or self.recreated
                    or any(self.counters.values()) or self.server_restarted)

    def counts(self) -> dict[str, int]:
        """Return {change kind: number of keys}."""
        return dict(Counter(c.change.value for c in self.changes))

    def removals_by_cause(self) -> dict[str, int]:
        """Return {cause label: number of removed keys}, transient removals included."""
        counts: Counter[str] = Counter(c.cause_label or RemovalCause.UNKNOWN.value
                                       for c in self.changes if c.change is ChangeKind.REMOVED)
        counts.update(self.transient)
        return dict(counts)

    def removed(self) -> Iterator[KeyChange]:
        """Yield the removals."""
        return (c for c in self.changes if c.change is ChangeKind.REMOVED)

    def to_dict(self) -> dict[str, Any]:
        """Return the diff as JSON-ready data."""
        return {
            "db": self.db, "before_at": self.before_at, "after_at": self.after_at,
            "counts": self.counts(), "removals_by_cause": self.removals_by_cause(),
            "counters": self.counters, "server_restarted": self.server_restarted,
            "transient": self.transient, "recreated": self.recreated,
            "changes": [c.to_dict() for c in self.changes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotDiff:
        """Rebuild a diff written by to_dict()."""
        return cls(db=data["db"], before_at=data["before_at"], after_at=data["after_at"],
                   changes=[KeyChange.from_dict(c) for c in data["changes"]],
                   counters=dict(data["counters"]),
                   server_restarted=bool(data.get("server_restarted")),
                   transient=dict(data.get("transient", {})),
                   recreated=dict(data.get("recreated", {})))


def _ttl_s(expire_at_ms: int, server_time_ms: int) -> float:
    return round(max(0.0, to_s(expire_at_ms - server_time_ms)), 3)


def _changes_of(key: str, kind: str, old: KeyState, new: KeyState, before: Snapshot,
                after: Snapshot, tolerance_ms: int) -> Iterator[KeyChange]:
    if old.type != new.type:
        yield KeyChange(key, kind, new.type, ChangeKind.TYPE_CHANGED, old.type, new.type)
        return
    if old.status != new.status:
        yield KeyChange(key, kind, new.type, ChangeKind.STATUS_CHANGED, old.status, new.status)
    if old.expire_at_ms == new.expire_at_ms:
        return
    if old.expire_at_ms < 0:
        yield KeyChange(key, kind, new.type, ChangeKind.TTL_SET, None,
                        _ttl_s(new.expire_at_ms, after.server_time_ms))
    elif new.expire_at_ms < 0:
        yield KeyChange(key, kind, new.type, ChangeKind.TTL_REMOVED,
                        _ttl_s(old.expire_at_ms, before.server_time_ms), None)
    elif abs(new.expire_at_ms - old.expire_at_ms) > tolerance_ms:
        yield KeyChange(key, kind, new.type, ChangeKind.TTL_RESET,
                        _ttl_s(old.expire_at_ms, before.server_time_ms),
                        _ttl_s(new.expire_at_ms, after.server_time_ms))


def _same_but_jitter(old: str, new: str, tolerance_ms: int) -> bool:
    """True when two encoded entries differ only by an expiry move within *tolerance_ms*."""
    old_type, old_expiry, old_status = old.split(",", 2)
    new_type, new_expiry, new_status = new.split(",", 2)
    if old_type != new_type or old_status != new_status:
        return False
    a, b = int(old_expiry), int(new_expiry)
    return a >= 0 and b >= 0 and abs(a - b) <= tolerance_ms


def diff(before: Snapshot, after: Snapshot, *, keys: KeySpace | None = None,
         ttl_tolerance_ms: int | None = None) -> SnapshotDiff:
    """Return what changed from *before* to *after* (two snapshots of one DB).

    Keys are compared by their encoded entries first (one string comparison a
    key); only differing entries are parsed. Time and memory are linear in the
    two keyspaces.

    Args:
        before: The earlier snapshot.
        after: The later snapshot.
        keys: Key space labelling each changed key (default: no prefix).
        ttl_tolerance_ms: Expiry moves up to this many milliseconds are not a
            reset; default 0 when both snapshots have exact expiries
            (PEXPIRETIME), else INEXACT_TTL_TOLERANCE_MS.

    Returns:
        The SnapshotDiff; removals have cause None until attribute().
    """
    space = keys or KeySpace()
    if ttl_tolerance_ms is None:
        exact = before.exact_expiry and after.exact_expiry
        ttl_tolerance_ms = 0 if exact else INEXACT_TTL_TOLERANCE_MS
    classify = space.classify_key
    old_entries, new_entries = before.entries, after.entries
    changes: list[KeyChange] = []
    for key, old in old_entries.items():
        new = new_entries.get(key)
        if new == old:
            continue
        if new is None:
            state = KeyState.parse(old)
            changes.append(KeyChange(key, classify(key).value, state.type, ChangeKind.REMOVED,
                                     before=state.status))
            continue
        if _same_but_jitter(old, new, ttl_tolerance_ms):
            continue
        changes.extend(_changes_of(key, classify(key).value, KeyState.parse(old),
                                   KeyState.parse(new), before, after, ttl_tolerance_ms))
    if len(new_entries) != len(old_entries) - sum(
            c.change is ChangeKind.REMOVED for c in changes):
        for key in new_entries.keys() - old_entries.keys():
            state = KeyState.parse(new_entries[key])
            changes.append(KeyChange(key, classify(key).value, state.type, ChangeKind.ADDED,
                                     after=state.status))
    changes.sort(key=lambda c: (c.key, c.change.value))
    restarted = bool(before.info.run_id and after.info.run_id
                     and before.info.run_id != after.info.run_id)
    counters = {name: (getattr(after.info, name) if restarted else
                       getattr(after.info, name) - getattr(before.info, name))
                for name in COUNTERS}
    counters["keys"] = len(new_entries) - len(old_entries)
    return SnapshotDiff(db=after.db, before_at=before.taken_at, after_at=after.taken_at,
                        changes=changes, counters=counters, server_restarted=restarted)


def _removed_by(change: KeyChange, removal: Removal, after: Snapshot, keys: KeySpace) -> str | None:
    if removal.cause in (RemovalCause.EXPIRED, RemovalCause.EVICTED):
        return "redis"
    if removal.cause is RemovalCause.DEL:
        job_id = keys.job_id_of(change.key)
        if job_id is not None and keys.tombstone(job_id) in after.entries:
            return "purge"  # purge_one.lua leaves the tombstone in the same atomic step
    return None


def _inferred(change: KeyChange, before: Snapshot | None, after: Snapshot,
              keys: KeySpace) -> KeyChange:
    """Return a removal heard by no event with the cause the two snapshots prove, if any.

    The rules `watch` applies to its events, read from the snapshots alone: a
    job record whose tombstone is in *after* was purged (`del by purge`); a key
    whose TTL ran out by *after*'s server time expired (`expired`, at its expiry).
    Anything else stays `unknown`.
    """
    job_id = keys.job_id_of(change.key)
    if job_id is not None and keys.tombstone(job_id) in after.entries:
        return replace(change, cause=RemovalCause.DEL, by="purge")
    state = before.state(change.key) if before is not None else None
    if state is not None and 0 <= state.expire_at_ms <= after.server_time_ms:
        return replace(change, cause=RemovalCause.EXPIRED, by="redis",
                       at=state.expire_at_ms / 1000)
    return replace(change, cause=RemovalCause.UNKNOWN)


def attribute(changes: SnapshotDiff, removals: Mapping[str, Removal], after: Snapshot, *,
              keys: KeySpace | None = None, subscribed: bool = True,
              before: Snapshot | None = None) -> SnapshotDiff:
    """Return *changes* with each removal's cause taken from *removals*.

    A removal without an event gets cause `unknown` (no subscription, or an
    event lost while the subscription was down, or a FLUSHDB, which publishes
    no per-key event). A `del` of a job record whose tombstone exists in
    *after* is attributed to the purge (`del by purge`). Without a
    subscription (`monitor diff` of two saved files) the snapshots themselves
    name what they can: a tombstone means `del by purge`, a TTL that ran out
    in between (needs *before*) means `expired`.

    Args:
        changes: The diff of two snapshots.
        removals: The last removal event of each key received between them.
        after: The diff's later snapshot (to find tombstones).
        keys: Key space of the DB (default: no prefix).
        subscribed: False when no subscription was open: causes come from the
            snapshots, else `unknown`.
        before: The diff's earlier snapshot (to find TTLs that ran out).

    Returns:
        A new SnapshotDiff.
    """
    space = keys or KeySpace()
    out: list[KeyChange] = []
    for change in changes.changes:
        if change.change is not ChangeKind.REMOVED:
            out.append(change)
            continue
        removal = removals.get(change.key) if subscribed else None
        if removal is None and not subscribed:
            out.append(_inferred(change, before, after, space))
        elif removal is None:
            out.append(replace(change, cause=RemovalCause.UNKNOWN))
        else:
            out.append(replace(change, cause=removal.cause, at=removal.at,
                               by=_removed_by(change, removal, after, space)))
    return replace(changes, changes=out)
