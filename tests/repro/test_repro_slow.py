"""The slower scenarios end to end: TTL expiry, a worker killed mid-task, and a fill that
evicts under allkeys-lru."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.repro import RunOptions, Scenario, run_reproduction
from jobtrail.repro.scenarios import CRASH_MARGIN_S, CRASH_PACE_S
from jobtrail.store import EventLog, JobStore
from tests.conftest import MAIN_DB, RESULTS_DB, make_settings
from tests.repro.test_repro_run import FAST, _assert_twins, _scenario


@pytest.mark.slow
def test_ttl_expiry_captures_each_expiry(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    settings = make_settings(private_redis, tmp_path / "state")

    result = run_reproduction(RunOptions(settings=settings, out_dir=tmp_path / "out",
                                         scenarios=[Scenario.TTL_EXPIRY], jobs=2, **FAST))

    ttl = _scenario(result.summary, "ttl-expiry")
    assert ttl["conclusion"]["verdict"] == "matches the design", ttl
    recorded = json.loads((result.out_dir / "recording.json").read_text())
    data = recorded["scenarios"][1]["data"]
    short_ids = data["short_ids"]
    keys = KeySpace()
    results, main = private_redis.client(RESULTS_DB), private_redis.client(MAIN_DB)
    # the stores: short-TTL results gone, their records still there; seeded results kept
    assert not any(results.exists(keys.celery_result(i)) for i in short_ids)
    assert all(JobStore(main, keys).get(i).status is JobStatus.COMPLETED for i in short_ids)
    assert all(0 < results.ttl(keys.celery_result(s["id"])) <= 86_400
               for s in recorded["seeded"])
    seeded, stored, captured, traced = ttl["findings"]
    assert seeded["holds"] and {r["id"] for r in seeded["evidence"]["results"]} == {
        s["id"] for s in recorded["seeded"]}
    assert all(abs(r["ttl_plus_age_s"] - 86_400) <= 2 for r in seeded["evidence"]["results"])
    assert stored["holds"] and all(0 < t <= data["short_ttl_s"]
                                   for t in stored["evidence"]["ttl_s"].values())
    assert captured["holds"] is True
    assert set(captured["evidence"]["expired"]) == set(short_ids)
    assert all(e["cause"] == "expired" for e in captured["evidence"]["expired"].values())
    assert captured["claim"].startswith(f"{len(short_ids)} of {len(short_ids)} short-TTL "
                                        "results captured by the monitor as 'expired'")
    assert {t["fate"] for t in traced["evidence"]["traces"].values()} == {"result_expired"}
    assert result.summary["unexpected"] == []  # expiry of results is by design
    _assert_twins(result.out_dir, result.summary)


@pytest.mark.slow
@pytest.mark.crash
def test_worker_killed_mid_task_is_redelivered_with_two_attempts(
        private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    settings = make_settings(private_redis, tmp_path / "state")

    result = run_reproduction(RunOptions(settings=settings, out_dir=tmp_path / "out",
                                         scenarios=[Scenario.WORKER_CRASH], jobs=1, **FAST))

    crash = _scenario(result.summary, "worker-crash")
    assert crash["conclusion"]["verdict"] == "matches the design", crash
    killed, finished, lifecycle, stored = crash["findings"][:4]
    job_id = finished["evidence"]["record"]["id"]
    job = JobStore(private_redis.client(MAIN_DB), KeySpace()).get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 2
    assert job.worker.startswith("repro-rescuer@")
    # the job ran as long as the scenario paced it, a trivial solve after the sleep
    assert job.started_at is not None and job.finished_at is not None
    assert CRASH_PACE_S <= job.finished_at - job.started_at < CRASH_PACE_S + CRASH_MARGIN_S
    assert f"(paced at {CRASH_PACE_S:g} s)" in finished["claim"]
    assert killed["evidence"]["at_kill"]["status"] == "processing"
    assert finished["evidence"]["record"]["attempts"] == 2
    assert "with attempts = 2; redelivered" in finished["claim"]
    types = [e.type for e in EventLog(private_redis.client(MAIN_DB), KeySpace()).read(job_id)]
    assert types == [EventType.CREATED, EventType.STARTED, EventType.REDELIVERED,
                     EventType.STARTED, EventType.COMPLETED]
    assert [e["type"] for e in lifecycle["evidence"]["events"]] == [t.value for t in types]
    assert stored["evidence"]["trace"]["fate"] == "completed"
    _assert_twins(result.out_dir, result.summary)


@pytest.mark.slow
def test_fill_of_a_private_lru_server_reports_the_evictions(tmp_path: Path) -> None:
    # Given no URL (a private server), started with allkeys-lru
    result = run_reproduction(RunOptions(
        settings=Settings(state_dir=tmp_path / "state"), out_dir=tmp_path / "out",
        scenarios=[Scenario.MEMORY_PRESSURE], jobs=5,
        private_server_args=("--maxmemory-policy", "allkeys-lru"), **FAST))

    summary: dict[str, Any] = result.summary
    memory = _scenario(summary, "memory-pressure")
    recorded = json.loads((result.out_dir / "recording.json").read_text())
    fill = recorded["scenarios"][1]["data"]["fill"]
    assert fill["evicted_keys_delta"] > 0 and fill["oom_reply"] is None
    gone = memory["findings"][-2]
    assert gone["holds"] is False and gone["evidence"]["gone"] == fill["gone_from_watched_dbs"]
    assert memory["conclusion"]["verdict"] == "defect"
    evicted = [e for e in summary["unexpected"] if e["cause"] == "evicted"]
    assert evicted and all(e["during"] == "memory-pressure" for e in evicted)
    assert {e["key"] for e in evicted if e["key"]} <= {g["key"] for g in fill[
        "gone_from_watched_dbs"]}
    assert "evicted by Redis" in (result.out_dir / "REPRODUCTION_SUMMARY.md").read_text()
    _assert_twins(result.out_dir, summary)
