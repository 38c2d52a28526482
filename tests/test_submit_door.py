"""One input limit at the door: CLI, API and JobService refuse the same texts the same way.

Each refusal is checked against Redis: nothing was written (no record, no
index entry, no broker message).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from jobtrail import Client
from jobtrail.api.app import create_app
from jobtrail.config import SOLVER_MAX_PROBLEM_CHARS, Settings
from jobtrail.errors import ProblemError, ProblemTooLargeError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.solver import MAX_PROBLEM_CHARS
from jobtrail.store import JobStore
from jobtrail.worker.app import TASK_SOLVE_PROBLEM, create_celery_app
from tests.cli.test_cli import run
from tests.helpers.api_server import client, serve_in_thread

TOO_LONG = "1" * (SOLVER_MAX_PROBLEM_CHARS + 1)
#: (text, message) refused at the door by every entry point.
REFUSED = [
    ("", "empty problem"),
    ("  \t \n ", "empty problem"),
    ("solve x\x00 = 1", "problem text holds the control character U+0000 at character 7"),
    ("x\x1b[31m = 1", "problem text holds the control character U+001B at character 1"),
    # whitespace controls too: a problem is one line (as a line of --file is), a tab no column
    ("solve x^2\t= 4", "problem text holds the control character U+0009 (tab) at character 9: "
                       "write a space"),
    ("x + y = 1\nx - y = 0", "problem text holds the control character U+000A (line feed) at "
                             "character 9: a problem is one line"),
    ("x = 1\r", "problem text holds the control character U+000D (carriage return) at "
                "character 5: a problem is one line"),
    ("x = 1\x85", "problem text holds the control character U+0085 at character 5"),
    (TOO_LONG, f"problem text is {len(TOO_LONG)} characters; the limit is 2000"),
    # invisible characters: shown as nothing, read by the solver as garbage
    ("solve x\u200b = 1", "problem text holds the invisible character U+200B at character 7"),
    ("solve x = 1\u202e", "problem text holds the invisible character U+202E at character 11"),
    ("x = 1\u2028y", "problem text holds the invisible character U+2028 at character 5"),
]


def _nothing_written(main_db: redis.Redis, broker_db: redis.Redis, keys: KeySpace) -> None:
    assert main_db.zcard(keys.jobs()) == 0
    assert main_db.dbsize() == 0
    assert broker_db.dbsize() == 0


def test_the_solver_and_the_door_share_one_limit() -> None:
    assert MAX_PROBLEM_CHARS == SOLVER_MAX_PROBLEM_CHARS == Settings().max_problem_chars


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_job_service_refuses_before_any_write(
        settings: Settings, store: JobStore, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, text: str, message: str) -> None:
    service = JobService(store, create_celery_app(settings))
    with pytest.raises(ProblemError) as one:
        service.submit(text)
    with pytest.raises(ProblemError) as many:
        service.submit_many(["1 + 1", text])
    assert str(one.value) == message
    assert str(many.value) == f"problem 2: {message}"   # which one of the batch, as the CLI says
    assert type(many.value) is type(one.value)
    _nothing_written(main_db, broker_db, keys)


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_the_client_and_plain_celery_refuse_the_same_way(
        settings: Settings, main_db: redis.Redis, broker_db: redis.Redis, keys: KeySpace,
        text: str, message: str) -> None:
    with Client(settings) as client, pytest.raises(ProblemError) as through_client:
        client.submit(text)
    with pytest.raises(ProblemError) as through_celery:
        create_celery_app(settings).send_task(TASK_SOLVE_PROBLEM, args=[text])
    assert str(through_client.value) == str(through_celery.value) == message
    _nothing_written(main_db, broker_db, keys)


def test_the_limit_is_a_setting(settings: Settings, store: JobStore, main_db: redis.Redis,
                                broker_db: redis.Redis, keys: KeySpace) -> None:
    # Given the limit lowered to 10 characters
    small = settings.model_copy(update={"max_problem_chars": 10})
    service = JobService(store, create_celery_app(small))
    with pytest.raises(ProblemTooLargeError, match="11 characters; the limit is 10"):
        service.submit("x + 1 = 100")
    result = run(settings, "submit", "x + 1 = 100", env={"JOBTRAIL_MAX_PROBLEM_CHARS": "10"})
    assert result.returncode == 2
    assert result.stderr == ("error: Invalid value for PROBLEMS: problem 1: problem text is 11 "
                             "characters; the limit is 10\n")
    _nothing_written(main_db, broker_db, keys)
    # and it can be lowered only: the solver would refuse anything longer
    assert run(settings, "list", env={"JOBTRAIL_MAX_PROBLEM_CHARS": "5000"}).returncode == 2
    assert service.submit("x = 1").problem == "x = 1"


@pytest.mark.parametrize(("text", "message"), [r for r in REFUSED if "\x00" not in r[0]])
def test_cli_refuses_with_one_line_and_exit_2(
        settings: Settings, main_db: redis.Redis, broker_db: redis.Redis, keys: KeySpace,
        text: str, message: str) -> None:
    # (a NUL cannot reach argv: the OS ends the argument there)
    result = run(settings, "submit", "1 + 1", text)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: Invalid value for PROBLEMS: problem 2: {message}\n"
    _nothing_written(main_db, broker_db, keys)


@pytest.fixture
def api(settings: Settings, store: JobStore) -> Iterator[httpx.Client]:
    with serve_in_thread(create_app(settings)) as base, client(base) as http:
        yield http


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_api_refuses_with_422_and_the_same_message(
        api: httpx.Client, main_db: redis.Redis, broker_db: redis.Redis, keys: KeySpace,
        text: str, message: str) -> None:
    kind = "problem_too_large" if text is TOO_LONG else "problem_parse"
    for body, said in (({"problem": text}, message),
                       ({"problems": ["1 + 1", text]}, f"problem 2: {message}")):
        resp = api.post("/jobs", json=body)
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert (error["type"], error["message"]) == (kind, said)
    _nothing_written(main_db, broker_db, keys)


@pytest.mark.parametrize("token", [None, "s3cret"])
@pytest.mark.parametrize("content", [b'{"statuses": ["lost"], "older_than_s": "x"}',
                                     b"{not json", b""])
def test_protected_endpoints_check_the_token_before_the_body(
        settings: Settings, store: JobStore, token: str | None, content: bytes) -> None:
    # Given the purge endpoint disabled (no token) or guarded, and a request
    # without the token whose body is invalid
    conf = settings.model_copy(update={"api_token": SecretStr(token) if token else None})
    with serve_in_thread(create_app(conf)) as base, client(base) as http:
        resp = http.post("/retention/purge", content=content,
                         headers={"content-type": "application/json"})
        restore = http.post("/jobs/not:an:id/restore")
    # Then the answer is about the token, not the body's schema
    expected = 401 if token else 403
    assert resp.status_code == expected, resp.text
    assert resp.json()["error"]["type"] == ("unauthorized" if token else "forbidden")
    assert restore.status_code == expected, restore.text


def test_cli_names_the_file_line_it_refuses(
        settings: Settings, main_db: redis.Redis, broker_db: redis.Redis, keys: KeySpace,
        tmp_path: Path) -> None:
    # a bad line of --file is named by its line number (blank lines count), not by how
    # many problems came before it
    listing = tmp_path / "problems.txt"
    listing.write_text("x = 1\n\n   \nsolve x\x00 = 1\n")
    result = run(settings, "submit", "y = 2", "--file", str(listing))
    assert result.returncode == 2
    assert result.stderr == (f"error: Invalid value for '--file' / '-f': {listing} line 4: "
                             "problem text holds the control character U+0000 at character 7\n")
    # and a file without a problem says so, rather than asking for --file
    listing.write_text("\n  \n")
    empty = run(settings, "submit", "--file", str(listing))
    assert empty.returncode == 2
    assert empty.stderr == (f"error: Invalid value for '--file' / '-f': {listing} holds no "
                            "problem (blank lines only)\n")
    _nothing_written(main_db, broker_db, keys)


def test_a_file_line_holding_a_tab_is_refused_and_crlf_line_ends_are_not(
        settings: Settings, store: JobStore, main_db: redis.Redis, broker_db: redis.Redis,
        keys: KeySpace, tmp_path: Path) -> None:
    # Given a file saved with Windows line ends whose second line holds a tab
    listing = tmp_path / "problems.txt"
    listing.write_bytes(b"x = 1\r\nsolve x^2\t= 4\r\n")
    # Then that line is refused as an argument would be, and nothing is written
    result = run(settings, "submit", "--file", str(listing))
    assert result.returncode == 2
    assert result.stderr == (f"error: Invalid value for '--file' / '-f': {listing} line 2: "
                             "problem text holds the control character U+0009 (tab) at "
                             "character 9: write a space\n")
    _nothing_written(main_db, broker_db, keys)
    # and the line ends alone are not part of a problem
    listing.write_bytes(b"x = 1\r\nsolve x^2 = 4\r\n")
    result = run(settings, "submit", "--file", str(listing), "--json")
    assert result.returncode == 0, result.stderr
    assert [store.get(j["id"]).problem for j in json.loads(result.stdout)] == [
        "x = 1", "solve x^2 = 4"]


def test_a_file_saved_with_a_byte_order_mark_is_read_without_it(
        settings: Settings, store: JobStore, tmp_path: Path) -> None:
    listing = tmp_path / "problems.txt"
    listing.write_text("solve x = 1\n", encoding="utf-8-sig")   # Windows editors write one
    result = run(settings, "submit", "--file", str(listing), "--json")
    assert result.returncode == 0, result.stderr
    [job] = json.loads(result.stdout)
    assert store.get(job["id"]).problem == "solve x = 1"
