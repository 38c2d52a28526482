"""`jobtrail doctor`: what in this deployment can lose or hide jobs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from jobtrail.cli.context import runtime, settings_from
from jobtrail.cli.output import err, escape, out, print_json
from jobtrail.connections import REDIS_ERRORS, wrap_redis_error
from jobtrail.doctor import Finding, Severity, run_checks
from jobtrail.embedded import read_server_info, recent_restarts, redis_data_dir
from jobtrail.retention.policy import policies_from_settings

__all__ = ["doctor", "findings_view"]

_STYLE = {Severity.OK: "green", Severity.WARNING: "yellow", Severity.ERROR: "bold red"}


def doctor(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Check Redis eviction, persistence and replication, which server each DB is on, time
    limits, TTLs, connection timeouts, stuck or dead workers and index consistency.

    Exit status 1 when any finding is an error.
    """
    rt = runtime(ctx)
    embedded = settings_from(ctx).uses_embedded
    info = read_server_info(redis_data_dir(rt.settings)) if embedded else None
    restarts = recent_restarts(redis_data_dir(rt.settings)) if embedded else None
    clients = {"main": rt.clients.main, "broker": rt.clients.broker,
               "results": rt.clients.results}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err,
                  transient=True, disable=json_out or not err.is_terminal) as bar:
        task = bar.add_task("examining keys: 0", total=None)
        seen = [0]

        def advance(n: int) -> None:
            seen[0] += n
            bar.update(task, description=f"examining keys: {seen[0]}")

        try:
            ages = {name: p.older_than_s
                    for name, p in policies_from_settings(rt.settings).items()}
            findings = run_checks(rt.settings, clients, rt.keys, progress=advance,
                                  retention_ages_s=ages,
                                  embedded_port=info.port if info else None,
                                  embedded_restarts=restarts)
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("a Redis DB", exc) from exc
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if json_out:
        print_json({"errors": errors, "findings": [f.to_dict() for f in findings]})
    else:
        out.print(findings_view(findings))
        out.print(f"\n{errors} error(s)" if errors else "\nno errors")
    if errors:
        raise typer.Exit(1)


def findings_view(findings: list[Finding]) -> Table:
    """Return doctor's findings as a grid: the severity, then the check and its message
    wrapped between words under itself (ids whole), with the ids counted and the fix."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=7)
    grid.add_column(overflow="fold")  # only a word wider than the terminal folds
    for f in findings:
        lines = [f"{f.check}: {escape(f.message)}"]
        sample = f.evidence.get("sample") if f.severity is not Severity.OK else None
        if sample:  # name what was counted: the first ten ids, and how many more
            more = int(f.evidence.get("count", len(sample))) - len(sample)
            lines.append(f"ids: {escape(', '.join(sample))}"
                         + (f" (and {more} more; jobtrail doctor --json lists all)"
                            if more > 0 else ""))
        if f.fix and f.severity is not Severity.OK:
            lines.append(f"fix: {escape(f.fix)}")
        grid.add_row(f"[{_STYLE[f.severity]}]{f.severity.value}[/]", "\n".join(lines))
    return grid
