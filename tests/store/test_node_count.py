"""A worker node's statistics counted in the finish's own step (JobStore.finish, node=)."""

from __future__ import annotations

import pytest
import redis

from jobtrail.errors import ConcurrentUpdateError
from jobtrail.keys import KeySpace
from jobtrail.models import Job, JobStatus
from jobtrail.store import JobStore
from jobtrail.store.job_store import completion_fields, failure_fields
from jobtrail.store.node_stats import NODE_STATS_TTL_S, NodeCount, NodeStatsStore


def _finish(store: JobStore, job_id: str, to: JobStatus, fields: dict[str, str], *,
            node: NodeCount | None, token: str = "T") -> tuple[object, object]:
    return store.finish(store.send_start(job_id, worker="w1", token=token), to,
                        fields=fields, node=node)


def test_finish_counts_the_job_on_its_node_exactly_as_record_does(
        store: JobStore, main_db: redis.Redis, keys: KeySpace) -> None:
    # Given a completed and a failed job, finished with the node's labels
    done, bad = store.create("1 + 1"), store.create("solve x = ")
    _finish(store, done.id, JobStatus.COMPLETED, completion_fields({"text": "2"}, "evaluate"),
            node=NodeCount("w1", "evaluate", ""))
    _finish(store, bad.id, JobStatus.FAILED, failure_fields("timed out after 1 s", "algebra"),
            node=NodeCount("w1", "algebra", "timeout"))

    # When the same jobs are counted the way the node's metrics always counted them
    nodes = NodeStatsStore(main_db, keys)
    for job in (store.get(done.id), store.get(bad.id)):
        assert job.started_at is not None and job.finished_at is not None
        nodes.record("ref", completed=job.status is JobStatus.COMPLETED,
                     reason="timeout", kind=job.kind or "",
                     queue_wait_s=max(0.0, job.started_at - job.created_at),
                     solve_s=max(0.0, job.finished_at - job.started_at))

    # Then the finish wrote the very same counters, with the same time to live (the sums of
    # seconds to the last bit a double's sum in another order may differ by)
    ours, ref = main_db.hgetall(keys.node_stats("w1")), main_db.hgetall(keys.node_stats("ref"))
    assert sorted(ours) == sorted(ref)
    for field, value in ref.items():
        if field.endswith(":sum_s"):
            assert float(ours[field]) == pytest.approx(float(value), rel=1e-12), field
        else:
            assert ours[field] == value, field
    assert nodes.read("w1").completed == 1 and nodes.read("w1").failed_by_reason == {
        "timeout": 1}
    assert NODE_STATS_TTL_S - 5 <= main_db.ttl(keys.node_stats("w1")) <= NODE_STATS_TTL_S


def test_a_finish_sent_again_or_refused_counts_nothing_more(
        store: JobStore, main_db: redis.Redis, keys: KeySpace) -> None:
    # Given a job finished and counted once
    job = store.create("1 + 1")
    node = NodeCount("w1", "evaluate", "")
    fields = completion_fields({"text": "2"}, "evaluate")
    _finish(store, job.id, JobStatus.COMPLETED, fields, node=node)
    counted = main_db.hgetall(keys.node_stats("w1"))

    # When the run sends its start and finish again (a lost reply), and a stale run
    # (another token) tries to finish it
    started, finished = _finish(store, job.id, JobStatus.COMPLETED, fields, node=node)
    assert isinstance(started, Job) and isinstance(finished, Job)
    other = store.create("2 + 2")
    ticket = store.send_start(other.id, worker="A", token="A")
    assert store.start(other.id, worker="B", token="B") is not None  # B took it over
    _, refused = store.finish(ticket, JobStatus.COMPLETED, fields=fields,
                              node=NodeCount("A", "evaluate", ""))

    # Then the node counted the first job once, and the refused finish nowhere
    assert isinstance(refused, ConcurrentUpdateError)
    assert main_db.hgetall(keys.node_stats("w1")) == counted
    assert counted["completed"] == "1"
    assert not main_db.exists(keys.node_stats("A"))


def test_a_finish_without_a_node_counts_on_no_node(
        store: JobStore, main_db: redis.Redis, keys: KeySpace) -> None:
    job = store.create("1 + 1")
    _finish(store, job.id, JobStatus.COMPLETED, completion_fields({"text": "2"}), node=None)
    assert store.get(job.id).status is JobStatus.COMPLETED
    assert not list(main_db.scan_iter(match=keys.node_stats("*")))
