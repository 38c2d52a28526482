"""The `jobtrail` command: root options, job commands, and error handling.

Invariant: every JobtrailError and usage error ends as one line on stderr and
a non-zero exit (2 for usage and settings, 1 for runtime failures).
"""

from __future__ import annotations

import logging.config
import os
import socket
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from jobtrail.cli import demo as demo_cmd
from jobtrail.cli import doctor as doctor_cmd
from jobtrail.cli import monitor as monitor_cmd
from jobtrail.cli import repro as repro_cmd
from jobtrail.cli import retention, server
from jobtrail.cli import serve as serve_cmd
from jobtrail.cli import trace as trace_cmd
from jobtrail.cli.context import CliState, runtime
from jobtrail.cli.output import err, escape, exit_with, job_table, out, print_json, render_job
from jobtrail.clock import monotonic_s
from jobtrail.errors import (
    ArchivedJobNotFoundError,
    ConfigError,
    JobNotFoundError,
    JobtrailError,
    ProblemError,
)
from jobtrail.jobs import JobService
from jobtrail.keys import JOB_ID_PATTERN
from jobtrail.logconfig import log_config
from jobtrail.models import TERMINAL_STATUSES, JobStatus
from jobtrail.worker.app import SETTINGS_KEY

__all__ = ["app", "main"]

app = typer.Typer(
    name="jobtrail",
    help="Math-problem jobs on Celery + Redis, with every job accounted for.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(server.app, name="server")
app.add_typer(monitor_cmd.app, name="monitor")
app.add_typer(repro_cmd.app, name="repro")
app.command(name="demo")(demo_cmd.demo)
app.command(name="trace")(trace_cmd.trace)
app.command(name="workers")(trace_cmd.workers)
app.command(name="doctor")(doctor_cmd.doctor)
app.command(name="serve")(serve_cmd.serve)
app.add_typer(retention.app, name="retention")
app.command(name="restore")(retention.restore)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Annotated[Path | None, typer.Option(
        "--env-file", envvar="JOBTRAIL_ENV_FILE", help="Load settings from this dotenv file.",
        dir_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """jobtrail: submit math problems, solve them on Celery workers, trace every job."""
    ctx.obj = CliState(env_file=env_file)
    # commands report errors as one line themselves; logs are for -v
    logging.config.dictConfig(log_config(verbose=verbose, level="WARNING"))


def _check_id(job_id: str) -> str:
    if not JOB_ID_PATTERN.match(job_id):
        raise typer.BadParameter(f"{job_id!r} is not a job id", param_hint="JOB_ID")
    return job_id


def _wait_for(ctx: typer.Context, ids: list[str], timeout_s: float) -> None:
    rt = runtime(ctx)
    deadline = monotonic_s() + timeout_s
    with err.status("waiting for the worker...") as status:
        while True:
            jobs = [rt.store.get(i) for i in ids]
            done = sum(j.status in TERMINAL_STATUSES for j in jobs)
            status.update(f"waiting for the worker... {done}/{len(ids)} finished")
            if done == len(ids):
                return
            if monotonic_s() > deadline:
                exit_with(f"timed out after {timeout_s:g} s waiting for {len(ids) - done} "
                          "job(s); is a worker running? (jobtrail worker)")
            time.sleep(0.1)


@app.command()
def submit(
    ctx: typer.Context,
    problems: Annotated[list[str], typer.Argument(help="Problem texts, one per argument.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every job finishes.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many "
                                                "seconds.", min=0.1)] = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Submit problems as jobs; print their ids (or, with --wait, their answers)."""
    for n, problem in enumerate(problems, 1):  # all or nothing: a bad one is a usage error
        try:
            JobService.check_text(problem)
        except ProblemError as exc:
            raise typer.BadParameter(f"problem {n}: {exc}", param_hint="PROBLEMS") from None
    rt = runtime(ctx)
    jobs = rt.service.submit_many(problems) if len(problems) > 1 else [
        rt.service.submit(problems[0])]
    if wait:
        _wait_for(ctx, [j.id for j in jobs], timeout)
        jobs = [rt.store.get(j.id) for j in jobs]
    if json_out:
        print_json([j.to_dict() for j in jobs] if len(jobs) > 1 else jobs[0].to_dict())
    elif wait:
        out.print(job_table(jobs))
    else:
        for job in jobs:
            out.print(job.id)
    failed = [j for j in jobs if j.status is JobStatus.FAILED]
    if wait and failed:
        exit_with(f"{len(failed)} of {len(jobs)} job(s) failed: {failed[0].error}")


@app.command()
def status(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job id (the Celery task id).")],
    json_out: JsonOpt = False,
) -> None:
    """Show one job: status, answer or error, attempts and times."""
    job = runtime(ctx).store.get(_check_id(job_id))
    if json_out:
        print_json(job.to_dict())
    else:
        render_job(job)


@app.command()
def requeue(
    ctx: typer.Context,
    job_ids: Annotated[list[str], typer.Argument(help="Ids of pending jobs whose message "
                                                      "was lost (see jobtrail doctor).")],
    json_out: JsonOpt = False,
) -> None:
    """Send the task of pending jobs again (a submitter died before sending it), or hand a
    processing job whose worker is gone back to the queue (refused while its worker lives).
    """
    rt = runtime(ctx)
    before = {job_id: rt.store.get(_check_id(job_id)) for job_id in job_ids}
    jobs = [rt.service.requeue(job_id) for job_id in job_ids]
    if json_out:
        print_json([j.to_dict() for j in jobs])
    else:
        for job in jobs:
            was = before[job.id]
            if was.status is JobStatus.PROCESSING:
                out.print(f"requeued {job.id} (was processing on worker {was.worker}, "
                          "which is gone)")
            else:
                out.print(f"requeued {job.id}")


@app.command()
def recover(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Hand every message no live worker holds back to the queue now (a dead worker's jobs).

    Live workers do this on their own once a worker's heartbeat has been gone three
    heartbeat intervals; this does it at once, for messages older than that.
    """
    rt = runtime(ctx)
    report = rt.service.recover(gone_after_s=3 * rt.settings.heartbeat_interval_s)
    if json_out:
        print_json(report.to_dict())
        return
    for item in report.recovered:
        out.print(f"requeued {item.job_id} ({item.status}): {escape(item.reason)}")
    out.print(f"{len(report.recovered)} job(s) handed back to the queue")


@app.command(name="list")
def list_jobs(
    ctx: typer.Context,
    status_: Annotated[JobStatus | None, typer.Option(
        "--status", help="Only jobs with this status.", case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1,
                                       max=10_000)] = 20,
    json_out: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    jobs = runtime(ctx).store.list_jobs(status=status_, limit=limit)
    if json_out:
        print_json([j.to_dict() for j in jobs])
    elif jobs:
        out.print(job_table(jobs))
    else:
        out.print("no jobs")


@app.command()
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", help="Pool processes (default: settings, else one per CPU).",
        min=1)] = None,
    hostname: Annotated[str | None, typer.Option(help="Worker node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on 127.0.0.1:PORT.", min=1, max=65535)] = None,
) -> None:
    """Run a Celery worker that solves jobs (prefork pool; Ctrl-C for a warm shutdown)."""
    rt = runtime(ctx)
    if metrics_port:
        rt.celery.conf[SETTINGS_KEY] = rt.settings.model_copy(
            update={"worker_metrics_port": metrics_port})
    argv = ["worker", "--pool", "prefork", "--loglevel", loglevel, "-Q", rt.settings.queue,
            "--hostname", hostname or f"jobtrail-{os.getpid()}@{socket.gethostname()}",
            "--without-mingle", "--without-gossip"]
    if concurrency or rt.settings.worker_concurrency:
        argv += ["--concurrency", str(concurrency or rt.settings.worker_concurrency)]
    rt.celery.worker_main(argv=argv)


def main() -> None:
    """Entry point: run the Typer app with errors turned into one line and an exit code."""
    command = typer.main.get_command(app)
    try:
        rc = command.main(prog_name="jobtrail", standalone_mode=False)
    except typer.Abort:
        exit_with("aborted", 130)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.TyperException as exc:  # usage errors (Typer's vendored click)
        format_message = getattr(exc, "format_message", None)
        exit_with(format_message() if format_message else str(exc), 2)
    except ConfigError as exc:
        exit_with(str(exc), 2)
    except (JobNotFoundError, ArchivedJobNotFoundError) as exc:
        exit_with(str(exc), 3)
    except JobtrailError as exc:
        exit_with(str(exc), 1)
    except KeyboardInterrupt:
        exit_with("interrupted", 130)
    if rc == 130:  # Typer turns KeyboardInterrupt into Exit(130), returned without a word
        exit_with("interrupted", 130)
    sys.exit(rc if isinstance(rc, int) else 0)


