"""Fixtures: a real redis-server per pytest process, settings, Celery app and workers.

No fakes: Redis is a real server started by jobtrail's own launcher
(jobtrail.embedded) on a free loopback port, and workers are real Celery
workers (in a thread, or in a subprocess for crash tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.errors import ArchiveError
from jobtrail.keys import KeySpace
from jobtrail.store import ArchiveStore, EventLog, JobStore
from tests.helpers.processes import WorkerProcess

MAIN_DB, BROKER_DB, RESULTS_DB = 10, 11, 12


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Strip JOBTRAIL_* so no test reads the developer's settings; isolate the state dir."""
    for key in list(os.environ):
        if key.startswith("JOBTRAIL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for this pytest process, on a free port, no persistence."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start("--save", "", "--appendonly", "no")
    try:
        yield server
    finally:
        server.stop(timeout_s=5)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A function-scoped server that a test may kill, restart or reconfigure."""
    server = EmbeddedRedis(tmp_path / "private-redis")
    server.start("--save", "", "--appendonly", "no")
    try:
        yield server
    finally:
        server.stop(timeout_s=5)


def make_settings(server: EmbeddedRedis, state_dir: Path, **overrides: object) -> Settings:
    """Return Settings on *server*'s DBs 10/11/12 with *state_dir* (never from the env)."""
    values: dict[str, object] = {
        "main_url": server.url(MAIN_DB), "broker_url": server.url(BROKER_DB),
        "results_url": server.url(RESULTS_DB), "state_dir": state_dir,
        "solver_time_limit_s": 5.0, "solver_hard_time_limit_s": 8.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_server: EmbeddedRedis, tmp_path: Path) -> Settings:
    """Settings on the session server's DBs 10/11/12, state in tmp_path."""
    return make_settings(redis_server, tmp_path / "state")


@pytest.fixture
def main_db(redis_server: EmbeddedRedis, settings: Settings) -> Iterator[redis.Redis]:
    """Client of the main DB; the whole server is flushed first."""
    client = redis_server.client(MAIN_DB)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def broker_db(redis_server: EmbeddedRedis, main_db: redis.Redis) -> Iterator[redis.Redis]:
    """Client of the broker DB (after main_db flushed the server)."""
    client = redis_server.client(BROKER_DB)
    yield client
    client.close()


@pytest.fixture
def results_db(redis_server: EmbeddedRedis, main_db: redis.Redis) -> Iterator[redis.Redis]:
    """Client of the result backend DB (after main_db flushed the server)."""
    client = redis_server.client(RESULTS_DB)
    yield client
    client.close()


@pytest.fixture
def keys() -> KeySpace:
    """The default key space."""
    return KeySpace()


@pytest.fixture
def store(main_db: redis.Redis, keys: KeySpace) -> JobStore:
    """A JobStore on the flushed main DB."""
    return JobStore(main_db, keys)


@pytest.fixture
def events(main_db: redis.Redis, keys: KeySpace) -> EventLog:
    """An EventLog on the main DB."""
    return EventLog(main_db, keys)


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of real `jobtrail worker` subprocesses; teardown kills all it started
    (WorkerProcess.discard: a test that needs a warm shutdown calls stop() itself)."""
    started: list[WorkerProcess] = []

    def create(settings: Settings, *, concurrency: int = 1, hostname: str = "w1",
               celery_args: tuple[str, ...] = ("--without-mingle", "--without-gossip"),
               ) -> WorkerProcess:
        proc = WorkerProcess(settings, tmp_path / f"worker-{hostname}-{len(started)}.log",
                             concurrency=concurrency, hostname=hostname,
                             celery_args=celery_args)
        started.append(proc)
        return proc

    yield create
    for proc in started:
        proc.discard()


# -- the archive, over both backends --------------------------------------------------

#: Read at import, before clean_environ strips JOBTRAIL_* from each test's environment.
POSTGRES_URL = os.environ.get("JOBTRAIL_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_archive() -> ArchiveStore:
    """An ArchiveStore on the test PostgreSQL with tables of its own (a unique prefix)."""
    if not POSTGRES_URL:
        pytest.fail("CI=true but JOBTRAIL_TEST_POSTGRES_URL is not set")
    store = ArchiveStore(POSTGRES_URL, table_prefix=f"t{uuid.uuid4().hex[:16]}_")
    try:
        store.ensure_schema()
    except ArchiveError as exc:
        store.close()
        pytest.fail(f"JOBTRAIL_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}")
    return store


#: The PostgreSQL case runs where JOBTRAIL_TEST_POSTGRES_URL is set, and always under CI
#: (where a missing URL fails the run instead of skipping it).
_POSTGRES_CASE = pytest.param("postgres", marks=[
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL and not IN_CI,
                       reason="JOBTRAIL_TEST_POSTGRES_URL is not set (CI sets it)")])


@pytest.fixture(params=["sqlite", _POSTGRES_CASE])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    """An empty archive: a SQLite file in tmp_path, or uniquely prefixed PostgreSQL tables."""
    if request.param == "sqlite":
        store = ArchiveStore(f"sqlite:///{tmp_path / 'archive.db'}")
    else:
        store = _postgres_archive()
    try:
        yield store
    finally:
        if store.dialect == "postgresql":
            store.drop_schema()
        store.close()


@pytest.fixture
def archive_settings(settings: Settings, archive: ArchiveStore) -> Settings:
    """*settings* pointing at the *archive* fixture's database and tables."""
    prefix = archive.jobs_table.name.removesuffix("archived_jobs")
    return settings.model_copy(update={"archive_url": archive.url,
                                       "archive_table_prefix": prefix})
