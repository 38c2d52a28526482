"""`jobtrail repro run`: reproduce the incident's scenarios and write the evidence directory."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from jobtrail.cli.context import settings_from
from jobtrail.cli.durations import duration_option
from jobtrail.cli.output import err, escape, exit_with, out, print_json, sigterm_as_interrupt
from jobtrail.config import load_settings
from jobtrail.repro import ORDER, Progress, RunOptions, Scenario, run_reproduction
from jobtrail.repro.harness import ReproInterrupted

__all__ = ["app"]

app = typer.Typer(help="Reproduce job disappearances on isolated DBs; write an evidence report.",
                  no_args_is_help=True)


class ScenarioChoice(StrEnum):
    """A value of --scenario: one scenario, or all of them."""

    PROCESSING = "processing"
    PURGE = "purge"
    MEMORY_PRESSURE = "memory-pressure"
    TTL_EXPIRY = "ttl-expiry"
    WORKER_CRASH = "worker-crash"
    ALL = "all"


def _scenarios(choices: list[ScenarioChoice] | None) -> list[Scenario]:
    if not choices or ScenarioChoice.ALL in choices:
        return list(ORDER)
    return [Scenario(c.value) for c in choices]


@app.command(name="run")
def run(
    ctx: typer.Context,
    scenario: Annotated[list[ScenarioChoice] | None, typer.Option(
        "--scenario", help="Scenario to run (repeat for several); default all. processing "
        "always runs first: it seeds the jobs the others use.", case_sensitive=False)] = None,
    jobs: Annotated[int, typer.Option(help="Jobs to seed, drawn in turn from the five sample "
                                           "problems.", min=1, max=100_000)] = 5,
    interval: Annotated[str, typer.Option(help="Time between monitor snapshots (5s, 1m...)."
                                          )] = "5s",
    duration: Annotated[str, typer.Option(help="Minimum time the monitor records (2m...); "
                                               "it goes on until the scenarios are done.")] = "2m",
    env_file: Annotated[Path | None, typer.Option(
        "--env-file", help="Settings of the run (e.g. .env.reproduction); with all three "
        "Redis URLs set, their DBs are used and must be empty, else a private server.",
        dir_okay=False)] = None,
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Directory in which repro_<ts>/ is created.", file_okay=False)] = Path("."),
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Seed jobs, run the scenarios with real workers under the monitor, write repro_<ts>/.

    The directory holds the monitor log, the query log, the monitoring
    report, recording.json, settings.json (secrets masked) and
    REPRODUCTION_SUMMARY.md with its JSON twin. Exit status 1 when the report
    finds a defect or a scenario could not be shown.
    """
    interval_s = duration_option(interval, "--interval") or 0.0
    duration_s = duration_option(duration, "--duration") or 0.0
    if interval_s <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--interval")
    settings = load_settings(env_file) if env_file else settings_from(ctx)
    # absolute before any child (redis-server, workers) sees it: they run elsewhere
    options = RunOptions(settings=settings, out_dir=out_dir.absolute(),
                         scenarios=_scenarios(scenario), jobs=jobs, interval_s=interval_s,
                         duration_s=duration_s)
    with err.status("starting the reproduction...") as status:

        def progress(p: Progress) -> None:
            status.update(f"[bold]{p.step}[/]: {escape(p.detail)}")
            if p.step != "monitor":
                err.print(f"[dim]{p.step}[/] {escape(p.detail)}")

        # SIGTERM must stop the run's worker and private redis-server, not orphan them
        with sigterm_as_interrupt():
            try:
                result = run_reproduction(options, on_progress=progress)
            except ReproInterrupted as exc:
                stopped: ReproInterrupted | None = exc
            else:
                stopped = None
    if stopped is not None:  # after the status line is gone, so that nothing overwrites it
        exit_with(str(stopped), 130)
    summary = result.summary
    if json_out:
        print_json(summary)
    else:
        for v in summary["verdicts"]:
            colour = "green" if v["verdict"] == "matches the design" else "red"
            out.print(f"{v['scenario']:<16} [{colour}]{v['verdict']}[/]")
        n = len(summary["unexpected"])
        out.print(f"unexpected events: {n}")
        out.print(f"evidence: {result.out_dir}")
        out.print(f"summary:  {result.files['summary_md']}")
    if n_bad := sum(v["verdict"] != "matches the design" for v in summary["verdicts"]):
        err.print(f"{n_bad} scenario(s) did not match the design; see the summary")
        raise typer.Exit(1)
