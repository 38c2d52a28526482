"""Paths a user types relative to the shell's directory mean the same to every child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtrail.config import load_settings
from jobtrail.embedded import EmbeddedRedis


def test_embedded_redis_starts_in_a_relative_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a relative data directory (as `repro run --out evidence/` gives)
    monkeypatch.chdir(tmp_path)
    server = EmbeddedRedis(Path("evidence") / "redis")
    # Then redis-server starts (it changes into --dir before opening --logfile)
    server.start("--appendonly", "no", "--save", "")
    try:
        assert server.client().ping() is True
        assert server.data_dir == tmp_path / "evidence" / "redis"
        assert (tmp_path / "evidence" / "redis" / "redis.log").is_file()
    finally:
        server.stop()


def test_a_relative_state_dir_setting_is_made_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBTRAIL_STATE_DIR", "state")
    assert load_settings().state_dir == tmp_path / "state"
