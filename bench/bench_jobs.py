"""Benchmark: jobtrail submission, draining and solving against bare Celery and pure SymPy.

Run: .venv/bin/python bench/bench_jobs.py [--jobs 20000] [--solve-jobs 2000] [--runs 3] [--batch N]

Three ratios, each against a baseline measured in the same run on the same
private redis-server (no persistence, so the disk is not measured):

1. submission: jobtrail JobService.submit (record + event + send_task) per
   second / bare `apply_async` of a no-op task per second. Target >= 0.8.
2. drain: trivial problems ("1 + 1") completed per second by one jobtrail
   worker / no-op tasks completed per second by one bare Celery worker, both
   prefork with the same concurrency. Target >= 0.7. Every drain is timed from
   its 5th percent of completions to the last (start-up and cold solves left out).
3. five kinds: the demo's five problems, repeated, completed per second by a
   jobtrail worker / the same problems solved in a loop by as many plain
   processes calling jobtrail.solver.solve (the pure-SymPy limit). Target >= 0.7.

Issue 15 adds, in the same run, a bare Celery worker solving the same
problems one task per problem (bench/bare_app.py `bare.solve`: same prefork
pool, concurrency, broker server and late acks) and jobtrail's batched path
(`submit_many` with `batch_max_jobs` = --batch, default the setting's):

4. five_kind_batched_ratio: batched five-kind jobs/s / the pure-SymPy limit.
   Target >= 0.85.
5. five_kind_batched_vs_bare_celery: the same / the bare worker's solves/s.
   Target >= 1.3.
6. drain_batched_ratio: batched trivial jobs/s / the bare worker's no-op
   tasks/s. Target >= 2.

The single-job figures (1-3) run with batch_max_jobs = 1. With --runs N every
figure is the median of N runs (each run measures all of them); the machine's
load average is recorded at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
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


#: The clock of a drain starts once this share of the jobs completed: the worker's start-up
#: and its pool processes' first, cold solves (SymPy's caches, lazy imports) are left out,
#: as the pure-SymPy loop leaves out its warm-up.
WARM_SHARE = 0.05


def _drain_rate(count_done: callable, total: int, timeout_s: float = 600) -> float:  # type: ignore[valid-type]
    """Jobs/s from the WARM_SHARE-th completion to the last (start-up and cold solves excluded)."""
    deadline = time.monotonic() + timeout_s
    while count_done() < max(1, int(total * WARM_SHARE)):
        if time.monotonic() > deadline:
            raise RuntimeError("no job completed")
        time.sleep(0.01)
    t0, n0 = time.monotonic(), count_done()
    while (n := count_done()) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {n}/{total} done")
        time.sleep(0.02)
    return (total - n0) / (time.monotonic() - t0)


def with_batch(settings: Settings, batch: int | None) -> Settings:
    """*settings* with batch_max_jobs = *batch* (None: as they are; unchanged before issue 15)."""
    if batch is None or "batch_max_jobs" not in type(settings).model_fields:
        return settings
    return settings.model_copy(update={"batch_max_jobs": batch})


def _jobtrail_drain(settings: Settings, server: EmbeddedRedis, problems: list[str],
                    log: Path) -> float:
    """Queue *problems* as jobs, start one jobtrail worker, return its completion rate."""
    main = server.client(10)
    for db in (10, 11, 12):
        server.client(db).flushdb()
    service = JobService(JobStore(server.client(10), KeySpace()), create_celery_app(settings))
    for start in range(0, len(problems), 1000):
        service.submit_many(problems[start:start + 1000])
    proc = _spawn([sys.executable, "-m", "jobtrail", "worker", "-c", str(CONCURRENCY),
                   "--loglevel", "WARNING"], child_environ(settings), log)
    done_key = KeySpace().jobs_by_status(JobStatus.COMPLETED)
    try:
        rate = _drain_rate(lambda: main.zcard(done_key), len(problems))
    finally:
        _stop(proc)
    failed = main.zcard(KeySpace().jobs_by_status(JobStatus.FAILED))
    if failed:
        raise RuntimeError(f"{failed} jobs failed (see {log})")
    return rate


def _bare_drain(server: EmbeddedRedis, task: str, args: list[str], log: Path) -> float:
    """Queue one bare *task* per argument, start one bare worker, return its completion rate."""
    results = server.client(12)
    for db in (10, 11, 12):
        server.client(db).flushdb()
    from bench.bare_app import app as bare  # noqa: PLC0415 - reads BENCH_* set by main()

    with bare.producer_or_acquire() as producer:
        for arg in args:
            bare.send_task(task, args=[arg], producer=producer)
    proc = _spawn([sys.executable, "-m", "celery", "-A", "bench.bare_app", "worker",
                   "--pool", "prefork", "-c", str(CONCURRENCY), "-Q", "bare",
                   "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
                  dict(os.environ), log)
    try:
        return _drain_rate(lambda: results.dbsize(), len(args))
    finally:
        _stop(proc)


def bench_submission(settings: Settings, n: int) -> dict[str, float]:
    from bench.bare_app import app as bare  # noqa: PLC0415 - reads BENCH_* set by main()

    main = redis.Redis.from_url(settings.main_url or "", decode_responses=True)
    for url in (settings.main_url, settings.broker_url, settings.results_url):
        redis.Redis.from_url(url or "").flushdb()
    store = JobStore(main, KeySpace())
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

    # the same without Celery's task-sent event (JOBTRAIL_TASK_SENT_EVENT=false), as bare sends
    quiet = JobService(store, create_celery_app(settings.model_copy(
        update={"task_sent_event": False})))
    quiet.submit("warm up")
    t = time.perf_counter()
    for _ in range(n):
        quiet.submit("1 + 1")
    quiet_rate = n / (time.perf_counter() - t)

    t = time.perf_counter()
    for start in range(0, n, 1000):
        service.submit_many(["1 + 1"] * min(1000, n - start))
    batch_rate = n / (time.perf_counter() - t)
    return {"bare_apply_async_per_s": bare_rate, "jobtrail_submit_per_s": jt_rate,
            "jobtrail_submit_many_per_s": batch_rate, "submit_ratio": jt_rate / bare_rate,
            "jobtrail_submit_no_sent_event_per_s": quiet_rate,
            "submit_no_sent_event_ratio": quiet_rate / bare_rate,
            "submit_many_ratio": batch_rate / bare_rate}


def bench_drain(settings: Settings, server: EmbeddedRedis, n: int, logs: Path,
                batch: int | None) -> dict[str, float]:
    """Queue n jobs of each kind first, then time one worker of each kind draining them."""
    bare_rate = _bare_drain(server, "bare.noop", [f"b{i}" for i in range(n)],
                            logs / "bare-worker.log")
    jt_rate = _jobtrail_drain(with_batch(settings, 1), server, ["1 + 1"] * n,
                              logs / "jt-worker.log")
    batched = _jobtrail_drain(with_batch(settings, batch), server, ["1 + 1"] * n,
                              logs / "jt-batched.log")
    # like for like with the bare worker, which sends no task events (no -E):
    # JOBTRAIL_WORKER_TASK_EVENTS=false
    quiet = settings.model_copy(update={"worker_task_events": False})
    jt_quiet = _jobtrail_drain(with_batch(quiet, 1), server, ["1 + 1"] * n,
                               logs / "jt-worker-no-events.log")
    return {"bare_worker_tasks_per_s": bare_rate, "jobtrail_worker_jobs_per_s": jt_rate,
            "drain_ratio": jt_rate / bare_rate, "jobtrail_batched_jobs_per_s": batched,
            "drain_batched_ratio": batched / bare_rate,
            "jobtrail_worker_no_task_events_jobs_per_s": jt_quiet,
            "drain_no_task_events_ratio": jt_quiet / bare_rate}


def _solve_loop(problems: list[str]) -> int:
    from jobtrail.solver import solve  # noqa: PLC0415 - imported in the child, like a worker

    for p in problems:
        solve(p)
    return len(problems)


def bench_five_kinds(settings: Settings, server: EmbeddedRedis, n: int, logs: Path,
                     batch: int | None) -> dict[str, float]:
    problems = [SAMPLE_PROBLEMS[i % len(SAMPLE_PROBLEMS)] for i in range(n)]
    chunks = [problems[i::CONCURRENCY] for i in range(CONCURRENCY)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(CONCURRENCY) as pool:
        pool.map(_solve_loop, [list(SAMPLE_PROBLEMS)] * CONCURRENCY)  # import + warm, untimed
        t = time.perf_counter()
        pool.map(_solve_loop, chunks)
        sympy_rate = n / (time.perf_counter() - t)

    bare_rate = _bare_drain(server, "bare.solve", problems, logs / "bare-five.log")
    jt_rate = _jobtrail_drain(with_batch(settings, 1), server, problems, logs / "jt-five.log")
    batched = _jobtrail_drain(with_batch(settings, batch), server, problems,
                              logs / "jt-five-batched.log")
    return {"pure_sympy_problems_per_s": sympy_rate, "bare_celery_solves_per_s": bare_rate,
            "bare_celery_solve_ratio": bare_rate / sympy_rate,
            "jobtrail_five_kind_jobs_per_s": jt_rate, "five_kind_ratio": jt_rate / sympy_rate,
            "five_kind_vs_bare_celery": jt_rate / bare_rate,
            "jobtrail_five_kind_batched_jobs_per_s": batched,
            "five_kind_batched_ratio": batched / sympy_rate,
            "five_kind_batched_vs_bare_celery": batched / bare_rate}


def one_run(settings: Settings, server: EmbeddedRedis, args: argparse.Namespace,
            work: Path) -> dict[str, float]:
    """Every figure once (the single-job submission runs with batch_max_jobs = 1)."""
    run = bench_submission(with_batch(settings, 1), args.jobs)
    print(json.dumps(run, indent=2), flush=True)
    run |= bench_drain(settings, server, args.jobs, work, args.batch)
    print(json.dumps(run, indent=2), flush=True)
    run |= bench_five_kinds(settings, server, args.solve_jobs, work, args.batch)
    print(json.dumps(run, indent=2), flush=True)
    return run


#: (label, field, target) of the summary lines: every figure as a ratio.
SUMMARY = (
    ("submission, submit", "submit_ratio", "x bare apply_async (target >= 0.8)"),
    ("submission, no task-sent", "submit_no_sent_event_ratio",
     "x bare apply_async (TASK_SENT_EVENT=false, target >= 0.8)"),
    ("submission, submit_many", "submit_many_ratio", "x bare apply_async"),
    ("drain, single", "drain_ratio", "x bare worker no-op (target >= 0.7)"),
    ("drain, single, no events", "drain_no_task_events_ratio",
     "x bare worker no-op (WORKER_TASK_EVENTS=false, target >= 0.7)"),
    ("drain, batched", "drain_batched_ratio", "x bare worker no-op (target >= 2)"),
    ("five kinds, bare Celery", "bare_celery_solve_ratio", "x pure SymPy"),
    ("five kinds, single", "five_kind_ratio", "x pure SymPy (target >= 0.7)"),
    ("five kinds, single", "five_kind_vs_bare_celery", "x bare Celery same solves"),
    ("five kinds, batched", "five_kind_batched_ratio", "x pure SymPy (target >= 0.85)"),
    ("five kinds, batched", "five_kind_batched_vs_bare_celery",
     "x bare Celery same solves (target >= 1.3)"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="trivial jobs (default 20000)")
    parser.add_argument("--solve-jobs", type=int, default=2000, help="five-kind jobs")
    parser.add_argument("--runs", type=int, default=1, help="runs; figures are their medians")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch_max_jobs of the batched path (default: the setting's)")
    args = parser.parse_args()
    if args.runs < 1 or args.jobs < 1 or args.solve_jobs < 1 or (args.batch or 1) < 1:
        parser.error("--runs, --jobs, --solve-jobs and --batch must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="jobtrail-bench-"))
    server = EmbeddedRedis(work / "redis")
    server.start("--appendonly", "no", "--save", "")
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f}", flush=True)
    try:
        settings = private_settings(server, work)
        os.environ["BENCH_BROKER_URL"] = server.url(11)
        os.environ["BENCH_RESULTS_URL"] = server.url(12)
        runs = [one_run(settings, server, args, work) for _ in range(args.runs)]
    finally:
        server.stop()
    load_end = os.getloadavg()
    batched = with_batch(settings, args.batch)
    report: dict[str, object] = {
        "jobs": args.jobs, "solve_jobs": args.solve_jobs, "concurrency": CONCURRENCY,
        "runs": args.runs, "batch_max_jobs": getattr(batched, "batch_max_jobs", 1),
        "load_average_start": list(load_start), "load_average_end": list(load_end)}
    report |= {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    report["per_run"] = runs
    write_report("bench_jobs", report)
    print(f"\nmedians of {args.runs} run(s); load average start "
          f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, end "
          f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    for label, key, target in SUMMARY:
        print(f"{label:26s} {report[key]:.2f}{target}")


if __name__ == "__main__":
    main()
