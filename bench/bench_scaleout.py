"""Scale-out: throughput with 1, 2 and 4 worker processes on one external redis-server,
and the delay until a SIGKILLed worker's job runs again on a survivor.

Each worker is a separate `jobtrail worker` process with its own hostname and one
pool process, as on separate hosts. Throughput: N jobs submitted in advance, timed
from the first start to the last finish. Redelivery: a slow job runs on one of two
workers, that node is SIGKILLed (main process and pool), and the time until the
job starts on the survivor is measured (the dead-worker sweep; heartbeat as given).

    .venv/bin/python -m bench.bench_scaleout --jobs 600 --heartbeat 2
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import private_settings, write_report
from jobtrail.config import Settings, child_environ
from jobtrail.embedded import EmbeddedRedis
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app

PROBLEMS = ("Solve x^2 - 5x + 6 = 0", "Find the derivative of x^3 sin(x)",
            "Solve the system 2x + 3y = 7, x - y = 1")
SLOW_PROBLEM = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"


def _workers(settings: Settings, names: list[str], logs: Path) -> list[subprocess.Popen[bytes]]:
    env = child_environ(settings)
    return [subprocess.Popen(
        [sys.executable, "-m", "jobtrail", "worker", "--concurrency", "1", "--hostname",
         f"{name}@bench", "--loglevel", "WARNING"], env=env,
        stdout=open(logs / f"{name}.log", "ab"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT, start_new_session=True) for name in names]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait(predicate: object, timeout_s: float, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:g} s {what}")
        time.sleep(0.05)


def throughput(server: EmbeddedRedis, work: Path, n_workers: int, jobs: int) -> float:
    """Jobs per second completed by *n_workers* worker processes."""
    server.client().flushall()
    settings = private_settings(server, work)
    store = JobStore(server.client(10), KeySpace())
    service = JobService(store, create_celery_app(settings))
    procs = _workers(settings, [f"w{i}" for i in range(n_workers)], work)
    try:
        warm = [service.submit(PROBLEMS[0]) for _ in range(n_workers * 2)]
        _wait(lambda: all(store.get(j.id).status is JobStatus.COMPLETED for j in warm), 120)
        ids = [j.id for j in service.submit_many([PROBLEMS[i % 3] for i in range(jobs)])]

        def finished() -> int:
            counts = store.count_by_status()
            return counts.get(JobStatus.COMPLETED, 0) + counts.get(JobStatus.FAILED, 0)
        _wait(lambda: finished() >= len(warm) + jobs, 900)
        rows = [store.get(i) for i in ids]
        first = min(j.started_at or 0.0 for j in rows)
        last = max(j.finished_at or 0.0 for j in rows)
        return jobs / (last - first)
    finally:
        _stop(procs)


def redelivery_delay(server: EmbeddedRedis, work: Path, heartbeat_s: float) -> float:
    """Seconds from a worker's SIGKILL until its job started again on the survivor."""
    server.client().flushall()
    settings = private_settings(server, work).model_copy(
        update={"heartbeat_interval_s": heartbeat_s, "solver_time_limit_s": 300.0,
                "solver_hard_time_limit_s": 310.0})  # the slow job outlives the measurement
    store = JobStore(server.client(10), KeySpace())
    service = JobService(store, create_celery_app(settings))
    procs = _workers(settings, ["ka", "kb"], work)
    try:
        job = service.submit(SLOW_PROBLEM)
        _wait(lambda: store.get(job.id).status is JobStatus.PROCESSING, 120)
        time.sleep(2 * heartbeat_s)  # both workers have beaten with their holdings
        victim = store.get(job.id).worker
        proc = procs[0] if victim.startswith("ka@") else procs[1]
        killed = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait(lambda: store.get(job.id).worker not in ("", victim)
              and store.get(job.id).status is JobStatus.PROCESSING, 300)
        return time.monotonic() - killed
    finally:
        _stop(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--heartbeat", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = EmbeddedRedis(work / "redis")
        server.start("--save", "", "--appendonly", "no")
        try:
            rates = {}
            for n in (1, 2, 4):
                rates[n] = throughput(server, work, n, args.jobs)
                print(f"{n} workers: {rates[n]:.1f} jobs/s", flush=True)
            delay = redelivery_delay(server, work, args.heartbeat)
        finally:
            server.stop()
    write_report("scaleout", {
        "cores": os.cpu_count(), "jobs": args.jobs,
        "jobs_per_s": {str(n): round(r, 1) for n, r in rates.items()},
        "speedup": {str(n): round(r / rates[1], 2) for n, r in rates.items()},
        "heartbeat_interval_s": args.heartbeat, "redelivery_after_sigkill_s": round(delay, 1),
        "visibility_timeout_s": Settings.model_fields["visibility_timeout_s"].default})


if __name__ == "__main__":
    main()
