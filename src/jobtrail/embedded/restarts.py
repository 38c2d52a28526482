"""Unexpected stops of the embedded server: a clean stop told from a crash, each restart recorded.

A clean stop (`jobtrail server stop`, EmbeddedRedis.stop) writes `stopped.json`
naming the pid it stopped. A `server.json` whose pid is gone and is not the
one `stopped.json` names is a crash (kill -9, OOM killer, reboot): the command
that finds it starts the server again (ensure_server) and appends the event to
`restarts.json`, which `jobtrail doctor` and `jobtrail server status` read.
Files live in the server's data directory; a write that fails is not fatal.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jobtrail.clock import now_s

__all__ = ["RESTART_RETENTION_S", "Restart", "crashed_pid", "format_utc", "last_save",
           "note_clean_stop", "recent_restarts", "record_restart"]

#: How long a recorded restart is reported (doctor, server status), seconds.
RESTART_RETENTION_S = 24 * 3600.0
_STOPPED = "stopped.json"
_RESTARTS = "restarts.json"
_KEEP = 50  # events kept in restarts.json


@dataclass(frozen=True, slots=True)
class Restart:
    """One unexpected stop found and repaired; times are epoch seconds.

    Attributes:
        old_pid: The pid `server.json` recorded, found dead.
        found_at: When a command found it dead (it stopped at or before then).
        restarted_at: When the new server was up.
        new_pid: The new server's pid.
        last_save_at: Newest modification time of its data files (AOF/RDB) when
            found, None without any: writes after it may be lost.
        found_by: What found it ("a jobtrail command", "jobtrail server start").
    """

    old_pid: int
    found_at: float
    restarted_at: float
    new_pid: int
    last_save_at: float | None
    found_by: str


def note_clean_stop(data_dir: Path, pid: int) -> None:
    """Record that jobtrail itself stopped the server *pid* of *data_dir* (not a crash)."""
    with contextlib.suppress(OSError):
        (Path(data_dir) / _STOPPED).write_text(json.dumps({"pid": pid, "at": now_s()}))


def crashed_pid(data_dir: Path, recorded_pid: int | None) -> int | None:
    """Return *recorded_pid* (the dead pid of `server.json`) unless jobtrail stopped it cleanly.

    Call only when the recorded server is not running. None without a record.
    """
    if recorded_pid is None:
        return None
    try:
        stopped = int(json.loads((Path(data_dir) / _STOPPED).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        stopped = None
    return None if stopped == recorded_pid else recorded_pid


def last_save(data_dir: Path) -> float | None:
    """Return the newest modification time of *data_dir*'s AOF/RDB files (epoch s), None if none."""
    times = [p.stat().st_mtime for pattern in ("*.rdb", "*.aof", "appendonlydir/*")
             for p in Path(data_dir).glob(pattern) if p.is_file()]
    return max(times, default=None)


def record_restart(data_dir: Path, old_pid: int, new_pid: int, found_at: float,
                   last_save_at: float | None, found_by: str) -> Restart:
    """Append the restart of *data_dir*'s server after its pid *old_pid* died; return it.

    *last_save_at* is last_save() read before the new server started.
    """
    event = Restart(old_pid, found_at, now_s(), new_pid, last_save_at, found_by)
    events = [asdict(e) for e in _read(data_dir)][-(_KEEP - 1):] + [asdict(event)]
    with contextlib.suppress(OSError):
        (Path(data_dir) / _RESTARTS).write_text(json.dumps(events))
    return event


def _read(data_dir: Path) -> list[Restart]:
    try:
        return [Restart(**e) for e in json.loads((Path(data_dir) / _RESTARTS).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def recent_restarts(data_dir: Path, within_s: float = RESTART_RETENTION_S) -> list[Restart]:
    """Return the restarts of *data_dir*'s server found in the last *within_s* seconds.

    Oldest first; none past RESTART_RETENTION_S by default (24 h).
    """
    since = now_s() - within_s
    return [e for e in _read(data_dir) if e.found_at >= since]


def format_utc(at: float | None) -> str:
    """Return epoch seconds *at* as `YYYY-MM-DDTHH:MM:SSZ` ("never" for None)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if at is not None else "never"
