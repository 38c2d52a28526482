"""`jobtrail monitor snapshot|diff|watch` as users run them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

from jobtrail.embedded import EmbeddedRedis


def run(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m jobtrail monitor ARGS`."""
    return subprocess.run([sys.executable, "-m", "jobtrail", "monitor", *args],
                          capture_output=True, text=True, timeout=timeout_s, check=False)


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
    human = run("diff", str(a), str(c))
    assert "status 'h' (other, hash) pending -> completed" in human.stdout


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
    missing = run("diff", str(tmp_path / "nope.json"), str(tmp_path / "nope.json"))
    assert missing.returncode == 2
