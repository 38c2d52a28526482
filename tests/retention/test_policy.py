"""The selection rule: pure edges, then the Redis-paged selection against the pure rule."""

from __future__ import annotations

import random

import pytest
import redis

from jobtrail.config import PolicySettings, Settings
from jobtrail.errors import PolicyError
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.retention import RetentionPolicy, count_candidates, select
from jobtrail.retention.policy import policies_from_settings
from jobtrail.retention.selection import Selection
from jobtrail.store import RetentionStore

C, F = JobStatus.COMPLETED, JobStatus.FAILED
NOW = 1_700_000_000.0


def policy(older_than_s: float = 100.0, keep_last: int = 0, max_per_run: int | None = None,
           statuses: tuple[JobStatus, ...] = (C,)) -> RetentionPolicy:
    return RetentionPolicy("p", statuses, older_than_s, keep_last, max_per_run)


def test_age_exactly_at_the_boundary_is_selected() -> None:
    entries = [("exact", NOW - 100.0), ("younger", NOW - 99.999), ("older", NOW - 100.001)]
    assert select(entries, policy(100.0), NOW) == ["older", "exact"]


def test_keep_last_with_equal_timestamps_keeps_exactly_n_by_id() -> None:
    # Given five jobs finished at the same instant
    entries = [(f"job-{i}", NOW - 1000.0) for i in range(5)]
    # When the newest two are kept
    chosen = select(entries, policy(10.0, keep_last=2), NOW)
    # Then exactly three are selected; the greater ids count as newer
    assert chosen == ["job-0", "job-1", "job-2"]


def test_keep_last_larger_than_the_population_selects_nothing() -> None:
    entries = [(f"j{i}", NOW - 1e6) for i in range(3)]
    assert select(entries, policy(0.0, keep_last=3), NOW) == []
    assert select(entries, policy(0.0, keep_last=2), NOW) == ["j0"]


def test_empty_input_selects_nothing() -> None:
    assert select([], policy(0.0, keep_last=5), NOW) == []


def test_max_per_run_takes_the_oldest() -> None:
    entries = [(f"j{i}", NOW - 1000.0 + i) for i in range(10)]
    assert select(entries, policy(0.0, max_per_run=3), NOW) == ["j0", "j1", "j2"]


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_pending_and_processing_can_never_be_selected(status: JobStatus) -> None:
    with pytest.raises(PolicyError, match="never purged"):
        RetentionPolicy("bad", (C, status), 0.0)


def test_policies_come_from_settings_json() -> None:
    settings = Settings.model_validate({"retention_policies": (
        '{"old-completed": {"status": ["completed"], "older_than_s": 604800, '
        '"keep_last": 100, "max_per_run": 10000}, "failed": {"status": ["failed"], '
        '"older_than_s": 60}}')})
    named = policies_from_settings(settings)
    assert list(named) == ["failed", "old-completed"]
    assert named["old-completed"] == RetentionPolicy("old-completed", (C,), 604800.0, 100, 10000)
    with pytest.raises(ValueError, match="completed"):
        PolicySettings.model_validate({"status": ["pending"], "older_than_s": 1})


def _zadd(client: redis.Redis, keys: KeySpace, status: JobStatus,
          entries: list[tuple[str, float]]) -> None:
    if entries:
        client.zadd(keys.jobs_by_status(status), dict(entries))


@pytest.mark.parametrize("seed", range(6))
def test_paged_redis_selection_equals_the_pure_rule(main_db: redis.Redis, results_db: redis.Redis,
                                                    keys: KeySpace, seed: int) -> None:
    # Given two status indexes with ties, paged in tiny pages
    rng = random.Random(seed)
    per_status: dict[JobStatus, list[tuple[str, float]]] = {
        s: [(f"{s.value[0]}{i:03d}", NOW - rng.choice([50, 100, 100, 150, 200, 300]))
            for i in range(rng.randrange(0, 40))] for s in (C, F)}
    for status, entries in per_status.items():
        _zadd(main_db, keys, status, entries)
    main_db.zadd(keys.jobs_by_status(JobStatus.PENDING), {"old-pending": NOW - 1e6})
    store = RetentionStore(main_db, results_db, keys)
    for pol in (policy(100.0, keep_last=rng.randrange(0, 30), statuses=(C, F)),
                policy(0.0, keep_last=rng.randrange(0, 5), max_per_run=rng.randrange(1, 20),
                       statuses=(C, F)),
                policy(150.0, statuses=(F,))):
        # When the selection is paged 3 at a time, nothing being removed
        selection = Selection(store, pol, NOW, page_size=3)
        got: list[str] = []
        while batch := selection.next_batch(4):
            got += [c.job_id for c in batch]
        # Then it matches the pure rule over the same entries, order included
        every = [e for s in pol.statuses for e in per_status[s]]
        assert got == select(every, pol, NOW)
        assert count_candidates(store, pol, NOW) == len(got)
        assert "old-pending" not in got
