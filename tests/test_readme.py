"""Every command of the README's (and docs/*.md's) fenced `sh` blocks runs as written, in order.

A newcomer's first hour as a test: each block's commands run as processes, in
a private JOBTRAIL_STATE_DIR, from a scratch directory that holds what a clone
holds next to the commands (`.venv`, `.env.reproduction`, `examples/`), so
relative paths (`./monitor`, `evidence/`, `examples/problems.txt`) behave as
for the user. Nothing is set up behind the README's back: a policy or a file
a command names is one the README's own commands (`export ...`) or the
repository provide. What the test changes, and only where a command would run
long or never end, is in SHORTER and SERVERS; `make test` is checked with
`make -n` (running the suite inside itself would recurse). `<id>` is the id
the README's last `submit` printed. docs/*.md blocks that need services a
laptop lacks are listed in DOCS_SKIPPED with the reason, and what of them can
be checked without those services is.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
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
#: Files of the repository the README's commands name by a relative path.
CLONE_FILES = (".env.reproduction", "examples")
#: Command -> a check of its stdout: it did what the README promises.
PROMISES: dict[str, Callable[[str], bool]] = {
    "jobtrail submit --file examples/problems.txt": lambda out: len(UUID.findall(out)) == 5,
    "jobtrail retention purge --status completed --older-than 0s":
        lambda out: "selected 0" not in out,
    "jobtrail restore": lambda out: "restored 1 of 1" in out,
}
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


def exported(command: str) -> dict[str, str]:
    """Return the variables an `export NAME=VALUE ...` line sets."""
    words = shlex.split(command)[1:]
    assert words and all("=" in w for w in words), command
    return dict(w.split("=", 1) for w in words)


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
    for tracked in CLONE_FILES:  # what a clone holds, as the repository holds it
        copy = shutil.copytree if (ROOT / tracked).is_dir() else shutil.copy
        copy(ROOT / tracked, cwd / tracked)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRAIL_")}
    env["JOBTRAIL_STATE_DIR"] = str(tmp_path / "state")
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
        if command.startswith("export "):  # the user's shell keeps it for what follows
            session.env = {**session.env, **exported(command)}
            continue
        if command.endswith(" &"):
            session.start(command[:-2])
            continue
        if command.startswith(SERVERS):
            _serve(session, command)
            continue
        if command.startswith("jobtrail retention purge"):
            _wait_finished(session)  # the worker started above solves it first
        result = session.run(command)
        allowed = MAY_FIND.get(command, {0})
        assert result.returncode in allowed, (block, command, result.stdout[-2000:],
                                              result.stderr[-2000:])
        assert "Traceback" not in result.stdout + result.stderr, (command, result.stderr)
        if command.startswith("jobtrail submit") and (ids := UUID.findall(result.stdout)):
            session.job_id = ids[-1]
        for start, kept in PROMISES.items():
            if command.startswith(start):
                assert kept(result.stdout), (command, result.stdout[-2000:])
        ran.append(command)
    # the whole README ran, and what it promised is there
    assert session.job_id and any(c.startswith("jobtrail repro run") for c in ran)
    assert list((session.cwd / "evidence").glob("repro_*/REPRODUCTION_SUMMARY.md"))
    assert list((session.cwd / "monitor").glob("*.log"))


#: docs/*.md `sh` blocks no laptop can run, by their first line: why, and what is checked.
DOCS_SKIPPED = {
    "JOBTRAIL_EMBEDDED=never": "Sentinel settings: a command on them needs three Sentinels and "
                               "a master; the test checks the shell accepts the block and "
                               "jobtrail accepts the settings",
}


def sh_blocks(text: str) -> list[str]:
    """Return the text of each ```sh block."""
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_every_docs_sh_block_runs_or_is_listed_with_its_reason(tmp_path: Path) -> None:
    blocks = [(doc.name, block) for doc in sorted((ROOT / "docs").glob("*.md"))
              for block in sh_blocks(doc.read_text())]
    assert blocks  # docs/operations.md's Sentinel settings at least
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBTRAIL_")}
    env["JOBTRAIL_STATE_DIR"] = str(tmp_path / "state")
    for doc, block in blocks:
        first = block.splitlines()[0].split("#")[0].strip()
        assert first in DOCS_SKIPPED, (doc, block)  # a new block: run it here, or list why not
        names = re.findall(r"^(JOBTRAIL_[A-Z_]+)=", block, flags=re.M)
        check = ("import json, jobtrail.config as c; s = c.get_settings(); "
                 "print(json.dumps({'main': s.main_url, 'master': s.sentinel_master_name, "
                 "'replicas': s.main_min_replicas, 'embedded': s.embedded}))")
        script = f"{block}\nexport {' '.join(names)}\n{ROOT / '.venv/bin/python'} -c \"{check}\""
        result = subprocess.run(["sh", "-e", "-c", script], env=env, text=True,
                                capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, (doc, block, result.stderr[-2000:])
        shown = json.loads(result.stdout)
        assert shown["master"] == "mymaster" and shown["replicas"] == 1, shown
        assert shown["main"].startswith("sentinel://") and shown["embedded"] == "never", shown


def test_the_example_problems_file_solves() -> None:
    from jobtrail.solver import solve

    lines = (ROOT / "examples" / "problems.txt").read_text().splitlines()
    assert len(lines) == 5 and all(line.strip() for line in lines)
    assert all(solve(line).text for line in lines)
