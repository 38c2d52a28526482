"""The embedded redis-server launcher: loopback, AOF, reuse across commands, stop."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from jobtrail.config import load_settings
from jobtrail.embedded import (
    EmbeddedRedis,
    check_serving,
    data_dir_in_use,
    ensure_server,
    read_server_info,
    resolve_settings,
    stop_server,
)
from jobtrail.errors import EmbeddedRedisError, EmbeddedRedisRefusedError


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


def servers_on(data_dir: Path) -> list[int]:
    """Pids of the redis-server processes working in *data_dir* (their cwd)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if "redis" in (proc.info["name"] or "") and \
                    Path(proc.cwd()) == data_dir.resolve() and proc.status() != "zombie":
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory for ensure_server(); whatever runs on it is stopped afterwards."""
    path = tmp_path / "state" / "redis"
    yield path
    stop_server(path)
    for pid in servers_on(path):
        os.kill(pid, signal.SIGKILL)


def test_a_second_start_on_a_held_data_dir_is_refused(tmp_path: Path) -> None:
    # Given a server running on a data directory (it holds server.lock)
    first = EmbeddedRedis(tmp_path / "r")
    info = first.start("--appendonly", "no")
    try:
        assert data_dir_in_use(tmp_path / "r")
        # When another launcher starts a server on the same directory
        with pytest.raises(EmbeddedRedisError, match="in use by another redis-server"):
            EmbeddedRedis(tmp_path / "r").start("--appendonly", "no")
        # Then only the first one runs, and its record is intact
        assert servers_on(tmp_path / "r") == [info.pid]
        assert read_server_info(tmp_path / "r") == info
    finally:
        first.stop()
    assert not data_dir_in_use(tmp_path / "r")


def test_the_lock_dies_with_the_server(data_dir: Path) -> None:
    # Given a detached server, killed with SIGKILL (no shutdown code runs)
    info, _ = ensure_server(data_dir)
    os.kill(info.pid, signal.SIGKILL)
    # Then the lock is released with the process, the record is stale,
    deadline = time.monotonic() + 5
    while data_dir_in_use(data_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not data_dir_in_use(data_dir)
    assert read_server_info(data_dir) is None
    # and a start brings up a new server
    again, started = ensure_server(data_dir)
    assert started and again.pid != info.pid and servers_on(data_dir) == [again.pid]


def test_a_reused_pid_is_not_a_running_server(data_dir: Path) -> None:
    # Given a record whose pid now belongs to another program working in the data dir
    info, _ = ensure_server(data_dir)
    stop_server(data_dir)
    impostor = subprocess.Popen(["sleep", "30"], cwd=data_dir)
    try:
        (data_dir / "server.json").write_text(json.dumps(
            {"port": info.port, "pid": impostor.pid, "data_dir": str(data_dir),
             "binary": info.binary}))
        # Then it is not taken for the server, and a start brings up a real one
        assert read_server_info(data_dir) is None
        again, started = ensure_server(data_dir)
        assert started and again.pid != impostor.pid
        assert redis.Redis(port=again.port).ping()
    finally:
        impostor.kill()
        impostor.wait()


def test_a_server_at_maxclients_is_reported_not_replaced(data_dir: Path) -> None:
    # Given the embedded server with every connection slot taken
    info, _ = ensure_server(data_dir)
    record = (data_dir / "server.json").read_bytes()
    holder = redis.Redis(port=info.port, decode_responses=True)
    holder.config_set("maxclients", 1)
    try:
        # When a command needs the server
        with pytest.raises(EmbeddedRedisRefusedError) as caught:
            ensure_server(data_dir)
        # Then it is told why, the running server is kept, and no second one starts
        assert caught.value.reason == "max number of clients reached"
        assert caught.value.pid == info.pid and str(info.port) in caught.value.url
        assert read_server_info(data_dir) == info
        assert servers_on(data_dir) == [info.pid]
        assert (data_dir / "server.json").read_bytes() == record
        copy = pickle.loads(pickle.dumps(caught.value))
        assert (type(copy), str(copy), copy.url, copy.pid, copy.reason) == (
            EmbeddedRedisRefusedError, str(caught.value), caught.value.url, info.pid,
            caught.value.reason)
    finally:
        holder.config_set("maxclients", 10000)
        holder.close()
    check_serving(info)
    assert ensure_server(data_dir) == (info, False)


def test_a_loading_server_is_reported_not_replaced(data_dir: Path) -> None:
    # Given the recorded server alive but answering LOADING (a stand-in on the recorded port)
    info, _ = ensure_server(data_dir)
    stand_in = socket.create_server(("127.0.0.1", 0))
    answered: list[socket.socket] = []

    def answer_loading() -> None:
        while True:
            try:
                conn, _ = stand_in.accept()
            except OSError:
                return
            answered.append(conn)
            conn.recv(4096)
            conn.sendall(b"-LOADING Redis is loading the dataset in memory\r\n")

    thread = threading.Thread(target=answer_loading, daemon=True)
    thread.start()
    try:
        (data_dir / "server.json").write_text(json.dumps(
            {"port": stand_in.getsockname()[1], "pid": info.pid, "data_dir": str(data_dir),
             "binary": info.binary}))
        # When a command needs the server, it is told it is loading; nothing else starts
        with pytest.raises(EmbeddedRedisRefusedError, match="LOADING|loading the dataset"):
            ensure_server(data_dir)
        assert servers_on(data_dir) == [info.pid]
    finally:
        stand_in.close()
        for conn in answered:
            conn.close()
        (data_dir / "server.json").write_text(json.dumps(
            {"port": info.port, "pid": info.pid, "data_dir": str(data_dir),
             "binary": info.binary}))


def test_a_refusing_server_can_still_be_stopped(data_dir: Path) -> None:
    info, _ = ensure_server(data_dir)
    holder = redis.Redis(port=info.port)
    holder.config_set("maxclients", 1)
    try:
        assert stop_server(data_dir) == info
    finally:
        holder.close()
    assert servers_on(data_dir) == [] and not data_dir_in_use(data_dir)


def test_a_start_right_after_a_kill_waits_for_the_lock(data_dir: Path) -> None:
    info, _ = ensure_server(data_dir)
    os.kill(info.pid, signal.SIGKILL)
    again, started = ensure_server(data_dir)  # at once: the dying server may hold the lock
    assert started and again.pid != info.pid and servers_on(data_dir) == [again.pid]


def test_a_password_protected_server_is_reported_not_replaced(data_dir: Path) -> None:
    # Given the embedded server, given a password by hand (CONFIG SET requirepass)
    info, _ = ensure_server(data_dir)
    holder = redis.Redis(port=info.port)
    holder.config_set("requirepass", "s3cret")
    try:
        # Then a command is told so, and the server is kept
        with pytest.raises(EmbeddedRedisRefusedError, match="NOAUTH|WRONGPASS|authenticat"):
            ensure_server(data_dir)
        assert servers_on(data_dir) == [info.pid]
        assert read_server_info(data_dir) == info
    finally:
        holder.config_set("requirepass", "")
        holder.close()
