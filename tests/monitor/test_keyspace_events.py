"""Removal causes from keyspace notifications, on private real Redis servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobtrail.embedded import EmbeddedRedis
from jobtrail.errors import KeyspaceEventsUnavailableError
from jobtrail.monitor.diff import RemovalCause, diff
from jobtrail.monitor.keyspace_events import KeyspaceEventListener, required_flags
from jobtrail.monitor.snapshot import take_snapshot
from tests.helpers.waiting import wait_until


@pytest.fixture
def client(private_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    c = private_redis.client(3)
    yield c
    c.close()


@pytest.fixture
def listener(client: redis.Redis) -> Iterator[KeyspaceEventListener]:
    with KeyspaceEventListener(client, db="main") as lst:
        lst.enable()
        lst.start()
        yield lst


def test_required_flags_keep_what_was_there() -> None:
    assert required_flags("") == "Egxe"
    assert set(required_flags("Kl")) == set("KlEgxe")
    assert required_flags("AE") == "AE"


def test_enable_then_restore_the_previous_value(client: redis.Redis) -> None:
    # Given a server that already publishes some keyspace events
    client.config_set("notify-keyspace-events", "Kl")
    before = set(client.config_get("notify-keyspace-events")["notify-keyspace-events"])
    # When a listener runs, then stops
    with KeyspaceEventListener(client) as lst:
        lst.enable()
        lst.start()
        running = set(client.config_get("notify-keyspace-events")["notify-keyspace-events"])
        assert {"E", "g", "x", "e"} <= running
    # Then the previous value is back
    assert set(client.config_get("notify-keyspace-events")["notify-keyspace-events"]) == before


def test_del_unlink_and_expiry_are_attributed(client: redis.Redis,
                                              listener: KeyspaceEventListener) -> None:
    # Given keys, two of which expire in 100 ms
    client.set("deleted", 1)
    client.set("unlinked", 1)
    client.set("short-1", 1, px=100)
    client.set("short-2", 1, px=100)
    client.set("stays", 1)
    before = take_snapshot(client)
    # When one is deleted, one unlinked and the two others expire
    client.delete("deleted")
    client.unlink("unlinked")
    wait_until(lambda: client.info("stats")["expired_keys"] >= 2, timeout_s=5,
               message="active expiry")
    wait_until(lambda: len(listener.removals) >= 4, timeout_s=5, message="4 removal events")
    after = take_snapshot(client)
    d = listener.removals.settle(diff(before, after), after)
    # Then each removal has its cause and time
    causes = {c.key: c.cause for c in d.removed()}
    assert causes == {"deleted": RemovalCause.DEL, "unlinked": RemovalCause.DEL,
                      "short-1": RemovalCause.EXPIRED, "short-2": RemovalCause.EXPIRED}
    assert all(c.at is not None and before.taken_at <= c.at <= after.taken_at + 1
               for c in d.removed())
    assert d.removals_by_cause() == {"del": 2, "expired": 2}
    assert d.counters["expired_keys"] == 2
    assert len(listener.removals) == 0


def test_eviction_is_attributed(client: redis.Redis, listener: KeyspaceEventListener) -> None:
    # Given 100 keys of 10 kB under a maxmemory just above the current use, allkeys-lru
    value = "x" * 10_000
    for i in range(100):
        client.set(f"old-{i}", value)
    before = take_snapshot(client)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("maxmemory", str(used + 300_000))
    # When 100 more keys are written
    for i in range(100):
        client.set(f"new-{i}", value)
    evicted = int(client.info("stats")["evicted_keys"])
    assert evicted > 0
    wait_until(lambda: listener.events_received >= evicted, timeout_s=5,
               message="eviction events")
    after = take_snapshot(client)
    d = listener.removals.settle(diff(before, after), after)
    # Then every removed key was evicted, and the events account for Redis's counter
    removed = list(d.removed())
    assert removed and all(c.cause is RemovalCause.EVICTED for c in removed)
    assert len(removed) + d.transient.get("evicted", 0) == evicted == d.counters["evicted_keys"]


def test_a_server_refusing_config_says_so(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "noconfig")
    server.start("--save", "", "--appendonly", "no", "--rename-command", "CONFIG", "")
    try:
        client = server.client(0)
        with pytest.raises(KeyspaceEventsUnavailableError, match="unknown command") as info:
            KeyspaceEventListener(client).enable()
        assert "CONFIG" in info.value.reason.upper()
        client.close()
    finally:
        server.stop()
