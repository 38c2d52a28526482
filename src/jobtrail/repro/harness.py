"""run_reproduction(): isolated DBs, seeded jobs, real workers, scenarios under the monitor,
and the evidence directory `repro_<ts>/`.

Invariant: a run never touches a deployment it was not pointed at. Without
Redis URLs it starts a private redis-server of its own (data in the evidence
directory, stopped at the end); with the URLs of an env file it requires
the three DBs to be empty, so every key it reports is one the run made or
one a foreign client wrote while it ran. Whatever happens, workers are
stopped, the monitor ends and restores the keyspace-notification config,
and the files recorded so far are kept.

Files of `repro_<ts>/`:

- `monitor_<ts>.log`, `db_queries_<ts>.log`, `monitoring_report_<ts>.json`: the monitor's;
- `recording.json`: what each scenario observed (repro/scenarios.py), with the
  setup and the DB states before and after each scenario;
- `settings.json`: the settings of the run, secrets and URL passwords masked;
- `REPRODUCTION_SUMMARY.md` and `REPRODUCTION_SUMMARY.json`: the evidence report;
- `workers/<name>.log`: each worker's output; `state/`: the archive (and the
  private server's data under `redis/`).
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from jobtrail.clock import monotonic_s, now_s
from jobtrail.config import Settings
from jobtrail.connections import connect, mask_url, wait_until_ready
from jobtrail.embedded import (
    BROKER_DB,
    MAIN_DB,
    RESULTS_DB,
    EmbeddedRedis,
    check_embedded_allowed,
)
from jobtrail.errors import JobtrailError, ReproError
from jobtrail.jobs import SAMPLE_PROBLEMS, JobService
from jobtrail.keys import KeySpace
from jobtrail.monitor.report import read_report, stamp
from jobtrail.monitor.watch import WatchOptions, WatchTarget
from jobtrail.repro.context import DB_LABELS, MonitorThread, Progress, RunContext, db_state
from jobtrail.repro.evidence import build_summary
from jobtrail.repro.render import render_markdown
from jobtrail.repro.scenarios import ORDER, RUNNERS, Scenario
from jobtrail.store import EventLog, JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.trace import trace_job
from jobtrail.worker.app import create_celery_app

__all__ = ["RECORDING_FORMAT", "ReproInterrupted", "RunOptions", "RunResult", "masked_settings",
           "run_reproduction"]

logger = logging.getLogger(__name__)


class ReproInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM, after its workers and server were stopped.

    Attributes:
        out_dir: The run's directory: recording.json (with `interrupted`: the
            step it was in and when), settings.json and the monitor's files so
            far; no summary.
    """

    def __init__(self, out_dir: Path) -> None:
        super().__init__(f"interrupted; the partial evidence (no summary) is in {out_dir}")
        self.out_dir = out_dir

RECORDING_FORMAT = "jobtrail.repro.recording/1"
_PACKAGES = ("jobtrail", "celery", "kombu", "redis", "sympy", "sqlalchemy")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What to reproduce, and where.

    Attributes:
        settings: Settings from the env file and environment (unresolved): with
            all three URLs set, the run uses those DBs; otherwise a private server.
        out_dir: Parent directory of `repro_<ts>/`.
        scenarios: Scenarios to run; `processing` is always run first.
        jobs: Jobs to seed, drawn in turn from the five sample problems.
        interval_s: Seconds between monitor rounds.
        duration_s: Minimum seconds the monitor records (it goes on until the
            scenarios are done, then one more full round).
        private_server_args: Extra redis-server options of the private server,
            e.g. ("--maxmemory-policy", "allkeys-lru").
        wait_timeout_s: Deadline of each wait for jobs or workers, seconds.
    """

    settings: Settings
    out_dir: Path
    scenarios: Sequence[Scenario] = ORDER
    jobs: int = 5
    interval_s: float = 5.0
    duration_s: float = 120.0
    private_server_args: tuple[str, ...] = ()
    wait_timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: its directory, the summary document and the files it wrote."""

    out_dir: Path
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


#: Called after each scenario with its name and the run's context (tests inject foreign
#: clients here).
AfterScenarioFn = Callable[[Scenario, RunContext], None]


def masked_settings(settings: Settings) -> dict[str, Any]:
    """Return *settings* as JSON data with the API token and URL passwords masked."""
    data = settings.model_dump(mode="json")  # SecretStr dumps as "**********"
    for name in ("main_url", "broker_url", "results_url", "archive_url"):
        if data.get(name):
            data[name] = mask_url(str(data[name]))
    return data


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _plan(scenarios: Sequence[Scenario]) -> list[Scenario]:
    chosen = set(scenarios) | {Scenario.PROCESSING}
    return [s for s in ORDER if s in chosen]


def _check_empty(settings: Settings) -> None:
    for label, url in zip(DB_LABELS, settings.require_urls(), strict=True):
        client = connect(url)
        try:
            wait_until_ready(client, mask_url(url), timeout_s=3)
            size = int(client.dbsize())
        finally:
            client.close()
        if size:
            raise ReproError(
                f"the {label} DB {mask_url(url)} holds {size} keys; a reproduction needs "
                "empty, isolated DBs (empty it, point the env file elsewhere, or leave the "
                "URLs out to use a private server)")


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8")
    return path


class _Run:
    """One run's resources, closed in reverse order by close()."""

    def __init__(self, options: RunOptions, on_progress: Callable[[Progress], None]) -> None:
        self.options = options
        self.on_progress = on_progress
        self.started_at = now_s()
        self.dir = options.out_dir / f"repro_{stamp(self.started_at)}"
        try:
            self.dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError as exc:
            raise ReproError(f"{self.dir} exists already (another run started this second?)"
                             ) from exc
        except OSError as exc:
            raise ReproError(f"cannot write the evidence directory {self.dir}: {exc}") from exc
        self.private: EmbeddedRedis | None = None
        self.ctx: RunContext | None = None

    def settings(self) -> Settings:
        base = self.options.settings
        update: dict[str, Any] = {"state_dir": self.dir / "state"}
        if base.uses_embedded:
            check_embedded_allowed(base)
            self.private = EmbeddedRedis(self.dir / "state" / "redis")
            self.on_progress(Progress("setup", "starting a private redis-server"))
            self.private.start("--save", "", "--appendonly", "no",
                               *self.options.private_server_args)
            update.update(main_url=self.private.url(MAIN_DB), broker_url=self.private.url(
                BROKER_DB), results_url=self.private.url(RESULTS_DB))
            return base.model_copy(update=update)
        _check_empty(base)
        return base.model_copy(update=update)

    def open(self) -> RunContext:
        settings = self.settings()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        main_url, broker_url, results_url = settings.require_urls()
        clients = {"main": connect(main_url), "broker": connect(broker_url),
                   "results": connect(results_url)}
        keys = KeySpace(settings.key_prefix, queue=settings.queue)
        store = JobStore(clients["main"], keys, events_max_len=settings.events_max_len)
        archive = ArchiveStore(settings.effective_archive_url,
                               table_prefix=settings.archive_table_prefix)
        archive.ensure_schema()
        monitor = MonitorThread(
            [WatchTarget(label, clients[label]) for label in DB_LABELS],
            WatchOptions(out_dir=self.dir, interval_s=self.options.interval_s,
                         duration_s=None, keys=keys), self.on_progress)
        self.ctx = RunContext(
            settings=settings, out_dir=self.dir, clients=clients, keys=keys, store=store,
            events=EventLog(clients["main"], keys),
            service=JobService(store, create_celery_app(settings)), archive=archive,
            private=self.private, monitor=monitor, interval_s=self.options.interval_s,
            on_progress=self.on_progress, wait_timeout_s=self.options.wait_timeout_s)
        return self.ctx

    def close(self) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        if self.ctx is not None:
            self.ctx.stop_workers()
            summary = self.ctx.monitor.stop()
            self.ctx.archive.close()
            for client in self.ctx.clients.values():
                client.close()
        if self.private is not None:
            self.private.stop()
        return summary


def _run_scenario(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    ctx.say(scenario.value, "starting")
    record: dict[str, Any] = {"name": scenario.value, "started_at": now_s(),
                              "before": db_state(ctx.clients, ctx.keys)}
    try:
        record["data"] = RUNNERS[scenario](ctx)
        ctx.settle()
    except (JobtrailError, redis.RedisError) as exc:
        logger.error("repro scenario failed scenario=%s reason=%s", scenario.value, exc)
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["after"] = db_state(ctx.clients, ctx.keys)
    record["ended_at"] = now_s()
    return record


def _wait_out(ctx: RunContext, started: float, duration_s: float) -> None:
    """Keep recording until the duration is over, then one more full round."""
    while monotonic_s() - started < duration_s:
        left = duration_s - (monotonic_s() - started)
        ctx.say("monitor", f"recording {left:.0f} s more")
        ctx.monitor.wait_rounds(1, timeout_s=4 * ctx.interval_s + 30)
    ctx.settle()


def _final(ctx: RunContext) -> dict[str, Any]:
    """Trace every seeded or scenario job whose record is gone at the end."""
    ids = [str(i) for i in ctx.clients["main"].zrange(ctx.keys.jobs(), 0, -1)]
    known = list(dict.fromkeys([*ctx.seeded, *ids]))
    gone = [i for i in known if not ctx.clients["main"].exists(ctx.keys.job(i))]
    traces = {i: trace_job(ctx.trace_sources(), i) for i in gone[:100]}
    return {"known_ids": len(known), "records_gone": gone,
            "traces": {i: {"fate": t.fate.value, "verdict": t.verdict}
                       for i, t in traces.items()}}


def run_reproduction(options: RunOptions, *,
                     on_progress: Callable[[Progress], None] = lambda _p: None,
                     after_scenario: AfterScenarioFn | None = None) -> RunResult:
    """Run the scenarios of *options* under the monitor and write the evidence directory.

    The order: isolated DBs (a private server, or the env file's empty DBs),
    the monitor's baseline round, the seeded jobs (pending, no worker yet, one
    round so the monitor sees them), then each scenario with the DB states
    before and after it and two monitor rounds at its end, then recording
    until *duration_s*, a trace of every job whose record is gone, and the
    report, computed from `recording.json` and the monitoring report.

    Args:
        options: Scenarios, jobs, interval, duration, settings, output directory.
        on_progress: Called with each progress line (the CLI shows them on stderr).
        after_scenario: Called after each scenario (tests use it to act as a
            foreign client mid-run).

    Returns:
        The directory, the summary document and the paths of the files.

    Raises:
        ReproInterrupted: Ctrl-C (KeyboardInterrupt) during the run; its workers and
            server are stopped and recording.json is written, with no summary.
        ReproError: The env file's DBs are not empty, or the directory exists.
        EmbeddedRedisError: The private server did not start.
        RedisUnavailableError: A DB became unreachable outside a scenario.
        ConfigError: The settings are incomplete.
    """
    if options.jobs < 1:
        raise ReproError("at least one job must be seeded")
    last: list[Progress] = []

    def progress(p: Progress) -> None:
        last[:] = [p]
        on_progress(p)

    run = _Run(options, progress)
    recording: dict[str, Any] = {
        "format": RECORDING_FORMAT, "started_at": run.started_at,
        "options": {"scenarios": [s.value for s in _plan(options.scenarios)],
                    "requested": [s.value for s in options.scenarios], "jobs": options.jobs,
                    "interval_s": options.interval_s, "duration_s": options.duration_s},
        "scenarios": []}
    files: dict[str, Path] = {}
    try:
        ctx = run.open()
        started = monotonic_s()
        recording["setup"] = _setup(ctx, options)
        files["settings"] = _write_json(run.dir / "settings.json", {
            "settings": masked_settings(ctx.settings), "overrides": recording["setup"][
                "overrides"]})
        ctx.monitor.wait_rounds(1, timeout_s=4 * options.interval_s + 30)
        problems = [SAMPLE_PROBLEMS[i % len(SAMPLE_PROBLEMS)] for i in range(options.jobs)]
        ctx.seeded = [j.id for j in ctx.service.submit_many(problems)]
        recording["seeded"] = [{"id": i, "problem": p}
                               for i, p in zip(ctx.seeded, problems, strict=True)]
        ctx.say("seed", f"{len(ctx.seeded)} jobs submitted")
        ctx.settle()
        for scenario in _plan(options.scenarios):
            recording["scenarios"].append(_run_scenario(ctx, scenario))
            if after_scenario is not None:
                after_scenario(scenario, ctx)
        _wait_out(ctx, started, options.duration_s)
        recording["final"] = _final(ctx)
    except KeyboardInterrupt:  # the step it was in, in the recording and the one-line error
        recording["interrupted"] = {"at": now_s(), "during": " ".join(
            (last[0].step, last[0].detail)) if last else "setup"}
        interrupted = True
    else:
        interrupted = False
    finally:
        recording["monitor"] = run.close()
        recording["ended_at"] = now_s()
        files["recording"] = _write_json(run.dir / "recording.json", recording)
    if interrupted:
        raise ReproInterrupted(run.dir)
    report_path = Path(recording["monitor"]["files"]["report"])
    summary = build_summary(recording, read_report(report_path), run.dir)
    files["summary_json"] = _write_json(run.dir / "REPRODUCTION_SUMMARY.json", summary)
    files["summary_md"] = run.dir / "REPRODUCTION_SUMMARY.md"
    files["summary_md"].write_text(render_markdown(summary), encoding="utf-8")
    for name in ("log", "queries", "report"):
        files[name] = Path(recording["monitor"]["files"][name])
    return RunResult(run.dir, summary, files)


def _setup(ctx: RunContext, options: RunOptions) -> dict[str, Any]:
    urls = dict(zip(DB_LABELS, ctx.settings.require_urls(), strict=True))
    overrides = {"state_dir": {"value": str(ctx.settings.state_dir),
                               "why": "the archive and worker state stay in the evidence "
                                      "directory"}}
    if ctx.private is not None:
        overrides["main_url/broker_url/results_url"] = {
            "value": f"DBs {MAIN_DB}/{BROKER_DB}/{RESULTS_DB} of a private server",
            "why": "the three Redis URLs were not all configured: the run never falls back "
                   "on a shared server"}
    server = ctx.clients["main"].info("server")
    return {
        "versions": _versions(), "redis_version": str(server.get("redis_version", "")),
        "private_server": ctx.private is not None,
        "private_server_args": list(options.private_server_args),
        "urls": {label: mask_url(url) for label, url in urls.items()},
        "archive": ctx.archive.location, "settings": masked_settings(ctx.settings),
        "overrides": overrides,
    }
