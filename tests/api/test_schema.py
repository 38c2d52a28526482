"""schemathesis against the app's own OpenAPI schema: no input makes it answer 5xx.

Runs the schemathesis CLI (its pytest plugin does not support this pytest) in a
subprocess against a real server on real Redis.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.store import JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from tests.helpers.api_server import serve_in_thread
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow]


def test_no_input_makes_a_server_error(settings: Settings, store: JobStore, tmp_path: Path,
                                       worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a healthy deployment (a live worker: /health answers 503 without one)
    store.create("1 + 1", job_id="known-job-1")
    live = settings.model_copy(update={"heartbeat_interval_s": 0.5})
    worker_process(live)
    wait_until(lambda: HeartbeatStore(store.client, store.keys).list_workers(), timeout_s=30,
               message="the worker's first heartbeat")
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is a test dependency"
    with serve_in_thread(create_app(live)) as base:
        result = subprocess.run(
            [cli, "run", f"{base}/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "30", "--workers", "1", "--seed", "1",
             "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failures:" not in result.stdout and "ST1" not in result.stdout
    # the count in schemathesis's summary ("... 123 generated", a line that may also name
    # the cases it rejected)
    counted = re.search(r"(\d+) generated", result.stdout)
    assert counted is not None, result.stdout[-4000:]
    generated = int(counted.group(1))
    assert generated >= 100   # the operations were really exercised
