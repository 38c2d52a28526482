"""Benchmark: POST /jobs against bare Celery apply_async, and single-submission latency.

Run: .venv/bin/python bench/bench_api.py [--jobs 10000] [--singles 1000]

1. batch submission: jobs/s through `POST /jobs {"problems": [1,000 problems]}` to a
   `jobtrail serve` process, / bare `apply_async` of a no-op task per second for the
   same number of tasks on the same broker, in the same run. Target >= 0.8.
2. single submission: p50 and p99 latency of `POST /jobs {"problem": ...}`, ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile, private_settings, write_report  # noqa: E402
from jobtrail.config import child_environ  # noqa: E402
from jobtrail.embedded import EmbeddedRedis, free_port  # noqa: E402

BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jobtrail-bench-api-"))
    server = EmbeddedRedis(work / "redis")
    server.start("--appendonly", "no", "--save", "")
    os.environ["BENCH_BROKER_URL"] = server.url(11)
    os.environ["BENCH_RESULTS_URL"] = server.url(12)
    from bench.bare_app import app as bare  # noqa: PLC0415 - reads BENCH_* set above

    settings = private_settings(server, work)
    env = child_environ(settings)
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "jobtrail", "serve", "--port", str(port)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                http.get("/openapi.json").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        http.post("/jobs", json={"problems": ["warm"] * 10})
        bare.send_task("bare.noop", args=["warm"])

        t = time.perf_counter()
        with bare.producer_or_acquire() as producer:
            for i in range(args.jobs):
                bare.send_task("bare.noop", args=[f"b{i}"], producer=producer)
        bare_rate = args.jobs / (time.perf_counter() - t)

        t = time.perf_counter()
        for start in range(0, args.jobs, BATCH):
            n = min(BATCH, args.jobs - start)
            resp = http.post("/jobs", json={"problems": ["1 + 1"] * n})
            assert resp.status_code == 202, resp.text
        api_rate = args.jobs / (time.perf_counter() - t)

        latencies = []
        for _ in range(args.singles):
            t = time.perf_counter()
            resp = http.post("/jobs", json={"problem": "1 + 1"})
            latencies.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 202
        latencies.sort()
        report = {
            "jobs": args.jobs, "bare_apply_async_per_s": bare_rate,
            "api_batch_jobs_per_s": api_rate, "batch_ratio": api_rate / bare_rate,
            "single_p50_ms": statistics.median(latencies),
            "single_p99_ms": percentile(latencies, 0.99),
        }
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=20)
        server.stop()
    write_report("bench_api", report)
    print(f"\nPOST /jobs batch {report['batch_ratio']:.2f}x bare apply_async (target >= 0.8); "
          f"single p50 {report['single_p50_ms']:.1f} ms, p99 {report['single_p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
