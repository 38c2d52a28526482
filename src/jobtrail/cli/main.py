"""The `jobtrail` command: root options, job commands, and error handling.

Invariant: every JobtrailError and usage error ends as one line on stderr and
a non-zero exit (2 for usage and settings, 1 for runtime failures).

Start-up: a command module is imported only when its command runs (`_LOADERS`,
called by main() for the command named on the command line; all of them for
--help or an unknown name), and the job commands import Celery only in their
body. `jobtrail status`, `trace` and `list` so load neither Celery, SQLAlchemy,
FastAPI nor SymPy (bench/bench_cli.py measures it). These function-local
imports are the documented exception to the house rule: start-up cost, not cycles.
"""

from __future__ import annotations

import logging.config
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from jobtrail import __version__
from jobtrail.cli.context import CliState, check_listen, runtime, settings_from, trace_sources
from jobtrail.cli.ids import EXIT_NOT_FOUND, ID_HELP, not_found_line, resolve_id, resolve_ids
from jobtrail.cli.output import (
    BROKEN_PIPE,
    Interrupts,
    escape,
    exit_with,
    exit_with_lines,
    interrupt_between_steps,
    job_table,
    out,
    print_json,
    progress_bar,
    reflow_help,
    render_job,
    write_lines,
)
from jobtrail.clock import monotonic_s
from jobtrail.errors import (
    ArchivedJobNotFoundError,
    ConfigError,
    InvalidTransitionError,
    JobNotFoundError,
    JobtrailError,
    NotCancellableError,
    PartialSubmitError,
    ProblemError,
)
from jobtrail.logconfig import log_config
from jobtrail.models import TERMINAL_STATUSES, Job, JobStatus
from jobtrail.trace import trace_job

if TYPE_CHECKING:
    from jobtrail.jobs import JobService

__all__ = ["app", "main"]

app = typer.Typer(
    name="jobtrail",
    help="Math-problem jobs on Celery + Redis, with every job accounted for.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, pwsh)
)


def _server() -> None:
    from jobtrail.cli import server  # lazy: start-up (module docstring)

    app.add_typer(server.app, name="server")


def _monitor() -> None:
    from jobtrail.cli import monitor  # lazy: start-up

    app.add_typer(monitor.app, name="monitor")


def _repro() -> None:
    from jobtrail.cli import repro  # lazy: start-up

    app.add_typer(repro.app, name="repro")


def _demo() -> None:
    from jobtrail.cli import demo  # lazy: start-up

    app.command(name="demo")(demo.demo)


def _trace() -> None:
    from jobtrail.cli import trace  # lazy: start-up

    app.command(name="trace")(trace.trace)


def _workers() -> None:
    from jobtrail.cli import trace  # lazy: start-up

    app.command(name="workers")(trace.workers)


def _doctor() -> None:
    from jobtrail.cli import doctor  # lazy: start-up

    app.command(name="doctor")(doctor.doctor)


def _serve() -> None:
    from jobtrail.cli import serve  # lazy: start-up

    app.command(name="serve")(serve.serve)


def _retention() -> None:
    from jobtrail.cli import retention  # lazy: start-up

    app.add_typer(retention.app, name="retention")


def _restore() -> None:
    from jobtrail.cli import retention  # lazy: start-up

    app.command(name="restore")(retention.restore)


def _archive() -> None:
    from jobtrail.cli import archive  # lazy: start-up

    app.add_typer(archive.app, name="archive")


#: Commands whose module is imported only when they run, in --help's order.
_LOADERS: dict[str, Callable[[], None]] = {
    "server": _server, "monitor": _monitor, "repro": _repro, "demo": _demo, "trace": _trace,
    "workers": _workers, "doctor": _doctor, "serve": _serve, "retention": _retention,
    "restore": _restore, "archive": _archive,
}
#: Root options that take a value (the command name comes after it).
_VALUED_ROOT_OPTIONS = frozenset({"--env-file"})


def _command_named(argv: list[str]) -> str | None:
    """Return the command name on *argv* (after the root options), None if there is none."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED_ROOT_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def load_commands(argv: list[str]) -> None:
    """Register the command *argv* names, or every command for --help or an unknown name."""
    name = _command_named(argv)
    loaders = [_LOADERS[name]] if name in _LOADERS else (
        [] if name in _OWN_COMMANDS else list(_LOADERS.values()))
    for load in loaders:
        load()


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _print_version(value: bool) -> None:
    if value:
        out.print(f"jobtrail {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Annotated[Path | None, typer.Option(
        "--env-file", envvar="JOBTRAIL_ENV_FILE", help="Load settings from this dotenv file.",
        dir_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", help="Print jobtrail's version and exit.", is_eager=True,
        callback=_print_version)] = False,
) -> None:
    """jobtrail: submit math problems, solve them on Celery workers, trace every job."""
    ctx.obj = CliState(env_file=env_file)
    # commands report errors as one line themselves, and what they did on stdout: logs are
    # for -v, and a record of a fact the command prints is not echoed (logconfig.REPORTED)
    logging.config.dictConfig(log_config(verbose=verbose, level="WARNING", echo_reported=False))


def _wait_for(ctx: typer.Context, ids: list[str], timeout_s: float,
              stop: Callable[[], bool]) -> str | None:
    """Wait until every job of *ids* is finished or *stop* says so (a signal held by
    interrupt_between_steps); return None, or why the wait stopped."""
    rt = runtime(ctx)
    deadline = monotonic_s() + timeout_s
    terminal = {s.value for s in TERMINAL_STATUSES}
    done = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task("waiting for the worker", total=len(ids))
            while True:
                done = sum(row[0] in terminal for row in rt.store.read_fields(ids, ("status",)))
                bar.update(task, completed=done)
                if done == len(ids):
                    return None
                if stop():
                    return f"interrupted while waiting for {len(ids) - done} job(s)"
                if monotonic_s() > deadline:
                    return (f"timed out after {timeout_s:g} s waiting for {len(ids) - done} "
                            "job(s); is a worker running? (jobtrail worker)")
                time.sleep(0.1)
    except KeyboardInterrupt:
        return f"interrupted while waiting for {len(ids) - done} job(s)"


#: How click names the --file option in a usage error.
_FILE_HINT = "'--file' / '-f'"


def _partial_submit(exc: PartialSubmitError, state_dir: Path, *, json_out: bool) -> NoReturn:
    """Name what a submission cut short by Redis left: the accepted ids on stdout (--json:
    the list of accepted ids, as a whole submission prints its list), then one line on
    stderr counting the failed and uncertain ones and naming the files in *state_dir* that
    hold their ids; exit 1."""
    if json_out:
        print_json(exc.accepted)
    else:
        write_lines(exc.accepted)

    def saved(ids: list[str], kind: str) -> str:
        where = _save_ids(state_dir, ids, kind=kind)
        return f"ids in {where}" if where else "their ids could not be saved"

    failed = (f"{len(exc.failed)} could not be enqueued and are marked failed "
              f"(jobtrail list --status failed; {saved(exc.failed, 'failed')})"
              if exc.failed else "none marked failed")
    uncertain = (f"; {len(exc.uncertain)} may be pending without a message (jobtrail doctor "
                 f"names them, jobtrail requeue resends them; {saved(exc.uncertain, 'uncertain')})"
                 if exc.uncertain else "")
    total = len(exc.accepted) + len(exc.failed) + len(exc.uncertain) + exc.unsubmitted
    exit_with(f"Redis at {exc.url} became unavailable after {len(exc.accepted)} of "
              f"{total} problems were submitted; the jobs above were accepted and will run; "
              f"{failed}{uncertain}; {exc.unsubmitted} were not submitted: {exc.reason}", 1)


def _submit_many(service: JobService, problems: list[str], state_dir: Path, *, json_out: bool,
                 stop: Callable[[], bool]) -> list[Job]:
    """submit_many under a progress bar; a PartialSubmitError ends the command there."""
    try:
        with progress_bar(disable=json_out) as bar:
            task = bar.add_task("submitting", total=len(problems))
            return service.submit_many(
                problems, on_progress=lambda n: bar.update(task, completed=n), stop=stop)
    except PartialSubmitError as exc:
        _partial_submit(exc, state_dir, json_out=json_out)


def _given_problems(problems: list[str] | None,
                    file: typer.FileText | None) -> list[tuple[tuple[str, str], str]]:
    """((param hint, where), text) of each problem given: an argument by its place, a file
    line by its number. Raises typer.BadParameter when none is given."""
    given = [(("PROBLEMS", f"problem {n}"), p) for n, p in enumerate(problems or [], 1)]
    if file is not None:
        name = "stdin" if file.name in ("-", "<stdin>") else file.name
        in_file = [((_FILE_HINT, f"{name} line {n}"), line.strip())
                   for n, line in enumerate(file, 1) if line.strip()]
        if not in_file:
            raise typer.BadParameter(f"{name} holds no problem (blank lines only)",
                                     param_hint=_FILE_HINT)
        given += in_file
    if not given:
        raise typer.BadParameter("give at least one problem, or --file", param_hint="PROBLEMS")
    return given


_WAIT_TIMEOUT_S = 60.0  # submit --wait gives up after this, unless --timeout


@app.command()
def submit(
    ctx: typer.Context,
    problems: Annotated[list[str] | None, typer.Argument(
        help="Problem texts, one per argument.", show_default=False)] = None,
    file: Annotated[typer.FileText | None, typer.Option(
        "--file", "-f", help="Also submit each non-blank line of this file ('-': stdin).",
        encoding="utf-8-sig", errors="surrogateescape")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every job finishes.")] = False,
    timeout: Annotated[float | None, typer.Option(
        help=f"With --wait: give up after this many seconds (default {_WAIT_TIMEOUT_S:g}).",
        min=0.1, show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Submit problems as jobs; print their ids (or, with --wait, their answers).

    With --json: one problem given as an argument prints one object; several
    problems or --file print a list (of one, too).
    """
    given = _given_problems(problems, file)
    if timeout is not None and not wait:  # Celery's get(timeout=) and RQ's both wait
        exit_with("--timeout needs --wait (without it submit does not wait)", 2)
    as_list = file is not None or len(given) > 1
    from jobtrail.jobs import check_problem_text  # lazy: start-up (module docstring)

    max_chars = settings_from(ctx).max_problem_chars
    for (hint, where), problem in given:  # all or nothing: a bad one is a usage error
        try:
            check_problem_text(problem, max_chars=max_chars)
        except ProblemError as exc:
            raise typer.BadParameter(f"{where}: {exc}", param_hint=hint) from None
    problems = [problem for _, problem in given]
    rt = runtime(ctx)
    # a Ctrl-C or SIGTERM ends the submission between chunks, and the ids accepted are printed
    # before the command ends: the handlers hold the signal until the output is written
    with interrupt_between_steps() as interrupted:
        if len(problems) == 1:
            jobs = [rt.service.submit(problems[0])]
        else:
            jobs = _submit_many(rt.service, problems, settings_from(ctx).state_dir,
                                json_out=json_out, stop=interrupted)
        stopped = (f"interrupted after submitting {len(jobs)} of {len(problems)} problems"
                   if interrupted() else None)
        if wait and stopped is None:
            stopped = _wait_for(ctx, [j.id for j in jobs], timeout or _WAIT_TIMEOUT_S,
                                stop=interrupted)
            jobs = [rt.store.get(j.id) for j in jobs]
        if json_out:
            print_json([j.to_dict() for j in jobs] if as_list else jobs[0].to_dict())
        elif wait:
            out.print(job_table(jobs))
        else:
            interrupted.raise_again = False  # write_lines leaves a write that waits itself
            _print_ids(ctx, [j.id for j in jobs], interrupted, stopped)
    if stopped is not None:  # what was accepted is printed above: each job can be traced
        exit_with(f"{stopped}; the jobs above were accepted (jobtrail status ID)",
                  interrupted.exit_code if interrupted() else 1)
    if interrupted():  # after the last chunk: everything was submitted and printed
        exit_with(f"interrupted; all {len(jobs)} problems were submitted and their ids printed",
                  interrupted.exit_code)
    failed = [j for j in jobs if j.status is JobStatus.FAILED]
    if wait and failed:
        exit_with(f"{len(failed)} of {len(jobs)} job(s) failed: {failed[0].error}")


def _print_ids(ctx: typer.Context, ids: list[str], interrupted: Interrupts,
               stopped: str | None) -> None:
    """Print the accepted *ids*, one a line; when stdout stops taking them (a closed pipe, a
    second signal), end the command with one line that says why the submission *stopped*
    (if it did), counts them and names a file that holds the ids not printed (exit 1, or
    128 + the signal). After a closed pipe the file holds every id: the pipe dropped what
    its reader had not read (`| head -3` reads 3 of the hundred or so written)."""
    printed, cut = write_lines(ids, give_up=lambda: interrupted.count > 1)
    if cut is None:
        return
    closed = cut == BROKEN_PIPE
    rest = ids if closed else ids[printed:]
    where = _save_ids(settings_from(ctx).state_dir, rest)
    counted = (f"{printed} ids written before it closed, not all of them read"
               if closed else f"{printed} ids printed")
    saved = (f"all {len(rest)} ids are in {where}" if closed else
             f"the other {len(rest)} ids are in {where}") if where else (
        f"the {'' if closed else 'other '}{len(rest)} could not be saved (jobtrail list "
        "shows the newest)")
    exit_with(f"{f'{stopped}; ' if stopped else ''}{cut}: {len(ids)} jobs were accepted and "
              f"will run, {counted}; {saved}",
              interrupted.exit_code if interrupted() else 1)


def _save_ids(state_dir: Path, ids: list[str], kind: str = "submitted") -> Path | None:
    """Write *ids* one a line to a new file `<kind>-<time>-<pid>.ids` in *state_dir*; return
    its path, None if it failed."""
    path = state_dir / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.ids"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{job_id}\n" for job_id in ids), encoding="utf-8")
    except OSError:
        return None
    return path


@app.command()
def status(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help=ID_HELP)],
    json_out: JsonOpt = False,
) -> None:
    """Show one job: status, answer or error, attempts and times.

    Exit status 3 when the record is gone; the message says what became of it
    (trace's verdict) and, for a purged job, the command that restores it.
    """
    job_id = resolve_id(ctx, job_id)
    job = runtime(ctx).store.find(job_id)
    if job is None:  # its tombstone or index entry named it
        exit_with(not_found_line(ctx, job_id), EXIT_NOT_FOUND)
    if json_out:
        print_json(job.to_dict())
    else:
        render_job(job)


@app.command()
def requeue(
    ctx: typer.Context,
    job_ids: Annotated[list[str], typer.Argument(help="Ids (or unique prefixes) of pending "
                                                      "jobs whose message was lost (see "
                                                      "jobtrail doctor).")],
    json_out: JsonOpt = False,
) -> None:
    """Send the task of pending jobs again (a submitter died before sending it), or hand a
    processing job whose worker is gone back to the queue (refused while its worker lives).

    Each id is requeued on its own; a job that cannot be (finished, processing on a
    live worker, or its message still in the broker) is reported and the command
    exits 1 after the others (those requeued are listed first).
    """
    rt = runtime(ctx)
    ids, missing = resolve_ids(ctx, job_ids)
    before = {job_id: rt.store.find(job_id) for job_id in ids}
    jobs: list[Job] = []
    refused = [not_found_line(ctx, job_id) for job_id in missing]
    unknown = len(refused)
    for job_id in ids:
        try:
            jobs.append(rt.service.requeue(job_id))
        except InvalidTransitionError as exc:  # MessageStillQueuedError among them
            refused.append(str(exc))
        except JobNotFoundError:  # its tombstone or index entry named it
            unknown += 1
            refused.append(not_found_line(ctx, job_id))
    if json_out:
        print_json([j.to_dict() for j in jobs])
    else:
        for job in jobs:
            was = before[job.id]
            if was is not None and was.status is JobStatus.PROCESSING:
                out.print(f"requeued {job.id} (was processing on worker {was.worker}, "
                          "which is gone)")
            else:
                out.print(f"requeued {job.id}")
    if refused:
        exit_with_lines(refused, refusal_exit(len(refused), unknown, done=len(jobs)))


def refusal_exit(refused: int, unknown: int, *, done: int) -> int:
    """Return the exit status of a command that refused *refused* of its ids: 3 (not
    found, as status) when every refused id is unknown and none was acted on, else 1."""
    return EXIT_NOT_FOUND if unknown == refused and not done else 1


@app.command()
def recover(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Hand every message no live worker holds back to the queue now (a dead worker's jobs).

    Live workers do this on their own once a worker's heartbeat has been gone three
    heartbeat intervals; this does it at once, for messages older than that.
    """
    rt = runtime(ctx)
    report = rt.service.recover(gone_after_s=rt.settings.gone_after_s)
    if json_out:
        print_json(report.to_dict())
        return
    if report.deferred:
        out.print(f"nothing handed back yet: {escape(report.deferred)}")
        return
    for item in report.recovered:
        out.print(f"requeued {item.job_id} ({item.status}): {escape(item.reason)}")
    out.print(f"{len(report.recovered)} job(s) handed back to the queue")


@app.command()
def cancel(
    ctx: typer.Context,
    job_ids: Annotated[list[str], typer.Argument(help="Ids (or unique prefixes) of the jobs "
                                                      "to cancel.")],
    terminate: Annotated[bool, typer.Option(
        "--terminate", help="Also cancel processing jobs, killing their task (Celery revoke "
                            "with terminate).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Cancel jobs: a pending job never runs; a processing one only with --terminate.

    A processing job of a batch message is refused even with --terminate: its
    pool process runs the whole batch.

    Each id is cancelled on its own; a job that cannot be (finished, or
    processing without --terminate) is reported and the command exits 1; when
    every refused id is unknown, with trace's verdict, it exits 3 as status does.
    """
    rt = runtime(ctx)
    ids, missing = resolve_ids(ctx, job_ids)
    cancelled: list[Job] = []
    refused = [not_found_line(ctx, job_id) for job_id in missing]
    unknown = len(refused)
    for job_id in ids:
        try:
            cancelled.append(rt.service.cancel(job_id, terminate=terminate))
        except NotCancellableError as exc:
            refused.append(str(exc.retold("--terminate")))
        except JobNotFoundError:  # its tombstone or index entry named it
            unknown += 1
            refused.append(not_found_line(ctx, job_id))
    if json_out:
        print_json({"cancelled": [j.to_dict() for j in cancelled], "refused": refused})
    else:
        for job in cancelled:
            out.print(f"cancelled {job.id} ({job.error})")
    if refused:
        exit_with_lines(refused, refusal_exit(len(refused), unknown, done=len(cancelled)))


@app.command(name="list")
def list_jobs(
    ctx: typer.Context,
    status_: Annotated[JobStatus | None, typer.Option(
        "--status", help="Only jobs with this status.", case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1,
                                       max=10_000)] = 20,
    json_out: JsonOpt = False,
) -> None:
    """List jobs, newest first.

    An index entry whose record is gone is listed too, flagged "record missing"
    with trace's verdict (--json: {"id", "record_missing": true, "fate", "verdict"}).
    """
    entries = runtime(ctx).store.list_entries(status=status_, limit=limit)
    traced = {job_id: trace_job(trace_sources(ctx), job_id)
              for job_id, job in entries if job is None}
    if json_out:
        print_json([job.to_dict() if job is not None else {
            "id": job_id, "record_missing": True, "fate": traced[job_id].fate.value,
            "verdict": traced[job_id].verdict} for job_id, job in entries])
    elif entries:
        out.print(job_table([job if job is not None else (job_id, traced[job_id].verdict)
                             for job_id, job in entries]))
    else:
        out.print("no jobs")


#: Celery's worker options (celery worker --help) pass through `jobtrail worker` as they are.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS_THROUGH)
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", help="Pool processes (default: settings, else one per CPU).",
        min=1)] = None,
    hostname: Annotated[str | None, typer.Option(
        "--hostname", "-n", help="Worker node name (default jobtrail-PID@HOST).")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="Celery log level.")] = "INFO",
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve this worker's Prometheus metrics on PORT.", min=1, max=65535)] = None,
    metrics_host: Annotated[str | None, typer.Option(
        help="Address of the metrics server (default: settings, 127.0.0.1).")] = None,
) -> None:
    """Run a Celery worker that solves jobs (prefork pool; Ctrl-C for a warm shutdown).

    Any other option is Celery's and goes to `celery worker` as given (-E,
    --pool, --autoscale, --max-tasks-per-child, -O fair, --prefetch-multiplier,
    --without-mingle, ...; see `celery worker --help`): `jobtrail worker ARGS`
    is `celery -A jobtrail.worker.app worker -Q QUEUE ARGS`.
    """
    from jobtrail.worker.app import SETTINGS_KEY  # lazy: start-up (module docstring)

    rt = runtime(ctx)
    if metrics_port or metrics_host:
        update: dict[str, object] = {"worker_metrics_port": metrics_port} if metrics_port else {}
        if metrics_host:
            update["worker_metrics_host"] = metrics_host
        rt.celery.conf[SETTINGS_KEY] = rt.settings.model_copy(update=update)
    conf = rt.celery.conf.get(SETTINGS_KEY, rt.settings)
    if conf.worker_metrics_port:  # before the worker starts: its signal handler cannot refuse
        check_listen(conf.worker_metrics_host, conf.worker_metrics_port,
                     "'--metrics-port'" if metrics_port else "JOBTRAIL_WORKER_METRICS_PORT")
    rt.celery.worker_main(argv=worker_argv(
        rt.settings.queue, hostname or f"jobtrail-{os.getpid()}@{socket.gethostname()}",
        loglevel, concurrency or rt.settings.worker_concurrency or None, list(ctx.args)))


def worker_argv(queue: str, hostname: str, loglevel: str, concurrency: int | None,
                celery_args: list[str]) -> list[str]:
    """Return the `celery worker` argv of `jobtrail worker`: its defaults, then *celery_args*.

    Celery's options take their last value, so an option in *celery_args*
    (`--pool threads`, `-Q other`) overrides the default before it.
    """
    argv = ["worker", "--pool", "prefork", "--loglevel", loglevel, "-Q", queue,
            "--hostname", hostname]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return argv + celery_args


#: The commands defined in this module (always registered).
_OWN_COMMANDS = frozenset({"submit", "status", "requeue", "list", "worker"})


def main() -> None:
    """Entry point: run the Typer app with errors turned into one line and an exit code."""
    load_commands(sys.argv[1:])
    command = typer.main.get_command(app)
    reflow_help(command)
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


