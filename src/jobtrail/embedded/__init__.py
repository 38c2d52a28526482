"""The embedded Redis: a real redis-server that jobtrail starts, stops and reuses itself.

Used by the CLI when no Redis URL is configured and by the test fixtures. The
server binds to loopback only, keeps its data (AOF on by default) under its
data directory, and records its port and pid in `server.json` there so later
commands find and reuse it. At most one server runs on a data directory, and a
running one is never replaced, even when it refuses connections (record.py).

- process.py: EmbeddedRedis, the redis-server process (start/stop/kill/restart).
- record.py:  `server.json`, the data directory's lock, PING/INFO probes.
- here:       ensure_server/stop_server (serialized by `launch.lock`) and
              resolve_settings, what the CLI, the API and the worker call.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from jobtrail.clock import monotonic_s, now_s
from jobtrail.config import Settings
from jobtrail.embedded.process import TERM_REPEAT_S, EmbeddedRedis, find_redis_server, free_port
from jobtrail.embedded.record import (
    DYING_GRACE_S,
    ClientUsage,
    ServerInfo,
    check_serving,
    client_usage,
    data_dir_in_use,
    exits_within,
    no_reply,
    pid_alive,
    read_server_info,
    recorded_pid,
    recorded_port,
)
from jobtrail.embedded.restarts import (
    Restart,
    crashed_pid,
    last_save,
    note_clean_stop,
    recent_restarts,
    record_restart,
)
from jobtrail.errors import ConfigError, EmbeddedRedisError, EmbeddedRedisRefusedError

__all__ = [
    "BROKER_DB",
    "MAIN_DB",
    "RESULTS_DB",
    "ClientUsage",
    "EmbeddedRedis",
    "Restart",
    "ServerInfo",
    "check_embedded_allowed",
    "check_serving",
    "client_usage",
    "data_dir_in_use",
    "ensure_server",
    "find_redis_server",
    "free_port",
    "read_server_info",
    "recent_restarts",
    "redis_data_dir",
    "resolve_settings",
    "stop_server",
]

logger = logging.getLogger(__name__)

MAIN_DB, BROKER_DB, RESULTS_DB = 10, 11, 12


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(data_dir / "launch.lock", "w")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot use {data_dir} for Redis data: {exc}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_server(data_dir: Path, found_by: str = "a jobtrail command"
                  ) -> tuple[ServerInfo, bool]:
    """Return the live embedded server of *data_dir*, starting it if needed.

    Concurrent callers are serialized by a file lock, so two commands started
    together share one server; a running server is never replaced, even when
    it refuses connections. A recorded server found dead that jobtrail did not
    stop (a crash) is started again with one warning logged, and the restart
    is recorded (restarts.py; *found_by* says which command found it).

    Returns:
        (info, started): started is True when this call launched it.

    Raises:
        EmbeddedRedisRefusedError: The server runs but refuses connections.
        EmbeddedRedisError: It could not be started (the data directory is held
            by a redis-server jobtrail cannot identify, the binary is missing...).
    """
    with _locked(Path(data_dir)):
        info = read_server_info(data_dir)
        if info is not None:
            try:
                check_serving(info)
                return info, False
            except EmbeddedRedisRefusedError as exc:
                # no reply at all may be a server that is being killed: give it a moment
                if not no_reply(exc) or not exits_within(info, Path(data_dir), DYING_GRACE_S):
                    raise
        crashed = crashed_pid(Path(data_dir), recorded_pid(Path(data_dir)))
        found_at, saved = now_s(), last_save(Path(data_dir))
        info = _start(Path(data_dir))
        if crashed is not None:
            record_restart(Path(data_dir), crashed, info.pid, found_at, saved, found_by)
            logger.warning(
                "the embedded Redis server had stopped (pid %s, not stopped by jobtrail); "
                "started again: jobs and messages since its last save may be lost; "
                "see jobtrail doctor", crashed)
        return info, True


def _start(data_dir: Path) -> ServerInfo:
    # come back on the previous port, so workers and URLs from before still work
    previous = recorded_port(data_dir)
    if previous is not None:
        try:
            return EmbeddedRedis(data_dir, port=previous).start(detach=True)
        except EmbeddedRedisError:
            logger.info("previous port taken, picking another port=%s", previous)
    return EmbeddedRedis(data_dir).start(detach=True)


def stop_server(data_dir: Path, timeout_s: float = 10.0) -> ServerInfo | None:
    """Shut down the embedded server of *data_dir* (AOF flushed); None if none ran.

    Works on a server that refuses connections too: it is told by signal.
    Returns once the process is gone and the data directory's lock is free.

    Raises:
        EmbeddedRedisError: It did not exit within *timeout_s* seconds.
    """
    with _locked(Path(data_dir)):
        info = read_server_info(data_dir)
        if info is None:
            return None
        deadline = monotonic_s() + timeout_s
        term_at = 0.0
        while pid_alive(info.pid) or data_dir_in_use(Path(data_dir)):
            now = monotonic_s()
            if now > deadline:
                raise EmbeddedRedisError(f"redis-server pid {info.pid} did not stop")
            if now >= term_at and pid_alive(info.pid):  # repeated: see EmbeddedRedis.stop
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGTERM)
                term_at = now + TERM_REPEAT_S
            time.sleep(0.05)
        note_clean_stop(Path(data_dir), info.pid)
        return info


def redis_data_dir(settings: Settings) -> Path:
    """Return the embedded server's data directory under the state directory."""
    return settings.state_dir / "redis"


def check_embedded_allowed(settings: Settings, *, explicit: bool = False) -> None:
    """Refuse an embedded server beside external ones, or on a host that forbids it.

    All or nothing: with every Redis URL unset the embedded server serves all
    three DBs; with some set, the unset ones are a mistake (a private server
    beside the external ones is a split brain), named in the error.
    `embedded=never` refuses the embedded server altogether.

    Args:
        settings: Unresolved settings.
        explicit: The command asked for the embedded server itself (`server start`).

    Raises:
        ConfigError: Some URLs are set and others not, or JOBTRAIL_EMBEDDED=never.
    """
    missing = settings.missing_urls
    if missing and len(missing) < 3 and not explicit:
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} unset while the other "
            "Redis URLs are set: set every URL, or none to use the embedded server",
            setting=missing[0])
    if settings.embedded == "never" and (missing or explicit):
        raise ConfigError(
            "JOBTRAIL_EMBEDDED=never: no embedded Redis is started; set JOBTRAIL_MAIN_URL, "
            "JOBTRAIL_BROKER_URL and JOBTRAIL_RESULTS_URL", setting="JOBTRAIL_EMBEDDED")


def resolve_settings(settings: Settings) -> Settings:
    """Return *settings* with every Redis URL pointed at the embedded server when none is set.

    Starts the embedded server when the URLs are unset and it is not running.
    Settings with all three URLs set are returned unchanged, without I/O.

    Raises:
        ConfigError: Some URLs are set and others not, or JOBTRAIL_EMBEDDED=never
            with none set (check_embedded_allowed).
        EmbeddedRedisRefusedError: The embedded server runs but refuses connections.
        EmbeddedRedisError: The embedded server could not be started.
    """
    if not settings.uses_embedded:
        return settings
    check_embedded_allowed(settings)
    info, _ = ensure_server(redis_data_dir(settings))
    return settings.model_copy(update={
        "main_url": settings.main_url or info.url(MAIN_DB),
        "broker_url": settings.broker_url or info.url(BROKER_DB),
        "results_url": settings.results_url or info.url(RESULTS_DB),
    })
