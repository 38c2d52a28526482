"""The reproduction scenarios: each acts on the run's DBs and returns what it observed.

Invariant: a scenario returns raw observations read back from the stores
(job records, events, TTLs in milliseconds, tombstones, archive rows, trace
results, INFO figures), never a sentence; repro/findings.py turns them into
claims. Scenarios run in ORDER; `processing` always runs first, because it
seeds and solves the jobs the others use.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from jobtrail.errors import ReproError
from jobtrail.jobs import SAMPLE_PROBLEMS
from jobtrail.models import TERMINAL_STATUSES, JobStatus
from jobtrail.repro.context import RunContext
from jobtrail.repro.memory import memory_pressure
from jobtrail.retention.policy import RetentionPolicy
from jobtrail.retention.purge import purge
from jobtrail.store import TombstoneStore
from jobtrail.store.retention_store import RetentionStore
from jobtrail.trace import trace_job

__all__ = ["CRASH_PACE_S", "CRASH_PROBLEM", "ORDER", "RUNNERS", "Scenario", "crash_limits",
           "job_observation", "result_observation"]

logger = logging.getLogger(__name__)

#: The worker-crash job: solved in milliseconds, run for CRASH_PACE_S by its paced workers.
CRASH_PROBLEM = "solve x + 1 = 3"
#: How long the worker-crash job runs (seconds): the sleep its workers put before the solve.
CRASH_PACE_S = 3.0
#: Room above the pace for the solve and a loaded machine before the soft limit (seconds).
CRASH_MARGIN_S = 5.0
#: Name of the retention policy the purge scenario applies (archive rows, tombstones).
PURGE_POLICY = "repro-purge"


class Scenario(StrEnum):
    """A scenario of `jobtrail repro run --scenario`."""

    PROCESSING = "processing"
    PURGE = "purge"
    MEMORY_PRESSURE = "memory-pressure"
    TTL_EXPIRY = "ttl-expiry"
    WORKER_CRASH = "worker-crash"


#: Run order: memory pressure last, since its fill may evict what the others need.
ORDER = (Scenario.PROCESSING, Scenario.PURGE, Scenario.TTL_EXPIRY, Scenario.WORKER_CRASH,
         Scenario.MEMORY_PRESSURE)


def job_observation(ctx: RunContext, job_id: str) -> dict[str, Any]:
    """Return a job's record (None when gone) and its lifecycle events, as read now."""
    job = ctx.store.find(job_id)
    record = None if job is None else {
        k: v for k, v in job.to_dict().items() if k not in ("answer_latex", "steps")}
    return {"id": job_id, "record": record,
            "events": [e.to_dict() for e in ctx.events.read(job_id)]}


def result_observation(ctx: RunContext, job_id: str) -> dict[str, Any]:
    """Return `celery-task-meta-<id>` as read now: exists, PTTL (ms), status and date_done."""
    key = ctx.keys.celery_result(job_id)
    with ctx.clients["results"].pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.pttl(key)
        pipe.time()
        raw, pttl_ms, server_time = pipe.execute()
    meta: dict[str, Any] = {}
    if raw:
        try:
            meta = json.loads(raw)
        except ValueError:
            meta = {"unreadable": True}
    return {"id": job_id, "key": key, "exists": raw is not None, "pttl_ms": int(pttl_ms),
            "read_at": server_time[0] + server_time[1] / 1e6,
            "status": meta.get("status"), "date_done": meta.get("date_done")}


def _finished(ctx: RunContext, ids: list[str]) -> bool:
    for job_id in ids:
        job = ctx.store.find(job_id)
        if job is not None and job.status not in TERMINAL_STATUSES:
            return False
        if job is not None and not ctx.clients["results"].exists(ctx.keys.celery_result(job_id)):
            return False
    return True


def processing(ctx: RunContext) -> dict[str, Any]:
    """Start the run's worker and let it solve the seeded jobs (pending -> ... -> terminal)."""
    _, node = ctx.start_worker("repro-main")
    ctx.say("processing", f"{len(ctx.seeded)} jobs on {node}")
    ctx.wait_for(lambda: _finished(ctx, ctx.seeded), "the seeded jobs to finish",
                 timeout_s=ctx.wait_timeout_s + 2.0 * len(ctx.seeded))
    return {"worker": node,
            "jobs": [job_observation(ctx, i) for i in ctx.seeded],
            "results": [result_observation(ctx, i) for i in ctx.seeded]}


def purge_one(ctx: RunContext) -> dict[str, Any]:
    """Purge the oldest completed job with a retention policy (keep the newest n - 1)."""
    main = ctx.clients["main"]
    completed_key = ctx.keys.jobs_by_status(JobStatus.COMPLETED)
    oldest = main.zrange(completed_key, 0, 0, withscores=True)
    if not oldest:
        raise ReproError("no completed job to purge")
    chosen, finished_at = str(oldest[0][0]), float(oldest[0][1])
    completed_before = int(main.zcard(completed_key))
    policy = RetentionPolicy(PURGE_POLICY, (JobStatus.COMPLETED,), 0.0,
                             keep_last=completed_before - 1)
    ids = list(ctx.seeded)
    before = {"chosen": job_observation(ctx, chosen), "result": result_observation(ctx, chosen)}
    ctx.say("purge", f"policy {policy.name} keeps the newest {policy.keep_last}: purges {chosen}")
    rstore = RetentionStore(main, ctx.clients["results"], ctx.keys,
                            events_max_len=ctx.settings.events_max_len)
    report = purge(rstore, ctx.archive, policy, tombstone_ttl_s=ctx.settings.tombstone_ttl_s,
                   batch_size=ctx.settings.purge_batch_size)
    ctx.settle()
    tombstone = TombstoneStore(main, ctx.keys).find(chosen)
    row = ctx.archive.find(chosen)
    archived = None if row is None else {
        "job_id": row.job_id, "policy": row.policy, "purged_at": row.purged_at,
        "run_id": row.run_id, "checksum": row.checksum, "status": row.status,
        "celery_status": (row.celery_meta or {}).get("status"), "events": len(row.events)}
    trace = trace_job(ctx.trace_sources(), chosen)
    return {
        "chosen": chosen, "chosen_finished_at": finished_at,
        "completed_before": completed_before, "policy": {"name": policy.name,
                                                         **policy.selector()},
        "before": before, "report": report.to_dict(),
        "records_after": {i: bool(main.exists(ctx.keys.job(i))) for i in ids},
        "results_after": [result_observation(ctx, i) for i in ids],
        "tombstone": None if tombstone is None else tombstone.to_dict(),
        "archive_row": archived, "archive": ctx.archive.location,
        "trace": {"fate": trace.fate.value, "verdict": trace.verdict},
        "result_expires_s": ctx.settings.result_expires_s,
    }


def short_ttl_s(interval_s: float) -> int:
    """TTL of the short-TTL run: two monitor intervals, at least 2 s (whole seconds)."""
    return max(2, int(2 * interval_s + 0.999))


def ttl_expiry(ctx: RunContext) -> dict[str, Any]:
    """Read the TTLs of the seeded jobs' results; then solve jobs with a short result TTL
    and wait until Redis expires each result while the monitor records."""
    seeded = [result_observation(ctx, i) for i in ctx.seeded]
    ttl = short_ttl_s(ctx.interval_s)
    ctx.stop_workers()
    _, node = ctx.start_worker("repro-ttl", result_expires_s=ttl)
    jobs = ctx.service.submit_many(list(SAMPLE_PROBLEMS[:3]))
    ids = [j.id for j in jobs]
    ctx.say("ttl-expiry", f"{len(ids)} jobs with result_expires_s={ttl} on {node}")
    ctx.wait_for(lambda: _finished(ctx, ids), "the short-TTL jobs to finish")
    stored = [result_observation(ctx, i) for i in ids]
    results = ctx.clients["results"]
    gone_at: dict[str, float] = {}

    def all_gone() -> bool:
        for i in ids:
            if i not in gone_at and not results.exists(ctx.keys.celery_result(i)):
                gone_at[i] = ctx.now()
        return len(gone_at) == len(ids)

    ctx.wait_for(all_gone, "the short-TTL results to expire", timeout_s=ttl + 30)
    ctx.settle()
    traces = {i: trace_job(ctx.trace_sources(), i) for i in ids}
    return {
        "result_expires_s": ctx.settings.result_expires_s, "seeded_results": seeded,
        "short_ttl_s": ttl, "worker": node, "short_ids": ids, "stored": stored,
        "gone_seen_at": gone_at,
        "records_after": [job_observation(ctx, i) for i in ids],
        "traces": {i: {"fate": t.fate.value, "verdict": t.verdict} for i, t in traces.items()},
    }


def crash_limits(pace_s: float = CRASH_PACE_S) -> dict[str, Any]:
    """Return the worker-crash scenario's time limits for a job paced at *pace_s* seconds.

    The job's run time is the scenario's own choice (a sleep, not a measured solve),
    so the soft limit is that plus CRASH_MARGIN_S for the solve itself and a loaded
    machine; the visibility timeout stays just above the hard limit, so the rescuer's
    delivery is not restored again while it still solves.

    Returns:
        Settings overrides: visibility_timeout_s (whole seconds), solver_time_limit_s
        and solver_hard_time_limit_s (seconds).
    """
    soft_s = float(math.ceil(pace_s + CRASH_MARGIN_S))
    return {"visibility_timeout_s": int(soft_s) + 2, "solver_time_limit_s": soft_s,
            "solver_hard_time_limit_s": soft_s + 1}


def worker_crash(ctx: RunContext) -> dict[str, Any]:
    """SIGKILL a worker mid-task; a second worker gets the job after the visibility timeout.

    Both workers pace their solves (CRASH_PACE_S), so the job runs as long as the
    scenario says on any machine: the kill lands inside it, and only a machine
    too loaded to wake from a sleep in CRASH_MARGIN_S can push it past the limit.
    """
    overrides = crash_limits(CRASH_PACE_S)
    ctx.say("worker-crash", f"the job runs {CRASH_PACE_S:g} s (paced); soft time limit "
            f"{overrides['solver_time_limit_s']:g} s")
    ctx.stop_workers()
    doomed, doomed_node = ctx.start_worker("repro-doomed", pace_s=CRASH_PACE_S, **overrides)
    service = ctx.service_for(**overrides)
    job = service.submit(CRASH_PROBLEM)
    ctx.say("worker-crash", f"job {job.id} on {doomed_node}")

    def started() -> bool:
        found = ctx.store.find(job.id)
        return found is not None and found.status is not JobStatus.PENDING

    ctx.wait_for(started, "the crash job to start")
    time.sleep(CRASH_PACE_S / 6)  # well inside the paced solve
    at_kill = job_observation(ctx, job.id)
    killed_at = doomed.kill_group()
    ctx.say("worker-crash", f"killed {doomed_node} (pid {doomed.pid}) with SIGKILL")
    _, rescuer_node = ctx.start_worker("repro-rescuer", pace_s=CRASH_PACE_S, **overrides)
    ctx.wait_for(lambda: _finished(ctx, [job.id]), "the redelivered job to finish",
                 timeout_s=overrides["visibility_timeout_s"] + ctx.wait_timeout_s)
    trace = trace_job(ctx.trace_sources(), job.id)
    return {
        "job_id": job.id, "problem": CRASH_PROBLEM, "settings": overrides,
        "pace_s": CRASH_PACE_S,
        "doomed": {"node": doomed_node, "pid": doomed.pid, "signal": "SIGKILL",
                   "killed_at": killed_at},
        "rescuer": rescuer_node, "at_kill": at_kill, "after": job_observation(ctx, job.id),
        "result": result_observation(ctx, job.id),
        "trace": {"fate": trace.fate.value, "verdict": trace.verdict},
    }


#: Scenario -> the function that runs it.
RUNNERS: dict[Scenario, Callable[[RunContext], dict[str, Any]]] = {
    Scenario.PROCESSING: processing,
    Scenario.PURGE: purge_one,
    Scenario.TTL_EXPIRY: ttl_expiry,
    Scenario.WORKER_CRASH: worker_crash,
    Scenario.MEMORY_PRESSURE: memory_pressure,
}
