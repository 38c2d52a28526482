"""Benchmark: jobtrail submission, draining and solving against bare Celery and pure SymPy.

Run: .venv/bin/python bench/bench_jobs.py [--jobs 20000] [--solve-jobs 500]

Three ratios, each against a baseline measured in the same run on the same
private redis-server (no persistence, so the disk is not measured):

1. submission: jobtrail JobService.submit (record + event + send_task) per
   second / bare `apply_async` of a no-op task per second. Target >= 0.8.
2. drain: trivial problems ("1 + 1") completed per second by one jobtrail
   worker / no-op tasks completed per second by one bare Celery worker, both
   prefork with the same concurrency. Target >= 0.7.
3. five kinds: the demo's five problems, repeated, completed per second by a
   jobtrail worker / the same problems solved in a loop by as many plain
   processes calling jobtrail.solver.solve (the pure-SymPy limit). Target >= 0.7.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import private_settings, write_report  # noqa: E402
from jobtrail.cli.demo import SAMPLE_PROBLEMS  # noqa: E402
from jobtrail.config import Settings, child_environ  # noqa: E402
from jobtrail.embedded import EmbeddedRedis  # noqa: E402
from jobtrail.jobs import JobService  # noqa: E402
from jobtrail.keys import KeySpace  # noqa: E402
from jobtrail.models import JobStatus  # noqa: E402
from jobtrail.store import JobStore  # noqa: E402
from jobtrail.worker.app import create_celery_app  # noqa: E402

CONCURRENCY = 2


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _drain_rate(count_done: callable, total: int, timeout_s: float = 600) -> float:  # type: ignore[valid-type]
    """Jobs/s between the first completion and the last (worker start-up excluded)."""
    deadline = time.monotonic() + timeout_s
    while count_done() == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("no job completed")
        time.sleep(0.01)
    t0, n0 = time.monotonic(), count_done()
    while (n := count_done()) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {n}/{total} done")
        time.sleep(0.02)
    return (total - n0) / (time.monotonic() - t0)


def _jobtrail_drain(settings: Settings, server: EmbeddedRedis, problems: list[str],
                    log: Path) -> float:
    """Queue *problems* as jobs, start one jobtrail worker, return its completion rate."""
    main = server.client(10)
    service = JobService(JobStore(server.client(10), KeySpace()), create_celery_app(settings))
    for start in range(0, len(problems), 1000):
        service.submit_many(problems[start:start + 1000])
    proc = _spawn([sys.executable, "-m", "jobtrail", "worker", "-c", str(CONCURRENCY),
                   "--loglevel", "WARNING"], child_environ(settings), log)
    done_key = KeySpace().jobs_by_status(JobStatus.COMPLETED)
    try:
        return _drain_rate(lambda: main.zcard(done_key), len(problems))
    finally:
        _stop(proc)


def bench_submission(settings: Settings, n: int) -> dict[str, float]:
    from bench.bare_app import app as bare  # noqa: PLC0415 - reads BENCH_* set by main()

    store = JobStore(redis.Redis.from_url(settings.main_url or "", decode_responses=True),
                     KeySpace())
    service = JobService(store, create_celery_app(settings))
    service.submit("warm up")
    bare.send_task("bare.noop", args=["warm"])

    t = time.perf_counter()
    for i in range(n):
        bare.send_task("bare.noop", args=[f"bare-{i}"])
    bare_rate = n / (time.perf_counter() - t)

    t = time.perf_counter()
    for _ in range(n):
        service.submit("1 + 1")
    jt_rate = n / (time.perf_counter() - t)

    t = time.perf_counter()
    for start in range(0, n, 1000):
        service.submit_many(["1 + 1"] * min(1000, n - start))
    batch_rate = n / (time.perf_counter() - t)
    return {"bare_apply_async_per_s": bare_rate, "jobtrail_submit_per_s": jt_rate,
            "jobtrail_submit_many_per_s": batch_rate, "submit_ratio": jt_rate / bare_rate,
            "submit_many_ratio": batch_rate / bare_rate}


def bench_drain(settings: Settings, server: EmbeddedRedis, n: int, logs: Path,
                ) -> dict[str, float]:
    """Queue n jobs of each kind first, then time one worker of each kind draining them."""
    main = server.client(10)
    results = server.client(12)
    broker = server.client(11)
    for c in (main, results, broker):
        c.flushdb()
    from bench.bare_app import app as bare  # noqa: PLC0415

    with bare.producer_or_acquire() as producer:
        for i in range(n):
            bare.send_task("bare.noop", args=[f"b{i}"], producer=producer)
    env = dict(os.environ)
    proc = _spawn([sys.executable, "-m", "celery", "-A", "bench.bare_app", "worker",
                   "--pool", "prefork", "-c", str(CONCURRENCY), "-Q", "bare",
                   "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
                  env, logs / "bare-worker.log")
    try:
        bare_rate = _drain_rate(lambda: results.dbsize(), n)
    finally:
        _stop(proc)

    for c in (main, results, broker):
        c.flushdb()
    jt_rate = _jobtrail_drain(settings, server, ["1 + 1"] * n, logs / "jt-worker.log")
    return {"bare_worker_tasks_per_s": bare_rate, "jobtrail_worker_jobs_per_s": jt_rate,
            "drain_ratio": jt_rate / bare_rate}


def _solve_loop(problems: list[str]) -> int:
    from jobtrail.solver import solve  # noqa: PLC0415 - imported in the child, like a worker

    for p in problems:
        solve(p)
    return len(problems)


def bench_five_kinds(settings: Settings, server: EmbeddedRedis, n: int, logs: Path,
                     ) -> dict[str, float]:
    problems = [SAMPLE_PROBLEMS[i % len(SAMPLE_PROBLEMS)] for i in range(n)]
    chunks = [problems[i::CONCURRENCY] for i in range(CONCURRENCY)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(CONCURRENCY) as pool:
        pool.map(_solve_loop, [list(SAMPLE_PROBLEMS)] * CONCURRENCY)  # import + warm, untimed
        t = time.perf_counter()
        pool.map(_solve_loop, chunks)
        sympy_rate = n / (time.perf_counter() - t)

    main = server.client(10)
    for db in (10, 11, 12):
        server.client(db).flushdb()
    jt_rate = _jobtrail_drain(settings, server, problems, logs / "jt-five.log")
    failed = main.zcard(KeySpace().jobs_by_status(JobStatus.FAILED))
    if failed:
        raise RuntimeError(f"{failed} five-kind jobs failed")
    return {"pure_sympy_problems_per_s": sympy_rate, "jobtrail_five_kind_jobs_per_s": jt_rate,
            "five_kind_ratio": jt_rate / sympy_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="trivial jobs (default 20000)")
    parser.add_argument("--solve-jobs", type=int, default=500, help="five-kind jobs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="jobtrail-bench-"))
    server = EmbeddedRedis(work / "redis")
    server.start("--appendonly", "no", "--save", "")
    try:
        settings = private_settings(server, work)
        os.environ["BENCH_BROKER_URL"] = server.url(11)
        os.environ["BENCH_RESULTS_URL"] = server.url(12)
        report: dict[str, float | int] = {"jobs": args.jobs, "solve_jobs": args.solve_jobs,
                                          "concurrency": CONCURRENCY}
        report |= bench_submission(settings, args.jobs)
        print(json.dumps(report, indent=2), flush=True)
        report |= bench_drain(settings, server, args.jobs, work)
        print(json.dumps(report, indent=2), flush=True)
        report |= bench_five_kinds(settings, server, args.solve_jobs, work)
    finally:
        server.stop()
    write_report("bench_jobs", report)
    print(f"\nsubmission {report['submit_ratio']:.2f}x bare apply_async (target >= 0.8)\n"
          f"drain      {report['drain_ratio']:.2f}x bare worker (target >= 0.7)\n"
          f"five kinds {report['five_kind_ratio']:.2f}x pure SymPy (target >= 0.7)")


if __name__ == "__main__":
    main()
