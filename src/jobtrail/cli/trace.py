"""`jobtrail trace ID` and `jobtrail workers`: a job's fate with its evidence; live workers."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer
from rich.table import Table

from jobtrail.cli.context import runtime, trace_sources
from jobtrail.cli.ids import ID_HELP, resolve_id
from jobtrail.cli.output import escape, out, print_json
from jobtrail.models import Fate, JobStatus, WorkerHeartbeat, WorkerStatus
from jobtrail.store import JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.trace import TraceResult, trace_job
from jobtrail.trace.fate import span, when

__all__ = ["trace", "workers"]

#: Exit status of `trace` when no store has ever seen the id.
EXIT_UNKNOWN = 3

_FATE_STYLE = {Fate.PENDING: "yellow", Fate.PROCESSING: "cyan", Fate.COMPLETED: "green",
               Fate.FAILED: "red", Fate.STALE: "bold red", Fate.RESULT_EXPIRED: "yellow",
               Fate.PURGED: "magenta", Fate.EVICTED: "bold red",
               Fate.DELETED_EXTERNALLY: "bold red", Fate.UNKNOWN: "dim",
               Fate.CANCELLED: "bright_black"}


def _render(result: TraceResult) -> None:
    style = _FATE_STYLE.get(result.fate, "white")
    out.print(f"[{style}]{escape(result.verdict)}[/]")
    for line in result.disagreements:
        out.print(f"[bold yellow]disagreement[/]: {line}")
    if result.timeline:
        table = Table(title="timeline", title_justify="left")
        for col in ("at", "source", "event", "details"):
            table.add_column(col, overflow="fold")
        for item in result.timeline:
            details = ", ".join(f"{k}={v}" for k, v in item.items()
                                if k not in ("at", "source", "event") and v not in ("", None))
            table.add_row(when(item["at"]) if item["at"] else "-", item["source"],
                          item["event"], details)
        out.print(table)
    ev = result.evidence
    out.print("[bold]evidence[/]")
    main = ev.main
    out.print(f"  main DB: record {'present' if main.job else 'absent'}; indexes "
              f"{', '.join(sorted(main.index_scores)) or 'none'}; tombstone "
              f"{'present' if main.tombstone else 'absent'}; {len(main.events)} events; "
              f"evicted_keys={main.evicted_keys} (maxmemory-policy {main.maxmemory_policy})")
    if ev.broker is not None:
        b = ev.broker
        where = (f"in queue '{b.queue}', {b.ahead} ahead" if b.ahead is not None else
                 f"unacked since {when(b.unacked_since)}" if b.unacked_since else "no message")
        message = f", message {b.message_id}" if b.message_id and b.message_id != ev.job_id \
            else ""
        out.print(f"  broker: {where}{message} (queue length {b.queue_length})")
    if ev.batch is not None:
        bf = ev.batch
        counts = ", ".join(f"{n} {status}" for status, n in sorted(bf.statuses.items()))
        out.print(f"  batch: message {bf.batch_id}, " + (
            f"job {bf.position} of {bf.size}; its jobs: {counts}" if bf.size else
            "not in the broker"))
    if ev.results is not None:
        r = ev.results
        state = r.meta.get("status") if r.meta else "absent"
        ttl = "no TTL" if r.ttl_s is None else f"TTL {span(r.ttl_s)}"
        out.print(f"  results: celery-task-meta {state}" + (f", {ttl}" if r.meta else ""))
    if ev.archive is not None:
        out.print(f"  archive: row in {ev.archive.location}, purged {when(ev.archive.purged_at)}"
                  f" by {ev.archive.policy}")
    if ev.worker is not None:
        w = ev.worker
        out.print(f"  worker {w.name}: {'alive' if w.alive else 'gone'}, last heartbeat "
                  f"{when(w.last_seen)}" + (f", last broker poll {_poll_age(w)} ago"
                                            if w.polled_at is not None else ""))
    for w in ev.workers:
        out.print(f"  worker {w.name}: {w.status.value}, last broker poll {_poll_age(w)} ago")
    for store, reason in ev.unreachable.items():
        out.print(f"  [red]{store} unreachable[/]: {reason}")


def trace(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help=ID_HELP)],
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Say where a job is or what became of it, with the evidence of every store.

    Exit status: 0 when any store knows the id, 3 when none has ever seen it.
    """
    job_id = resolve_id(ctx, job_id)
    result = trace_job(trace_sources(ctx), job_id)
    if json_out:
        print_json(result.to_dict())
    else:
        _render(result)
    if result.fate is Fate.UNKNOWN:
        # an unreadable store is a failure to look, not proof the id is unknown
        raise typer.Exit(1 if result.evidence.unreachable else EXIT_UNKNOWN)


_STATUS_STYLE = {WorkerStatus.ALIVE: "green", WorkerStatus.STUCK: "bold red",
                 WorkerStatus.DEAD: "red"}


def _poll_age(beat: WorkerHeartbeat) -> str:
    age = beat.poll_age_s
    return "-" if age is None else span(age)


#: Processing records read to name the jobs a node started since its last heartbeat.
_PROCESSING_READ = 10_000


def _with_started_jobs(store: JobStore, beats: list[WorkerHeartbeat]) -> list[WorkerHeartbeat]:
    """Return *beats* with the processing jobs each live node's record names added.

    A heartbeat lists a node's jobs as they were when it beat (up to one
    interval ago); a job started since, a redelivery's second attempt among
    them, is named by its record, which trace reads too.
    """
    if not any(b.alive for b in beats):
        return beats
    running: dict[str, set[str]] = {}
    for job in store.list_jobs(status=JobStatus.PROCESSING, limit=_PROCESSING_READ):
        running.setdefault(job.worker, set()).add(job.id)
    return [replace(b, jobs=tuple(sorted(set(b.jobs) | running.get(b.name, set()))))
            if b.alive and b.name in running else b for b in beats]


def workers(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List worker nodes heard from in the last day, with the jobs they are running.

    A node is `alive` while it beats and its consumer polls the broker, `stuck`
    when it beats but its consumer has not polled the broker for longer than
    its bound (JOBTRAIL_WORKER_STUCK_AFTER_S), `dead` once its heartbeat expired.
    """
    rt = runtime(ctx)
    beats = _with_started_jobs(rt.store, HeartbeatStore(rt.clients.main, rt.keys).list_workers())
    if json_out:
        print_json([b.to_dict() for b in beats])
        return
    if not beats:
        out.print("no workers have sent a heartbeat (start one with: jobtrail worker)")
        return
    table = Table()
    for col in ("worker", "state", "last heartbeat", "last broker poll", "pid", "jobs"):
        table.add_column(col, overflow="fold")
    for b in beats:
        status = b.status
        poll = f"{_poll_age(b)} ago" if b.alive and b.polled_at is not None else "-"
        table.add_row(b.name, f"[{_STATUS_STYLE[status]}]{status.value}[/]",
                      when(b.last_seen), poll, str(b.pid or "-"), ", ".join(b.jobs) or "-")
    out.print(table)
