"""`jobtrail monitor watch|snapshot|diff`: Redis state over time and the cause of every removal."""

from __future__ import annotations

import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import RenderableType
from rich.table import Table

from jobtrail.cli.context import runtime, settings_from
from jobtrail.cli.durations import duration_option, format_duration
from jobtrail.cli.output import (
    add_id_column,
    add_label_column,
    add_text_column,
    data_table,
    err,
    escape,
    exit_with,
    out,
    print_json,
)
from jobtrail.connections import connect, mask_url, wait_until_ready
from jobtrail.errors import MonitorError
from jobtrail.keys import KeySpace
from jobtrail.monitor.diff import ChangeKind, KeyChange, SnapshotDiff, attribute, diff
from jobtrail.monitor.report import iso, read_snapshots, snapshot_record, write_snapshots
from jobtrail.monitor.snapshot import Snapshot, take_snapshot
from jobtrail.monitor.watch import WatchOptions, WatchProgress, WatchTarget, watch

__all__ = ["app", "diff_view"]

app = typer.Typer(help="Watch Redis DBs: snapshots, diffs, and the cause of every removal.",
                  no_args_is_help=True)


class DbName(StrEnum):
    """jobtrail's three DBs."""

    MAIN = "main"
    BROKER = "broker"
    RESULTS = "results"


DbOpt = Annotated[list[DbName] | None, typer.Option(
    "--db", help="A jobtrail DB to watch (repeat); default all three.", case_sensitive=False)]
UrlOpt = Annotated[list[str] | None, typer.Option(
    "--url", help="Any Redis DB URL to watch instead (repeat), e.g. redis://host:6379/0.")]
MatchOpt = Annotated[str, typer.Option(help="Only keys matching this SCAN MATCH pattern.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _targets(ctx: typer.Context, dbs: list[DbName] | None,
             urls: list[str] | None) -> tuple[list[WatchTarget], KeySpace]:
    if dbs and urls:
        raise typer.BadParameter("give --db or --url, not both", param_hint="--db/--url")
    if urls:
        settings = settings_from(ctx)
        targets = []
        for url in urls:
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise typer.BadParameter(f"{url!r} is not a redis:// URL", param_hint="--url")
            try:
                parts = urlsplit(url)
                _ = parts.port  # raises ValueError for a port that is not a number
            except ValueError as exc:
                raise typer.BadParameter(f"{url!r}: {exc}", param_hint="--url") from exc
            db = parts.path.lstrip("/")
            if parts.scheme != "unix" and db and not db.isdigit():
                raise typer.BadParameter(f"{url!r}: database {db!r} is not a number",
                                         param_hint="--url")
            client = connect(url)
            ctx.call_on_close(client.close)
            wait_until_ready(client, mask_url(url), timeout_s=3)
            targets.append(WatchTarget(mask_url(url).split("://", 1)[1], client))
        return targets, KeySpace(settings.key_prefix, queue=settings.queue)
    rt = runtime(ctx)
    clients = {DbName.MAIN: rt.clients.main, DbName.BROKER: rt.clients.broker,
               DbName.RESULTS: rt.clients.results}
    chosen = list(dict.fromkeys(dbs or list(DbName)))
    return [WatchTarget(d.value, clients[d]) for d in chosen], rt.keys


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Yield an Event set by SIGINT or SIGTERM, so the run ends cleanly and restores config."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _series(points: list[list[float]], limit: int = 12) -> str:
    counts = [str(int(n)) for _, n in points]
    if len(counts) > limit:
        counts = counts[: limit // 2] + ["..."] + counts[-limit // 2:]
    return " -> ".join(counts)


def _render_summary(summary: dict[str, Any]) -> None:
    out.print(f"[bold]{summary['rounds']} round(s), {summary['snapshots']} snapshot(s) in "
              f"{summary['elapsed_s']:.1f} s[/]")
    for label, db in summary["dbs"].items():
        changes = ", ".join(f"{k} {v}" for k, v in sorted(db["changes"].items())) or "none"
        removals = ", ".join(f"{k} {v}" for k, v in sorted(db["removals_by_cause"].items()))
        counters = ", ".join(f"{k} {v:+d}" for k, v in db["counters"].items() if v)
        out.print(f"[bold]{escape(label)}[/] (keyspace events {db['keyspace_events']})")
        out.print(f"  keys over time: {_series(db['keys_over_time'])}")
        out.print(f"  changes: {changes}")
        if removals:
            out.print(f"  removals by cause: {escape(removals)}")
        if counters:
            out.print(f"  INFO counters: {counters}")
    for notice in summary["notices"]:
        out.print(f"[yellow]notice[/]: {escape(notice)}")
    files = summary["files"]
    out.print(f"report: {files['report']}\nlog: {files['log']}\nqueries: {files['queries']}")


@app.command(name="watch")
def watch_cmd(
    ctx: typer.Context,
    interval: Annotated[str, typer.Option(help="Time between snapshots (5s, 1m...).")] = "5s",
    duration: Annotated[str, typer.Option(help="How long to watch (2m, 1h...); 0: until "
                                               "Ctrl-C.")] = "2m",
    db: DbOpt = None,
    url: UrlOpt = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Directory of the log and report files; default <state_dir>/monitor.",
        file_okay=False)] = None,
    match: MatchOpt = "*",
    no_events: Annotated[bool, typer.Option(
        "--no-keyspace-events", help="Do not touch notify-keyspace-events; snapshots only.",
    )] = False,
    json_out: JsonOpt = False,
) -> None:
    """Snapshot the DBs every interval, diff them, and name the cause of every removal.

    Writes monitor_<ts>.log, db_queries_<ts>.log and monitoring_report_<ts>.json
    into --out, then prints a summary. Ctrl-C or SIGTERM ends the run cleanly.
    """
    interval_s = duration_option(interval, "--interval") or 0.0
    duration_s = duration_option(duration, "--duration") or 0.0
    if interval_s <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--interval")
    targets, keys = _targets(ctx, db, url)
    directory = out_dir or settings_from(ctx).state_dir / "monitor"
    options = WatchOptions(out_dir=directory, interval_s=interval_s,
                           duration_s=duration_s or None, match=match, keys=keys,
                           keyspace_events=not no_events)
    with _stop_on_signals() as stop, err.status("monitor: first snapshot...") as status:

        def progress(p: WatchProgress) -> None:
            keys_now = ", ".join(f"{k} {v}" for k, v in p.keys.items())
            moved = sum(p.changes.values())
            nxt = f"; next in {p.next_in_s:.1f} s" if p.next_in_s is not None else ""
            status.update(f"monitor: round {p.rounds}: keys {keys_now}; {moved} change(s){nxt}")

        summary = watch(targets, options, on_progress=progress, stop=stop)
    if json_out:
        print_json(summary)
    else:
        _render_summary(summary)


def _snapshot_dict(snap: Snapshot, keys: KeySpace) -> dict[str, Any]:
    return snapshot_record(snap, keys)


@app.command(name="snapshot")
def snapshot_cmd(
    ctx: typer.Context,
    db: DbOpt = None,
    url: UrlOpt = None,
    match: MatchOpt = "*",
    save: Annotated[Path | None, typer.Option(
        "--out", help="Also write the snapshot file (for `monitor diff`) here.",
        dir_okay=False)] = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the snapshot file (every key) as JSON.")] = False,
) -> None:
    """Take one snapshot of each DB: every key with its type, TTL and job status, and INFO."""
    targets, keys = _targets(ctx, db, url)
    snaps = []
    with err.status("snapshot...") as status:
        for target in targets:
            status.update(f"snapshot of {target.label}...")
            snaps.append(take_snapshot(target.client, db=target.label, match=match))
    if save is not None:
        with open(save, "w", encoding="utf-8") as fp:
            write_snapshots(fp, snaps, keys)
    if json_out:
        write_snapshots(sys.stdout, snaps, keys)
        return
    for snap in snaps:
        rec = _snapshot_dict(snap, keys)
        info = snap.info
        out.print(f"[bold]{escape(snap.db)}[/] {escape(snap.url)}: {len(snap.entries)} keys "
                  f"in {snap.elapsed_s:.3f} s")
        # wrapped between counts at 80 columns whatever the console's width (a pipe's is wide)
        kinds = [f"{k} {v}" for k, v in sorted(rec["counts_by_kind"].items())]
        out.print(textwrap.fill(", ".join(kinds) or "no key", width=80,
                                initial_indent="  by kind: ", subsequent_indent=" " * 11,
                                break_long_words=False),
                  soft_wrap=True)
        out.print(f"  used_memory {info.used_memory} maxmemory {info.maxmemory} "
                  f"({info.maxmemory_policy})")
        out.print(f"  expired_keys {info.expired_keys} evicted_keys {info.evicted_keys}")
    if save is not None:
        out.print(f"saved: {save}")


def _snapshot_file(path: Path) -> dict[str, Snapshot]:
    """The snapshots of the file at *path*, by DB label; a file that is missing or not a
    snapshot file is bad input: one line and exit 2 (not Click's "Invalid value for")."""
    if not path.exists():
        exit_with(f"no such file: {path}", 2)
    try:
        return {s.db: s for s in read_snapshots(path)}
    except MonitorError as exc:
        exit_with(str(exc), 2)


@app.command(name="diff")
def diff_cmd(
    ctx: typer.Context,
    first: Annotated[Path, typer.Argument(
        help="Earlier snapshot file (monitor snapshot --out).")],
    second: Annotated[Path, typer.Argument(help="Later snapshot file.")],
    json_out: JsonOpt = False,
) -> None:
    """Show what changed between two saved snapshots, DB by DB: key, change, old, new, cause.

    A removal's cause is what the snapshots prove (`del by purge` when the job
    left a tombstone, `expired` when its TTL ran out in between), else
    `unknown`: only a running `watch` hears every removal's event.
    """
    settings = settings_from(ctx)
    keys = KeySpace(settings.key_prefix, queue=settings.queue)
    before, after = _snapshot_file(first), _snapshot_file(second)
    results: list[SnapshotDiff] = []
    for label in [d for d in before if d in after]:
        changes = diff(before[label], after[label], keys=keys)
        results.append(attribute(changes, {}, after[label], keys=keys, subscribed=False,
                                 before=before[label]))
    unmatched = sorted(set(before) ^ set(after))
    if json_out:
        print_json({"empty": all(d.is_empty for d in results), "unmatched_dbs": unmatched,
                    "diffs": [d.to_dict() for d in results]})
        return
    for d in results:
        if d.is_empty:
            out.print(f"[bold]{escape(d.db)}[/]: no change")
            continue
        counts = ", ".join(f"{k} {v}" for k, v in sorted(d.counts().items())) or "no key"
        counters = ", ".join(f"{k} {v:+d}" for k, v in d.counters.items())
        out.print(f"[bold]{escape(d.db)}[/]: {counts}; {counters}")
        if d.changes:
            out.print(diff_view(d, width=out.width))
    for label in unmatched:
        out.print(f"[yellow]{escape(label)}[/]: in only one of the files")


def _shown_value(change: KeyChange, value: str | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float) and change.change in _TTL_CHANGES:
        return format_duration(round(float(value), 3))
    return escape(str(value))


_TTL_CHANGES = frozenset({ChangeKind.TTL_SET, ChangeKind.TTL_REMOVED, ChangeKind.TTL_RESET})


def _diff_rows(d: SnapshotDiff) -> Iterator[tuple[str, str, str, str, str]]:
    for change in d.changes:
        old = change.before if change.before is not None or change.change is not (
            ChangeKind.REMOVED) else change.type
        new = change.after if change.after is not None or change.change is not (
            ChangeKind.ADDED) else change.type
        cause = change.cause_label
        if cause and change.at is not None:
            cause += f" at {iso(change.at)}"
        yield (escape(change.key), change.change.value.replace("_", " "),
               _shown_value(change, old), _shown_value(change, new), escape(cause) or "-")


#: Columns a diff table needs beside its keys (change, old, new, cause and the rules).
_BESIDE_KEYS = 40


def diff_view(d: SnapshotDiff, *, width: int) -> RenderableType:
    """Return one DB's changes for a *width*-column terminal: a table (key, change, old,
    new, cause), keys whole on one line like ids; where the longest key leaves the other
    columns no room, a list with each key on its own line and the change indented under it."""
    rows = list(_diff_rows(d))
    if max((len(c.key) for c in d.changes), default=0) + _BESIDE_KEYS <= width:
        table = data_table()
        add_id_column(table, "key", (c.key for c in d.changes))
        add_label_column(table, "change", min_width=len("removed"))
        for col in ("old", "new", "cause"):
            add_text_column(table, col)
        for row in rows:
            table.add_row(*row)
        return table
    listing = Table.grid(padding=(0, 1))
    listing.add_column(overflow="fold")  # only a key wider than the terminal folds
    for key, change, old, new, cause in rows:
        listing.add_row(key)
        listing.add_row(f"    {change}: {old} -> {new}; cause {cause}")
    return listing
