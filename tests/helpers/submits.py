"""A submit caught half-way: its job's record written, its message sent a moment later."""

from __future__ import annotations

import threading

from jobtrail.config import Settings
from jobtrail.models import Job
from jobtrail.worker.app import TASK_SOLVE, create_celery_app


def send_message_later(settings: Settings, job: Job, delay_s: float) -> threading.Timer:
    """Send *job*'s task message *delay_s* seconds from now, as submit does after the record.

    Returns the started timer; join() it to wait for the send.
    """
    app = create_celery_app(settings)
    timer = threading.Timer(delay_s, lambda: app.send_task(
        TASK_SOLVE, args=[job.id, job.problem], task_id=job.id))
    timer.start()
    return timer
