"""The worker's task events, published a few at a time instead of one PUBLISH per event.

Celery's consumer buffers task events (task-received, task-started,
task-succeeded...) and schedules a flush for the next turn of its event loop
after each one (`call_soon`): on a busy worker nearly every event is its own
synchronous PUBLISH, the largest single cost of the worker's main process
per job. EventBatchStep schedules that flush EVENT_FLUSH_DELAY_S later
instead, once for all the events buffered meanwhile (Celery still publishes
at once when its buffer holds `buffer_limit`, 24, events). Every event is
still published, with the time stamp of its moment, in order, as a
`task.multi` batch as before; a receiver (Flower, `celery events`) sees it
at most EVENT_FLUSH_DELAY_S later. The step flushes what is buffered when the
consumer stops.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

__all__ = ["EVENT_FLUSH_DELAY_S", "EventBatchStep"]

logger = logging.getLogger(__name__)

#: Seconds a buffered task event waits at most before it is published.
EVENT_FLUSH_DELAY_S = 0.02


class EventBatchStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery ships no types
    """Consumer bootstep: flush the buffered task events EVENT_FLUSH_DELAY_S after the first.

    Started after Celery's Events step, whose dispatcher it tunes (each
    reconnection makes a new dispatcher, and starts this step again).
    """

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        """Replace the dispatcher's flush-on-next-turn by a flush after the delay."""
        hub, dispatcher = getattr(parent, "hub", None), getattr(parent, "event_dispatcher", None)
        if hub is None or dispatcher is None or dispatcher.on_send_buffered is None:
            return  # no event loop (solo, threads pools): Celery publishes each event at once

        def flush() -> None:
            self.tref = None
            parent._flush_events()

        def on_send_buffered() -> None:
            if self.tref is None:
                self.tref = hub.call_later(EVENT_FLUSH_DELAY_S, flush)

        dispatcher.on_send_buffered = on_send_buffered

    def stop(self, parent: Any) -> None:
        """Publish what is buffered now (the consumer stops or reconnects)."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        dispatcher = getattr(parent, "event_dispatcher", None)
        if dispatcher is not None:
            try:
                dispatcher.flush()
            except Exception as exc:  # the broker is gone: Celery keeps the buffer
                logger.info("task events not flushed on stop: %s", exc)

    def shutdown(self, parent: Any) -> None:
        """As stop()."""
        self.stop(parent)
