"""doctor's checks of the workers: is each live one polling, is each processing job's alive?

Invariant: read-only (heartbeats, the `jobs:processing` index, the queue length).
"""

from __future__ import annotations

from typing import Any, cast

import redis

from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.doctor.outcome import Finding, Severity
from jobtrail.doctor.reads import BATCH, atomic_reread
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus, WorkerStatus
from jobtrail.store.heartbeats import DEFAULT_GONE_AFTER_S, HeartbeatStore

__all__ = ["UNSERVED_GRACE_S", "check_stale_processing", "check_workers"]


#: A queue with messages and no live consumer is an error once a pending job waited this long.
UNSERVED_GRACE_S = 60.0


def check_workers(keys: KeySpace, main: redis.Redis, broker: redis.Redis, *,
                  gone_after_s: float = DEFAULT_GONE_AFTER_S) -> Finding:
    """Is every live worker's consumer polling the broker, and has a queue with work one?

    A worker whose heartbeat is missing while Redis restarted less than
    *gone_after_s* seconds ago is not yet judged (evidence `not_judged`: name ->
    note): with no live worker but such ones the finding is a warning, not
    "no live consumer".
    """
    every = HeartbeatStore(main, keys, gone_after_s=gone_after_s).list_workers()
    beats = [b for b in every if b.alive]
    unjudged = {b.name: b.absence_note for b in every if not b.alive and not b.gone}
    stuck = [b for b in beats if b.status is WorkerStatus.STUCK]
    queued = int(broker.llen(keys.queue()))
    evidence: dict[str, Any] = {"live": [b.name for b in beats],
                                "stuck": {b.name: b.poll_age_s for b in stuck},
                                "not_judged": unjudged,
                                "queue": keys.queue_name, "queued_messages": queued}
    if stuck:
        names = ", ".join(f"{b.name} (no broker poll for {b.poll_age_s or 0.0:.0f} s)"
                          for b in stuck)
        return Finding("workers", Severity.ERROR,
                       f"{len(stuck)} of {len(beats)} live workers are stuck: their heartbeat "
                       f"beats but their consumer does not poll the broker: {names}", evidence,
                       "check the worker's log and its connection to the broker; restart it")
    oldest = cast(list[tuple[str, float]], main.zrange(
        keys.jobs_by_status(JobStatus.PENDING), 0, 0, withscores=True))
    waiting_s = now_s() - oldest[0][1] if oldest else 0.0
    evidence["oldest_pending_s"] = round(waiting_s, 1)
    if not beats and unjudged:
        return Finding("workers", Severity.WARNING, "no live worker heartbeat yet: " + "; ".join(
            f"{name}: {note}" for name, note in sorted(unjudged.items())), evidence,
            f"wait: a live worker beats again within {gone_after_s:g} s of a Redis restart")
    if not beats and queued and waiting_s > UNSERVED_GRACE_S:
        return Finding("workers", Severity.ERROR,
                       f"queue {keys.queue_name} has {queued} messages and no live consumer; "
                       f"the oldest pending job has waited {waiting_s:.0f} s: nothing runs them",
                       evidence, "start a worker: jobtrail worker")
    if not beats:
        return Finding("workers", Severity.OK, "no live worker right now (jobs wait until one "
                       "starts: jobtrail worker)", evidence)
    return Finding("workers", Severity.OK, "1 live worker, polling the broker" if len(beats) == 1
                   else f"{len(beats)} live workers, each polling the broker", evidence)


def check_stale_processing(settings: Settings, keys: KeySpace, main: redis.Redis) -> Finding:
    """Processing jobs whose worker is gone (heartbeat expired): nobody is running them.

    A worker's heartbeat hash lives three intervals (the gone threshold), so a
    killed worker's jobs read as stale within that time. An error: a live
    worker's dead-worker sweep hands them back, else the visibility timeout
    does, and with no live worker at all nothing does. Evidence: `processing`
    (examined), `stale` and `count` (stale jobs), `sample` (first ten, job id ->
    worker), `workers_gone` (name -> last heartbeat, epoch seconds, or None),
    `live_workers`, `not_judged` (job id -> worker, for workers whose heartbeat is
    missing while Redis restarted less than the gone threshold ago: not stale yet;
    alone they make a warning).
    """
    beats = HeartbeatStore(main, keys, gone_after_s=settings.gone_after_s).list_workers()
    live = {b.name for b in beats if b.alive}
    last_seen = {b.name: b.last_seen for b in beats}
    unjudged = {b.name: b.absence_note for b in beats if not b.alive and not b.gone}
    ids = [str(m) for m in main.zrange(keys.jobs_by_status(JobStatus.PROCESSING), 0, -1)]
    candidates: dict[str, str] = {}
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        with main.pipeline(transaction=False) as pipe:
            for job_id in batch:
                pipe.hget(keys.job(job_id), "worker")
            for job_id, worker in zip(batch, pipe.execute(), strict=True):
                if worker and str(worker) not in live:
                    candidates[job_id] = str(worker)

    def read(pipe: Any, job_id: str) -> None:
        pipe.hmget(keys.job(job_id), ["status", "worker"])
        pipe.exists(keys.worker(candidates[job_id]))

    # read again in one step: a worker started since the heartbeats were read, or a job
    # finished or moved to another worker since, is not stale
    stale = {j: candidates[j] for j, [(status, worker), beating] in atomic_reread(
        main, list(candidates), read)
        if status == JobStatus.PROCESSING.value and worker == candidates[j] and not beating}
    # a missing heartbeat proves nothing yet (absence_unproven_s): those are not judged
    waiting = {j: w for j, w in stale.items() if w in unjudged}
    stale = {j: w for j, w in stale.items() if w not in unjudged}
    if waiting and not stale:
        return Finding("stale-processing", Severity.WARNING,
                       f"{len(waiting)} processing jobs on workers not yet judged: " + "; ".join(
                           f"{w}: {unjudged[w]}" for w in sorted(set(waiting.values()))),
                       {"processing": len(ids), "stale": 0, "count": 0,
                        "not_judged": dict(list(waiting.items())[:10]),
                        "live_workers": len(live)},
                       f"wait: a live worker beats again within {settings.gone_after_s:g} s "
                       "of a Redis restart; doctor judges them after that")
    evidence: dict[str, Any] = {"processing": len(ids), "stale": len(stale),
                                "count": len(stale), "sample": dict(list(stale.items())[:10]),
                                "workers_gone": {w: last_seen.get(w) for w in
                                                 sorted(set(stale.values()))},
                                "live_workers": len(live),
                                "not_judged": dict(list(waiting.items())[:10])}
    if not stale:
        return Finding("stale-processing", Severity.OK,
                       f"every processing job's worker is alive ({len(ids)} processing)",
                       evidence)
    by_worker: dict[str, int] = {}
    for worker in stale.values():
        by_worker[worker] = by_worker.get(worker, 0) + 1
    gone = ", ".join(f"{w} ({n})" for w, n in sorted(by_worker.items()))
    waits = ("a live worker's sweep hands them back to the queue within a heartbeat "
             "interval" if live else "no live worker sweeps: nothing hands them back "
             f"before the visibility timeout ({settings.visibility_timeout_s:g} s since "
             "delivery) and a worker to run them")
    first = next(iter(stale))
    return Finding("stale-processing", Severity.ERROR,
                   f"{len(stale)} processing jobs belong to workers that are gone ({gone}): "
                   f"nobody runs them; {waits}; `jobtrail trace {first}` says when",
                   evidence, "start a worker, or hand them back now: jobtrail recover "
                   "(or jobtrail requeue <id>)")
