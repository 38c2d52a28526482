"""An event publish interrupted halfway (an exception from a signal handler: Celery's soft
time limit, Ctrl-C) must not leave its channel counting replies that will never come.

redis-py closes a connection whose send was interrupted; _UnreadWrites kept it
as its event connection with the count of its unread replies, so the next publish
reconnected it (can_read connects a closed connection) and the count then asked for
replies lost with the old socket: the next read of replies (at the channel's close,
after 1 s, after 64) waited the whole socket timeout, for ever without one.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from jobtrail.worker.transport import TRANSPORT

EVENTS = Exchange("celeryev", type="fanout")


class _Interrupted(Exception):
    pass


def test_an_interrupted_event_publish_leaves_no_stale_unread_count(private_redis: Any) -> None:
    # Given a channel with a publish's reply unread, and a broker that stops reading
    url = private_redis.url(1)
    with Connection(url, transport=TRANSPORT,
                    transport_options={"socket_timeout": 2.0}) as conn:
        channel = conn.default_channel
        producer = Producer(channel, exchange=EVENTS)
        producer.publish({"n": 0}, routing_key="task.sent")  # the event connection made

        def interrupt(signum: int, frame: Any) -> None:
            raise _Interrupted

        previous = signal.signal(signal.SIGALRM, interrupt)
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            producer.publish({"n": 1}, routing_key="task.sent")  # its reply not in yet
            # When a large event's publish is interrupted while the socket is full (the
            # alarm set as its send begins: after the event's encoding, however slow)
            held = channel._events_conn
            send = held.send_packed_command

            def send_then_interrupt(*args: Any, **kwargs: Any) -> Any:
                signal.setitimer(signal.ITIMER_REAL, 0.3)
                return send(*args, **kwargs)

            held.send_packed_command = send_then_interrupt
            with pytest.raises(_Interrupted):
                producer.publish({"n": 2, "pad": "x" * 15_000_000}, routing_key="task.sent")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            os.kill(private_redis.process.pid, signal.SIGCONT)
        held = channel._events_conn
        assert held is None or held._sock is None, "the interrupt came before the send"
        # and the channel publishes again and closes
        producer.publish({"n": 3}, routing_key="task.sent")
        started = time.monotonic()
        channel.close()
        # Then the close read only the replies its connection holds, without waiting for
        # the socket timeout on replies lost with the interrupted connection
        assert time.monotonic() - started < 1.0
