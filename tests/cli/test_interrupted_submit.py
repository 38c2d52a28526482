"""Ctrl-C and timeouts of `jobtrail submit`: no traceback, nothing half-written, every
accepted job named.

Real CLI subprocesses on real Redis, interrupted with a real SIGINT; no worker
runs, so every accepted job stays pending with its message in the queue.
"""

from __future__ import annotations

import array
import fcntl
import re
import signal
import subprocess
import sys
import termios
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_halfway_through_a_file_names_what_was_accepted(
        settings: Settings, main_db: redis.Redis, broker_db: redis.Redis, keys: KeySpace,
        tmp_path: Path, sig: signal.Signals) -> None:
    listing = tmp_path / "problems.txt"
    listing.write_text("".join(f"solve x + {i} = 0\n" for i in range(20_000)))
    proc = _start(settings, "submit", "--file", str(listing))
    wait_until(lambda: main_db.zcard(keys.jobs()) >= 300, timeout_s=60)
    proc.send_signal(sig)
    out, error = proc.communicate(timeout=60)
    accepted = int(main_db.zcard(keys.jobs()))
    assert proc.returncode == 128 + sig  # 130 for SIGINT, 143 for SIGTERM
    assert "Traceback" not in error and error.count("\n") == 1, error
    assert error.startswith(f"error: interrupted after submitting {accepted} of 20000 problems")
    assert 300 <= accepted < 20_000
    assert accepted % 96 == 0  # whole chunks: 3 batch messages of 32 (README)
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


def _file_of(tmp_path: Path, count: int) -> Path:
    listing = tmp_path / "problems.txt"
    listing.write_text("".join(f"solve x + {i} = 0\n" for i in range(count)))
    return listing


def _printing(proc: subprocess.Popen[str]) -> bool:
    """Whether the command has begun to print to its stdout pipe (nobody reads it yet: 5,000
    ids are some 185 kB, a Linux pipe holds 64 KiB, so the command cannot finish printing)."""
    assert proc.stdout is not None
    waiting = array.array("i", [0])
    fcntl.ioctl(proc.stdout.fileno(), termios.FIONREAD, waiting)
    return waiting[0] > 0


def _in_order(main_db: redis.Redis, keys: KeySpace) -> list[str]:
    """Every job id in the main DB in the file's order ("solve x + I = 0" is line I + 1)."""
    ids = list(main_db.zrange(keys.jobs(), 0, -1))
    with main_db.pipeline() as pipe:
        for job_id in ids:
            pipe.hget(keys.job(job_id), "problem")
        problems = pipe.execute()
    return [job_id for _, job_id in sorted(
        (int(problem.split()[3]), job_id) for job_id, problem in zip(ids, problems, strict=True))]


def _saved_ids(error: str) -> list[str]:
    """The ids in the file the stderr line names ("... the other K ids are in PATH")."""
    match = re.search(r"the other (\d+) ids are in (\S+)$", error.strip())
    assert match, error
    ids = Path(match.group(2)).read_text().split()
    assert len(ids) == int(match.group(1))
    return ids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_ids_print_still_prints_every_id(
        settings: Settings, main_db: redis.Redis, keys: KeySpace, tmp_path: Path,
        sig: signal.Signals) -> None:
    # Given a submit of 5,000 problems that has begun to print their ids (all accepted by then)
    proc = _start(settings, "submit", "--file", str(_file_of(tmp_path, 5000)))
    wait_until(lambda: _printing(proc), timeout_s=120)
    assert main_db.zcard(keys.jobs()) == 5000
    # When the signal comes while it prints
    proc.send_signal(sig)
    out, error = proc.communicate(timeout=60)
    # Then every accepted id is printed, and the exit says it was interrupted
    assert proc.returncode == 128 + sig, error
    assert error == "error: interrupted; all 5000 problems were submitted and their ids printed\n"
    assert out.split() == _in_order(main_db, keys)


def test_a_second_signal_while_stdout_is_blocked_saves_the_ids_not_printed(
        settings: Settings, main_db: redis.Redis, keys: KeySpace, tmp_path: Path) -> None:
    # Given a submit blocked writing its ids to a pipe nobody reads
    proc = _start(settings, "submit", "--file", str(_file_of(tmp_path, 5000)))
    wait_until(lambda: _printing(proc), timeout_s=120)
    # When Ctrl-C, then SIGTERM come (the second one leaves the write that waits)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)  # nobody reads until it has ended
    out, error = proc.communicate(timeout=60)
    # Then stderr counts the ids printed, and a file holds exactly the others
    printed = out.split()
    assert proc.returncode == 130, error
    assert error.count("\n") == 1 and "Traceback" not in error, error
    assert error.startswith(f"error: interrupted while printing: 5000 jobs were accepted and "
                            f"will run, {len(printed)} ids printed; ")
    assert printed + _saved_ids(error) == _in_order(main_db, keys)


def test_a_closed_pipe_counts_the_ids_printed_and_saves_the_others(
        settings: Settings, main_db: redis.Redis, keys: KeySpace, tmp_path: Path) -> None:
    # Given a submit writing its ids to a pipe (as `| head -1` would)
    proc = _start(settings, "submit", "--file", str(_file_of(tmp_path, 5000)))
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().strip()
    # When the reader goes away after one line (the pipe drops what it held unread)
    proc.stdout.close()
    error = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=60)
    # Then one line counts what was accepted and written, and every id is saved: the ones
    # written after the line the reader read were dropped with the pipe
    match = re.fullmatch(r"error: stdout was closed \(broken pipe\): 5000 jobs were accepted "
                         r"and will run, (\d+) ids written before it closed, not all of them "
                         r"read; all 5000 ids are in (\S+)\n", error)
    assert match, error
    assert proc.returncode == 1
    every = _in_order(main_db, keys)
    assert every[0] == first and int(match.group(1)) >= 1
    assert Path(match.group(2)).read_text().split() == every
