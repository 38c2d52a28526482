"""`jobtrail trace ID` and `jobtrail workers`: a job's fate with its evidence; live workers."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType

from jobtrail.cli.context import runtime, trace_sources
from jobtrail.cli.ids import ID_HELP, resolve_id
from jobtrail.cli.output import (
    add_id_column,
    add_label_column,
    add_text_column,
    data_table,
    escape,
    out,
    print_json,
    wrapped,
)
from jobtrail.clock import now_s
from jobtrail.models import Fate, WorkerHeartbeat, WorkerStatus
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.trace import TraceResult, trace_job
from jobtrail.trace.fate import span, when

__all__ = ["trace", "workers", "workers_table"]

#: Exit status of `trace` when no store has ever seen the id.
EXIT_UNKNOWN = 3

_FATE_STYLE = {Fate.PENDING: "yellow", Fate.PROCESSING: "cyan", Fate.COMPLETED: "green",
               Fate.FAILED: "red", Fate.STALE: "bold red", Fate.RESULT_EXPIRED: "yellow",
               Fate.PURGED: "magenta", Fate.EVICTED: "bold red",
               Fate.LOST_IN_FAILOVER: "bold red", Fate.DELETED_EXTERNALLY: "bold red",
               Fate.UNKNOWN: "dim",
               Fate.CANCELLED: "bright_black"}


#: Width of the timeline's columns before details: at (10), source, event (11), rules.
_TIMELINE_FIXED = len("2026-12-02") + len("results") + len("redelivered") + 3 * len(" │ ")


def _timeline(timeline: list[dict[str, Any]], *, width: int) -> RenderableType:
    """Return the timeline as a table, or as blocks when a detail (a cloud host's node
    name) is wider than the table's details column: either way a value is whole on a line.
    """
    rows = []
    for item in timeline:
        details = [f"{k}: {v}" for k, v in item.items()
                   if k not in ("at", "source", "event") and v not in ("", None)]
        at = when(item["at"]).removesuffix(" UTC") if item["at"] else "-"
        rows.append((at, str(item["source"]), str(item["event"]), details))
    if any(len(line) > width - _TIMELINE_FIXED for *_, details in rows for line in details):
        blocks = ["[bold]timeline[/] (UTC)"]
        for at, source, event, details in rows:
            blocks.append(escape(f"{at}  {source}  {event}"))
            blocks += [escape(f"    {line}") for line in details]
        return wrapped(blocks)
    # the time wraps under its date and the event between words, so that details
    # (one a line, a long value under its name, never cut) keep the room for an id
    table = data_table("timeline")
    table.add_column("at (UTC)", max_width=len("2026-12-02"))
    add_label_column(table, "source")
    table.add_column("event", max_width=len("redelivered"))
    table.add_column("details", overflow="fold")
    for at, source, event, details in rows:
        table.add_row(at, source, event, escape("\n".join(details)))
    return table


def _render(result: TraceResult) -> None:
    style = _FATE_STYLE.get(result.fate, "white")
    out.print(wrapped([f"[{style}]{escape(result.verdict)}[/]",
                       *(f"[bold yellow]disagreement[/]: {line}"
                         for line in result.disagreements)]))
    if result.timeline:
        out.print(_timeline(result.timeline, width=out.width))
    ev = result.evidence
    out.print("[bold]evidence[/]")
    lines: list[str] = []
    main = ev.main
    lines.append(f"main DB: record {'present' if main.job else 'absent'}; indexes "
              f"{', '.join(sorted(main.index_scores)) or 'none'}; tombstone "
              f"{'present' if main.tombstone else 'absent'}; {len(main.events)} events; "
              f"evicted_keys={main.evicted_keys} (maxmemory-policy {main.maxmemory_policy})"
              + (f"; master promoted from a replica (master_replid2 {main.promoted_from}, "
                 f"second_repl_offset {main.promoted_at_offset})" if main.promoted_from else ""))
    if ev.broker is not None:
        b = ev.broker
        where = (f"in queue '{b.queue}', {b.ahead} ahead" if b.ahead is not None else
                 f"unacked since {when(b.unacked_since)}" if b.unacked_since else "no message")
        message = f", message {b.message_id}" if b.message_id and b.message_id != ev.job_id \
            else ""
        lines.append(f"broker: {where}{message} (queue length {b.queue_length})")
    if ev.batch is not None:
        bf = ev.batch
        counts = ", ".join(f"{n} {status}" for status, n in sorted(bf.statuses.items()))
        lines.append(f"batch: message {bf.batch_id}, " + (
            f"job {bf.position} of {bf.size}; its jobs: {counts}" if bf.size else
            "not in the broker"))
    if ev.results is not None:
        r = ev.results
        state = r.meta.get("status") if r.meta else "absent"
        ttl = "no TTL" if r.ttl_s is None else f"TTL {span(r.ttl_s)}"
        lines.append(f"results: celery-task-meta {state}" + (f", {ttl}" if r.meta else ""))
    if ev.archive is not None:
        lines.append(f"archive: row in {ev.archive.location}, purged {when(ev.archive.purged_at)}"
                  f" by {ev.archive.policy}")
    if ev.worker is not None:
        w = ev.worker
        state = "alive" if w.alive else (w.absence_note or "gone")
        lines.append(f"worker {w.name}: {state}, last heartbeat "
                  f"{when(w.last_seen)}" + (f", last broker poll {_poll_age(w)} ago"
                                            if w.polled_at is not None else ""))
    for w in ev.workers:
        lines.append(f"worker {w.name}: {w.status.value}, last broker poll {_poll_age(w)} ago")
    for store, reason in ev.unreachable.items():
        lines.append(f"[red]{store} unreachable[/]: {reason}")
    out.print(wrapped(lines, indent=2))


def trace(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help=ID_HELP)],
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Say where a job is or what became of it, with the evidence of every store.

    Exit status: 0 when any store knows the id, 3 when none has ever seen it.
    """
    job_id = resolve_id(ctx, job_id, missing_ok=True)  # other stores may know it
    result = trace_job(trace_sources(ctx), job_id)
    if json_out:
        print_json(result.to_dict())
    else:
        _render(result)
    if result.fate is Fate.UNKNOWN:
        # an unreadable store is a failure to look, not proof the id is unknown
        raise typer.Exit(1 if result.evidence.unreachable else EXIT_UNKNOWN)


_STATUS_STYLE = {WorkerStatus.ALIVE: "green", WorkerStatus.STUCK: "bold red",
                 WorkerStatus.DEAD: "red", WorkerStatus.UNKNOWN: "yellow"}


def _poll_age(beat: WorkerHeartbeat) -> str:
    age = beat.poll_age_s
    return "-" if age is None else span(age)


def workers(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List worker nodes heard from in the last day, with the jobs they are running.

    A node is `alive` while it beats and its consumer polls the broker, `stuck`
    when it beats but its consumer has not polled the broker for longer than
    its bound (JOBTRAIL_WORKER_STUCK_AFTER_S), `dead` once its heartbeat expired,
    `unknown` while its heartbeat is missing but Redis restarted less than three
    heartbeat intervals ago (a live worker has not beaten again yet: not judged).
    """
    rt = runtime(ctx)
    beats = HeartbeatStore(rt.clients.main, rt.keys,
                           gone_after_s=rt.settings.gone_after_s).list_running()
    if json_out:
        print_json([b.to_dict() for b in beats])
        return
    if not beats:
        out.print("no workers have sent a heartbeat (start one with: jobtrail worker)")
        return
    out.print(workers_table(beats, width=out.width))
    for b in beats:
        if b.absence_note:
            out.print(wrapped([f"{escape(b.name)}: {b.absence_note}"]))


def _jobs_fit(beats: list[WorkerHeartbeat], width: int) -> bool:
    """True when a table row (node name, job id and the other columns) fits *width*."""
    longest_name = max((len(b.name) for b in beats), default=0)
    return longest_name + 36 + 50 <= width


def workers_table(beats: list[WorkerHeartbeat], *, width: int) -> RenderableType:
    """Return the workers for a *width*-column terminal.

    A table (worker, state, last heartbeat, last broker poll, pid, jobs) where a
    row fits; else one block a node: its name and state, then the figures and
    its jobs' ids under it. Names and ids are whole on one line either way; ages
    are taken when the heartbeats were read.
    """
    rows = [(b, f"[{_STATUS_STYLE[b.status]}]{b.status.value}[/]",
             f"{span(max(0.0, (b.read_at or now_s()) - b.last_seen))} ago",
             f"{_poll_age(b)} ago" if b.alive and b.polled_at is not None else "-",
             str(b.pid or "-")) for b in beats]
    if not _jobs_fit(beats, width):
        blocks: list[RenderableType] = []
        for b, state, beat, poll, pid in rows:
            blocks.append(wrapped([f"{escape(b.name)}  {state}"]))
            blocks.append(wrapped([f"pid {pid}, last heartbeat {beat}, last broker poll {poll}",
                                   *(f"running {job_id}" for job_id in b.jobs)], indent=4))
        return Group(*blocks)
    table = data_table()
    add_id_column(table, "worker", (b.name for b in beats))
    add_label_column(table, "state")
    add_text_column(table, "last heartbeat")
    add_text_column(table, "last broker poll")
    add_label_column(table, "pid")
    add_id_column(table, "jobs", ("\n".join(b.jobs) for b in beats))
    for b, state, beat, poll, pid in rows:
        table.add_row(escape(b.name), state, beat, poll, pid, "\n".join(b.jobs) or "-")
    return table
