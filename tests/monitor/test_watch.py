"""watch() over real Redis DBs: the timeline, the report, and a monitor killed mid-run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import redis

from jobtrail.embedded import EmbeddedRedis
from jobtrail.keys import KeySpace
from jobtrail.monitor.report import read_report
from jobtrail.monitor.watch import WatchOptions, WatchProgress, WatchTarget, watch
from jobtrail.store import JobStore
from tests.helpers.waiting import wait_until


class _Runner:
    """Runs watch() in a thread and lets the test wait for rounds."""

    def __init__(self, targets: list[WatchTarget], options: WatchOptions) -> None:
        self.rounds = 0
        self.stop = threading.Event()
        self.summary: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(targets, options))
        self.thread.start()

    def _progress(self, p: WatchProgress) -> None:
        self.rounds = p.rounds

    def _run(self, targets: list[WatchTarget], options: WatchOptions) -> None:
        self.summary = watch(targets, options, on_progress=self._progress, stop=self.stop)

    def wait_rounds(self, n: int) -> None:
        wait_until(lambda: self.rounds >= n, timeout_s=10, message=lambda: f"{n} rounds")

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join(timeout=20)
        return self.summary


def test_purge_shows_del_by_purge_and_results_untouched(
        main_db: redis.Redis, results_db: redis.Redis, broker_db: redis.Redis,
        store: JobStore, keys: KeySpace, tmp_path: Path) -> None:
    # Given completed jobs with their Celery results (24 h TTL)
    jobs = [store.create(f"{i} + 1") for i in range(5)]
    for job in jobs:
        store.start(job.id, worker="w1")
        store.complete(job.id, {"answer": "2"})
        results_db.set(keys.celery_result(job.id), '{"status": "SUCCESS"}', ex=86_400)
    kept = store.create("kept")
    targets = [WatchTarget("main", main_db), WatchTarget("broker", broker_db),
               WatchTarget("results", results_db)]
    run = _Runner(targets, WatchOptions(out_dir=tmp_path, interval_s=0.2, duration_s=None,
                                        keys=keys))
    try:
        run.wait_rounds(1)
        # When a purge leaves a tombstone and deletes each record in one atomic step,
        # and a job record is deleted by someone else
        for job in jobs:
            with main_db.pipeline(transaction=True) as pipe:
                pipe.hset(keys.tombstone(job.id), mapping={"policy": "test"})
                pipe.delete(keys.job(job.id))
                pipe.execute()
        main_db.delete(keys.job(kept.id))
        current = run.rounds
        run.wait_rounds(current + 2)
    finally:
        summary = run.finish()
    # Then the log and the report name each purged record "del by purge", the other "del"
    log = Path(summary["files"]["log"]).read_text()
    for job in jobs:
        assert f"removed {keys.job(job.id)!r} (job, hash), was completed: del by purge" in log
    assert f"removed {keys.job(kept.id)!r} (job, hash), was pending: del at" in log
    assert summary["dbs"]["main"]["removals_by_cause"] == {"del by purge": 5, "del": 1}
    assert summary["dbs"]["main"]["keyspace_events"] == "on"
    # and the Celery results were untouched
    assert summary["dbs"]["results"]["changes"] == {}
    assert summary["dbs"]["results"]["keys_over_time"][-1][1] == 5
    report = read_report(Path(summary["files"]["report"]))
    assert report["complete"] is True
    removed = [c for s in report["snapshots"] if s["db"] == "main" and "diff" in s
               for c in s["diff"]["changes"] if c["change"] == "removed"]
    assert {c["cause_label"] for c in removed} == {"del by purge", "del"}
    queries = Path(summary["files"]["queries"]).read_text()
    assert "EVALSHA scan_batch" in queries and "event del" in queries
    assert main_db.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""


def test_server_refusing_config_is_watched_by_snapshots(tmp_path: Path) -> None:
    # Given a server whose CONFIG command is disabled
    server = EmbeddedRedis(tmp_path / "noconfig")
    server.start("--save", "", "--appendonly", "no", "--rename-command", "CONFIG", "")
    client = server.client(0)
    try:
        client.set("a", 1)
        run = _Runner([WatchTarget("main", client)],
                      WatchOptions(out_dir=tmp_path / "out", interval_s=0.2, duration_s=None))
        try:
            run.wait_rounds(1)
            # When a key is deleted
            client.delete("a")
            run.wait_rounds(run.rounds + 2)
        finally:
            summary = run.finish()
    finally:
        client.close()
        server.stop()
    # Then the run says plainly it had no keyspace events, and still sees the removal
    assert summary["dbs"]["main"]["keyspace_events"] == "unavailable"
    assert any("keyspace notifications cannot be enabled" in n and "snapshots alone" in n
               for n in summary["notices"])
    assert summary["dbs"]["main"]["removals_by_cause"] == {"unknown": 1}
    assert "NOTICE keyspace notifications cannot be enabled" in Path(
        summary["files"]["log"]).read_text()


def test_sigkilled_monitor_leaves_a_readable_report(private_redis: EmbeddedRedis,
                                                    tmp_path: Path) -> None:
    # Given a monitor subprocess watching a DB that keeps changing
    client = private_redis.client(0)
    for i in range(2000):
        client.hset(f"h{i}", "status", "pending")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrail", "monitor", "watch", "--url", private_redis.url(0),
         "--interval", "0.1", "--duration", "60", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        report = wait_until(lambda: next(out.glob("monitoring_report_*.json"), None),
                            timeout_s=20, message="the report file")
        # When the report is read over and over while the monitor writes it
        seen = 0
        i = 0
        while seen < 6:
            client.hset(f"h{i % 2000}", "status", "processing" if i % 2 else "pending")
            i += 1
            with open(report) as fp:
                data = json.load(fp)  # must be a complete document at every moment
            seen = len(data["snapshots"])
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        # and the monitor is killed with SIGKILL
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    # Then the report is still valid JSON up to its last snapshot
    with open(report) as fp:
        data = json.load(fp)
    assert data["complete"] is False
    assert len(data["snapshots"]) >= 6
    assert data["snapshots"][0]["keys"] == 2000 and len(data["snapshots"][0]["entries"]) == 2000
    assert all("diff" in s for s in data["snapshots"][1:])
    assert data["summary"]["rounds"] >= 5
    client.close()
