"""`CONFIG SET maxclients` at the connections in use, for longer than the retry window.

Redis then answers every new connection "max number of clients reached" and
closes it. Submitters get a clear error or a job with a true fate; the worker
survives, and everything queued is solved once the limit is lifted.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from jobtrail.api.app import create_app
from jobtrail.models import JobStatus
from tests.faults.conftest import (
    QUICK_ANSWER,
    QUICK_PROBLEM,
    RETRY_S,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.api_server import serve_in_thread
from tests.helpers.processes import WorkerProcess, settings_env

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def test_maxclients_reached_past_the_retry_window(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker 0.5 s into a job, and an API server that has not connected yet
    proc, slow_id = rig.busy(worker_process, solving_s=0.5)
    with serve_in_thread(create_app(rig.settings)) as base, \
            httpx.Client(base_url=base, timeout=30) as http:

        # When Redis takes no new connection for longer than the retry window
        in_use = len(rig.admin.client_list())
        rig.admin.config_set("maxclients", str(in_use))
        try:
            cli = subprocess.run(
                [sys.executable, "-m", "jobtrail", "submit", QUICK_PROBLEM],
                env=settings_env(rig.settings), capture_output=True, text=True, timeout=60,
                check=False)
            api = http.post("/jobs", json={"problem": QUICK_PROBLEM})
            time.sleep(RETRY_S + 1.0)
        finally:
            rig.admin.config_set("maxclients", "10000")

    # Then each submitter got a clear one-line error, or a job id whose job ends truly
    expected = {slow_id: (JobStatus.FAILED, TIMED_OUT)}
    if cli.returncode == 0:
        expected[cli.stdout.strip()] = (JobStatus.COMPLETED, QUICK_ANSWER)
    else:
        # (Celery's result backend may log its reconnect tries before the verdict)
        assert cli.returncode == 1, (cli.returncode, cli.stderr)
        last = cli.stderr.strip().splitlines()[-1]
        assert last.startswith("error: Redis at "), cli.stderr
        assert last.endswith("is unavailable: max number of clients reached"), cli.stderr
        assert "Traceback" not in cli.stderr, cli.stderr
    if api.status_code == 202:
        expected[api.json()["id"]] = (JobStatus.COMPLETED, QUICK_ANSWER)
    else:
        assert api.status_code == 503, api.text
        assert "max number of clients reached" in api.text, api.text
    # the worker survived, and every job ends truly (the slow one may have been handed back)
    assert_true_fates(rig, expected, redeliveries=1, result_may_be_lost=True)
    assert "Unrecoverable error" not in proc.log()
