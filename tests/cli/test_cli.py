"""The `jobtrail` command as users run it: a subprocess with settings in its environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from jobtrail.config import Settings
from jobtrail.embedded import free_port
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.solver import solve
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from jobtrail.worker.tasks import answer_payload
from tests.helpers.processes import settings_env
from tests.helpers.waiting import wait_until


def run(settings: Settings | None, *args: str, env: dict[str, str] | None = None,
        timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m jobtrail ARGS` with *settings* in the environment."""
    full_env = settings_env(settings) if settings is not None else dict(env or {})
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "jobtrail", *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def test_status_json_has_the_documented_fields(settings: Settings, store: JobStore) -> None:
    job = store.create("solve x^2 = 4")
    result = run(settings, "status", job.id, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] == job.id and data["status"] == "pending"
    for field in ("id", "status", "problem", "kind", "answer", "answer_latex", "steps",
                  "error", "attempts", "created_at", "started_at", "finished_at"):
        assert field in data
    assert data["created_at"] == pytest.approx(job.created_at)


def test_status_shows_the_verification_of_the_answer(settings: Settings,
                                                     store: JobStore) -> None:
    job = store.create("integral of sin(x) from 0 to pi")
    store.start(job.id, worker="w1")
    store.complete(job.id, answer_payload(solve(job.problem)), kind="integral")

    data = json.loads(run(settings, "status", job.id, "--json").stdout)
    assert data["answer"] == "2"
    assert data["verification"]["status"] == "verified"
    assert data["verification"]["method"].startswith("mpmath.quad")
    human = run(settings, "status", job.id)
    assert human.returncode == 0, human.stderr
    assert "verification" in human.stdout and "verified (mpmath.quad" in human.stdout


def test_submit_then_list(settings: Settings, store: JobStore) -> None:
    result = run(settings, "submit", "1 + 1", "2 + 2", "--json")
    assert result.returncode == 0, result.stderr
    submitted = json.loads(result.stdout)
    assert [j["problem"] for j in submitted] == ["1 + 1", "2 + 2"]
    assert all(j["status"] == "pending" for j in submitted)

    listed = json.loads(run(settings, "list", "--status", "pending", "--json").stdout)
    assert {j["id"] for j in listed} == {j["id"] for j in submitted}
    assert store.get(submitted[0]["id"]).problem == "1 + 1"


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (("status", "no-such-job"), 3, "job no-such-job not found"),
    (("status", "bad:id"), 2, "is not a job id"),
    (("list", "--limit", "zero"), 2, "Invalid value for '--limit'"),
    (("list", "--status", "lost"), 2, "'lost' is not one of"),
    (("frobnicate",), 2, "No such command"),
    (("submit", "--timeout", "3", "1 + 1"), 2, "--timeout needs --wait"),
])
def test_bad_input_is_one_line_and_nonzero(settings: Settings, store: JobStore,
                                           args: tuple[str, ...], code: int,
                                           fragment: str) -> None:
    result = run(settings, *args)
    assert result.returncode == code
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_submit_of_bytes_that_are_not_utf8_is_one_line_and_creates_nothing(
        settings: Settings, main_db: redis.Redis, keys: KeySpace) -> None:
    # Given a shell that passes raw bytes (argv decodes them with surrogateescape)
    argv = [sys.executable.encode(), b"-m", b"jobtrail", b"submit", b"solve x = 1",
            b"\xff\xfe", b"solve x = 2"]
    result = subprocess.run(argv, env=settings_env(settings), capture_output=True, text=True,
                            timeout=60, check=False)
    # Then it is a usage error on one line, and none of the three jobs exists
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: Invalid value for PROBLEMS: problem 2: problem text is not valid UTF-8 "
        "(character 0)"], result.stderr
    assert main_db.zcard(keys.jobs()) == 0


@pytest.mark.parametrize(("name", "value", "said"), [
    ("JOBTRAIL_EMBEDDED", "bogus", "'bogus' is not one of auto, never"),
    ("JOBTRAIL_BATCH_MAX_JOBS", "0", "must be at least 1"),
    ("JOBTRAIL_BATCH_MAX_JOBS", "many", "'many' is not a whole number"),
    ("JOBTRAIL_RETENTION_POLICIES", '{"old": {"status": ["bogus"], "older_than_s": 1}}',
     "old.status.0: 'bogus' is not one of completed, failed, cancelled"),
])
def test_a_bad_setting_is_said_in_the_users_words(settings: Settings, name: str, value: str,
                                                  said: str) -> None:
    # pydantic's own phrasing ("Input should be greater than or equal to 1") is not shown
    result = run(settings, "list", env={name: value})
    assert result.returncode == 2
    assert result.stderr == f"error: invalid setting {name}: {said}\n"


def test_bad_setting_is_refused_at_start(settings: Settings) -> None:
    result = run(settings, "list", env={"JOBTRAIL_SOLVER_HARD_TIME_LIMIT_S": "99999"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: invalid settings: solver_hard_time_limit_s (99999) must be below "
        "visibility_timeout_s (3600), or the broker redelivers jobs that are still running")


def test_unknown_key_in_env_file(settings: Settings, tmp_path: Path) -> None:
    env_file = tmp_path / ".env.reproduction"
    env_file.write_text("JOBTRAIL_RESULTS_EXPIRE=5\n")
    result = run(settings, "--env-file", str(env_file), "list")
    assert result.returncode == 2
    assert "unknown setting JOBTRAIL_RESULTS_EXPIRE" in result.stderr


def test_a_broker_down_is_one_line_for_recover(settings: Settings, main_db: object) -> None:
    # Before: recover let kombu's OperationalError through (a 131-line traceback)
    down = settings.model_copy(update={"broker_url": "redis://:pw@127.0.0.1:1/11"})
    result = run(down, "recover")
    assert result.returncode == 1, result
    assert result.stderr.startswith("error: Redis at redis://:***@127.0.0.1:1/11 is "
                                    "unavailable"), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_redis_down_is_one_line(settings: Settings, tmp_path: Path) -> None:
    down = settings.model_copy(update={"main_url": "redis://127.0.0.1:1/10"})
    result = run(down, "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: Redis at redis://127.0.0.1:1/10 is unavailable")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_exits_zero_with_the_five_answers(tmp_path: Path) -> None:
    # Given nothing but a state directory: the demo starts its own Redis and worker
    env = {k: v for k, v in settings_env(Settings(state_dir=tmp_path / "s")).items()}
    try:
        result = run(None, "demo", env=env, timeout_s=120)
    finally:
        run(None, "server", "stop", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for fragment in ("x = 2, x = 3", "right-angled", "x = 2, y = 1", "answer: E"):
        assert fragment in out
    assert "x**3*cos(x) + 3*x**2*sin(x)" in out
    # piped, no line ends in blanks (Rich pads the cells of its grids)
    assert [line for line in out.splitlines() if line != line.rstrip()] == []
    # and the Redis it uses is one DB a line, each within 80 columns (one line was 115)
    redis_lines = [line for line in result.stderr.splitlines() if line.startswith("Redis ")]
    assert [line.split()[1] for line in redis_lines] == ["main:", "broker:", "results:"]
    assert all(len(line) <= 80 for line in redis_lines), redis_lines


def test_piped_tables_and_blocks_end_no_line_in_blanks(settings: Settings,
                                                       store: JobStore) -> None:
    # Given jobs whose texts differ in length (Rich pads each cell to its column's width)
    store.create("solve x^2 - 5x + 6 = 0")
    job = store.create("1 + 1")
    # Then a block (status) and a table (list) print no line ending in blanks
    for args in (("status", job.id), ("list",)):
        result = run(settings, *args)
        assert result.returncode == 0, result.stderr
        assert job.id in result.stdout
        assert [line for line in result.stdout.splitlines() if line != line.rstrip()] == [], args


def test_trace_cli_unknown_and_malformed(settings: Settings, store: JobStore) -> None:
    unknown = run(settings, "trace", "never-seen-42", "--json")
    assert unknown.returncode == 3
    data = json.loads(unknown.stdout)
    assert (data["id"], data["fate"]) == ("never-seen-42", "unknown")
    assert set(data["evidence"]) >= {"main", "broker", "results", "archive", "worker"}

    malformed = run(settings, "trace", "job:1")
    assert malformed.returncode == 2 and "is not a job id" in malformed.stderr

    job = store.create("1 + 1")
    pending = run(settings, "trace", job.id)
    assert pending.returncode == 0
    # no message was sent for this record, so trace says the job is lost
    assert pending.stdout.startswith("stale: pending, but no message for it is left")


@pytest.mark.slow
def test_workers_lists_live_worker_and_its_job(settings: Settings, store: JobStore,
                                               worker_process: Any) -> None:
    metrics_port = free_port()
    fast = settings.model_copy(update={"heartbeat_interval_s": 0.5,
                                       "worker_metrics_port": metrics_port})
    proc = worker_process(fast, hostname="lister")
    job = JobService(store, create_celery_app(fast)).submit(
        "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx")

    def listed() -> list[dict[str, object]] | None:
        rows = json.loads(run(fast, "workers", "--json").stdout)
        return rows if rows and rows[0]["jobs"] == [job.id] else None

    rows = wait_until(listed, timeout_s=30, message="the worker to report its job")
    assert rows[0]["name"].startswith("lister@") and rows[0]["alive"] is True
    # the worker exports its own figures only (the deployment-wide ones are the API's)
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert f'jobtrail_worker_active_jobs{{worker="{rows[0]["name"]}"}} 1.0' in metrics
    assert "process_resident_memory_bytes" in metrics
    assert "jobtrail_live_workers" not in metrics and "jobtrail_jobs{" not in metrics
    proc.stop()
    rows = json.loads(run(fast, "workers", "--json").stdout)
    assert rows[0]["alive"] is False


def test_user_data_prints_as_stored_without_emoji_or_markup(settings: Settings,
                                                            store: JobStore) -> None:
    # Given a problem holding an emoji code, Rich markup and a backslash before a bracket
    problem = r"solve x = 1 :thumbs_up: [bold]stats:m:1[/] a\[b]"
    job = store.create(problem)

    result = run(settings, "status", job.id)

    # Then the screen shows exactly the stored text
    assert result.returncode == 0, result.stderr
    assert problem in result.stdout, result.stdout
    assert "\N{THUMBS UP SIGN}" not in result.stdout and "\N{CIRCLED LATIN CAPITAL LETTER M}" \
        not in result.stdout


@pytest.mark.slow  # two fresh interpreters, one loading every command
def test_version_and_shell_completion() -> None:
    from jobtrail import __version__

    version = run(None, "--version")
    assert (version.returncode, version.stdout) == (0, f"jobtrail {__version__}\n")
    # bash completion as the script --install-completion writes asks for it
    completed = run(None, env={"_JOBTRAIL_COMPLETE": "complete_bash",
                               "COMP_WORDS": "jobtrail worker --metrics-h", "COMP_CWORD": "2"})
    assert (completed.returncode, completed.stdout.split()) == (0, ["--metrics-host"])
