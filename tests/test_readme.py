"""Every command of the README's fenced `sh` blocks runs as written, in order.

A newcomer's first hour as a test: each block's commands run as processes, in
a private JOBTRAIL_STATE_DIR, from a scratch directory that holds what a clone
holds next to the commands (`.venv`, `.env.reproduction`), so relative paths
(`./monitor`, `evidence/`) behave as for the user. What the test changes, and
only where a command would run long or never end, is in SHORTER and SERVERS;
`make test` is checked with `make -n` (running the suite inside itself would
recurse). `<id>` is the id the README's last `submit` printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobtrail.embedded import free_port

# about 95 s on a quiet 2-core machine, most of it the reproduction's five scenarios
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: README text -> what the test runs instead, so that a command ends in seconds.
SHORTER = {
    "--interval 5s --duration 2m": "--interval 1s --duration 3s",
    "--out evidence/": "--out evidence/ --duration 5s --interval 1s",
    "make test": "make -n test",
}
#: Commands that serve until stopped: started, checked while they answer, then stopped.
SERVERS = ("jobtrail serve ", "jobtrail worker --metrics-port")
#: Commands whose documented exit status may be 1: doctor exits 1 when it finds an error.
MAY_FIND = {"jobtrail doctor": {0, 1}}
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def sh_commands(text: str) -> list[tuple[int, str]]:
    """Return (block number, command) for each command line of the ```sh blocks."""
    commands = []
    for number, block in enumerate(re.findall(r"```sh\n(.*?)```", text, flags=re.S)):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[-1] == "&":
                commands.append((number, shlex.join(words[:-1]) + " &"))
            elif words:
                commands.append((number, shlex.join(words)))
    return commands


class Session:
    """A user's shell: one environment, background processes, the last job id."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.background: list[subprocess.Popen[str]] = []
        self.job_id = ""

    def run(self, command: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        for text, instead in SHORTER.items():
            command = command.replace(text, instead)
        command = command.replace("'<id>'", shlex.quote(self.job_id))
        cwd = ROOT if command.startswith("make ") else self.cwd  # the Makefile's home
        return subprocess.run(command, shell=True, cwd=cwd, env=self.env, text=True,
                              capture_output=True, timeout=timeout_s, check=False)

    def start(self, command: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(command, shell=True, cwd=self.cwd, env=self.env, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        self.background.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.background:
            try:
                proc.communicate(timeout=20)  # waits, and closes the stderr pipe
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    cwd = tmp_path / "clone"
    cwd.mkdir()
    (cwd / ".venv").symlink_to(ROOT / ".venv")
    shutil.copy(ROOT / ".env.reproduction", cwd / ".env.reproduction")
    (cwd / "problems.txt").write_text("solve x + 1 = 3\nlim x->0 sin(x)/x\n")
    env = {**os.environ, "JOBTRAIL_STATE_DIR": str(tmp_path / "state"),
           # the README's retention example names a configured policy
           "JOBTRAIL_RETENTION_POLICIES":
               '{"old-completed": {"status": ["completed"], "older_than_s": 0}}'}
    user = Session(cwd, env)
    yield user
    user.stop_all()
    user.run(f"{ROOT / '.venv' / 'bin' / 'jobtrail'} server stop")


def _wait_http(url: str, proc: subprocess.Popen[str], timeout_s: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.HTTPError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                said = proc.communicate()[1][-3000:]
                raise AssertionError(f"{url}: {proc.args} said {said}") from exc
            time.sleep(0.3)


def _serve(user: Session, command: str) -> None:
    """Start a documented server on a free port, check it answers, leave it to stop_all()."""
    port = free_port()
    command = re.sub(r"--(metrics-)?port \d+", lambda m: f"--{m.group(1) or ''}port {port}",
                     command)
    proc = user.start(command)
    page = "/docs" if " serve" in command else "/metrics"
    resp = _wait_http(f"http://127.0.0.1:{port}{page}", proc)
    assert resp.status_code == 200, (command, resp.text[:500])
    assert proc.poll() is None


def _wait_finished(user: Session, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while '"status": "completed"' not in user.run("jobtrail status '<id>' --json").stdout:
        assert time.monotonic() < deadline, f"job {user.job_id} did not complete"
        time.sleep(0.5)


def test_every_readme_command_runs_as_written(session: Session) -> None:
    commands = sh_commands(README.read_text())
    assert len(commands) > 20, commands
    ran = []
    for block, command in commands:
        if command == ". .venv/bin/activate":
            assert (session.cwd / ".venv" / "bin" / "activate").is_file()
            venv_bin = str(session.cwd / ".venv" / "bin")
            session.env = {**session.env, "VIRTUAL_ENV": str(session.cwd / ".venv"),
                           "PATH": f"{venv_bin}{os.pathsep}{session.env['PATH']}"}
            continue
        if command.endswith(" &"):
            session.start(command[:-2])
            continue
        if command.startswith(SERVERS):
            _serve(session, command)
            continue
        if "purge --policy" in command:
            _wait_finished(session)  # the worker started above solves it first
        result = session.run(command)
        allowed = MAY_FIND.get(command, {0})
        assert result.returncode in allowed, (block, command, result.stdout[-2000:],
                                              result.stderr[-2000:])
        assert "Traceback" not in result.stdout + result.stderr, (command, result.stderr)
        if command.startswith("jobtrail submit") and (ids := UUID.findall(result.stdout)):
            session.job_id = ids[-1]
        ran.append(command)
    # the whole README ran, and what it promised is there
    assert session.job_id and any(c.startswith("jobtrail repro run") for c in ran)
    assert list((session.cwd / "evidence").glob("repro_*/REPRODUCTION_SUMMARY.md"))
    assert list((session.cwd / "monitor").glob("*.log"))
