"""watch(): snapshot Redis DBs every interval, diff them, name each removal's cause.

Invariant: a run holds at most two snapshots per DB (the previous and the
current) and one removal log per DB; everything else is streamed to the
run's files (monitor/report.py) as it happens, so memory is bounded by the
keyspaces, not by the run's length. Keyspace notifications are enabled
before the first snapshot and restored when the run ends, however it ends
(short of SIGKILL).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from jobtrail.clock import monotonic_s, now_s
from jobtrail.errors import KeyspaceEventsUnavailableError
from jobtrail.keys import KeySpace
from jobtrail.monitor.diff import ChangeKind, KeyChange, SnapshotDiff, attribute, diff
from jobtrail.monitor.keyspace_events import KeyspaceEventListener
from jobtrail.monitor.report import (
    QueryLog,
    ReportWriter,
    RunPaths,
    Timeline,
    iso,
    snapshot_record,
)
from jobtrail.monitor.snapshot import DEFAULT_BATCH_SIZE, Snapshot, take_snapshot

__all__ = ["WatchOptions", "WatchProgress", "WatchTarget", "describe_change", "watch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """One DB to watch: its label (`main`, `broker`, `results`, or a URL) and client."""

    label: str
    client: redis.Redis


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """How to watch.

    Attributes:
        out_dir: Directory of the run's three files.
        interval_s: Seconds between the starts of two rounds of snapshots.
        duration_s: Seconds to watch (a last round is taken at the end);
            None: until *stop* is set.
        match: SCAN MATCH pattern.
        batch_size: Keys per SCAN step.
        keys: Key space used to label keys.
        keyspace_events: Subscribe to keyspace notifications for removal causes.
        log_changes_per_diff: Timeline lines per diff per DB; the rest are
            counted in one line (the report has them all).
    """

    out_dir: Path
    interval_s: float = 5.0
    duration_s: float | None = 120.0
    match: str = "*"
    batch_size: int = DEFAULT_BATCH_SIZE
    keys: KeySpace = field(default_factory=KeySpace)
    keyspace_events: bool = True
    log_changes_per_diff: int = 1000


@dataclass(frozen=True, slots=True)
class WatchProgress:
    """What the CLI's status line shows after each round.

    Attributes:
        rounds: Rounds of snapshots taken so far.
        keys: Keys per DB in the last round.
        changes: Key changes per DB in the last round's diffs.
        next_in_s: Seconds until the next round, None when the run is ending.
    """

    rounds: int
    keys: dict[str, int]
    changes: dict[str, int]
    next_in_s: float | None


@dataclass
class _Db:
    """The state of one watched DB during a run."""

    target: WatchTarget
    listener: KeyspaceEventListener | None = None
    events: str = "off"
    previous: Snapshot | None = None
    keys_over_time: list[list[float]] = field(default_factory=list)
    changes: Counter[str] = field(default_factory=Counter)
    removals: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "keyspace_events": self.events,
            "events_received": self.listener.events_received if self.listener else 0,
            "keys_over_time": self.keys_over_time,
            "changes": dict(self.changes), "removals_by_cause": dict(self.removals),
            "counters": dict(self.counters),
        }


def describe_change(change: KeyChange) -> str:
    """Return one human line for *change* (the timeline's wording)."""
    what = f"{change.key!r} ({change.kind}, {change.type})"
    kind = change.change
    if kind is ChangeKind.ADDED:
        return f"added {what}" + (f" status {change.after}" if change.after else "")
    if kind is ChangeKind.REMOVED:
        was = f", was {change.before}" if change.before else ""
        when = f" at {iso(change.at)}" if change.at is not None else ""
        return f"removed {what}{was}: {change.cause_label or 'unknown'}{when}"
    if kind is ChangeKind.STATUS_CHANGED:
        return f"status {what} {change.before} -> {change.after}"
    if kind is ChangeKind.TYPE_CHANGED:
        return f"type of {change.key!r} changed {change.before} -> {change.after}"
    if kind is ChangeKind.TTL_SET:
        return f"TTL set on {what}: {change.after} s"
    if kind is ChangeKind.TTL_REMOVED:
        return f"TTL removed from {what} (had {change.before} s left)"
    return f"TTL reset on {what}: {change.before} s -> {change.after} s"


class _Run:
    """One watch run: the DBs, the files and the running summary."""

    def __init__(self, targets: Sequence[WatchTarget], options: WatchOptions) -> None:
        self.options = options
        self.started_at = now_s()
        self.paths = RunPaths.create(options.out_dir, self.started_at)
        self.timeline = Timeline(self.paths.log)
        self.queries = QueryLog(self.paths.queries)
        self.dbs = [_Db(t) for t in targets]
        self.notices: list[str] = []
        self.rounds = 0

    def notice(self, db: str, text: str) -> None:
        self.notices.append(f"[{db}] {text}")
        self.timeline.line(now_s(), db, f"NOTICE {text}")

    def subscribe(self, db: _Db, stack: contextlib.ExitStack) -> None:
        label = db.target.label
        listener = KeyspaceEventListener(db.target.client, db=label, on_event=self.queries.event,
                                         on_command=self.queries.command)
        try:
            flags = listener.enable()
            db.events = "on"
            self.timeline.line(now_s(), label, f"keyspace notifications on (flags {flags!r}, "
                               f"previous {listener.previous_flags!r} restored at the end)")
        except KeyspaceEventsUnavailableError as exc:
            db.events = "unavailable"
            self.notice(label, f"{exc}. Monitoring by snapshots alone: removals are detected "
                        "by diffs and their cause is 'unknown' unless the server already "
                        "publishes key events.")
        try:
            listener.start()
        except redis.RedisError as exc:
            db.events = "off"
            self.notice(label, f"cannot subscribe to keyspace events ({exc}); snapshots only")
            listener.restore()
            return
        db.listener = listener
        stack.callback(listener.stop)

    def header(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at, "started_at_iso": iso(self.started_at),
            "interval_s": self.options.interval_s, "duration_s": self.options.duration_s,
            "match": self.options.match,
            "files": {"log": str(self.paths.log), "queries": str(self.paths.queries)},
            "dbs": [{"db": d.target.label, "keyspace_events": d.events,
                     "notify_keyspace_events": d.listener.enabled_flags if d.listener else None}
                    for d in self.dbs],
            "notices": list(self.notices),
        }

    def summary(self) -> dict[str, Any]:
        ended = now_s()
        return {
            "rounds": self.rounds, "snapshots": sum(len(d.keys_over_time) for d in self.dbs),
            "started_at": self.started_at, "ended_at": ended,
            "elapsed_s": round(ended - self.started_at, 3),
            "files": {"log": str(self.paths.log), "queries": str(self.paths.queries),
                      "report": str(self.paths.report)},
            "notices": list(self.notices),
            "dbs": {d.target.label: d.summary() for d in self.dbs},
        }

    def take(self, db: _Db, writer: ReportWriter) -> int:
        """Snapshot one DB, diff it with the previous, record both; return the change count."""
        label, keys = db.target.label, self.options.keys
        snap = take_snapshot(db.target.client, db=label, match=self.options.match,
                             batch_size=self.options.batch_size,
                             on_command=self.queries.command)
        db.keys_over_time.append([round(snap.taken_at - self.started_at, 3), len(snap.entries)])
        if db.previous is None:
            record = snapshot_record(snap, keys, seq=self.rounds, baseline=True)
            writer.add(record, self.summary(), entries_of=snap)
            self.timeline.line(snap.taken_at, label, f"snapshot #{self.rounds}: "
                               f"{len(snap.entries)} keys {record['counts_by_kind']} "
                               f"in {snap.elapsed_s:.3f} s (baseline)")
            db.previous = snap
            return 0
        changes = diff(db.previous, snap, keys=keys)
        if db.listener is not None:
            changes = db.listener.removals.settle(changes, snap, keys=keys,
                                                  subscribed=db.listener.subscribed)
        else:
            changes = attribute(changes, {}, snap, keys=keys, subscribed=False,
                                before=db.previous)
        self._account(db, changes)
        writer.add(snapshot_record(snap, keys, seq=self.rounds, diff=changes.to_dict()),
                   self.summary())
        self._log(db, snap, changes)
        db.previous = snap
        return len(changes.changes)

    def _account(self, db: _Db, changes: SnapshotDiff) -> None:
        db.changes.update(changes.counts())
        db.removals.update(changes.removals_by_cause())
        for name in ("expired_keys", "evicted_keys"):
            db.counters[name] += changes.counters.get(name, 0)

    def _log(self, db: _Db, snap: Snapshot, changes: SnapshotDiff) -> None:
        label = db.target.label
        counts = changes.counts()
        self.timeline.line(snap.taken_at, label, f"snapshot #{self.rounds}: {len(snap.entries)} "
                           f"keys (+{counts.get('added', 0)} -{counts.get('removed', 0)}, "
                           f"{len(changes.changes)} changes) in {snap.elapsed_s:.3f} s")
        limit = self.options.log_changes_per_diff
        for change in changes.changes[:limit]:
            self.timeline.line(change.at or snap.taken_at, label, describe_change(change))
        if len(changes.changes) > limit:
            self.timeline.line(snap.taken_at, label, f"... and {len(changes.changes) - limit} "
                               "more changes (see the report)")
        for what, counts_of in (("transient keys removed", changes.transient),
                                ("keys removed and created again", changes.recreated)):
            if counts_of:
                self.timeline.line(snap.taken_at, label, f"{what}: {counts_of}")
        moved = {k: v for k, v in changes.counters.items() if v and k != "keys"}
        if moved:
            self.timeline.line(snap.taken_at, label, "INFO " + " ".join(
                f"{k} {v:+d}" for k, v in moved.items()))
        if changes.server_restarted:
            self.notice(label, "the server restarted (run_id changed); counters started again")


def watch(targets: Sequence[WatchTarget], options: WatchOptions, *,
          on_progress: Callable[[WatchProgress], None] | None = None,
          stop: threading.Event | None = None) -> dict[str, Any]:
    """Watch *targets*: a round of snapshots every interval, until the duration or *stop*.

    Rounds start at 0, interval, 2 x interval, ... while within the duration.
    Each round snapshots every DB in turn, diffs it with its previous
    snapshot, gives each removal its cause from the keyspace events, and adds
    the record to the report before the next DB.

    Args:
        targets: The DBs.
        options: Interval, duration, output directory, scan settings.
        on_progress: Called after each round.
        stop: Set it (from a signal handler or another thread) to end the run
            after the current snapshot.

    Returns:
        The run's summary: `rounds`, `snapshots`, `started_at`, `ended_at`,
        `elapsed_s`, `files` {log, queries, report}, `notices`, and per DB
        `keyspace_events`, `events_received`, `keys_over_time` [[seconds
        since start, keys], ...], `changes` {kind: n}, `removals_by_cause`
        {label: n}, `counters` {expired_keys, evicted_keys}.

    Raises:
        RedisUnavailableError: A DB became unreachable; the files are
            complete up to the last snapshot and the configuration restored.
    """
    stop = stop or threading.Event()
    run = _Run(targets, options)
    started = monotonic_s()
    with contextlib.ExitStack() as stack:
        stack.callback(run.timeline.close)
        stack.callback(run.queries.close)
        if options.keyspace_events:
            for db in run.dbs:
                run.subscribe(db, stack)
        writer = ReportWriter(run.paths.report, run.header())
        try:
            while True:
                round_started = monotonic_s()
                changed = {db.target.label: run.take(db, writer) for db in run.dbs}
                run.rounds += 1
                next_at = started + run.rounds * options.interval_s
                # the duration is wall time: slow rounds must not stretch it
                ending = options.duration_s is not None and (
                    next_at - started > options.duration_s + 1e-6
                    or monotonic_s() - started >= options.duration_s)
                if on_progress is not None:
                    on_progress(WatchProgress(
                        rounds=run.rounds, changes=changed,
                        keys={d.target.label: len(d.previous.entries) if d.previous else 0
                              for d in run.dbs},
                        next_in_s=None if ending else max(0.0, next_at - monotonic_s())))
                if monotonic_s() - round_started > options.interval_s:
                    logger.warning("a round took longer than the interval interval_s=%s",
                                   options.interval_s)
                if ending or stop.wait(max(0.0, next_at - monotonic_s())):
                    break
        finally:
            for db in run.dbs:
                if db.listener is not None:
                    for line in db.listener.lost:
                        run.notice(db.target.label, line)
            writer.finish(run.summary())
    return run.summary()
