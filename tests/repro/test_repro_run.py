"""`jobtrail repro run` end to end on real Redis and real workers: the report says what the
stores show."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.errors import ReproError
from jobtrail.keys import CELERY_RESULT_PREFIX, KeyKind, KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.repro import RunOptions, RunResult, Scenario, run_reproduction
from jobtrail.repro.context import RunContext
from jobtrail.store import ArchiveStore, EventLog, JobStore, TombstoneStore
from tests.conftest import BROKER_DB, MAIN_DB, RESULTS_DB, make_settings

FAST = {"interval_s": 0.5, "duration_s": 1.0, "wait_timeout_s": 60.0}


def _scenario(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["scenarios"] if s["name"] == name)


def _claims(scenario: dict[str, Any]) -> list[str]:
    return [f["claim"] for f in scenario["findings"]]


def _assert_twins(run_dir: Path, summary: dict[str, Any]) -> None:
    """The Markdown carries every claim and verdict of its JSON twin."""
    md = (run_dir / "REPRODUCTION_SUMMARY.md").read_text()
    assert json.loads((run_dir / "REPRODUCTION_SUMMARY.json").read_text()) == summary
    for scenario in summary["scenarios"]:
        for claim in _claims(scenario):
            assert claim in md
    for event in summary["unexpected"]:
        assert event["what"] in md


def test_purge_run_from_the_cli_reports_what_the_stores_show(
        private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    # Given an env file pointing the run at three empty DBs
    env_file = tmp_path / ".env.reproduction"
    env_file.write_text(f"JOBTRAIL_MAIN_URL={private_redis.url(MAIN_DB)}\n"
                        f"JOBTRAIL_BROKER_URL={private_redis.url(BROKER_DB)}\n"
                        f"JOBTRAIL_RESULTS_URL={private_redis.url(RESULTS_DB)}\n"
                        "JOBTRAIL_API_TOKEN=very-secret\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRAIL_")}

    # When the purge scenario runs with the five sample problems
    proc = subprocess.run(
        [sys.executable, "-m", "jobtrail", "repro", "run", "--scenario", "purge", "--jobs", "5",
         "--interval", "0.5s", "--duration", "1s", "--env-file", str(env_file),
         "--out", str(tmp_path / "out"), "--json"],
        env=env, capture_output=True, text=True, timeout=110, check=False)

    # Then it succeeds and its stores hold four records, five results, a tombstone, a row
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    run_dir = tmp_path / "out" / summary["run"]["dir"]
    main, results = private_redis.client(MAIN_DB), private_redis.client(RESULTS_DB)
    keys = KeySpace()
    seeded = [s["id"] for s in summary["setup"]["seeded"]]
    purge = _scenario(summary, "purge")
    chosen = purge["findings"][0]["claim"].rsplit(": ", 1)[1]
    assert chosen in seeded
    records = [k for k in main.scan_iter(count=1000) if keys.classify_key(k) is KeyKind.JOB]
    assert sorted(records) == sorted(keys.job(i) for i in seeded if i != chosen)
    metas = sorted(results.scan_iter(match=f"{CELERY_RESULT_PREFIX}*"))
    assert metas == sorted(keys.celery_result(i) for i in seeded)
    ttls = {m.removeprefix(CELERY_RESULT_PREFIX): results.pttl(m) / 1000 for m in metas}
    assert all(0 < t <= 86_400 for t in ttls.values())
    tombstone = TombstoneStore(main, keys).find(chosen)
    assert tombstone is not None and tombstone.policy == "repro-purge"
    archive = ArchiveStore(f"sqlite:///{run_dir / 'state' / 'archive.db'}")
    row = archive.get(chosen)
    archive.close()

    # And the report says exactly that, with the figures it rests on
    assert [v["verdict"] for v in summary["verdicts"]] == ["matches the design"] * 2
    assert summary["run"]["scenarios"] == ["processing", "purge"]
    found = {f["claim"].split(" ", 1)[0]: f for f in purge["findings"]}
    gone = purge["findings"][1]
    assert gone["evidence"]["job_records"] == [5, 4]
    assert gone["evidence"]["monitor_cause"] == "del by purge"
    assert "job records in the main DB 5 -> 4" in gone["claim"]
    kept = purge["findings"][2]
    assert kept["claim"].startswith("5 of 5 celery-task-meta keys remain")
    assert set(kept["evidence"]["ttl_s"]) == set(seeded)
    for job_id, ttl in kept["evidence"]["ttl_s"].items():
        assert 0 < ttl <= 86_400 and ttls[job_id] <= ttl  # read later, so a little lower
    assert found["tombstone:" + chosen]["evidence"]["tombstone"]["purged_at"] == \
        tombstone.purged_at
    assert purge["findings"][4]["evidence"]["archive_row"]["run_id"] == row.run_id
    assert purge["findings"][5]["evidence"]["fate"] == "purged"
    assert purge["counts"]["main"]["by_kind"]["job"] == [5, 4]
    assert purge["counts"]["main"]["by_kind"]["tombstone"] == [0, 1]
    assert summary["unexpected"] == []

    # And the processing findings are the store's statuses and events
    processing = _scenario(summary, "processing")
    store, events = JobStore(main, keys), EventLog(main, keys)
    assert all(store.get(i).status is JobStatus.COMPLETED for i in seeded if i != chosen)
    assert processing["findings"][0]["evidence"]["by_status"] == {"completed": 5}
    assert [e.type for e in events.read(seeded[1])] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
    assert processing["findings"][1]["evidence"]["paths"] == {
        "pending -> processing -> completed": 5}

    # And the evidence directory holds every file, secrets masked
    names = {f["name"] for f in summary["files"]}
    assert {"recording.json", "settings.json"} <= names
    assert any(n.startswith("monitor_") and n.endswith(".log") for n in names)
    assert any(n.startswith("db_queries_") for n in names)
    assert any(n.startswith("monitoring_report_") for n in names)
    settings_text = (run_dir / "settings.json").read_text()
    assert "very-secret" not in settings_text and "**********" in settings_text
    assert "very-secret" not in (run_dir / "recording.json").read_text()
    _assert_twins(run_dir, summary)


def test_a_record_deleted_by_a_foreign_client_is_reported_as_such(
        private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    settings = make_settings(private_redis, tmp_path / "state")
    victim: list[str] = []

    def foreign_delete(scenario: Scenario, ctx: RunContext) -> None:
        # another client, not jobtrail, deletes a completed job record mid-run
        if scenario is Scenario.PROCESSING:
            victim.append(ctx.seeded[-1])
            other = redis.Redis.from_url(private_redis.url(MAIN_DB))
            assert other.delete(KeySpace().job(victim[0])) == 1
            other.close()

    result = run_reproduction(RunOptions(settings=settings, out_dir=tmp_path / "out",
                                         scenarios=[Scenario.PROCESSING], jobs=3, **FAST),
                              after_scenario=foreign_delete)

    summary = result.summary
    assert not private_redis.client(MAIN_DB).exists(KeySpace().job(victim[0]))
    assert not private_redis.client(MAIN_DB).exists(KeySpace().tombstone(victim[0]))
    [event] = summary["unexpected"]
    assert event["key"] == KeySpace().job(victim[0])
    assert event["cause"] == "del"
    assert "deleted outside jobtrail" in event["what"]
    assert event["during"] == "between scenarios" and event["status_before"] == "completed"
    assert event["trace"]["fate"] == "deleted_externally"
    assert summary["final"]["records_gone"] == victim
    md = (result.out_dir / "REPRODUCTION_SUMMARY.md").read_text()
    assert "## Unexpected events" in md and "deleted outside jobtrail" in md
    assert "Unexpected events: 1 (see below)." in md
    _assert_twins(result.out_dir, summary)


def test_a_server_with_allkeys_lru_is_reported_at_risk(tmp_path: Path) -> None:
    # Given the env file's server evicts any key under memory pressure
    server = EmbeddedRedis(tmp_path / "lru")
    server.start("--save", "", "--appendonly", "no", "--maxmemory", "100mb",
                 "--maxmemory-policy", "allkeys-lru")
    try:
        settings = make_settings(server, tmp_path / "state")
        result: RunResult = run_reproduction(RunOptions(
            settings=settings, out_dir=tmp_path / "out", scenarios=[Scenario.MEMORY_PRESSURE],
            jobs=2, **FAST))
    finally:
        server.stop()

    memory = _scenario(result.summary, "memory-pressure")
    assert memory["conclusion"]["verdict"] == "defect"
    figures, risk = memory["findings"][0], memory["findings"][1]
    assert figures["evidence"]["maxmemory_policy"] == "allkeys-lru"
    assert figures["evidence"]["maxmemory"] == 100 * 1024 * 1024
    assert risk["holds"] is False
    assert risk["evidence"]["at_risk"] == ["job records", "queues", "results"]
    assert "job records AT RISK (allkeys-lru may evict any key" in risk["claim"]
    doctor = [f for f in memory["findings"] if f["claim"].startswith("doctor eviction:")]
    assert [f["holds"] for f in doctor] == [False, False]
    # not the run's own server: read only, never filled
    assert not any(f["claim"].startswith("on the private server") for f in memory["findings"])
    assert result.summary["verdicts"][0]["verdict"] == "matches the design"
    _assert_twins(result.out_dir, result.summary)


def test_env_file_dbs_must_be_empty(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    private_redis.client(MAIN_DB).set("someone-elses", "data")
    settings: Settings = make_settings(private_redis, tmp_path / "state")
    with pytest.raises(ReproError, match="holds 1 keys; a reproduction needs empty"):
        run_reproduction(RunOptions(settings=settings, out_dir=tmp_path / "out", **FAST))
    assert private_redis.client(MAIN_DB).get("someone-elses") == "data"


def test_an_interrupted_run_says_so_and_where_its_partial_evidence_is(tmp_path: Path) -> None:
    # Given a run on its own private server, interrupted with Ctrl-C once its worker runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRAIL_")}
    env["JOBTRAIL_STATE_DIR"] = str(tmp_path / "state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrail", "repro", "run", "--scenario", "processing",
         "--jobs", "2", "--interval", "0.5s", "--duration", "1m", "--out", str(tmp_path / "out")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    for line in proc.stderr:  # progress lines, one a step
        if line.startswith("processing "):
            break
    proc.send_signal(signal.SIGINT)
    _, error = proc.communicate(timeout=60)
    # Then it stops with one line naming the directory, and recording.json says it was cut
    [run_dir] = (tmp_path / "out").iterdir()
    assert proc.returncode == 130
    assert "Traceback" not in error
    last = error.strip().splitlines()[-1]
    assert last == (f"error: interrupted; the partial evidence (no summary) is in {run_dir}"), error
    recording = json.loads((run_dir / "recording.json").read_text())
    assert recording["interrupted"]["during"].startswith("processing")
    assert not (run_dir / "REPRODUCTION_SUMMARY.md").exists()
