"""Faults of the embedded server: its data directory claimed twice at once, maxclients reached.

Real redis-server processes started by jobtrail's own launcher, the CLI as
users run it (a subprocess); what is asserted is read back from the server,
from `server.json` and from the process table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.doctor import Severity, run_checks
from jobtrail.embedded import EmbeddedRedis, ensure_server, read_server_info, stop_server
from jobtrail.keys import KeySpace
from tests.conftest import make_settings
from tests.helpers.processes import settings_env
from tests.test_embedded import servers_on

ROUNDS = 3


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state directory; whatever redis-server runs on its data directory is stopped after."""
    path = tmp_path / "state"
    yield path
    stop_server(path / "redis")
    for pid in servers_on(path / "redis"):
        os.kill(pid, signal.SIGKILL)


def _spawn(state: Path, *args: str) -> subprocess.Popen[str]:
    env = settings_env(Settings(state_dir=state))
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = settings_env(Settings(state_dir=state))
    return subprocess.run([sys.executable, "-m", "jobtrail", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.slow
def test_two_server_starts_racing_make_exactly_one_server(state: Path) -> None:
    data_dir = state / "redis"
    for _round in range(ROUNDS):
        # When two `jobtrail server start` run at once
        racers = [_spawn(state, "-m", "jobtrail", "server", "start", "--json")
                  for _ in range(2)]
        results = [(p.wait(timeout=60), *p.communicate()) for p in racers]
        # Then both succeed, one started the server and the other found it running
        assert [rc for rc, _, _ in results] == [0, 0], results
        reports = [json.loads(stdout) for _, stdout, _ in results]
        assert sorted(r["started"] for r in reports) == [False, True]
        pid = reports[0]["pid"]
        assert reports[1]["pid"] == pid
        # and exactly one redis-server works on the data directory: the one server.json names
        assert servers_on(data_dir) == [pid]
        assert json.loads((data_dir / "server.json").read_text())["pid"] == pid
        stop_server(data_dir)
        assert servers_on(data_dir) == []


@pytest.mark.slow
def test_two_launchers_racing_past_the_start_decision_make_one_server(state: Path) -> None:
    # Given two launchers that both decided to start a server (no launch serialization)
    data_dir = state / "redis"
    code = ("import sys; from pathlib import Path; from jobtrail.embedded import EmbeddedRedis; "
            "print(EmbeddedRedis(Path(sys.argv[1])).start(detach=True).pid)")
    for _round in range(ROUNDS):
        racers = [_spawn(state, "-c", code, str(data_dir)) for _ in range(2)]
        results = [(p.wait(timeout=60), *p.communicate()) for p in racers]
        # Then the data directory's lock lets exactly one redis-server run on it
        winners = [int(out) for rc, out, _ in results if rc == 0]
        assert len(winners) == 1, results
        loser = next(err for rc, _, err in results if rc != 0)
        assert "in use by another redis-server" in loser
        assert servers_on(data_dir) == winners
        info = read_server_info(data_dir)
        assert info is not None and info.pid == winners[0]
        stop_server(data_dir)


@pytest.mark.slow
def test_maxclients_reached_on_the_embedded_server_is_reported_not_replaced(
        state: Path) -> None:
    # Given the embedded server, with its only client slot held
    data_dir = state / "redis"
    info, _ = ensure_server(data_dir)
    record = (data_dir / "server.json").read_bytes()
    holder = redis.Redis(port=info.port, decode_responses=True)
    holder.config_set("maxclients", 1)
    try:
        # When commands need the server
        submit = _cli(state, "submit", "1 + 1")
        status = _cli(state, "server", "status")
        # Then each says in one line that it refuses clients, and exits 1
        for result in (submit, status):
            assert result.returncode == 1, result
            line = _one_line(result.stderr)
            assert "max number of clients reached" in line
            assert f"pid {info.pid}" in line
        status_json = json.loads(_cli(state, "server", "status", "--json").stdout)
        assert (status_json["running"], status_json["answering"], status_json["pid"]) == (
            True, False, info.pid)
        assert "max number of clients reached" in status_json["error"]
        # and no second server started: one process, server.json untouched, no job written
        assert servers_on(data_dir) == [info.pid]
        assert (data_dir / "server.json").read_bytes() == record
        assert holder.execute_command("SELECT", 10) and holder.dbsize() == 0
    finally:
        holder.config_set("maxclients", 10000)
    # When the limit is raised again, the same server serves again
    submit = _cli(state, "submit", "1 + 1")
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip()
    assert holder.hget(KeySpace().job(job_id), "problem") == "1 + 1"
    status_json = json.loads(_cli(state, "server", "status", "--json").stdout)
    assert (status_json["pid"], status_json["answering"], status_json["maxclients"]) == (
        info.pid, True, 10000)
    assert status_json["connected_clients"] >= 1  # at least the holder
    assert status_json["error"] is None
    assert servers_on(data_dir) == [info.pid]
    assert (data_dir / "server.json").read_bytes() == record
    holder.close()


def test_doctor_warns_past_80_percent_of_maxclients_on_each_server(
        private_redis: EmbeddedRedis, redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    # Given the main DB on a server with 17 of its 20 client slots held, broker/results elsewhere
    private_redis.client().config_set("maxclients", 20)
    holders = [private_redis.client() for _ in range(17)]
    for holder in holders:
        holder.ping()
    settings = make_settings(private_redis, tmp_path, broker_url=redis_server.url(11),
                             results_url=redis_server.url(12))
    clients = {"main": private_redis.client(10), "broker": redis_server.client(11),
               "results": redis_server.client(12)}
    try:
        found = {f.check: f for f in run_checks(settings, clients, KeySpace(),
                                                consistency=False)}
    finally:
        for holder in holders:
            holder.close()
        private_redis.client().config_set("maxclients", 10000)
    # Then the crowded server is warned about with its numbers, the other is ok
    crowded = found["clients:main"]
    assert crowded.severity is Severity.WARNING
    assert crowded.evidence["maxclients"] == 20
    assert 16 < crowded.evidence["connected_clients"] <= 20
    assert "max number of clients reached" in crowded.message
    assert "maxclients" in crowded.fix
    other = found["clients:broker"]
    assert other.severity is Severity.OK
    assert other.evidence["dbs_on_server"] == ["broker", "results"]
    assert other.evidence["maxclients"] == 10000


def _killed(state: Path) -> int:
    """SIGKILL the embedded server of *state* (started by this test); return its pid."""
    info = read_server_info(state / "redis")
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while read_server_info(state / "redis") is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    return info.pid


def test_a_crashed_embedded_server_is_started_again_and_the_crash_reported(state: Path) -> None:
    # Given the embedded server, started by a command, then killed (a crash)
    assert _cli(state, "server", "start").returncode == 0
    crashed = _killed(state)
    assert "not running" in _cli(state, "server", "status").stdout

    # When the next command runs, it starts it again and says so on stderr, once
    listed = _cli(state, "list")
    assert listed.returncode == 0, listed.stderr
    line = _one_line(listed.stderr)
    assert (f"the embedded Redis server had stopped (pid {crashed}, not stopped by jobtrail); "
            "started again: jobs and messages since its last save may be lost; "
            "see jobtrail doctor") in line
    again = read_server_info(state / "redis")
    assert again is not None and again.pid != crashed

    # Then doctor warns about it (no longer 'ok' with nothing said), and server status shows it
    doctor = json.loads(_cli(state, "doctor", "--json").stdout)
    [found] = [f for f in doctor["findings"] if f["check"] == "embedded-server-restarted"]
    assert found["severity"] == "warning" and f"pid {crashed}" in found["message"]
    assert "check pending jobs (pending-without-message)" in found["message"]
    assert found["evidence"]["restarts"][-1]["new_pid"] == again.pid
    status = _cli(state, "server", "status")
    assert f"last unexpected stop: pid {crashed}" in status.stdout
    assert "had stopped" not in _cli(state, "list").stderr  # reported once, not again

    # and a clean stop is no crash: the next command starts it without a warning
    assert _cli(state, "server", "stop").returncode == 0
    quiet = _cli(state, "list")
    assert quiet.returncode == 0 and "had stopped" not in quiet.stderr, quiet.stderr


@pytest.mark.slow
def test_server_status_fits_80_columns(state: Path) -> None:
    # Given the embedded server running
    info, _ = ensure_server(state / "redis")
    # When its status is printed to a pipe
    status = _cli(state, "server", "status")
    # Then each line but the data directory's (a path prints whole) fits 80 columns
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == f"embedded Redis running on 127.0.0.1:{info.port} (pid {info.pid})"
    assert lines[1] == f"  data in {state / 'redis'}"
    assert lines[2].startswith("  clients ") and " of maxclients " in lines[2]
    assert all(len(line) <= 80 for i, line in enumerate(lines) if i != 1), status.stdout
