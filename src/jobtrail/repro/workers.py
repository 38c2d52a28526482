"""RunWorker: a real `python -m jobtrail worker` process that the harness starts and may kill.

Invariant: a worker runs on exactly the settings it was given (its environment
carries them, whatever the parent's shell exported), writes its output to a
log file of the evidence directory, and is always stopped when the run ends:
SIGTERM (Celery's warm shutdown), then SIGKILL of its whole process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobtrail.clock import monotonic_s, now_s
from jobtrail.config import Settings, child_environ
from jobtrail.connections import connect
from jobtrail.errors import RedisUnavailableError, ReproError
from jobtrail.keys import KeySpace
from jobtrail.store.heartbeats import HeartbeatStore

__all__ = ["RunWorker"]

logger = logging.getLogger(__name__)


class RunWorker:
    """One Celery worker node (prefork pool, one process) in its own process group.

    Args:
        settings: Resolved settings the worker runs on.
        name: Node name before the `@`; the node is `<name>@<host>`.
        log_path: File receiving the worker's stdout and stderr.
        pace_s: When set, every solve of the worker first sleeps this long (seconds;
            repro/paced_worker.py), so a job's run time is the scenario's choice.
    """

    def __init__(self, settings: Settings, name: str, log_path: Path, *,
                 pace_s: float | None = None) -> None:
        self.settings = settings
        self.name = name
        self.log_path = log_path
        self.pace_s = pace_s
        self.started_at = now_s()
        self.killed_at: float | None = None
        program = ["jobtrail", "worker"] if pace_s is None else [
            "jobtrail.repro.paced_worker", f"{pace_s:g}"]
        cmd = [sys.executable, "-m", *program, "--concurrency", "1",
               "--hostname", f"{name}@%h", "--loglevel", "INFO",
               # a run's workers start at once and share no revoked ids: mingle's
               # 1 s inspect at startup would only delay the run
               "--without-mingle", "--without-gossip"]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=child_environ(settings), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        logger.info("repro worker started name=%s pid=%s", name, self.proc.pid)

    @property
    def pid(self) -> int:
        """Process id of the worker's main process."""
        return self.proc.pid

    def node(self) -> str | None:
        """Return the node name (`<name>@<host>`) once its heartbeat is written, else None."""
        main_url = self.settings.require_urls()[0]
        client = connect(main_url)
        try:
            store = HeartbeatStore(client, KeySpace(self.settings.key_prefix, self.settings.queue))
            for beat in store.list_workers():
                if beat.name.startswith(f"{self.name}@") and beat.alive:
                    return beat.name
        except RedisUnavailableError:
            return None
        finally:
            client.close()
        return None

    def wait_ready(self, timeout_s: float = 60.0) -> str:
        """Wait until the worker's heartbeat says it is ready; return its node name.

        Raises:
            ReproError: The worker exited or was not ready within *timeout_s* seconds.
        """
        deadline = monotonic_s() + timeout_s
        while True:
            node = self.node()
            if node is not None:
                return node
            if self.proc.poll() is not None:
                raise ReproError(f"worker {self.name} exited with status {self.proc.returncode} "
                                 f"before it was ready; see {self.log_path}")
            if monotonic_s() > deadline:
                raise ReproError(f"worker {self.name} was not ready after {timeout_s:g} s; "
                                 f"see {self.log_path}")
            time.sleep(0.1)

    def kill_group(self) -> float:
        """SIGKILL the worker's main and pool processes at once; return when (epoch s)."""
        self.killed_at = now_s()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        logger.info("repro worker killed name=%s pid=%s", self.name, self.proc.pid)
        return self.killed_at

    def stop(self, timeout_s: float = 15.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL whatever is left of the process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("repro worker did not stop in time name=%s", self.name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()
