"""The launcher record of an embedded server: `server.json`, the data directory's lock, probes.

Invariant: at most one redis-server runs on a data directory. The launcher
takes an exclusive flock on `server.lock` in it and hands the locked file
descriptor to the redis-server process (pass_fds), so the lock lives exactly
as long as that process (and any AOF-rewrite child it forks); a second start
on the directory fails to take it. A recorded pid that is alive and is a
redis-server working in the directory means "running" whatever PING answers:
a server that refuses connections (maxclients, LOADING, a password) is
reported as such (EmbeddedRedisRefusedError), never replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobtrail.clock import monotonic_s
from jobtrail.errors import EmbeddedRedisError, EmbeddedRedisRefusedError

__all__ = [
    "ClientUsage",
    "ServerInfo",
    "check_serving",
    "claim_data_dir",
    "client_usage",
    "data_dir_in_use",
    "exits_within",
    "is_server_of",
    "no_reply",
    "pid_alive",
    "read_server_info",
    "recorded_pid",
    "recorded_port",
]

#: Lock file in the data directory, flocked by the redis-server that runs on it.
LOCK_FILE = "server.lock"
#: How long a start waits for the lock of a data directory whose recorded server is gone.
LOCK_GRACE_S = 2.0
#: How long a server that does not answer at all is watched for exiting (being killed).
DYING_GRACE_S = 1.0
#: Deadline of the PING/INFO that tells a serving embedded server from a refusing one.
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What `server.json` records of a running embedded server."""

    port: int
    pid: int
    data_dir: str
    binary: str

    def url(self, db: int = 0) -> str:
        """Return `redis://127.0.0.1:<port>/<db>`."""
        return f"redis://127.0.0.1:{self.port}/{db}"


def pid_alive(pid: int) -> bool:
    """Return True when *pid* runs; a zombie (exited, not yet reaped by init) does not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self/stat").exists()  # gone meanwhile, or no procfs
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


def claim_data_dir(data_dir: Path) -> int:
    """Return a descriptor of `server.lock` in *data_dir*, exclusively flocked.

    Raises:
        EmbeddedRedisError: Another process (a running redis-server) holds it.
    """
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot use {data_dir} for Redis data: {exc}") from exc
    deadline = monotonic_s() + LOCK_GRACE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            running = read_server_info(data_dir)
            # a killed server's threads release the lock a moment after its pid is a zombie
            if running is None and monotonic_s() < deadline:
                time.sleep(0.02)
                continue
        os.close(fd)
        holder = f" (pid {running.pid}, port {running.port})" if running else ""
        raise EmbeddedRedisError(
            f"the Redis data directory {data_dir} is in use by another redis-server{holder}; "
            "refusing to start a second server on it")


def data_dir_in_use(data_dir: Path) -> bool:
    """Return True when a process holds *data_dir*'s `server.lock` (a server runs on it)."""
    try:
        fd = os.open(Path(data_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the probe's own lock
    return False


def is_server_of(pid: int, data_dir: Path, binary: str | None = None) -> bool:
    """Return True when *pid* is alive and is a redis-server working in *data_dir*.

    redis-server rewrites its command line (proc title) but chdirs to its
    `--dir`, so /proc/<pid>/exe and /proc/<pid>/cwd identify it; a reused pid
    (another program, or a zombie) does not pass. Without procfs a live pid is
    all that can be told.
    """
    if not pid_alive(pid):
        return False
    proc = Path("/proc") / str(pid)
    if not Path("/proc/self/cwd").exists():
        return True
    try:
        exe = os.readlink(proc / "exe").removesuffix(" (deleted)")
        cwd = os.readlink(proc / "cwd")
    except OSError:  # gone, a zombie, or another user's process: not our server
        return False
    if Path(cwd) != Path(data_dir).resolve():
        return False
    if binary:
        return exe == os.path.realpath(binary)
    return Path(exe).name.startswith("redis-")  # Debian: redis-server -> redis-check-rdb


def _read_record(data_dir: Path) -> ServerInfo | None:
    try:
        raw = json.loads((Path(data_dir) / "server.json").read_text())
        return ServerInfo(int(raw["port"]), int(raw["pid"]), str(raw["data_dir"]),
                          str(raw["binary"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_server_info(data_dir: Path) -> ServerInfo | None:
    """Return the ServerInfo of the embedded server running on *data_dir*, or None.

    Running means the pid in `server.json` is alive and is a redis-server
    working in *data_dir*, whatever PING answers (check_serving() tells a
    serving server from a refusing one). A record whose pid is dead or reused
    is stale and reads as None.
    """
    info = _read_record(data_dir)
    if info is None or not is_server_of(info.pid, Path(data_dir), info.binary):
        return None
    return info


@dataclass(frozen=True, slots=True)
class ClientUsage:
    """Client connections of a server: in use (INFO clients) against CONFIG maxclients."""

    connected_clients: int
    maxclients: int | None  # None when CONFIG GET is refused


def _probe_client(info: ServerInfo) -> redis.Redis:
    # no retries: a refusal is the answer, and a hung server must cost PROBE_TIMEOUT_S once
    return redis.Redis(host="127.0.0.1", port=info.port, socket_timeout=PROBE_TIMEOUT_S,
                       socket_connect_timeout=PROBE_TIMEOUT_S, decode_responses=True,
                       retry=Retry(NoBackoff(), 0))


def _refused(info: ServerInfo, exc: redis.RedisError) -> EmbeddedRedisRefusedError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return EmbeddedRedisRefusedError(info.url(), info.pid, reason)


def no_reply(exc: BaseException) -> bool:
    """Return True when *exc* comes from the socket (refused, reset, timeout), not a reply."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def exits_within(info: ServerInfo, data_dir: Path, timeout_s: float) -> bool:
    """Return True when the server of *info* is gone within *timeout_s* seconds."""
    deadline = monotonic_s() + timeout_s
    while is_server_of(info.pid, data_dir, info.binary):
        if monotonic_s() > deadline:
            return False
        time.sleep(0.02)
    return True


def check_serving(info: ServerInfo) -> None:
    """PING the running server of *info*.

    Raises:
        EmbeddedRedisRefusedError: It runs but refuses: max number of clients
            reached, LOADING, a password error, no answer in PROBE_TIMEOUT_S.
    """
    client = _probe_client(info)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise _refused(info, exc) from exc
    finally:
        client.close()


def client_usage(info: ServerInfo) -> ClientUsage:
    """Return the running server's connected clients (this probe included) and maxclients.

    Raises:
        EmbeddedRedisRefusedError: It runs but refuses (see check_serving()).
    """
    client = _probe_client(info)
    try:
        connected = int(client.info("clients").get("connected_clients", 0))
        try:
            config = cast(dict[str, str], client.config_get("maxclients"))
            maxclients: int | None = int(config["maxclients"])
        except (redis.ResponseError, KeyError, ValueError):  # CONFIG renamed or refused
            maxclients = None
    except redis.RedisError as exc:
        raise _refused(info, exc) from exc
    finally:
        client.close()
    return ClientUsage(connected, maxclients)


def recorded_port(data_dir: Path) -> int | None:
    """Return the port `server.json` records, running or not (None without a record)."""
    info = _read_record(data_dir)
    return info.port if info else None


def recorded_pid(data_dir: Path) -> int | None:
    """Return the pid `server.json` records, running or not (None without a record)."""
    info = _read_record(data_dir)
    return info.pid if info else None
