"""Snapshots and diffs on a real Redis: every change detected exactly, nothing else."""

from __future__ import annotations

import io
import json
from pathlib import Path

import redis

from jobtrail.embedded import EmbeddedRedis
from jobtrail.keys import KeySpace
from jobtrail.monitor.diff import (
    ChangeKind,
    KeyChange,
    RemovalCause,
    SnapshotDiff,
    attribute,
    diff,
)
from jobtrail.monitor.report import read_snapshots, write_snapshots
from jobtrail.monitor.snapshot import KeyState, ServerFigures, Snapshot, take_snapshot
from jobtrail.store import JobStore


def test_snapshot_reads_type_ttl_and_job_status(main_db: redis.Redis, store: JobStore,
                                                keys: KeySpace) -> None:
    # Given a job record, a result-like string with a TTL and a list
    job = store.create("1 + 1")
    main_db.set(keys.celery_result(job.id), "{}", ex=100)
    main_db.rpush(keys.queue(), "message")
    # When a snapshot is taken in steps of 2 keys
    commands: list[str] = []
    snap = take_snapshot(main_db, batch_size=2,
                         on_command=lambda db, cmd, s, reply: commands.append(cmd))
    # Then every key is there with its type, status and TTL, read with SCAN, never KEYS
    assert snap.state(keys.job(job.id)) == KeyState("hash", -1, "pending")
    assert snap.state(keys.queue()) == KeyState("list", -1, None)
    result = snap.state(keys.celery_result(job.id))
    assert result is not None and result.type == "string" and result.status is None
    assert 99 <= (snap.ttl_s(keys.celery_result(job.id)) or 0) <= 100
    assert len(snap.entries) == main_db.dbsize()
    assert snap.info.keyspace["db10"]["keys"] == len(snap.entries)
    assert snap.counts_by_kind(keys)["job"] == 1
    assert snap.counts_by_kind(keys)["queue"] == 1
    assert any(c.startswith("EVALSHA scan_batch") for c in commands)
    assert not any(c.startswith("KEYS") for c in commands)


def test_match_and_odd_key_names(main_db: redis.Redis) -> None:
    odd = 'weird\nkey,with "quotes"'
    main_db.hset(odd, "status", "a,b\nc")
    main_db.set("other", 1)
    snap = take_snapshot(main_db, match="weird*")
    assert list(snap.entries) == [odd]
    assert snap.state(odd) == KeyState("hash", -1, "a,b\nc")


def test_diff_detects_each_change_exactly(main_db: redis.Redis, store: JobStore,
                                          keys: KeySpace) -> None:
    # Given jobs and keys with and without TTLs
    moving, leaving = store.create("1 + 1"), store.create("2 + 2")
    main_db.set("ttl-set", 1)
    main_db.set("ttl-removed", 1, ex=100)
    main_db.set("ttl-reset", 1, ex=100)
    main_db.set("counting-down", 1, ex=100)
    main_db.set("retyped", 1)
    before = take_snapshot(main_db)
    # When each kind of change happens once
    store.start(moving.id, worker="w1")
    main_db.delete(keys.job(leaving.id))
    main_db.set("added", 1)
    main_db.expire("ttl-set", 50)
    main_db.persist("ttl-removed")
    main_db.expire("ttl-reset", 5000)
    main_db.delete("retyped")
    main_db.rpush("retyped", "x")
    after = take_snapshot(main_db)
    d = diff(before, after, keys=keys)
    # Then exactly those changes are reported (the countdown is none), with their labels
    assert {(c.key, c.change) for c in d.changes} == {
        (keys.job(moving.id), ChangeKind.STATUS_CHANGED),
        (keys.job(leaving.id), ChangeKind.REMOVED),
        (keys.jobs_by_status("processing"), ChangeKind.ADDED),  # the index's first entry
        ("added", ChangeKind.ADDED),
        ("ttl-set", ChangeKind.TTL_SET),
        ("ttl-removed", ChangeKind.TTL_REMOVED),
        ("ttl-reset", ChangeKind.TTL_RESET),
        ("retyped", ChangeKind.TYPE_CHANGED),
    }
    by_key = {c.key: c for c in d.changes}
    status = by_key[keys.job(moving.id)]
    assert (status.kind, status.before, status.after) == ("job", "pending", "processing")
    assert by_key[keys.job(leaving.id)].before == "pending"
    assert (by_key["retyped"].before, by_key["retyped"].after) == ("string", "list")
    assert 4990 < float(by_key["ttl-reset"].after or 0) <= 5000
    assert 49 < float(by_key["ttl-set"].after or 0) <= 50
    assert d.counters["keys"] == len(after.entries) - len(before.entries) == 1
    assert d.counts() == {"removed": 1, "added": 2, "status_changed": 1, "ttl_set": 1,
                          "ttl_removed": 1, "ttl_reset": 1, "type_changed": 1}


def test_restarted_monitor_reports_no_change(redis_server: EmbeddedRedis, main_db: redis.Redis,
                                             store: JobStore, tmp_path: Path) -> None:
    # Given a keyspace with TTLs counting down, snapshotted and saved to a file
    for i in range(50):
        store.create(f"{i} + 1")
        main_db.set(f"t{i}", i, px=100_000 + i)
    path = tmp_path / "a.json"
    with open(path, "w") as fp:
        write_snapshots(fp, [take_snapshot(main_db)], KeySpace())
    # When a new monitor, on a new connection, snapshots it again later
    other = redis_server.client(10)
    later = take_snapshot(other)
    other.close()
    # Then the diff of the saved snapshot and the new one is empty
    (before,) = read_snapshots(path)
    d = diff(before, later)
    assert d.is_empty, d.to_dict()


def test_snapshot_file_round_trip(main_db: redis.Redis, store: JobStore) -> None:
    store.create("1 + 1")
    main_db.set("k", "v", ex=60)
    snap = take_snapshot(main_db)
    buf = io.StringIO()
    write_snapshots(buf, [snap], KeySpace())
    data = json.loads(buf.getvalue())
    assert data["format"] == "jobtrail.monitor.snapshots/1"
    again = Snapshot.from_dict(data["snapshots"][0])
    assert again.entries == snap.entries
    assert again.info == snap.info


def test_removal_without_event_is_unknown() -> None:
    change = KeyChange("job:1", "job", "hash", ChangeKind.REMOVED, before="completed")
    d = SnapshotDiff("main", 0.0, 1.0, [change], {"expired_keys": 0, "evicted_keys": 0,
                                                   "keys": -1})
    after = Snapshot("main", "redis://x/0", 0, 1.0, 0.0, 1000, False, "*", ServerFigures(), {})
    out = attribute(d, {}, after, subscribed=False)
    assert [c.cause for c in out.changes] == [RemovalCause.UNKNOWN]
    assert out.removals_by_cause() == {"unknown": 1}
