"""The embedded redis-server launcher: loopback, AOF, reuse across commands, stop."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import redis

from jobtrail.config import load_settings
from jobtrail.embedded import (
    EmbeddedRedis,
    ensure_server,
    read_server_info,
    resolve_settings,
    stop_server,
)


def test_embedded_server_is_loopback_with_aof(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r")
    server.start()
    try:
        client = server.client()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("dir")["dir"] == str((tmp_path / "r").resolve())
        client.set("k", "v")
    finally:
        server.stop()
    # the data survives a restart through the AOF
    again = EmbeddedRedis(tmp_path / "r", port=server.port)
    again.start()
    try:
        assert again.client().get("k") == "v"
    finally:
        again.stop()


def test_resolve_settings_starts_once_and_reuses(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    try:
        first = resolve_settings(settings)
        info = read_server_info(tmp_path / "state" / "redis")
        assert info is not None
        assert first.main_url == info.url(10)
        assert first.broker_url == info.url(11) and first.results_url == info.url(12)
        assert redis.Redis.from_url(first.main_url).ping()

        second, started = ensure_server(tmp_path / "state" / "redis")
        assert not started and second.pid == info.pid
    finally:
        stopped = stop_server(tmp_path / "state" / "redis")
    assert stopped is not None
    assert read_server_info(tmp_path / "state" / "redis") is None
    assert stop_server(tmp_path / "state" / "redis") is None
    # a restart comes back on the same port, so URLs handed out before still work
    again, started = ensure_server(tmp_path / "state" / "redis")
    try:
        assert started and again.port == info.port and again.pid != info.pid
    finally:
        stop_server(tmp_path / "state" / "redis")


def test_configured_urls_are_not_touched(tmp_path: Path) -> None:
    settings = load_settings(main_url="redis://h:1/1", broker_url="redis://h:1/2",
                             results_url="redis://h:1/3", state_dir=tmp_path)
    assert resolve_settings(settings) is settings
    assert not (tmp_path / "redis").exists()


def test_foreign_server_on_recorded_port_is_never_claimed(tmp_path: Path) -> None:
    # Given an embedded server that ran once and stopped, and a foreign Redis on its port
    data = tmp_path / "state" / "redis"
    first, _ = ensure_server(data)
    stop_server(data)
    foreign = EmbeddedRedis(tmp_path / "foreign", port=first.port)
    foreign.start("--appendonly", "no")
    try:
        # When jobtrail needs its server again
        again, started = ensure_server(data)
        try:
            # Then it starts its own on another port, and the foreign server is untouched
            assert started and again.port != first.port
            assert read_server_info(data) == again
            assert foreign.client().dbsize() == 0
        finally:
            stop_server(data)
    finally:
        foreign.stop()


def test_busy_recorded_port_falls_back_fast(tmp_path: Path) -> None:
    data = tmp_path / "state" / "redis"
    first, _ = ensure_server(data)
    stop_server(data)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        start = time.monotonic()
        again, _ = ensure_server(data)
        try:
            assert again.port != first.port
            assert time.monotonic() - start < 5
        finally:
            stop_server(data)
