"""A port already in use: `serve` and `worker --metrics-port` refuse to start, in one line.

Real CLI subprocesses; the port is held by a real listening socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from jobtrail.config import Settings
from jobtrail.store import JobStore
from tests.cli.test_cli import run

pytestmark = [pytest.mark.slow]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("command", [["serve", "--port"], ["worker", "--metrics-port"]])
def test_a_busy_port_is_a_one_line_usage_error(settings: Settings, store: JobStore,
                                                busy_port: int, command: list[str]) -> None:
    # (was: serve said "jobtrail API on ..." and exited 3, the unknown-job code; the worker
    # logged a traceback and ran on without its metrics)
    result = run(settings, *command, str(busy_port), timeout_s=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr == (f"error: Invalid value for '{command[1]}': cannot listen on "
                             f"127.0.0.1:{busy_port}: address already in use\n")
    assert result.stdout == ""
