"""`jobtrail demo`: a worker, the five sample problems, live progress, the answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.table import Table

from jobtrail.cli.context import runtime
from jobtrail.cli.output import err, escape, exit_with, job_table, out, wrapped
from jobtrail.clock import monotonic_s
from jobtrail.jobs import SAMPLE_PROBLEMS
from jobtrail.models import TERMINAL_STATUSES, Job, JobStatus

__all__ = ["SAMPLE_PROBLEMS", "answer_view", "demo"]


def _start_worker(ctx: typer.Context, log_path: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "jobtrail"]
    env_file = ctx.find_root().obj.env_file
    if env_file:
        cmd += ["--env-file", str(env_file)]
    cmd += ["worker", "--concurrency", "2", "--hostname", f"demo-{os.getpid()}@%h",
            "--loglevel", "WARNING"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def demo(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.",
                                           min=1)] = 120.0,
) -> None:
    """Start a worker, submit the five sample problems, show progress, print the answers."""
    rt = runtime(ctx)
    rt.settings.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = str(rt.settings.log_dir / "demo-worker.log")
    for db, url in (("main", rt.clients.main_url), ("broker", rt.clients.broker_url),
                    ("results", rt.clients.results_url)):  # one a line: 115 columns as one
        err.print(f"Redis {db + ':':8} {url}")
    proc = _start_worker(ctx, log_path)
    try:
        jobs = rt.service.submit_many(list(SAMPLE_PROBLEMS))
        ids = [j.id for j in jobs]
        deadline = monotonic_s() + timeout
        with Live(job_table(jobs, title="jobs", width=err.width), console=err,
                  refresh_per_second=8) as live:
            while True:
                jobs = [rt.store.get(i) for i in ids]
                live.update(job_table(jobs, title=_progress(jobs), width=err.width))
                if all(j.status in TERMINAL_STATUSES for j in jobs):
                    break
                if proc.poll() is not None:
                    exit_with(f"the worker exited with status {proc.returncode}; "
                              f"see {log_path}")
                if monotonic_s() > deadline:
                    exit_with(f"timed out after {timeout:g} s; see {log_path}")
                time.sleep(0.1)
    finally:
        _stop_worker(proc)
    for job in jobs:
        _print_answer(job)
    out.print("\nThe embedded Redis keeps running for later commands "
              "(jobtrail list; jobtrail server stop).")
    if any(j.status is JobStatus.FAILED for j in jobs):
        raise typer.Exit(1)


def _progress(jobs: list[Job]) -> str:
    counts = {s: sum(j.status is s for j in jobs) for s in JobStatus}
    return ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)


def answer_view(job: Job) -> RenderableType:
    """Return one demo job as the demo prints it: the problem, then the answer and its
    steps (or the failure) under it, each wrapped between words under its own start."""
    blocks: list[RenderableType] = [wrapped([f"\n[bold]{escape(job.problem)}[/]"])]
    if job.status is JobStatus.COMPLETED:
        blocks.append(wrapped([f"answer: [green]{escape(job.answer or '')}[/]"], indent=2))
        steps = Table.grid(padding=(0, 1))
        steps.add_column(no_wrap=True)
        steps.add_column(overflow="fold")
        for step in job.steps:
            steps.add_row("-", escape(step))
        blocks.append(Padding(steps, (0, 0, 0, 4)))
    else:
        blocks.append(wrapped([f"[red]{job.status.value}[/]: {escape(job.error or '')}"],
                              indent=2))
    return Group(*blocks)


def _print_answer(job: Job) -> None:
    out.print(answer_view(job))
