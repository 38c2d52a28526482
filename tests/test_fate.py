"""classify() alone: one constructed Evidence per fate, and the disagreements it reports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobtrail.models import EventType, Fate, Job, JobEvent, JobStatus, WorkerHeartbeat
from jobtrail.trace import ArchiveFacts, BrokerFacts, Evidence, MainFacts, ResultFacts, classify
from jobtrail.trace.facts import BatchFacts

NOW = 1_800_000_000.0


def job(status: JobStatus, **kw: object) -> Job:
    values: dict[str, object] = {"id": "j1", "problem": "1 + 1", "status": status,
                                 "created_at": NOW - 100, "started_at": NOW - 50,
                                 "worker": "w1@h", "attempts": 1}
    values.update(kw)
    return Job(**values)  # type: ignore[arg-type]


def main(j: Job | None = None, **kw: object) -> MainFacts:
    values: dict[str, object] = {"job": j, "index_scores": {}, "tombstone": None,
                                 "tombstone_ttl_s": None, "events": (), "evicted_keys": 0,
                                 "maxmemory_policy": "noeviction"}
    values.update(kw)
    return MainFacts(**values)  # type: ignore[arg-type]


def evidence(m: MainFacts, **kw: object) -> Evidence:
    values: dict[str, object] = {
        "job_id": "j1", "at": NOW, "visibility_timeout_s": 3600, "result_expires_s": 86400,
        "main": m, "broker": BrokerFacts("jobtrail", 0, None, None, None),
        "results": ResultFacts(None, None), "archive": None, "worker": None}
    values.update(kw)
    return Evidence(**values)  # type: ignore[arg-type]


ALIVE = WorkerHeartbeat("w1@h", 1, NOW - 60, NOW - 1, ("j1",), alive=True)
GONE = WorkerHeartbeat("w1@h", 0, 0.0, NOW - 30, (), alive=False)
CREATED = (JobEvent("1-0", EventType.CREATED, NOW - 100, {}),)
#: Heartbeats read at NOW: beating, but the consumer's last broker poll 40 s ago (bound 30 s).
STUCK = WorkerHeartbeat("w1@h", 1, NOW - 600, NOW - 1, (), alive=True, polled_at=NOW - 40,
                        stuck_after_s=30.0, queue="jobtrail", read_at=NOW)
POLLING = replace(STUCK, name="w2@h", polled_at=NOW - 1)
SUCCESS = ResultFacts({"status": "SUCCESS", "result": {"text": "2"}}, 3600.0)
#: The main DB's server is a replica promoted since it started (INFO replication).
PROMOTED: dict[str, object] = {"promoted_from": "a" * 40, "promoted_at_offset": 5163}
#: The Celery result of a delivery that found no record (worker.tasks).
NO_RECORD = ResultFacts({"status": "FAILURE", "result": {
    "exc_type": "ProblemError", "exc_message": ["job j1 has no record in the main DB"]}},
    3600.0)


@pytest.mark.parametrize(("ev", "fate", "fragment"), [
    (evidence(main(job(JobStatus.PENDING)), broker=BrokerFacts("jobtrail", 3, 2, None, None)),
     Fate.PENDING, "2 ahead of it"),
    (evidence(main(job(JobStatus.PENDING)), broker=BrokerFacts("jobtrail", 1, 0, None, None),
              workers=(STUCK,)),
     Fate.PENDING, "0 ahead of it; but every live worker consuming it is stuck: w1@h (no "
                   "broker poll for 40 s)"),
    (evidence(main(job(JobStatus.PENDING)), broker=BrokerFacts("jobtrail", 1, 0, None, None),
              workers=(STUCK, POLLING)),
     Fate.PENDING, "waiting in queue 'jobtrail', 0 ahead of it"),
    (evidence(main(job(JobStatus.PENDING)), broker=BrokerFacts("jobtrail", 0, None, "7",
                                                                NOW - 5)),
     Fate.PENDING, "reserved by a worker"),
    (evidence(main(job(JobStatus.PENDING))), Fate.STALE, "no message for it is left"),
    (evidence(main(job(JobStatus.PROCESSING)), worker=ALIVE), Fate.PROCESSING,
     "on worker w1@h since"),
    (evidence(main(job(JobStatus.PROCESSING)), worker=GONE,
              broker=BrokerFacts("jobtrail", 0, None, "7", NOW - 50)),
     Fate.STALE, "worker w1@h is gone"),
    (evidence(main(job(JobStatus.PROCESSING)), worker=ALIVE, visibility_timeout_s=10),
     Fate.STALE, "longer than the visibility timeout"),
    (evidence(main(job(JobStatus.COMPLETED, finished_at=NOW - 10)), results=SUCCESS),
     Fate.COMPLETED, "expires in 60 min"),
    (evidence(main(job(JobStatus.FAILED, finished_at=NOW - 10, error="number too large")),
              results=ResultFacts({"status": "FAILURE"}, None)),
     Fate.FAILED, "number too large"),
    (evidence(main(job(JobStatus.COMPLETED, finished_at=NOW - 90_000))), Fate.RESULT_EXPIRED,
     "result expired"),
    (evidence(main(job(JobStatus.COMPLETED, finished_at=NOW - 10))), Fate.RESULT_EXPIRED,
     "result not stored: there is no celery-task-meta-j1, although result_expires_s = "
     "86400 would keep it until 2027-01-16 07:59:50 UTC, and nothing records its deletion; "
     "its worker wrote the record and no result"),
    (evidence(main(tombstone={"purged_at": str(NOW - 5), "policy": "weekly",
                              "archive": "sqlite:///a.db"}, tombstone_ttl_s=99.0),
              results=SUCCESS),
     Fate.PURGED, "by policy weekly, archived in sqlite:///a.db; Celery result SUCCESS still "
                  "present, expires in 60 min"),
    (evidence(main(), archive=ArchiveFacts("sqlite:///a.db", NOW - 9e6, "weekly", "r1",
                                           "completed", True)),
     Fate.PURGED, "tombstone expired"),
    (evidence(main(events=CREATED, evicted_keys=4, maxmemory_policy="allkeys-lru")),
     Fate.EVICTED, "evicted 4 keys"),
    (evidence(main(index_scores={"jobs": NOW})), Fate.DELETED_EXTERNALLY,
     "no tombstone, and no eviction counted"),
    (evidence(main(events=CREATED, evicted_keys=4)), Fate.DELETED_EXTERNALLY,
     "does not evict now (maxmemory-policy noeviction, 4 past evictions)"),
    (evidence(main(events=CREATED), archive=ArchiveFacts("sqlite:///a.db", NOW - 99, "weekly",
                                                         "r1", "completed", True, NOW - 50)),
     Fate.DELETED_EXTERNALLY, "it had been restored from the archive"),
    (evidence(main(), unreachable={"archive": "disk gone"}), Fate.UNKNOWN,
     "unreachable: archive"),
    (evidence(main(raw_job={"foo": "bar"})), Fate.UNKNOWN, "was not written by jobtrail"),
    (evidence(main()), Fate.UNKNOWN, "no store has ever seen"),
    (evidence(main(**PROMOTED), results=NO_RECORD), Fate.LOST_IN_FAILOVER,
     "lost in a failover: no key of job:j1 is on the main DB's master, which was promoted "
     "from a replica since it started (it had followed replication id " + "a" * 40 + " up to "
     "offset 5163), and its record, index entries and created event, written in one step, "
     "are all missing"),
    (evidence(main(**PROMOTED), broker=BrokerFacts("jobtrail", 3, 1, None, None)),
     Fate.LOST_IN_FAILOVER, "JOBTRAIL_MAIN_MIN_REPLICAS=1 waits for a replica); still "
                            "present: a broker message"),
    (evidence(main(**PROMOTED, events=CREATED)), Fate.DELETED_EXTERNALLY,
     "no tombstone, and no eviction counted"),
    (evidence(main(**PROMOTED, evicted_keys=4, maxmemory_policy="allkeys-lru"),
              results=NO_RECORD), Fate.EVICTED, "evicted 4 keys"),
    (evidence(main(**PROMOTED)), Fate.UNKNOWN,
     "; the main DB's master was promoted from a replica since it started (it had followed "
     "replication id " + "a" * 40 + " up to offset 5163): a job the old master took last is "
     "lost without a trace when its message was lost with it"),
])
def test_each_fate(ev: Evidence, fate: Fate, fragment: str) -> None:
    result = classify(ev)
    assert result.fate is fate
    assert fragment in result.verdict


def test_a_given_up_job_without_a_result_is_never_called_deleted() -> None:
    # Given a job given up after its last attempt, whose result no worker stored
    ev = evidence(main(job(JobStatus.FAILED, finished_at=NOW - 10, attempts=3,
                           error="gave up after 3 attempts: the worker was lost each time")))
    # When it is classified, then no deletion is claimed: the result was never stored
    result = classify(ev)
    assert result.fate is Fate.RESULT_EXPIRED
    assert "deleted" not in result.verdict and "expired" not in result.verdict
    assert result.verdict.endswith(
        "and nothing records its deletion; the job was given up on a delivery after its "
        "last attempt, which solved nothing and stored no result")


def test_pending_in_celery_is_never_evidence() -> None:
    # Celery answers PENDING for ids it never saw: it must not make an id known
    ev = evidence(main(), results=ResultFacts(None, None))
    assert classify(ev).fate is Fate.UNKNOWN


def test_disagreement_between_record_and_celery_is_shown() -> None:
    ev = evidence(main(job(JobStatus.COMPLETED, finished_at=NOW - 10),
                       index_scores={"jobs": NOW, "jobs:completed": NOW}),
                  results=ResultFacts({"status": "FAILURE", "result": {
                      "exc_type": "WorkerLostError", "exc_message": ["lost"]}}, 100.0))
    result = classify(ev)
    assert result.fate is Fate.COMPLETED
    assert result.disagreements == [
        "job record says completed, Celery's result says FAILURE: WorkerLostError ['lost']"]


def test_index_disagreement() -> None:
    ev = evidence(main(job(JobStatus.COMPLETED, finished_at=NOW),
                       index_scores={"jobs": NOW, "jobs:pending": NOW}), results=SUCCESS)
    assert classify(ev).disagreements == ["job record missing from jobs:completed",
                                          "job also listed in jobs:pending"]


def test_heartbeat_status_alive_stuck_dead() -> None:
    assert (STUCK.status.value, STUCK.poll_age_s) == ("stuck", 40.0)
    assert POLLING.status.value == "alive" and GONE.status.value == "dead"
    assert ALIVE.status.value == "alive"  # a worker that reports no poll is not called stuck
    assert STUCK.to_dict()["status"] == "stuck" and STUCK.to_dict()["poll_age_s"] == 40.0


def test_json_shape() -> None:
    doc = classify(replace(evidence(main(job(JobStatus.PENDING))))).to_dict()
    assert set(doc) == {"id", "fate", "verdict", "timeline", "disagreements", "evidence"}
    assert set(doc["evidence"]) == {"main", "broker", "results", "archive", "worker",
                                    "unreachable", "at", "workers"}


def test_long_queue_is_not_called_lost() -> None:
    ev = evidence(main(job(JobStatus.PENDING)),
                  broker=BrokerFacts("jobtrail", 50_000, None, None, None, examined=10_000))
    result = classify(ev)
    assert result.fate is Fate.PENDING
    assert "not among the 10000 messages next in queue" in result.verdict


def _behind_mate(mate_worker: WorkerHeartbeat | None, mate_started_at: float,
                 visibility_timeout_s: float = 3600) -> Evidence:
    """A reserved job (3 of 3) of batch b1 whose mate j2 is processing on w1@h."""
    waiting = job(JobStatus.PENDING, started_at=None, worker="", attempts=0, batch="b1")
    return evidence(main(waiting), visibility_timeout_s=visibility_timeout_s,
                    broker=BrokerFacts("jobtrail", 0, None, "7", NOW - 50, message_id="b1",
                                       job_ids=("j0", "j2", "j1")),
                    batch=BatchFacts("b1", True, 3, 3, {"completed": 1, "processing": 1,
                                                        "pending": 1},
                                     (("j2", "w1@h"),), mate_worker, mate_started_at))


@pytest.mark.parametrize(("ev", "fate", "fragment"), [
    (_behind_mate(ALIVE, NOW - 20), Fate.PENDING,
     "waiting its turn: job j2 of its batch is processing on worker w1@h"),
    (_behind_mate(GONE, NOW - 20), Fate.STALE,
     "its batch is held by worker w1@h, where job j2 of it was processing, but worker w1@h "
     "is gone (last heartbeat"),
    (_behind_mate(None, NOW - 20), Fate.STALE, "but worker w1@h is gone; its batch message"),
    (_behind_mate(ALIVE, NOW - 20, visibility_timeout_s=10), Fate.STALE,
     "but running 20 s, longer than the visibility timeout (10 s)"),
])
def test_a_job_behind_a_batch_mate_follows_the_mates_worker(ev: Evidence, fate: Fate,
                                                             fragment: str) -> None:
    # the same rule as for the mate's own trace (fate.run_gone)
    result = classify(ev)
    assert result.fate is fate, result.verdict
    assert fragment in result.verdict
    assert ("`jobtrail recover`" in result.verdict) is (ev.batch is not None and (
        ev.batch.mate_worker is None or not ev.batch.mate_worker.alive))


def test_a_processing_job_whose_message_went_back_names_the_run_and_the_message() -> None:
    # Given a job processing on a live worker whose message is back in the queue
    queued = BrokerFacts("jobtrail", 1, 0, None, None)
    running = evidence(main(job(JobStatus.PROCESSING)), worker=ALIVE, broker=queued)
    # Then trace names both: the run goes on, and the next delivery runs it again
    result = classify(running)
    fate, verdict = result.fate, result.verdict
    assert fate is Fate.PROCESSING
    assert "its message is back in queue 'jobtrail' (0 ahead of it): kombu put it back" \
        in verdict and "attempt 2" in verdict, verdict
    # and delivered again (held unacknowledged since after the start), the same
    again = BrokerFacts("jobtrail", 0, None, "tag", NOW - 10)
    assert "delivered again" in classify(replace(running, broker=again)).verdict
    # but a worker whose heartbeat (written after the start) lists no such job runs it no more
    idle = replace(ALIVE, jobs=())
    result = classify(replace(running, worker=idle))
    fate, verdict = result.fate, result.verdict
    assert fate is Fate.STALE and "no longer runs it" in verdict, verdict
    # and a message delivered before the start is that start's delivery: nothing to say
    first = BrokerFacts("jobtrail", 0, None, "tag", NOW - 51)
    assert classify(replace(running, broker=first)).verdict.endswith("attempt 1")


def test_a_creation_a_failover_lost_is_never_called_deleted() -> None:
    # Given no key of the job on a master promoted from a replica, and the Celery result of
    # the worker that got its message and found no record
    result = classify(evidence(main(**PROMOTED), results=NO_RECORD))
    # Then the verdict names the failover and its evidence, and claims no deletion
    assert result.fate is Fate.LOST_IN_FAILOVER
    assert "delet" not in result.verdict
    assert result.verdict.endswith(
        "(replication is asynchronous; JOBTRAIL_MAIN_MIN_REPLICAS=1 waits for a replica); a "
        "worker got its message and found no record (its Celery result); still present: a "
        "Celery result")
