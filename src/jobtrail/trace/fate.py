"""classify(): the facts trace gathered (trace/facts.py) in, fate and verdict out.

Pure: no I/O. Every fate rests on the facts named in its verdict; Celery's
PENDING state is never used as evidence (Celery reports it for any id it has
never seen: https://docs.celeryq.dev/en/stable/reference/celery.result.html
AsyncResult.state).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from jobtrail.models import (
    NO_RECORD_REASON,
    EventType,
    Fate,
    Job,
    JobStatus,
    WorkerHeartbeat,
    WorkerStatus,
)
from jobtrail.store.ids import MIN_PREFIX_CHARS
from jobtrail.trace.facts import Evidence, ResultFacts
from jobtrail.trace.timeline import disagreements, timeline

__all__ = [
    "TraceResult",
    "classify",
    "run_gone",
]


@dataclass(frozen=True, slots=True)
class TraceResult:
    """A fate, the verdict line, the timeline, disagreements between stores, and the evidence."""

    job_id: str
    fate: Fate
    verdict: str
    timeline: list[dict[str, Any]]
    disagreements: list[str]
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document of `trace --json`: id, fate, verdict, timeline, evidence."""
        ev = self.evidence
        main = ev.main
        job = main.job.to_dict() if main.job else None
        return {
            "id": self.job_id,
            "fate": self.fate.value,
            "verdict": self.verdict,
            "timeline": self.timeline,
            "disagreements": self.disagreements,
            "evidence": {
                "main": {
                    "job": job,
                    "raw_record": main.raw_job if main.job is None and main.raw_job else None,
                    "indexes": main.index_scores,
                    "tombstone": main.tombstone,
                    "tombstone_ttl_s": main.tombstone_ttl_s,
                    "events": [e.to_dict() for e in main.events],
                    "evicted_keys": main.evicted_keys,
                    "maxmemory_policy": main.maxmemory_policy,
                },
                "broker": None if ev.broker is None else asdict(ev.broker),
                "results": None if ev.results is None else asdict(ev.results),
                "archive": None if ev.archive is None else asdict(ev.archive),
                "worker": None if ev.worker is None else ev.worker.to_dict(),
                "unreachable": ev.unreachable,
                "workers": [w.to_dict() for w in ev.workers],
                "at": ev.at,
                # a batched job's batch message (an extension: absent for a single job)
                **({} if ev.batch is None else {"batch": asdict(ev.batch)}),
            },
        }


def when(at: float) -> str:
    """Format epoch seconds as `YYYY-MM-DD HH:MM:SS UTC`."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float) -> str:
    """Format a duration in seconds as `45 s`, `12 min`, `~3.4 h` or `~2.0 d`."""
    s = abs(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172_800:
        return f"~{s / 3600:.1f} h"
    return f"~{s / 86_400:.1f} d"


def _result_note(results: ResultFacts | None) -> str:
    if results is None:
        return "results DB unreachable"
    if results.meta is None:
        return "Celery result gone"
    state = results.meta.get("status", "?")
    if results.ttl_s is None:
        return f"Celery result {state} present, never expires"
    return f"Celery result {state} still present, expires in {span(results.ttl_s)}"


def _in_batch(ev: Evidence) -> str:
    """" in batch message <id> (job P of N)" when the job's message found is its batch's."""
    bf = ev.batch
    if bf is None or not bf.found:
        return ""
    place = f" (job {bf.position} of {bf.size})" if bf.size else ""
    return f" in batch message {bf.batch_id}{place}"


def _its_message(ev: Evidence) -> str:
    """"its message", or "its batch message <id> (job P of N)"."""
    inside = _in_batch(ev)
    return "its batch message" + inside.removeprefix(" in batch message") if inside \
        else "its message"


def _message_note(ev: Evidence) -> str:
    b = ev.broker
    its = _its_message(ev)
    if b is None:
        return "broker unreachable"
    if b.ahead is not None:
        return f"{its} waits in queue '{b.queue}' with {b.ahead} ahead of it"
    if b.unacked_since is None and b.examined < b.queue_length:
        return (f"{its} was not among the {b.examined} queued messages examined "
                f"(of {b.queue_length}): it may wait further back")
    if b.unacked_since is not None:
        due = b.unacked_since + ev.visibility_timeout_s
        return (f"{its} is unacknowledged since {when(b.unacked_since)}; the broker "
                f"redelivers it from {when(due)} (in {span(max(0.0, due - ev.at))}), at the "
                "next sweep of a running worker")
    if ev.batch is not None:
        return (f"no message for it is left in the broker (neither its batch message "
                f"{ev.batch.batch_id} nor one of its own): it is lost unless resubmitted")
    return "no message for it is left in the broker: it is lost unless resubmitted"


def _put_back(ev: Evidence, job: Job) -> str:
    """Where the message of a job processing on a live worker went back (kombu restores a
    worker's unacknowledged messages when its broker connection closes, while the
    runs go on): "back in queue ..." or "delivered again ...", "" when it did not."""
    b, started = ev.broker, job.started_at or job.created_at
    if b is None:
        return ""
    if b.ahead is not None:
        return f"is back in queue '{b.queue}' ({b.ahead} ahead of it)"
    # a start follows its delivery (the worker writes both times): a delivery after the
    # start is another one
    if b.unacked_since is not None and b.unacked_since > started:
        return f"was delivered again at {when(b.unacked_since)} (held unacknowledged)"
    return ""


def _processing_put_back(ev: Evidence, job: Job, since: str) -> tuple[Fate, str] | None:
    """The verdict of a job processing on a live worker whose message went back to the
    broker (None: it did not). Still running there when the worker's heartbeat, written
    after the job started, lists it (Celery's active requests; or a batch's, which the
    heartbeat does not list by job); else the record is stale: nobody runs it."""
    where = _put_back(ev, job)
    hb = ev.worker
    if not where or hb is None or not hb.alive:
        return None
    its, again = _its_message(ev), f"attempt {job.attempts + 1}"
    started = job.started_at or job.created_at
    if ev.batch is None and hb.last_seen > started and job.id not in hb.jobs:
        return Fate.STALE, (f"stale: processing {since} by its record, but the worker no "
                            f"longer runs it (its heartbeat at {when(hb.last_seen)} lists no "
                            f"such job) and {its} {where}: the next delivery runs it again "
                            f"({again})")
    return Fate.PROCESSING, (f"processing {since}, attempt {job.attempts}; {its} {where}: "
                             "kombu put it back when the worker's broker connection broke, "
                             f"and the run goes on; that delivery runs the job again ({again}) "
                             "unless it has finished by then")


def run_gone(hb: WorkerHeartbeat | None, worker: str, started_at: float, ev: Evidence,
             ) -> str | None:
    """Why the run of a job started at *started_at* (epoch s) on *worker* is not going on.

    The one liveness rule of trace, for a processing job and for the batch-mate
    a reserved job waits behind: the run goes on while the worker's heartbeat
    (*hb*, None: never heard of) has not expired, or its absence proves
    nothing yet (hb.gone False: Redis restarted less than the gone threshold
    ago), and the run has not outlived the visibility timeout. Returns None
    while it goes on, else the reason ("worker W is gone (last heartbeat T)"
    or "running D, longer than the visibility timeout (V)").
    """
    age = ev.at - started_at
    if hb is not None and not hb.gone and age <= ev.visibility_timeout_s:
        return None
    if hb is None or hb.gone:
        return (f"worker {worker or '?'} is gone"
                + (f" (last heartbeat {when(hb.last_seen)})" if hb and hb.last_seen else ""))
    return (f"running {span(age)}, longer than the visibility timeout "
            f"({span(ev.visibility_timeout_s)})")


def _mate_gone(ev: Evidence) -> str | None:
    """Why the batch-mate a reserved job waits behind does not run, by run_gone(), and
    what becomes of the batch's message (None: no mate runs, or it runs)."""
    bf = ev.batch
    if bf is None or not bf.found or not bf.running:
        return None
    mate, worker = bf.running[0]
    gone = run_gone(bf.mate_worker, worker, bf.mate_started_at or ev.at, ev)
    if gone is None:
        return None
    recover = "" if bf.mate_worker is not None and not bf.mate_worker.gone else \
        ", or at once by `jobtrail recover`"
    return (f"its batch is held by worker {worker or '?'}, where job {mate} of it was "
            f"processing, but {gone}; {_message_note(ev)}{recover}")


def _batch_turn(ev: Evidence) -> str:
    """How far the batch holding a reserved job has got ("" when it has not started)."""
    bf = ev.batch
    if bf is None or not bf.found:
        return ""
    if bf.running:
        mate, worker = bf.running[0]
        return (f", waiting its turn: job {mate} of its batch is processing on worker "
                f"{worker or '?'}")
    done = sum(n for s, n in bf.statuses.items()
               if s in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED))
    if done:
        return f", waiting its turn: {done} of its batch's {bf.size} jobs are finished"
    return ""


def _consumers_note(ev: Evidence) -> str:
    """What the live workers of the queue say about a job waiting in it ("" when fine)."""
    if not ev.workers:
        return ""
    stuck = [w for w in ev.workers if w.status is WorkerStatus.STUCK]
    if len(stuck) < len(ev.workers):
        return ""
    names = ", ".join(f"{w.name} (no broker poll for {span(w.poll_age_s or 0.0)})"
                      for w in stuck)
    return (f"; but every live worker consuming it is stuck: {names}; it will not start "
            "until one reconnects to the broker or is restarted")


def _classify_processing(ev: Evidence, job: Job) -> tuple[Fate, str]:
    """A processing job's fate: running on its worker, or stale (run_gone), with where
    its message is when it went back to the broker meanwhile (_processing_put_back)."""
    started = job.started_at or job.created_at
    since = f"on worker {job.worker or '?'} since {when(started)} ({span(ev.at - started)})"
    gone = run_gone(ev.worker, job.worker, started, ev)
    if gone is not None:
        return Fate.STALE, f"stale: processing {since}, but {gone}; {_message_note(ev)}"
    put_back = _processing_put_back(ev, job, since)
    if put_back is not None:
        return put_back
    inside = _in_batch(ev)
    note = ev.worker.absence_note if ev.worker is not None else ""
    return Fate.PROCESSING, (f"processing {since}, attempt {job.attempts}"
                             + ("," + inside if inside else "")
                             + (f" (worker {note})" if note else ""))


def _classify_live(ev: Evidence, job: Job) -> tuple[Fate, str]:
    if job.status is JobStatus.PENDING:
        b = ev.broker
        if b is not None and b.ahead is not None:
            return Fate.PENDING, (f"pending: waiting in queue '{b.queue}'{_in_batch(ev)}, "
                                  f"{b.ahead} ahead of it" + _consumers_note(ev))
        if b is not None and b.unacked_since is not None:
            mate_gone = _mate_gone(ev)
            if mate_gone is not None:
                return Fate.STALE, (f"stale: pending{_in_batch(ev)}, reserved since "
                                    f"{when(b.unacked_since)}; {mate_gone}")
            turn = _batch_turn(ev)
            return Fate.PENDING, (f"pending: reserved by a worker since {when(b.unacked_since)}"
                                  f"{_in_batch(ev)}" + (turn or " (prefetched, not started)"))
        if b is None:
            return Fate.PENDING, "pending (broker unreachable: queue position unknown)"
        if b.examined < b.queue_length:
            return Fate.PENDING, (f"pending: not among the {b.examined} messages next in queue "
                                  f"'{b.queue}' (of {b.queue_length}); more are ahead of it")
        return Fate.STALE, "stale: pending, but " + _message_note(ev)
    if job.status is JobStatus.PROCESSING:
        return _classify_processing(ev, job)
    if job.status is JobStatus.CANCELLED:
        return Fate.CANCELLED, _cancelled_verdict(ev, job)
    # completed or failed
    done = f"{job.status.value} at {when(job.finished_at)}" if job.finished_at else (
        job.status.value)
    if job.status is JobStatus.FAILED and job.error:
        done += f" ({job.error})"
    fate = Fate.COMPLETED if job.status is JobStatus.COMPLETED else Fate.FAILED
    if ev.results is not None and ev.results.meta is None and ev.result_expires_s > 0:
        due = (job.finished_at or job.created_at) + ev.result_expires_s
        if ev.at < due - 60:  # a minute of slack for clocks and Celery's own write
            return Fate.RESULT_EXPIRED, f"{done}; " + _result_not_stored(job, due, ev)
        return Fate.RESULT_EXPIRED, (f"{done}; result expired: celery-task-meta-{job.id} "
                                     f"is gone (result_expires_s = {ev.result_expires_s})")
    return fate, f"{done}; {_result_note(ev.results)}"


def _result_not_stored(job: Job, due: float, ev: Evidence) -> str:
    """Why a finished job has no Celery result before its TTL would have ended.

    No fact trace gathers records a deletion of a result (a keyspace event, or a
    record saying the result was written), so none is claimed: the result was
    not stored, and the record tells why when it can.
    """
    absent = (f"result not stored: there is no celery-task-meta-{job.id}, although "
              f"result_expires_s = {ev.result_expires_s} would keep it until {when(due)}, "
              "and nothing records its deletion")
    if job.error.startswith("gave up after"):
        return (f"{absent}; the job was given up on a delivery after its last attempt, "
                "which solved nothing and stored no result")
    # the TTL was set by the worker that stored it, whose settings may differ
    return (f"{absent}; its worker wrote the record and no result (its result store "
            "failed or was cut off), or stored it with a shorter TTL")


def _cancelled_verdict(ev: Evidence, job: Job) -> str:
    at = f" at {when(job.finished_at)}" if job.finished_at else ""
    verdict = f"cancelled{at}: {job.error or 'cancelled'}"
    skipped = [e for e in ev.main.events if e.type is EventType.SKIPPED]
    if skipped:
        verdict += (f"; worker {skipped[-1].fields.get('worker') or '?'} received its message "
                    f"at {when(skipped[-1].at)} and skipped it")
    elif ev.broker is not None and ev.broker.ahead is not None:
        verdict += "; its message still waits in the broker, and the worker that takes it " \
                   "will skip it"
    return verdict


def _seen_elsewhere(ev: Evidence) -> list[str]:
    seen: list[str] = []
    if ev.main.events:
        seen.append(f"{len(ev.main.events)} lifecycle events")
    if ev.main.index_scores:
        seen.append("index entries " + ", ".join(sorted(ev.main.index_scores)))
    if ev.results is not None and ev.results.meta is not None:
        seen.append("a Celery result")
    if ev.broker is not None and (ev.broker.ahead is not None or ev.broker.unacked_tag):
        seen.append("a broker message")
    return seen


def _classify_gone(ev: Evidence) -> tuple[Fate, str]:
    main = ev.main
    if main.tombstone is not None:
        t = main.tombstone
        at = float(t.get("purged_at") or 0.0)
        where = t.get("archive") or (ev.archive.location if ev.archive else "the archive")
        return Fate.PURGED, (f"purged at {when(at)} by policy {t.get('policy', '?')}, archived "
                             f"in {where}; {_result_note(ev.results)}")
    if ev.archive is not None and ev.archive.restored_at is None:
        a = ev.archive
        return Fate.PURGED, (f"purged at {when(a.purged_at)} by policy {a.policy}, archived in "
                             f"{a.location} (tombstone expired); {_result_note(ev.results)}")
    b = ev.broker
    if b is not None and b.job_ids and b.message_id == ev.job_id:
        where = (f"waiting in queue '{b.queue}' with {b.ahead} ahead of it"
                 if b.ahead is not None else
                 f"unacknowledged since {when(b.unacked_since or 0.0)}")
        names = ", ".join(b.job_ids[:3]) + (", ..." if len(b.job_ids) > 3 else "")
        return Fate.UNKNOWN, (f"unknown: {ev.job_id} is no job but the batch message of "
                              f"{len(b.job_ids)} jobs ({names}), {where}: trace one of them")
    seen = _seen_elsewhere(ev)
    if not seen:
        if ev.unreachable:
            return Fate.UNKNOWN, ("unknown: no store that could be read has seen this id; "
                                  "unreachable: " + ", ".join(sorted(ev.unreachable)))
        if main.raw_job:
            return Fate.UNKNOWN, (f"unknown: job:{ev.job_id} exists but was not written by "
                                  f"jobtrail (fields: {', '.join(sorted(main.raw_job))[:200]})")
        short = (f"; {ev.job_id!r} is shorter than the {MIN_PREFIX_CHARS} characters an id "
                 "prefix needs" if len(ev.job_id) < MIN_PREFIX_CHARS else "")
        promoted = (f"; the main DB's master was {_promoted(ev)}: a job the old master took "
                    "last is lost without a trace when its message was lost with it"
                    if main.promoted_from else "")
        return Fate.UNKNOWN, "unknown: no store has ever seen this id" + short + promoted
    last = main.events[-1].type.value if main.events else "unknown"
    evidence = "; ".join(seen)
    restored = (f"; it had been restored from the archive at {when(ev.archive.restored_at)}"
                if ev.archive is not None and ev.archive.restored_at else "")
    evidence += restored
    if main.evicted_keys > 0 and main.maxmemory_policy != "noeviction":
        return Fate.EVICTED, (
            f"evicted: job:{ev.job_id} is gone with no tombstone, and the server evicted "
            f"{main.evicted_keys} keys (maxmemory-policy {main.maxmemory_policy}); last known "
            f"event: {last}; still present: {evidence}")
    if main.untouched and main.promoted_from:
        return Fate.LOST_IN_FAILOVER, _lost_in_failover(ev, evidence)
    evictions = ("no eviction counted" if main.evicted_keys == 0 else
                 f"the server does not evict now (maxmemory-policy {main.maxmemory_policy}, "
                 f"{main.evicted_keys} past evictions)")
    return Fate.DELETED_EXTERNALLY, (
        f"deleted outside jobtrail: job:{ev.job_id} is gone with no tombstone, and "
        f"{evictions}; last known event: {last}; still present: {evidence}")




def _promoted(ev: Evidence) -> str:
    """"promoted from a replica since it started (...)", of the main DB's master."""
    return (f"promoted from a replica since it started (it had followed replication id "
            f"{ev.main.promoted_from} up to offset {ev.main.promoted_at_offset})")


def _lost_in_failover(ev: Evidence, evidence: str) -> str:
    """The verdict of a job no key of which is on a master promoted since it started,
    while other stores have seen it: its creation never reached this master.

    Replication is asynchronous: a write the old master acknowledged and had not
    sent on to the replica Sentinel promoted (or took after the promotion, from
    a client still connected to it) is discarded when the old master follows the
    new one. Only a WAIT for a replica (MAIN_MIN_REPLICAS) rules that out, which
    trace cannot see; a creation step writes the record, its index entries and
    its event together, so a deletion since would have left some of them.
    """
    meta = ev.results.meta if ev.results is not None else None
    found_none = (" a worker got its message and found no record (its Celery result);"
                  if meta is not None and NO_RECORD_REASON in str(meta.get("result")) else "")
    return (f"lost in a failover: no key of job:{ev.job_id} is on the main DB's master, which "
            f"was {_promoted(ev)}, and its record, index entries and created event, written "
            "in one step, are all missing: the old master took its creation and had not "
            "passed it on when it was replaced (replication is asynchronous; "
            f"JOBTRAIL_MAIN_MIN_REPLICAS=1 waits for a replica);{found_none} still present: "
            + evidence)


def _recreated(ev: Evidence) -> str:
    """"; record recreated from its message by worker W at T (...)" when a `created` event
    says a worker recreated the record (worker.tasks JobRun._recreate), else ""."""
    again = [e for e in ev.main.events
             if e.type is EventType.CREATED and e.fields.get("recreated")]
    if not again:
        return ""
    last = again[-1]
    return (f"; record recreated from its message by worker {last.fields.get('worker') or '?'} "
            f"at {when(last.at)} ({last.fields['recreated']}: its create was lost, as in a "
            "failover with JOBTRAIL_MAIN_MIN_REPLICAS=0)")


def classify(ev: Evidence) -> TraceResult:
    """Decide the fate of `ev.job_id` from the gathered facts.

    Order of reasoning: a live record decides (pending / processing / stale /
    completed / failed / result_expired); without one, a tombstone or archive
    row means purged; without those, any trace of the id elsewhere means it
    was lost in a failover (no key of it on a master promoted from a replica
    since it started), evicted (the server counted evictions) or deleted
    outside jobtrail; nothing anywhere means unknown.

    Returns:
        TraceResult with the fate, a one-line verdict, the merged timeline,
        disagreements between stores, and the evidence.
    """
    if ev.main.job is not None:
        fate, verdict = _classify_live(ev, ev.main.job)
        verdict += _recreated(ev)
    else:
        fate, verdict = _classify_gone(ev)
    return TraceResult(ev.job_id, fate, verdict, timeline(ev), disagreements(ev), ev)
