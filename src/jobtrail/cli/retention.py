"""`jobtrail retention purge|policies|history|restore` and the top-level `jobtrail restore`.

Parses options (durations to seconds), builds the retention stores from the
settings, calls jobtrail.retention and renders; no retention logic lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Group, RenderableType
from rich.table import Table

from jobtrail.cli.context import runtime, settings_from
from jobtrail.cli.durations import duration_option, format_duration
from jobtrail.cli.ids import EXIT_NOT_FOUND, not_found_line, resolve_ids
from jobtrail.cli.output import (
    add_id_column,
    add_text_column,
    data_table,
    exit_with,
    interrupt_between_steps,
    out,
    print_json,
    progress_bar,
    wrapped,
)
from jobtrail.clock import now_s
from jobtrail.errors import PolicyError
from jobtrail.models import JobStatus, RetentionRun
from jobtrail.retention import (
    ADHOC,
    PurgeReport,
    PurgeStep,
    RestoreReport,
    RetentionPolicy,
    count_candidates,
    history,
    policies_from_settings,
    purge,
    restore_ids,
    restore_matching,
)
from jobtrail.store import ArchiveStore, RetentionStore
from jobtrail.store.ids import MIN_PREFIX_CHARS

__all__ = ["app", "archive_store", "policies_table", "restore", "runs_view"]

app = typer.Typer(help="Purge old job records into the archive, restore them, see the audit.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def archive_store(ctx: typer.Context) -> ArchiveStore:
    """Return the archive of the command's settings, closed when the command ends."""
    settings = settings_from(ctx)
    archive = ArchiveStore(settings.effective_archive_url,
                           table_prefix=settings.archive_table_prefix)
    ctx.call_on_close(archive.close)
    return archive


def _stores(ctx: typer.Context) -> tuple[RetentionStore, ArchiveStore]:
    rt = runtime(ctx)
    store = RetentionStore(rt.clients.main, rt.clients.results, rt.keys,
                           events_max_len=rt.settings.events_max_len)
    return store, archive_store(ctx)


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _policies(ctx: typer.Context) -> dict[str, RetentionPolicy]:
    try:
        return policies_from_settings(settings_from(ctx))
    except PolicyError as exc:
        exit_with(str(exc), 2)


def _unknown_policy(name: str, policies: dict[str, RetentionPolicy], why: str = "") -> NoReturn:
    known = ", ".join(policies) or "none configured (JOBTRAIL_RETENTION_POLICIES)"
    exit_with(f"unknown retention policy {name!r}{why}; known: {known}", 2)


def _named(ctx: typer.Context, name: str) -> RetentionPolicy:
    policies = _policies(ctx)
    if name not in policies:
        _unknown_policy(name, policies)
    return policies[name]


def _policy(ctx: typer.Context, name: str | None, statuses: list[JobStatus] | None,
            older_than: str | None, keep_last: int | None,
            max_per_run: int | None) -> RetentionPolicy:
    adhoc = statuses or older_than is not None or keep_last is not None
    if name is not None:
        if adhoc:
            raise typer.BadParameter("give either --policy or --status/--older-than/"
                                     "--keep-last, not both", param_hint="--policy")
        policy = _named(ctx, name)
        if max_per_run is None:
            return policy
        return RetentionPolicy(policy.name, policy.statuses, policy.older_than_s,
                               policy.keep_last, max_per_run)
    if not statuses or older_than is None:
        raise typer.BadParameter("give --policy NAME, or --status and --older-than",
                                 param_hint="--status/--older-than")
    try:
        return RetentionPolicy(ADHOC, tuple(dict.fromkeys(statuses)),
                               duration_option(older_than, "--older-than") or 0.0,
                               keep_last or 0, max_per_run)
    except PolicyError as exc:
        exit_with(str(exc), 2)


def _print_purge(report: PurgeReport) -> None:
    verb = "would purge" if report.dry_run else "purged"
    out.print(f"policy {report.policy}: selected {report.selected}, "
              f"{verb} {report.selected if report.dry_run else report.purged}"
              + ("" if report.dry_run else
                 f", archived {report.archived}, skipped {report.skipped}")
              + f" in {report.elapsed_s:.2f} s")
    lines = []
    if report.selected:
        lines.append(f"finished between {_when(report.oldest_finished_at)} and "
                     f"{_when(report.newest_finished_at)}")
        lines.append(f"sample ids: {', '.join(report.sample_ids)}")
    lines.append(f"archive: {report.archive}" + (f" (run {report.run_id})" if report.run_id
                                                  else ""))
    stuck = {k: v for k, v in report.stuck.items() if v}
    if stuck:
        lines.append("[yellow]stuck, never purged:[/] " + ", ".join(
            f"{n} {s}" for s, n in stuck.items()))
    out.print(wrapped(lines, indent=2))


@app.command(name="purge")
def purge_cmd(
    ctx: typer.Context,
    policy_name: Annotated[str | None, typer.Option(
        "--policy", help="A named policy of JOBTRAIL_RETENTION_POLICIES.")] = None,
    statuses: Annotated[list[JobStatus] | None, typer.Option(
        "--status", help="Status to purge: completed, failed or cancelled (repeatable).",
        case_sensitive=False)] = None,
    older_than: Annotated[str | None, typer.Option(
        help="Minimum age since the job finished: 7d, 12h, 30m, 45s.")] = None,
    keep_last: Annotated[int | None, typer.Option(
        help="Keep this many of the newest finished jobs.", min=0)] = None,
    max_per_run: Annotated[int | None, typer.Option(
        help="Purge at most this many jobs in this run.", min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Jobs per batch (default: JOBTRAIL_PURGE_BATCH_SIZE).", min=1,
        max=100_000)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be purged; write nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Archive, then delete, the job records a policy selects (tombstones stay behind)."""
    policy = _policy(ctx, policy_name, statuses, older_than, keep_last, max_per_run)
    store, archive = _stores(ctx)
    settings = settings_from(ctx)
    at = now_s()
    # Ctrl-C and SIGTERM are held and taken between batches (purge's `interrupted`): the
    # batches in flight finish and the audit counts them; a second one raises at once
    with interrupt_between_steps() as interrupted, progress_bar() as progress:
        task = progress.add_task("dry run" if dry_run else "purging",
                                 total=count_candidates(store, policy, at))

        def advance(step: PurgeStep, ids: Sequence[str]) -> None:
            if step in (PurgeStep.DELETED, PurgeStep.SKIPPED):
                progress.advance(task, len(ids))

        report = purge(store, archive, policy, tombstone_ttl_s=settings.tombstone_ttl_s,
                       batch_size=batch_size or settings.purge_batch_size, dry_run=dry_run,
                       now=at, on_progress=advance, interrupted=interrupted)
    if json_out:
        print_json(report.to_dict())
    else:
        _print_purge(report)


@app.command()
def policies(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show the configured policies and what each would select now."""
    named = _policies(ctx)
    rows: list[dict[str, Any]] = []
    if named:
        store, archive = _stores(ctx)
        at = now_s()
        for policy in named.values():
            report = purge(store, archive, policy, tombstone_ttl_s=1.0, dry_run=True, now=at)
            rows.append({"name": policy.name, "selector": policy.selector(),
                         "selected": report.selected,
                         "oldest_finished_at": report.oldest_finished_at,
                         "newest_finished_at": report.newest_finished_at,
                         "sample_ids": report.sample_ids, "stuck": report.stuck})
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print("no retention policies configured (JOBTRAIL_RETENTION_POLICIES)")
        return
    out.print(policies_table(rows))


def policies_table(rows: list[dict[str, Any]]) -> Table:
    """Return `retention policies` rows (as --json prints them) as a table that reads at 80
    columns: names whole, each selection in words, wrapped between words."""
    table = data_table("retention policies (selection as of now)")
    add_id_column(table, "name", (row["name"] for row in rows))
    for col in ("selects", "would purge", "oldest finished", "stuck, never purged"):
        add_text_column(table, col)
    for row in rows:
        table.add_row(row["name"], _selects(row["selector"]), str(row["selected"]),
                      _when(row["oldest_finished_at"]),
                      ", ".join(f"{n} {s}" for s, n in row["stuck"].items() if n) or "-")
    return table


def _selects(selector: dict[str, Any]) -> str:
    """Return a policy's selector in words: `completed finished over 7d ago, keeping ...`."""
    text = (f"{', '.join(selector['status'])} finished over "
            f"{format_duration(selector['older_than_s'])} ago")
    if selector["keep_last"]:
        text += f", keeping the newest {selector['keep_last']}"
    if selector["max_per_run"]:
        text += f", at most {selector['max_per_run']} a run"
    return text


@app.command(name="history")
def history_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.",
                                       min=1)] = 50,
    json_out: JsonOpt = False,
) -> None:
    """List purge and restore runs: when, who, policy and selector, counts, archive."""
    runs = history(archive_store(ctx), limit=limit)
    if json_out:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        out.print("no retention runs recorded")
        return
    out.print(runs_view(runs, width=out.width))


def runs_view(runs: Sequence[RetentionRun], *, width: int) -> RenderableType:
    """Return retention runs for a *width*-column terminal: a table from 120 columns,
    else one block a run (its id whole on the first line, the rest wrapped under it)."""
    if width >= 120:
        table = data_table("retention runs")
        add_id_column(table, "run id", (r.run_id for r in runs))
        for col in ("started", "kind", "outcome", "user@host", "policy", "counts"):
            add_text_column(table, col)
        for run in runs:
            table.add_row(run.run_id, _when(run.started_at), run.kind, run.outcome,
                          f"{run.user}@{run.host}", run.policy or "-", _counts(run))
        return table
    blocks: list[RenderableType] = ["retention runs"]
    for run in runs:
        blocks += [wrapped([f"{run.run_id}  {run.kind} {run.outcome}  {_when(run.started_at)}"]),
                   wrapped([f"by {run.user}@{run.host}, policy {run.policy or '-'}: "
                            f"{_counts(run)}"], indent=4)]
    return Group(*blocks)


def _counts(run: RetentionRun) -> str:
    return ", ".join(f"{k} {v}" for k, v in run.counts.items()) or "-"


def _print_restore(report: RestoreReport) -> None:
    lines = [f"restored {report.restored} of {report.selected} from {report.archive} "
             f"(run {report.run_id})"]
    if report.conflicts:
        lines.append(f"  [yellow]left alone, live in the main DB:[/] "
                     f"{', '.join(report.conflicts)}")
    out.print(wrapped(lines))


def _archived_ids(archive: ArchiveStore, text: str) -> list[str]:
    """Return the archived job ids *text* is or begins (Redis knew none: a tombstone gone)."""
    if archive.find(text) is not None:
        return [text]
    return archive.ids_starting(text) if len(text) >= MIN_PREFIX_CHARS else []


def restore(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(
        help="Job ids (or unique prefixes of 8+ characters) to restore (each must be "
             "archived and not live).")] = None,
    policy: Annotated[str | None, typer.Option(
        help="Restore every job this policy purged (not yet restored).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Restore every job purged within this duration: 2h, 1d.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Put archived jobs back into the main DB with their status, indexes and events."""
    since_s = duration_option(since, "--since")
    if bool(job_ids) == (policy is not None or since_s is not None):
        raise typer.BadParameter("give job ids, or --policy/--since", param_hint="JOB_IDS")
    store, archive = _stores(ctx)
    job_ids, missing = resolve_ids(ctx, job_ids or [],
                                   archived=lambda text: _archived_ids(archive, text))
    if missing:  # all or nothing, as restore_ids
        exit_with("; ".join(not_found_line(ctx, text) for text in missing), EXIT_NOT_FOUND)
    if policy is not None:  # a policy since removed from the settings still names its rows
        policies = _policies(ctx)
        if policy not in policies and not archive.count(policy=policy):
            _unknown_policy(policy, policies, " (and no archived job names it)")
    if job_ids:
        with interrupt_between_steps() as interrupted:  # taken between records, as purge's
            report = restore_ids(store, archive, job_ids, interrupted=interrupted)
    else:
        with interrupt_between_steps() as interrupted, progress_bar() as progress:
            task = progress.add_task("restoring", total=None)
            report = restore_matching(
                store, archive, policy=policy,
                purged_since=None if since_s is None else now_s() - since_s,
                on_progress=lambda ids: progress.advance(task, len(ids)),
                interrupted=interrupted)
    if json_out:
        print_json(report.to_dict())
    else:
        _print_restore(report)


app.command(name="restore")(restore)
