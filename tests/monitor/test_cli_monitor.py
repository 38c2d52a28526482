"""`jobtrail monitor snapshot|diff|watch` as users run them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.monitor.report import write_snapshots
from jobtrail.monitor.snapshot import take_snapshot
from jobtrail.store import JobStore
from tests.cli.test_cli import run as cli
from tests.helpers.waiting import wait_until


def run(*args: str, timeout_s: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m jobtrail monitor ARGS`."""
    return subprocess.run([sys.executable, "-m", "jobtrail", "monitor", *args],
                          capture_output=True, text=True, timeout=timeout_s, check=False,
                          env={**os.environ, **(env or {})})


def test_snapshot_then_diff(redis_server: EmbeddedRedis, main_db: redis.Redis,
                            tmp_path: Path) -> None:
    url = redis_server.url(10)
    main_db.hset("h", "status", "pending")
    main_db.set("s", 1, ex=500)
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    shown = run("snapshot", "--url", url, "--out", str(a), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["snapshots"][0]["entries"]["h"] == ["hash", None, "pending"]
    assert run("snapshot", "--url", url, "--out", str(b)).returncode == 0
    main_db.hset("h", "status", "completed")
    assert run("snapshot", "--url", url, "--out", str(c)).returncode == 0

    same = json.loads(run("diff", str(a), str(b), "--json").stdout)
    assert same["empty"] is True and same["diffs"][0]["changes"] == []
    changed = json.loads(run("diff", str(a), str(c), "--json").stdout)
    assert changed["empty"] is False
    assert changed["diffs"][0]["changes"] == [
        {"key": "h", "kind": "other", "type": "hash", "change": "status_changed",
         "before": "pending", "after": "completed"}]
    human = run("diff", str(a), str(c), env={"COLUMNS": "120"})
    rows = [[cell.strip() for cell in line.split("\u2502")] for line in human.stdout.splitlines()]
    assert ["h", "status changed", "pending", "completed", "-"] in rows, human.stdout


def test_watch_prints_a_summary(redis_server: EmbeddedRedis, main_db: redis.Redis,
                                tmp_path: Path) -> None:
    main_db.set("k", 1)
    result = run("watch", "--url", redis_server.url(10), "--interval", "0.2", "--duration",
                 "0.4", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rounds"] == 3
    (label,) = summary["dbs"]
    assert summary["dbs"][label]["keys_over_time"][-1][1] == 1
    assert Path(summary["files"]["report"]).is_file()
    assert len(list(tmp_path.glob("*.log"))) == 2


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    result = run("watch", "--url", "redis://127.0.0.1:1/0", "--interval", "soon")
    assert result.returncode == 2 and "is not a duration" in result.stderr
    snapshot = tmp_path / "a.json"
    snapshot.write_text('{"snapshots": []}')
    missing = run("diff", str(snapshot), str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert missing.stderr == f"error: no such file: {tmp_path / 'nope.json'}\n"  # not Click's
    broken = tmp_path / "broken.json"
    broken.write_text('{"snapshots": [')
    result = run("diff", str(snapshot), str(broken))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot read snapshot file {broken}: ")


def test_diff_of_files_that_are_no_snapshots_is_one_plain_line(tmp_path: Path) -> None:
    # Given JSON files that are not snapshot files: an object without snapshots, a list
    other, listed = tmp_path / "other.json", tmp_path / "list.json"
    other.write_text('{"rounds": 3}')
    listed.write_text("[1, 2]")
    for path in (other, listed):
        # When they are diffed
        result = run("diff", str(path), str(path))
        # Then one line names the file and how to make a snapshot; no Python error text
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr  # bad input
        assert f"{path} is not a jobtrail snapshot file (it holds no snapshots" in " ".join(
            result.stderr.split())
        assert "'snapshots'" not in result.stderr and "Traceback" not in result.stderr


def test_diff_is_a_table_with_the_causes_watch_reports(
        settings: Settings, store: JobStore, main_db: redis.Redis, tmp_path: Path) -> None:
    # Given a completed job and a key about to expire, snapshotted
    job = store.create("x = 1")
    store.start(job.id, worker="w")
    store.complete(job.id, {"text": "x = 1", "latex": "", "steps": []})
    main_db.set("short-lived", 1, px=500)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    with a.open("w") as fp:  # in-process: quicker than the key's TTL
        write_snapshots(fp, [take_snapshot(main_db)], store.keys)
    # When the job is purged and the key expires before the second snapshot
    purged = cli(settings, "retention", "purge", "--status", "completed", "--older-than", "0s")
    assert purged.returncode == 0, purged.stderr
    wait_until(lambda: main_db.exists("short-lived") == 0, timeout_s=10, message="expiry")
    assert cli(settings, "monitor", "snapshot", "--db", "main", "--out", str(b)).returncode == 0
    # Then --json names the purge's removal and the expiry as watch does
    data = json.loads(cli(settings, "monitor", "diff", str(a), str(b), "--json").stdout)
    causes = {c["key"]: c.get("cause_label") for d in data["diffs"] for c in d["changes"]
              if c["change"] == "removed"}
    assert causes[f"job:{job.id}"] == "del by purge" and causes["short-lived"] == "expired"
    # and the plain form is a table, one row a key, the key whole on its line
    shown = cli(settings, "monitor", "diff", str(a), str(b), env={"COLUMNS": "150"})
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(all(w in line for w in ("key", "change", "old", "new", "cause"))
               for line in lines), shown.stdout
    rows = [[cell.strip() for cell in line.split("\u2502")] for line in lines]
    assert [f"job:{job.id}", "removed", "completed", "-", "del by purge"] in rows, shown.stdout
    assert "{" not in shown.stdout  # no Python dict reprs


def test_snapshot_lines_fit_80_columns(settings: Settings, store: JobStore,
                                       main_db: redis.Redis) -> None:
    # Given a main DB holding keys of many kinds: jobs, their events and indexes, and others
    for n in range(3):
        job = store.create(f"{n} + 1")
        store.start(job.id, worker="w1@host")
    for key in ("celery-task-meta-x", "_kombu.binding.jobtrail", "unacked", "stray",
                "unacked_index", "_kombu.binding.celery.pidbox"):
        main_db.set(key, 1)
    # When the snapshot is printed (a pipe, as a user's `| less` or a CI log)
    result = cli(settings, "monitor", "snapshot")
    # Then every line fits 80 columns, and every kind is still named
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    assert "by kind: " in result.stdout and "job " in result.stdout
