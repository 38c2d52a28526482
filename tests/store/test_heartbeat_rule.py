"""The one liveness rule: a missing heartbeat proves a worker gone, except right after the
Redis server holding the heartbeats restarted (store.heartbeats.absence_unproven_s)."""

from __future__ import annotations

import redis

from jobtrail.clock import now_s
from jobtrail.keys import KeySpace
from jobtrail.models import WorkerStatus
from jobtrail.store.heartbeats import (
    HeartbeatStore,
    absence_unproven_s,
    decode_heartbeat,
    newest_before_start,
)
from jobtrail.trace.gather import TraceSources, _worker_facts

AT = 1_800_000_000.0


def test_a_missing_heartbeat_is_not_judged_while_the_server_is_younger_than_the_threshold(
        ) -> None:
    # last beat 20 s ago, server up 5 s of a 12 s threshold: not judged
    assert absence_unproven_s(5.0, 12.0, last_seen=AT - 20, read_at=AT) == 5.0
    beat = decode_heartbeat("w@h", AT - 20, {}, at=AT, server_uptime_s=5.0, gone_after_s=12.0)
    assert (beat.gone, beat.status.value) == (False, "unknown")
    assert beat.absence_note == "no heartbeat since Redis restarted 5 s ago; not yet judged"


def test_a_missing_heartbeat_is_gone_once_the_server_is_up_the_threshold_or_heard_it_since(
        ) -> None:
    assert absence_unproven_s(12.0, 12.0, last_seen=AT - 20, read_at=AT) is None
    assert absence_unproven_s(None, 12.0, last_seen=AT - 20, read_at=AT) is None
    # it beat after this server started, and its hash is gone: it stopped, or expired here
    assert absence_unproven_s(5.0, 12.0, last_seen=AT - 2, read_at=AT) is None
    # INFO's uptime is whole seconds: 0 in the first second, and a worker heard 0.5 s ago
    # beat since the start (it read "unknown": every missing heartbeat did, that second)
    assert absence_unproven_s(0.0, 12.0, last_seen=AT - 0.5, read_at=AT) is None
    assert absence_unproven_s(0.0, 12.0, last_seen=AT - 1.5, read_at=AT) == 0.0
    beat = decode_heartbeat("w@h", AT - 20, {}, at=AT, server_uptime_s=40.0, gone_after_s=12.0)
    assert (beat.gone, beat.status.value, beat.absence_note) == (True, "dead", "")


def test_a_worker_silent_the_threshold_before_the_newest_loaded_heartbeat_is_gone() -> None:
    # the server started at AT - 5; the newest beat it loaded is from AT - 8 (another
    # worker's): a worker last heard at AT - 30 had stopped before the crash
    start = AT - 5.0
    newest = newest_before_start([AT - 30, AT - 8, AT - 1], 5.0, read_at=AT)
    assert newest == AT - 8 and start > newest
    assert newest_before_start([AT - 30], None, read_at=AT) is None
    assert absence_unproven_s(5.0, 12.0, last_seen=AT - 30, read_at=AT,
                              newest_seen=newest) is None
    # one heard 10 s before that newest beat may have beaten since, in writes lost
    assert absence_unproven_s(5.0, 12.0, last_seen=AT - 18, read_at=AT,
                              newest_seen=newest) == 5.0


def test_after_a_restart_a_long_dead_worker_still_reads_dead_in_workers_and_trace(
        main_db: redis.Redis, keys: KeySpace) -> None:
    # Given a server younger than a (large) gone threshold, whose workers index holds
    # `old` (silent 2 h before the start), `recent` (5 s before it) and `live` (beating)
    gone_after_s = 1_000_000.0
    beats = HeartbeatStore(main_db, keys, gone_after_s=gone_after_s)
    beats.beat("live@h", pid=1, started_at=now_s(), jobs=[], interval_s=60.0)
    start = now_s() - float(main_db.info("server")["uptime_in_seconds"])
    main_db.zadd(keys.workers(), {"old@h": start - 7_200.0 - gone_after_s,
                                  "recent@h": start - 5.0})
    # When every view reads them
    by_name = {b.name: b for b in beats.list_workers()}
    src = TraceSources(main=main_db, broker=None, results=None, keys=keys,
                       visibility_timeout_s=3600.0, result_expires_s=86_400,
                       gone_after_s=gone_after_s)
    # Then `old` is dead (the loaded data proves its silence), `recent` not yet judged
    assert by_name["old@h"].status is WorkerStatus.DEAD
    assert by_name["recent@h"].status is WorkerStatus.UNKNOWN
    assert by_name["live@h"].status is WorkerStatus.ALIVE
    traced = _worker_facts(src, "old@h")
    assert traced is not None and traced.gone and traced.absence_note == ""
