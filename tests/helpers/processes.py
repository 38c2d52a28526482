"""WorkerProcess: a real `jobtrail worker` (Celery prefork) in a subprocess, for crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from jobtrail.config import Settings, child_environ


def settings_env(settings: Settings) -> dict[str, str]:
    """Return os.environ with the JOBTRAIL_* variables carrying *settings* (config's own)."""
    return child_environ(settings)


class WorkerProcess:
    """A `python -m jobtrail worker` process; its output goes to *log_path*."""

    def __init__(self, settings: Settings, log_path: Path, *, concurrency: int = 1,
                 hostname: str = "w1", celery_args: tuple[str, ...] = (
                     "--without-mingle", "--without-gossip")) -> None:
        self.log_path = log_path
        self.hostname = hostname
        cmd = [sys.executable, "-m", "jobtrail", "worker", "--concurrency", str(concurrency),
               "--hostname", f"{hostname}@%h", "--loglevel", "INFO", *celery_args]
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop() or discard()
        self.proc = subprocess.Popen(cmd, env=settings_env(settings), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def pool_children(self) -> list[psutil.Process]:
        """Return the prefork pool processes."""
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send *sig* to the main worker process and wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def discard(self) -> None:
        """Kill the whole process group at once (SIGKILL) and wait: a test's teardown.

        A warm shutdown costs about 3.5 s of billiard's own sleeps (a pool process
        sleeps 1 s before it exits, the pool's handlers 0.8 s each) and asserts
        nothing once the test is over; the next test flushes the server.
        """
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then kill the whole process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait()
        self._log.close()

    def log(self) -> str:
        """Return what the worker printed so far."""
        return self.log_path.read_text(errors="replace")
