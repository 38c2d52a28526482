"""Worker heartbeats: a thread in each worker's main process writes `worker:<name>`.

Invariant: the heartbeat lists the jobs the node is running right now (Celery's
active requests), so trace can tell a job that is being worked on from one
whose worker is gone; and it carries when the node's consumer last polled the
broker (worker.liveness), so a node whose heartbeat thread beats while its
consumer is blocked reads as stuck, not alive. `held` lists the task ids of
every message the node holds (a batch message's own id for a batch), so the
dead-worker sweep never takes one from it; the job of a batch that runs is
named by its record (`jobs` leaves batch ids out: they are not job ids).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from celery.worker import state as worker_state
from prometheus_client import start_http_server

from jobtrail.clock import now_s
from jobtrail.connections import connect
from jobtrail.errors import JobtrailError
from jobtrail.keys import KeySpace
from jobtrail.metrics import NodeCollector, process_registry
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.store.node_stats import NodeStatsStore
from jobtrail.worker import node_metrics  # noqa: F401  (connects its task_failure handler)
from jobtrail.worker.app import SETTINGS_KEY, TASK_SOLVE_BATCH
from jobtrail.worker.fetch import fetches_in_flight
from jobtrail.worker.liveness import PollClock, poll_clock
from jobtrail.worker.recovery import DeadWorkerSweep

__all__ = ["HeartbeatThread"]

logger = logging.getLogger(__name__)


class HeartbeatThread(threading.Thread):
    """Writes the node's heartbeat every *interval_s* seconds until stopped.

    Args:
        store: Heartbeat store on the main DB.
        name: The node name.
        interval_s: Seconds between heartbeats.
        clock: When the consumer last polled the broker.
        stuck_after_s: Poll age in seconds past which readers show the node stuck.
        queue: The queue the node consumes.
        after_beat: Called after each heartbeat that was written (the dead-worker
            sweep, worker.recovery); its errors are logged, never raised.
    """

    def __init__(self, store: HeartbeatStore, name: str, interval_s: float, *,
                 clock: PollClock | None = None, stuck_after_s: float | None = None,
                 queue: str | None = None,
                 after_beat: Callable[[], object] | None = None) -> None:
        super().__init__(name="jobtrail-heartbeat", daemon=True)
        self.store = store
        self.node = name
        self.interval_s = interval_s
        self.clock = clock
        self.stuck_after_s = stuck_after_s
        self.queue = queue
        self.started_at = now_s()
        self.stopped = threading.Event()
        self.after_beat = after_beat
        self._sweeping = threading.Lock()

    def beat(self) -> bool:
        """Write one heartbeat now; True if written (errors are logged, never raised)."""
        # fetches in flight first: a reply read meanwhile puts its message in `reserved`,
        # read after, so a message is in one list or the other, never in neither
        fetching = fetches_in_flight()
        active = list(worker_state.active_requests)
        # a batch request's id is its message's, not a job's: the job of it that runs is
        # named by its record (the `workers` command and trace read it there)
        jobs = sorted(str(r.id) for r in active if r.name != TASK_SOLVE_BATCH)
        held = sorted({str(r.id) for r in (*active, *list(worker_state.reserved_requests))})
        try:
            self.store.beat(self.node, pid=os.getpid(), started_at=self.started_at, jobs=jobs,
                            interval_s=self.interval_s,
                            polled_at=self.clock.polled_at if self.clock else None,
                            stuck_after_s=self.stuck_after_s, queue=self.queue, held=held,
                            fetching=fetching)
        except JobtrailError as exc:  # unreachable, or a refused write (OOM): beat again later
            logger.warning("heartbeat not written worker=%s reason=%s", self.node, exc)
            return False
        return True

    def _sweep(self) -> None:
        try:
            if self.after_beat is not None:
                self.after_beat()
        except Exception:  # noqa: BLE001 - the sweep must never stop the worker
            logger.exception("dead-worker sweep failed worker=%s", self.node)
        finally:
            self._sweeping.release()

    def run(self) -> None:
        """Beat until stop() is called; after each beat written, start after_beat.

        after_beat runs in a thread of its own, at most one at a time, so a
        broker that does not answer it never delays the heartbeat (the node
        would read dead while it lives).
        """
        while not self.stopped.is_set():
            if self.beat() and self.after_beat is not None \
                    and self._sweeping.acquire(blocking=False):
                threading.Thread(target=self._sweep, name="jobtrail-sweep", daemon=True).start()
            self.stopped.wait(self.interval_s)

    def stop(self) -> None:
        """Stop beating and record a clean shutdown."""
        self.stopped.set()
        try:
            self.store.stop(self.node)
        except JobtrailError as exc:
            logger.warning("worker stop not recorded worker=%s reason=%s", self.node, exc)


_thread: HeartbeatThread | None = None


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Start the heartbeat thread when the worker is ready (Celery's worker_ready)."""
    global _thread
    conf = sender.app.conf
    if SETTINGS_KEY not in conf:
        return
    settings = conf[SETTINGS_KEY]
    main_url, _, _ = settings.require_urls()
    store = HeartbeatStore(connect(main_url, settings=settings),
                           KeySpace(settings.key_prefix, settings.queue))
    sweep = None
    if settings.recover_dead_workers:
        sweep = DeadWorkerSweep.for_worker(sender.app, settings, node=str(sender.hostname))
    _thread = HeartbeatThread(store, str(sender.hostname), settings.heartbeat_interval_s,
                              clock=poll_clock, stuck_after_s=settings.worker_stuck_after_s,
                              queue=settings.queue, after_beat=sweep)
    _thread.start()
    if settings.worker_metrics_port:
        _serve_metrics(settings, str(sender.hostname))


def _serve_metrics(settings: Any, node: str) -> None:
    """Export this node's own metrics (prometheus_client's HTTP server).

    Only what this node alone knows: its jobs (store.node_stats) and its
    process; the deployment-wide figures come from the API's /metrics.
    """
    main_url, _, _ = settings.require_urls()
    stats = NodeStatsStore(connect(main_url, settings=settings),
                           KeySpace(settings.key_prefix, settings.queue))
    registry = process_registry()
    registry.register(NodeCollector(node, lambda: stats.read(node),
                                    lambda: len(worker_state.active_requests)))
    host = settings.worker_metrics_host
    try:
        start_http_server(settings.worker_metrics_port, addr=host, registry=registry)
    except OSError as exc:  # one line: the worker runs on, its jobs are not at stake
        logger.error("worker metrics not served: cannot listen on %s:%s: %s", host,
                     settings.worker_metrics_port, exc.strerror or exc)
        return
    logger.info("worker metrics on %s port=%s", host, settings.worker_metrics_port)


@worker_shutdown.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _stop_heartbeat(**_: Any) -> None:
    """Remove the heartbeat on a clean shutdown (Celery's worker_shutdown)."""
    if _thread is not None:
        _thread.stop()
