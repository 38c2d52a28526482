"""A job of a batch message seen by trace, doctor, recovery, requeue, cancel and restore.

Real batch messages: `jobtrail.solve_batch` published through the Celery app with the
i15 contract's args (no worker), reserved with kombu's own basic_get where a worker
must hold them. Each test compares with what a single job gets today.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest
import redis
from pydantic import SecretStr

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.doctor import Severity, run_checks
from jobtrail.errors import NotCancellableError
from jobtrail.jobs import JobService
from jobtrail.models import EventType, Fate, JobStatus
from jobtrail.monitor.diff import diff
from jobtrail.monitor.snapshot import take_snapshot
from jobtrail.retention.restore import restore_ids
from jobtrail.store import EventLog, JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.store.retention_store import RetentionStore
from jobtrail.trace import TraceResult, trace_job
from jobtrail.trace.gather import archive_lookup
from jobtrail.worker.app import create_celery_app
from tests.cli.test_cli import run
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.batches import publish_batch, reserve_next
from tests.helpers.waiting import wait_until
from tests.test_trace import _purge_oldest, sources

PROBLEMS = ["solve x + 1 = 2", "solve x + 2 = 3", "solve x + 3 = 4"]


def trace(settings: Settings, job_id: str, archive: ArchiveStore | None = None) -> TraceResult:
    """trace_job() on fresh clients of *settings*' DBs, closed afterwards."""
    src = sources(settings)
    if archive is not None:
        src = replace(src, find_archived=archive_lookup(lambda: archive))
    try:
        return trace_job(src, job_id)
    finally:
        for client in (src.main, src.broker, src.results):
            if client is not None:
                client.close()


@pytest.fixture
def service(settings: Settings, store: JobStore) -> JobService:
    return JobService(store, create_celery_app(settings))


def _doctor(settings: Settings, store: JobStore, broker_db: redis.Redis,
            results_db: redis.Redis) -> dict[str, object]:
    clients = {"main": store.client, "broker": broker_db, "results": results_db}
    return {f.check: f for f in run_checks(settings, clients, store.keys, consistency=True)}


def test_trace_names_the_batch_message_of_a_queued_job_and_its_place(
        settings: Settings, service: JobService, store: JobStore) -> None:
    # Given a single job, then a batch of three, in the queue with no worker
    single = service.submit("solve x = 1")
    batch, jobs = publish_batch(store, service.app, PROBLEMS)

    # When each is traced
    one, second = trace(settings, single.id), trace(settings, jobs[1].id)

    # Then the single job reads as today, the batched one names its message and place
    assert one.verdict == "pending: waiting in queue 'jobtrail', 0 ahead of it"
    assert second.fate is Fate.PENDING
    assert second.verdict == (f"pending: waiting in queue 'jobtrail' in batch message {batch} "
                              "(job 2 of 3), 1 ahead of it")
    doc = second.to_dict()["evidence"]
    assert doc["broker"]["message_id"] == batch
    assert doc["batch"]["position"] == 2 and doc["batch"]["size"] == 3
    assert doc["batch"]["statuses"] == {"pending": 3}
    assert doc["main"]["job"]["batch"] == batch and one.to_dict()["evidence"]["main"][
        "job"]["batch"] == ""


def test_trace_of_a_reserved_then_running_batch(settings: Settings, service: JobService,
                                                 store: JobStore) -> None:
    # Given a batch a worker prefetched (unacked, none started)
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    reserve_next(service.app, store.keys.queue())
    reserved = trace(settings, jobs[2].id)
    assert reserved.fate is Fate.PENDING
    assert reserved.verdict.startswith("pending: reserved by a worker since ")
    assert reserved.verdict.endswith(f" in batch message {batch} (job 3 of 3) "
                                     "(prefetched, not started)")

    # When the worker, alive, starts the batch's first job
    HeartbeatStore(store.client, store.keys).beat("wb@host", pid=1, started_at=time.time(),
                                                  jobs=[], interval_s=30, held=[batch])
    store.start(jobs[0].id, worker="wb@host")

    # Then the running job names its batch message, the others wait their turn behind it
    running, waiting = trace(settings, jobs[0].id), trace(settings, jobs[2].id)
    assert running.fate is Fate.PROCESSING
    assert running.verdict.endswith(f"attempt 1, in batch message {batch} (job 1 of 3)")
    assert waiting.fate is Fate.PENDING
    assert waiting.verdict.endswith(f"in batch message {batch} (job 3 of 3), waiting its "
                                    f"turn: job {jobs[0].id} of its batch is processing on "
                                    "worker wb@host")
    # and once the worker is gone, the running job is stale and its batch message named
    store.client.delete(store.keys.worker("wb@host"))
    stale = trace(settings, jobs[0].id)
    assert stale.fate is Fate.STALE
    assert f"its batch message {batch} (job 1 of 3) is unacknowledged since" in stale.verdict


def test_doctor_finds_a_batch_queued_and_its_jobs_lost_once_the_message_is(
        settings: Settings, service: JobService, store: JobStore, broker_db: redis.Redis,
        results_db: redis.Redis) -> None:
    # Given a batch in the queue, its jobs pending for an hour
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    old = time.time() - 3600
    store.client.zadd(store.keys.jobs_by_status("pending"), {j.id: old for j in jobs})

    # Then doctor finds their message, as trace does
    found = _doctor(settings, store, broker_db, results_db)["pending-without-message"]
    assert found.severity is Severity.OK, found.summary  # type: ignore[attr-defined]

    # When the batch message is lost (the queue deleted), every job of it is reported
    broker_db.delete(store.keys.queue())
    lost = _doctor(settings, store, broker_db, results_db)["pending-without-message"]
    assert lost.severity is Severity.ERROR  # type: ignore[attr-defined]
    assert sorted(lost.evidence["sample"]) == sorted(j.id for j in jobs)  # type: ignore[attr-defined]
    stale = trace(settings, jobs[0].id)
    assert stale.fate is Fate.STALE
    assert f"neither its batch message {batch} nor one of its own" in stale.verdict

    # And requeue sends the job again, in a message of its own: trace finds it, doctor too
    service.requeue(jobs[0].id)
    again = trace(settings, jobs[0].id)
    assert again.verdict == "pending: waiting in queue 'jobtrail', 0 ahead of it"
    assert again.evidence.broker is not None and again.evidence.broker.message_id == jobs[0].id
    after = _doctor(settings, store, broker_db, results_db)["pending-without-message"]
    assert sorted(after.evidence["sample"]) == sorted(j.id for j in jobs[1:])  # type: ignore[attr-defined]


def _dead_batch(service: JobService, store: JobStore) -> tuple[str, list]:  # type: ignore[type-arg]
    """A batch whose worker ghost@host died: job 1 done, job 2 running, job 3 waiting."""
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    reserve_next(service.app, store.keys.queue(), delivered_ago_s=60)
    store.start(jobs[0].id, worker="ghost@host")
    store.complete(jobs[0].id, {"text": "x = 1"})
    store.start(jobs[1].id, worker="ghost@host")
    return batch, jobs


def test_recover_returns_a_dead_workers_batch_and_redelivers_each_unfinished_job(
        settings: Settings, service: JobService, store: JobStore, events: EventLog,
        broker_db: redis.Redis) -> None:
    # Given a batch held by a worker that is gone, mid-way through it
    batch, jobs = _dead_batch(service, store)
    done_events = [e.type for e in events.read(jobs[0].id)]

    # When an operator recovers
    report = service.recover(gone_after_s=3.0)

    # Then the batch message is back in the queue, once
    assert broker_db.hlen(store.keys.unacked()) == 0
    [back] = broker_db.lrange(store.keys.queue(), 0, -1)
    assert json.loads(back)["headers"]["id"] == batch
    # each unfinished job got its redelivered event naming the worker, the finished one none
    assert {r.job_id: (r.status, r.restored) for r in report.recovered} == {
        jobs[1].id: ("processing", True), jobs[2].id: ("pending", True)}
    for job in jobs[1:]:
        last = events.read(job.id)[-1]
        assert last.type is EventType.REDELIVERED
        assert last.fields["reason"] == "worker ghost@host gone (no heartbeat on record)"
        assert last.fields["dead_worker"] == "ghost@host"
        assert store.get(job.id).status is JobStatus.PENDING
    assert [e.type for e in events.read(jobs[0].id)] == done_events
    assert store.get(jobs[0].id).status is JobStatus.COMPLETED
    assert trace(settings, jobs[1].id).verdict == (
        f"pending: waiting in queue 'jobtrail' in batch message {batch} (job 2 of 3), "
        "0 ahead of it")


def test_a_live_worker_holding_a_batch_keeps_it(settings: Settings, service: JobService,
                                                store: JobStore) -> None:
    # Given the same batch, but its worker alive and holding the batch message
    batch, jobs = _dead_batch(service, store)
    HeartbeatStore(store.client, store.keys).beat("ghost@host", pid=1, started_at=time.time(),
                                                  jobs=[], interval_s=30, held=[batch])

    # When recovery runs, then nothing is taken
    assert service.recover(gone_after_s=3.0).recovered == []
    assert store.get(jobs[1].id).status is JobStatus.PROCESSING


def test_requeue_of_a_processing_batched_job_on_a_dead_worker(
        settings: Settings, service: JobService, store: JobStore, events: EventLog,
        broker_db: redis.Redis) -> None:
    # Given a batch held by a worker that is gone, mid-way through it
    batch, jobs = _dead_batch(service, store)

    # When its running job is requeued
    job = service.requeue(jobs[1].id)

    # Then it alone is pending again, out of its batch, sent in a message of its own; the
    # batch message stays unacknowledged (the sweep's to take back), its waiting job
    # untouched
    assert job.status is JobStatus.PENDING and job.batch == ""
    [back] = broker_db.lrange(store.keys.queue(), 0, -1)
    assert json.loads(back)["headers"]["id"] == jobs[1].id
    assert broker_db.hlen(store.keys.unacked()) == 1
    last = events.read(jobs[1].id)[-1]
    assert (last.type, last.fields["reason"], last.fields["left_batch"]) == (
        EventType.REDELIVERED, "requeued: worker ghost@host gone (no heartbeat on record)",
        batch)
    assert EventType.REDELIVERED not in [e.type for e in events.read(jobs[2].id)]
    assert store.get(jobs[0].id).status is JobStatus.COMPLETED

    # When the sweep takes the batch back, then only its waiting job is redelivered
    report = service.recover(gone_after_s=3.0)
    assert [r.job_id for r in report.recovered] == [jobs[2].id]
    assert store.get(jobs[1].id).status is JobStatus.PENDING


def test_cancel_of_batched_jobs(settings: Settings, service: JobService, store: JobStore,
                                broker_db: redis.Redis) -> None:
    # Given a batch whose first job runs on a live worker
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    store.start(jobs[0].id, worker="wb@host")

    # When the running job is cancelled with terminate, it is refused, naming the batch
    with pytest.raises(NotCancellableError) as refused:
        service.cancel(jobs[0].id, terminate=True)
    assert f"batch message {batch}" in str(refused.value)
    assert store.get(jobs[0].id).status is JobStatus.PROCESSING

    # When a pending job of it is cancelled, it alone is: the batch message stays queued
    cancelled = service.cancel(jobs[1].id)
    assert cancelled.status is JobStatus.CANCELLED
    assert store.get(jobs[2].id).status is JobStatus.PENDING
    [queued] = broker_db.lrange(store.keys.queue(), 0, -1)
    assert json.loads(queued)["headers"]["id"] == batch
    assert trace(settings, jobs[1].id).fate is Fate.CANCELLED


def test_a_purged_then_restored_batched_job_reads_as_a_single_one(
        settings: Settings, service: JobService, store: JobStore) -> None:
    # Given a batch whose first job is done while its batch message is still held (the
    # worker runs the rest), and that job purged, then restored from the archive
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    reserve_next(service.app, store.keys.queue())
    store.start(jobs[0].id, worker="wb@host")
    store.complete(jobs[0].id, {"text": "x = 1"})
    store.start(jobs[1].id, worker="wb@host")
    archive = _purge_oldest(settings, keep_last=0)
    purged = trace(settings, jobs[0].id, archive)
    assert purged.fate is Fate.PURGED
    main_url, _, results_url = settings.require_urls()
    rstore = RetentionStore(redis.Redis.from_url(main_url, decode_responses=True),
                            redis.Redis.from_url(results_url, decode_responses=True),
                            store.keys)
    restore_ids(rstore, archive, [jobs[0].id])
    rstore.main.close()
    rstore.results.close()

    # When it is traced
    back = trace(settings, jobs[0].id)

    # Then it reads completed as any restored job (no worker stored a Celery result here),
    # its batch kept on the record, and the batch message its batch-mates still ride is
    # not taken for its own
    assert back.fate is Fate.RESULT_EXPIRED and back.verdict.startswith("completed at ")
    assert back.evidence.batch is None
    assert store.get(jobs[0].id).batch == batch
    assert back.evidence.broker is not None and back.evidence.broker.unacked_tag is None
    assert "delivered (unacked)" not in [t["event"] for t in back.timeline]
    assert back.disagreements == []
    archive.close()


def test_status_list_api_and_cancel_show_batched_jobs_as_single_ones(
        settings: Settings, service: JobService, store: JobStore) -> None:
    # Given a batch whose first job runs
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    store.start(jobs[0].id, worker="wb@host")

    # Then status --json and list --json carry every field they did, plus `batch`
    status = run(settings, "status", jobs[1].id, "--json")
    assert status.returncode == 0, status.stderr
    single = store.create("solve x = 5")
    doc, plain = json.loads(status.stdout), json.loads(run(settings, "status", single.id,
                                                           "--json").stdout)
    assert set(doc) == set(plain) and doc["batch"] == batch and plain["batch"] == ""
    human, alone = run(settings, "status", jobs[1].id).stdout, run(settings, "status",
                                                                    single.id).stdout
    assert re.search(rf"^batch\s+{batch}$", human, re.M) and "batch" not in alone
    listed = {j["id"]: j for j in json.loads(run(settings, "list", "--json").stdout)}
    assert {listed[j.id]["batch"] for j in jobs} == {batch}
    # and GET /jobs/{id} too
    conf = settings.model_copy(update={"api_token": SecretStr("t0ken")})
    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        got = http.get(f"/jobs/{jobs[2].id}").json()
        refused = http.post(f"/jobs/{jobs[0].id}/cancel", params={"terminate": "true"},
                            headers={"Authorization": "Bearer t0ken"})
    assert got["batch"] == batch and got["status"] == "pending"
    assert refused.status_code == 409, refused.text
    assert f"batch message {batch}" in refused.json()["error"]["message"]
    # and cancel --terminate of the running one is refused in one line, nothing changed
    cancel = run(settings, "cancel", "--terminate", jobs[0].id)
    assert cancel.returncode == 1
    assert f"runs in batch message {batch} on wb@host" in cancel.stderr
    assert "Traceback" not in cancel.stderr and len(cancel.stderr.strip().splitlines()) == 1
    assert store.get(jobs[0].id).status is JobStatus.PROCESSING


def test_trace_of_a_batch_messages_own_id_says_what_it_is(
        settings: Settings, service: JobService, store: JobStore) -> None:
    # Given a batch in the queue, then reserved by a worker
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    queued = trace(settings, batch)
    reserve_next(service.app, store.keys.queue())
    held = trace(settings, batch)

    # Then tracing the batch's id (as a verdict names it) says it is a message, not a job
    # deleted outside jobtrail
    names = ", ".join(j.id for j in jobs)
    assert queued.fate is Fate.UNKNOWN
    assert queued.verdict == (f"unknown: {batch} is no job but the batch message of 3 jobs "
                              f"({names}), waiting in queue 'jobtrail' with 0 ahead of it: "
                              "trace one of them")
    assert held.fate is Fate.UNKNOWN and "unacknowledged since" in held.verdict
    # and an id no store has seen still reads as today
    assert trace(settings, "no-such-job").verdict == "unknown: no store has ever seen this id"


def test_monitor_diff_sees_a_batched_jobs_changes_as_a_single_ones(
        settings: Settings, service: JobService, store: JobStore) -> None:
    # Given a single job and a batch, snapshotted, then each started
    single = service.submit("solve x = 7")
    _, jobs = publish_batch(store, service.app, PROBLEMS[:1])
    before = take_snapshot(store.client)
    for job in (single, jobs[0]):
        store.start(job.id, worker="wb@host")

    # When the two snapshots are compared
    changes = diff(before, take_snapshot(store.client), keys=store.keys).changes

    # Then both records show the same change, and nothing else differs between them
    def seen(job_id: str) -> list[tuple[str, str, object, object]]:
        return [(c.kind, c.change, c.before, c.after) for c in changes
                if c.key in (store.keys.job(job_id), store.keys.events(job_id))]

    assert seen(jobs[0].id) == seen(single.id)
    assert ("job", "status_changed", "pending", "processing") in seen(single.id)


def test_a_redelivered_batch_prefetched_by_a_gone_worker_names_no_earlier_worker(
        settings: Settings, service: JobService, store: JobStore, events: EventLog,
        broker_db: redis.Redis) -> None:
    # Given a batch whose first job a worker finished in an earlier delivery, then
    # delivered again to a worker that vanished before starting any of it
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    store.start(jobs[0].id, worker="earlier@host")
    store.complete(jobs[0].id, {"text": "x = 1"})
    time.sleep(0.01)
    reserve_next(service.app, store.keys.queue())

    # When recovery takes it back
    report = service.recover(gone_after_s=0.0)

    # Then its waiting jobs read as a single prefetched job does: no worker is blamed
    assert {r.job_id: r.reason for r in report.recovered} == {
        j.id: "prefetched by a worker that is gone, or its delivery lost with its connection "
              "(no live worker holds its message)"
        for j in jobs[1:]}
    assert all(EventType.REDELIVERED not in [e.type for e in events.read(j.id)]
               for j in jobs)
    [back] = broker_db.lrange(store.keys.queue(), 0, -1)
    assert json.loads(back)["headers"]["id"] == batch


def test_trace_command_shows_the_batch_evidence_and_traces_a_batch_id(
        settings: Settings, service: JobService, store: JobStore) -> None:
    # Given a batch of three in the queue, its first job started
    batch, jobs = publish_batch(store, service.app, PROBLEMS)
    store.start(jobs[0].id, worker="wb@host")

    # When an operator traces one of its jobs, then the batch message's own id
    job = run(settings, "trace", jobs[1].id)
    message = run(settings, "trace", batch)

    # Then the evidence names the message and the batch's progress; the batch id is no job
    assert job.returncode == 0, job.stderr
    assert f"message {batch} (queue length 1)" in " ".join(job.stdout.split())
    assert f"batch: message {batch}, job 2 of 3; its jobs: 2 pending, 1 processing" in \
        " ".join(job.stdout.split())
    assert message.returncode == 3
    assert f"{batch} is no job but the batch message of 3 jobs" in " ".join(
        message.stdout.split())


def test_a_worker_killed_between_heartbeats_is_gone_since_it_started_its_job_not_before(
        settings: Settings, store: JobStore, events: EventLog) -> None:
    # Given a batch whose worker ghost@host beat 2 min ago, started job 2 after that and died
    service = JobService(store, create_celery_app(
        settings.model_copy(update={"heartbeat_interval_s": 1.0})))
    # (a server younger than the gone threshold, 3 s, defers the sweep: not this test's point)
    wait_until(lambda: float(store.client.info("server")["uptime_in_seconds"]) >= 3.0)
    _, jobs = _dead_batch(service, store)
    store.client.zadd(store.keys.workers(), {"ghost@host": time.time() - 120})
    started = store.get(jobs[1].id).started_at
    assert started is not None
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))

    # When the sweep takes it back, then each reason names the start as its last sign of
    # life (it read "gone since" its heartbeat, before the start it was seen making)
    service.recover(gone_after_s=3.0)
    for job in jobs[1:]:
        assert events.read(job.id)[-1].fields["reason"] == f"worker ghost@host gone since {since}"
