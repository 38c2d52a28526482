"""When the worker's consumer last polled the broker: a clock its event loop advances.

Invariant: the clock advances only on the consumer's own thread, from a
timer of its event loop (kombu's hub), and only while the consumer is not
waiting on an overdue BRPOP reply. So it stops when the loop blocks (a
command waiting on a dead connection) and when the consumer waits on a
connection gone half-open, while the heartbeat thread, which reports it,
keeps beating. `jobtrail workers` shows such a worker `stuck`.
"""

from __future__ import annotations

import logging
import threading
from time import monotonic
from typing import Any

from celery import bootsteps

from jobtrail.clock import now_s

__all__ = ["OVERDUE_GRACE_S", "TICK_S", "BrokerPollStep", "PollClock", "poll_clock"]

logger = logging.getLogger(__name__)

#: Seconds between the event loop's ticks of the clock.
TICK_S = 1.0
#: A BRPOP reply later than kombu's brpop timeout plus this many seconds is overdue.
OVERDUE_GRACE_S = 2.0


class PollClock:
    """The time (epoch seconds) of the consumer's last poll; None before the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._polled_at: float | None = None

    @property
    def polled_at(self) -> float | None:
        """When the consumer last polled the broker, epoch seconds (None: not yet)."""
        with self._lock:
            return self._polled_at

    def tick(self, at: float) -> None:
        """Record a poll at *at* (epoch seconds)."""
        with self._lock:
            self._polled_at = at


#: The clock of this worker process (the consumer lives in the main process).
poll_clock = PollClock()


def brpop_overdue(channel: Any, now_monotonic_s: float) -> bool:
    """True when *channel* (kombu's redis Channel) waits on a BRPOP reply past its due time.

    kombu sends BRPOP with a server-side timeout (`brpop_timeout`), so a live
    server always answers within it; the send time is kombu's
    `_brpop_sent_at` (kombu >= 5.7; without it nothing is overdue).
    """
    sent = getattr(channel, "_brpop_sent_at", None)
    if not getattr(channel, "_in_poll", None) or sent is None:
        return False
    due_s = float(getattr(channel, "brpop_timeout", 1) or 1) + OVERDUE_GRACE_S
    return now_monotonic_s - float(sent) > due_s


class BrokerPollStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery ships no types
    """Consumer bootstep: tick poll_clock every TICK_S seconds from the event loop.

    Started after the task consumer (so a consumer that cannot connect never
    ticks) and stopped with it, so a consumer restarting its connection reads
    as not polling until it consumes again.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        """Schedule the tick on the event loop (no hub, as in the solo pool: no clock)."""
        hub = getattr(parent, "hub", None)
        if hub is None:
            logger.info("no event loop: the broker poll clock is off")
            return
        self.tref = hub.call_repeatedly(TICK_S, self._tick, parent)
        self._tick(parent)

    def stop(self, parent: Any) -> None:
        """Cancel the tick."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def shutdown(self, parent: Any) -> None:
        """Cancel the tick on shutdown too."""
        self.stop(parent)

    @staticmethod
    def _tick(parent: Any) -> None:
        consumer = getattr(parent, "task_consumer", None)
        channel = getattr(consumer, "channel", None)
        if brpop_overdue(channel, monotonic()):
            return
        poll_clock.tick(now_s())
