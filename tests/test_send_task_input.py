"""Plain Celery's send_task of `jobtrail.solve` refuses bad text at the door, as submit does."""

from __future__ import annotations

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.errors import ProblemError
from jobtrail.worker.app import create_celery_app


@pytest.mark.parametrize(("problem", "said"), [
    ("", "empty problem"),
    ("   ", "empty problem"),
    ("solve x\x00 = 1", "control character U\\+0000 at character 7"),
    ("x" * 2001, "2001 characters; the limit is 2000"),
])
def test_send_task_refuses_a_bad_problem_before_anything_is_written_or_sent(
        settings: Settings, main_db: redis.Redis, broker_db: redis.Redis,
        problem: str, said: str) -> None:
    app = create_celery_app(settings)
    try:
        with pytest.raises(ProblemError, match=said):
            app.send_task("jobtrail.solve", args=[problem])
    finally:
        app.close()
    assert main_db.keys("*job*") == []       # no record, index entry or event
    assert broker_db.llen(settings.queue) == 0  # no message
