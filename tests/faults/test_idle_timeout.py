"""`CONFIG SET timeout 1`: the server closes every connection idle for 1 s.

The idle worker's pooled connections, the API's and the submitting client's
are closed under them; each must reconnect silently and the next job run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobtrail.api.app import create_app
from jobtrail.models import JobStatus
from tests.faults.conftest import QUICK_ANSWER, QUICK_PROBLEM, FaultRig, assert_true_fates
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def test_idle_connections_closed_by_the_server_reconnect_silently(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given an idle worker and an API server that each served one job
    rig.start_worker(worker_process)
    with serve_in_thread(create_app(rig.settings)) as base, client(base) as http:
        first = http.post("/jobs", json={"problem": QUICK_PROBLEM})
        assert first.status_code in (200, 201, 202), first.text
        first_id = first.json()["id"]
        rig.wait_finished(first_id)

        # When the server closes connections idle for 1 s, and all stay idle 3 s
        rig.admin.config_set("timeout", "1")
        time.sleep(3.0)
        lingering = [c for c in rig.admin.client_list() if int(c["idle"]) >= 2 and not (
            int(c["sub"]) or int(c["psub"]))]  # Redis never times out a subscriber
        assert not lingering, lingering  # the server did close the idle ones

        # Then the API answers and its next job is solved by the same worker
        again = http.post("/jobs", json={"problem": QUICK_PROBLEM})
        assert again.status_code in (200, 201, 202), again.text
        job_id = again.json()["id"]
        wait_until(lambda: http.get(f"/jobs/{job_id}").json()["status"] == "completed",
                   timeout_s=30, interval_s=0.2, message=lambda: f"job {job_id} via the API")
        assert http.get(f"/jobs/{job_id}/trace").status_code == 200
    time.sleep(2.0)  # idle again: the rig's own pooled connections are closed too
    assert_true_fates(rig, {first_id: (JobStatus.COMPLETED, QUICK_ANSWER),
                            job_id: (JobStatus.COMPLETED, QUICK_ANSWER)})
    assert "Traceback" not in rig.worker_logs(), rig.worker_logs()
