"""Ctrl-C and timeouts of `jobtrail submit`: no traceback, nothing half-written, every
accepted job named.

Real CLI subprocesses on real Redis, interrupted with a real SIGINT; no worker
runs, so every accepted job stays pending with its message in the queue.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.keys import KeySpace
from jobtrail.store.messages import parse_message
from tests.helpers.processes import settings_env
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow]


def _start(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "jobtrail", *args], env=settings_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _queued(broker_db: redis.Redis, settings: Settings) -> set[str]:
    """The job ids the queued messages carry (a batch message carries several)."""
    ids: set[str] = set()
    for raw in broker_db.lrange(settings.queue, 0, -1):
        message = parse_message(raw)
        assert message is not None
        ids |= set(message.job_ids) or {message.task_id}
    return ids


def test_ctrl_c_halfway_through_a_file_names_what_was_accepted(
        settings: Settings, main_db: redis.Redis, broker_db: redis.Redis, keys: KeySpace,
        tmp_path: Path) -> None:
    listing = tmp_path / "problems.txt"
    listing.write_text("".join(f"solve x + {i} = 0\n" for i in range(20_000)))
    proc = _start(settings, "submit", "--file", str(listing))
    wait_until(lambda: main_db.zcard(keys.jobs()) >= 300, timeout_s=60)
    proc.send_signal(signal.SIGINT)
    out, error = proc.communicate(timeout=60)
    accepted = int(main_db.zcard(keys.jobs()))
    assert proc.returncode == 130
    assert "Traceback" not in error and error.count("\n") == 1, error
    assert error.startswith(f"error: interrupted after submitting {accepted} of 20000 problems")
    assert 300 <= accepted < 20_000
    # every accepted job is printed, and each has its message: no record without one
    assert set(out.split()) == set(main_db.zrange(keys.jobs(), 0, -1))
    assert _queued(broker_db, settings) == set(main_db.zrange(keys.jobs(), 0, -1))


@pytest.mark.parametrize("how", ["ctrl-c", "timeout"])
def test_a_wait_cut_short_still_names_the_job(settings: Settings, main_db: redis.Redis,
                                              keys: KeySpace, how: str) -> None:
    proc = _start(settings, "submit", "solve x = 1", "--wait", "--timeout", "1.5")
    if how == "ctrl-c":
        wait_until(lambda: main_db.zcard(keys.jobs()) == 1, timeout_s=30)
        proc.send_signal(signal.SIGINT)
    out, error = proc.communicate(timeout=60)
    [job_id] = main_db.zrange(keys.jobs(), 0, -1)
    assert proc.returncode == (130 if how == "ctrl-c" else 1)
    assert "Traceback" not in error and error.count("\n") == 1, error
    assert job_id in out   # the table of what was accepted, as it stands
    assert "pending" in out
