"""The one liveness rule: a missing heartbeat proves a worker gone, except right after the
Redis server holding the heartbeats restarted (store.heartbeats.absence_unproven_s)."""

from __future__ import annotations

from jobtrail.store.heartbeats import absence_unproven_s, decode_heartbeat

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
    beat = decode_heartbeat("w@h", AT - 20, {}, at=AT, server_uptime_s=40.0, gone_after_s=12.0)
    assert (beat.gone, beat.status.value, beat.absence_note) == (True, "dead", "")
