"""RunContext: what a scenario may use during a reproduction run, and the monitor it runs under.

Invariant: everything a scenario observes goes into the dict it returns (the
run's recording); a scenario never formats a claim. The report is computed
later from the recording and the monitor's files (repro/evidence.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from jobtrail.clock import monotonic_s, now_s
from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.errors import ReproError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.monitor.snapshot import Snapshot, take_snapshot
from jobtrail.monitor.watch import WatchOptions, WatchProgress, WatchTarget, watch
from jobtrail.repro.workers import RunWorker
from jobtrail.store import EventLog, JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.trace import TraceSources
from jobtrail.trace.gather import archive_lookup
from jobtrail.worker.app import create_celery_app

__all__ = ["DB_LABELS", "MonitorThread", "Progress", "RunContext", "db_state"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The three DBs a run watches, in report order.
DB_LABELS = ("main", "broker", "results")


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress line of a run: the step (`seed`, `processing`, `monitor`...) and what."""

    step: str
    detail: str


ProgressFn = Callable[[Progress], None]


class MonitorThread:
    """monitor.watch() on a thread of its own, until stop(); counts the rounds taken."""

    def __init__(self, targets: list[WatchTarget], options: WatchOptions,
                 on_progress: ProgressFn) -> None:
        self.rounds = 0
        self.started = monotonic_s()
        self.summary: dict[str, Any] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._on_progress = on_progress
        self._thread = threading.Thread(target=self._run, args=(targets, options),
                                        name="repro-monitor", daemon=True)
        self._thread.start()

    def _progress(self, p: WatchProgress) -> None:
        self.rounds = p.rounds
        keys = ", ".join(f"{db} {n}" for db, n in p.keys.items())
        self._on_progress(Progress("monitor", f"round {p.rounds}: keys {keys}"))

    def _run(self, targets: list[WatchTarget], options: WatchOptions) -> None:
        try:
            self.summary = watch(targets, options, on_progress=self._progress, stop=self._stop)
        except BaseException as exc:  # reported by wait_rounds() and stop()
            self.error = exc
            logger.error("repro monitor failed reason=%s", exc)

    def wait_rounds(self, n: int, timeout_s: float) -> None:
        """Wait until *n* more rounds are taken.

        Raises:
            ReproError: The monitor failed or took no round within *timeout_s* seconds.
        """
        target = self.rounds + n
        deadline = monotonic_s() + timeout_s
        while self.rounds < target:
            if self.error is not None or not self._thread.is_alive():
                raise ReproError(f"the monitor stopped: {self.error}")
            if monotonic_s() > deadline:
                raise ReproError(f"the monitor took no round in {timeout_s:g} s")
            time.sleep(0.02)

    def stop(self) -> dict[str, Any]:
        """End the run (after the current snapshot) and return watch()'s summary."""
        self._stop.set()
        self._thread.join(timeout=60)
        return self.summary


def db_state(clients: dict[str, redis.Redis], keys: KeySpace) -> dict[str, Any]:
    """Return, per DB: key count, counts by kind, keys with a TTL by kind, and the snapshot time.

    Raises:
        RedisUnavailableError: A DB could not be read.
    """
    state: dict[str, Any] = {}
    for label, client in clients.items():
        snap: Snapshot = take_snapshot(client, db=label)
        with_ttl: dict[str, int] = {}
        for key in snap.entries:
            if snap.ttl_s(key) is not None:
                kind = keys.classify_key(key).value
                with_ttl[kind] = with_ttl.get(kind, 0) + 1
        state[label] = {"taken_at": snap.taken_at, "keys": len(snap.entries),
                        "by_kind": snap.counts_by_kind(keys), "with_ttl_by_kind": with_ttl,
                        "used_memory": snap.info.used_memory}
    return state


@dataclass
class RunContext:
    """The services of one run, on its own isolated DBs.

    Attributes:
        settings: Resolved settings of the run (URLs set, state in the evidence dir).
        out_dir: The evidence directory.
        clients: Redis clients by DB label (main, broker, results).
        keys: Key space of the main DB.
        store: Job store on the main DB.
        events: Lifecycle events reader.
        service: Submits jobs (the Celery app of *settings*).
        archive: The purge archive of the run.
        private: The run's private redis-server, None on the env file's URLs.
        monitor: The monitor thread.
        interval_s: The monitor's interval, seconds.
        seeded: Ids of the jobs seeded at the start, in submission order.
        on_progress: Progress callback.
        workers: Workers started so far, by name.
    """

    settings: Settings
    out_dir: Path
    clients: dict[str, redis.Redis]
    keys: KeySpace
    store: JobStore
    events: EventLog
    service: JobService
    archive: ArchiveStore
    private: EmbeddedRedis | None
    monitor: MonitorThread
    interval_s: float
    seeded: list[str] = field(default_factory=list)
    on_progress: ProgressFn = lambda _p: None
    workers: dict[str, RunWorker] = field(default_factory=dict)
    wait_timeout_s: float = 120.0

    def say(self, step: str, detail: str) -> None:
        """Report progress."""
        self.on_progress(Progress(step, detail))

    def settle(self) -> None:
        """Wait for two more monitor rounds, so a full round starts after what just happened.

        Raises:
            ReproError: The monitor stopped.
        """
        self.monitor.wait_rounds(2, timeout_s=4 * self.interval_s + 30)

    def wait_for(self, predicate: Callable[[], T], what: str, timeout_s: float | None = None
                 ) -> T:
        """Poll *predicate* every 50 ms; return its first truthy value.

        Raises:
            ReproError: Not true within *timeout_s* seconds (default: wait_timeout_s).
        """
        limit = self.wait_timeout_s if timeout_s is None else timeout_s
        deadline = monotonic_s() + limit
        while True:
            value = predicate()
            if value:
                return value
            if monotonic_s() > deadline:
                raise ReproError(f"timed out after {limit:g} s waiting for {what}")
            time.sleep(0.05)

    def start_worker(self, name: str, *, pace_s: float | None = None,
                     **overrides: Any) -> tuple[RunWorker, str]:
        """Start a worker on the run's settings plus *overrides*; wait until it is ready.

        With *pace_s*, each of its solves first sleeps that long (RunWorker).

        Returns:
            The worker and its node name.

        Raises:
            ReproError: It did not become ready.
        """
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        worker = RunWorker(settings, name, self.out_dir / "workers" / f"{name}.log",
                           pace_s=pace_s)
        self.workers[name] = worker
        self.say("worker", f"starting {name}")
        return worker, worker.wait_ready(timeout_s=self.wait_timeout_s)

    def stop_workers(self) -> None:
        """Warm-stop every worker still running."""
        for worker in self.workers.values():
            worker.stop()

    def service_for(self, **overrides: Any) -> JobService:
        """Return a JobService whose Celery app runs on the run's settings plus *overrides*."""
        return JobService(self.store, create_celery_app(self.settings.model_copy(update=overrides)))

    def trace_sources(self) -> TraceSources:
        """Return the stores `trace` reads, the run's archive included."""
        return TraceSources(main=self.clients["main"], broker=self.clients["broker"],
                            results=self.clients["results"], keys=self.keys,
                            visibility_timeout_s=self.settings.visibility_timeout_s,
                            result_expires_s=self.settings.result_expires_s,
                            gone_after_s=self.settings.gone_after_s,
                            find_archived=archive_lookup(lambda: self.archive))

    def now(self) -> float:
        """Return the clock (epoch seconds)."""
        return now_s()
