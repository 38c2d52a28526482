"""`jobtrail retention ...` and `jobtrail restore` as users run them (subprocesses, real Redis)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobtrail.cli.durations import format_duration, parse_duration
from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.models import JobStatus
from jobtrail.store import ArchiveStore, JobStore
from tests.helpers.processes import settings_env
from tests.helpers.seeding import seed_job

DAY = 86_400.0


def run(settings: Settings, *args: str, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    full_env = settings_env(settings) | (env or {})
    return subprocess.run([sys.executable, "-m", "jobtrail", *args], env=full_env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_purge_history_and_restore(settings: Settings, store: JobStore) -> None:
    old = [seed_job(store, JobStatus.COMPLETED, now_s() - 9 * DAY + i) for i in range(3)]
    recent = seed_job(store, JobStatus.COMPLETED, now_s() - 60)
    seed_job(store, JobStatus.PENDING, now_s() - 30 * DAY)

    dry = run(settings, "retention", "purge", "--status", "completed", "--older-than", "7d",
              "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    preview = json.loads(dry.stdout)
    assert preview["dry_run"] and preview["selected"] == 3 and preview["purged"] == 0
    assert preview["sample_ids"] == old and preview["stuck"]["pending"] == 1
    assert all(store.find(j) for j in old)

    result = run(settings, "retention", "purge", "--status", "completed", "--older-than", "7d",
                 "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for field in ("selected", "archived", "purged", "skipped", "elapsed_s", "archive"):
        assert field in report
    assert (report["selected"], report["archived"], report["purged"], report["skipped"]) == (
        3, 3, 3, 0)
    assert report["archive"] == f"sqlite:///{settings.archive_path}"
    assert not any(store.find(j) for j in old) and store.find(recent)

    runs = json.loads(run(settings, "retention", "history", "--json").stdout)
    assert [(r["kind"], r["outcome"], r["policy"]) for r in runs] == [("purge", "done", "adhoc")]
    assert runs[0]["counts"]["purged"] == 3 and runs[0]["archive"] == report["archive"]
    assert runs[0]["selector"]["older_than_s"] == 7 * DAY

    one = run(settings, "restore", old[0], "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["restored"] == 1 and store.get(old[0]).id == old[0]
    again = run(settings, "restore", old[0])
    assert again.returncode == 1
    assert again.stderr == f"error: job {old[0]} is completed in the main DB, not purged; " \
                           "only a purged job can be restored (its record is in the " \
                           f"archive); see it with: jobtrail status {old[0]}\n"
    rest = run(settings, "retention", "restore", "--policy", "adhoc", "--json")
    assert json.loads(rest.stdout)["restored"] == 2 and all(store.find(j) for j in old)
    assert ArchiveStore(settings.effective_archive_url).count() == 3


def test_policies_show_what_each_would_select(settings: Settings, store: JobStore) -> None:
    for i in range(4):
        seed_job(store, JobStatus.FAILED, now_s() - 2 * DAY + i)
    policies = {"old-failed": {"status": ["failed"], "older_than_s": DAY, "keep_last": 1},
                "old-completed": {"status": ["completed"], "older_than_s": 7 * DAY}}
    env = {"JOBTRAIL_RETENTION_POLICIES": json.dumps(policies)}
    result = run(settings, "retention", "policies", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["old-failed"]["selected"] == 3 and rows["old-completed"]["selected"] == 0
    # the plain table prints the ages as durations, not 8.64e+04
    plain = run(settings, "retention", "policies", env={**env, "COLUMNS": "150"})
    assert "7d" in plain.stdout and "1d" in plain.stdout and "e+0" not in plain.stdout
    purged = run(settings, "retention", "purge", "--policy", "old-failed", "--json", env=env)
    assert json.loads(purged.stdout)["purged"] == 3


@pytest.mark.parametrize(("args", "fragment"), [
    (("--status", "pending", "--older-than", "1d"), "pending jobs are never purged"),
    (("--status", "completed"), "give --policy NAME, or --status and --older-than"),
    (("--status", "completed", "--older-than", "7 days"), "is not a duration"),
    (("--policy", "nope"), "unknown retention policy 'nope'"),
])
def test_bad_selectors_are_one_line_usage_errors(settings: Settings, store: JobStore,
                                                 args: tuple[str, ...], fragment: str) -> None:
    result = run(settings, "retention", "purge", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


@pytest.mark.parametrize(("text", "seconds"), [
    ("7d", 604_800.0), ("12h", 43_200.0), ("30m", 1_800.0), ("45s", 45.0), ("45", 45.0),
    ("1h30m", 5_400.0), ("2w", 1_209_600.0), ("0.5h", 1_800.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("seconds", "text"), [
    (2_592_000, "30d"), (604_800, "7d"), (5_400, "1h30m"), (45, "45s"), (0, "0s"),
    (0.5, "0.5s"), (90_061.25, "1d1h1m1.25s")])
def test_durations_print_as_they_are_typed(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text and parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7x", "-1d", "d", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_restore_of_an_unknown_id_or_policy(settings: Settings, store: JobStore) -> None:
    # An id the archive does not hold is an unknown job (exit 3, as `status` says)
    missing = run(settings, "restore", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 3
    assert missing.stderr == ("error: job 00000000-0000-0000-0000-000000000000 not found: "
                              "unknown: no store has ever seen this id (trace looked in the "
                              "main DB, the broker, the results and the archive of purged "
                              "jobs)\n")
    # A policy that is neither configured nor named by any archived row is a typo
    typo = run(settings, "restore", "--policy", "nosuch")
    assert typo.returncode == 2, typo.stderr
    assert typo.stderr.startswith("error: unknown retention policy 'nosuch' (and no archived "
                                  "job names it); known: ")
    assert ArchiveStore(settings.effective_archive_url).history() == []  # no audit row
