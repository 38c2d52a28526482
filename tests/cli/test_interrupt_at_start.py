"""Ctrl-C while `jobtrail` is still importing: one line, exit 130, no traceback.

Real CLI subprocesses (`python -m jobtrail` and the console script) on real
Redis, sent a real SIGINT at several moments of their start-up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobtrail.config import Settings
from tests.helpers.processes import settings_env

pytestmark = [pytest.mark.slow]

_SCRIPT = Path(sys.executable).with_name("jobtrail")


def _interpreter_start_s() -> float:
    """Seconds this interpreter takes to start and load jobtrail's entry module (site, the
    venv's .pth files, compiling it where no bytecode is cached), the fastest of three: a
    SIGINT sent sooner lands in CPython's own start-up (importing runpy, compiling
    __main__.py), before any jobtrail code can handle it (the 0.05 s case failed 3 runs in
    8 there, on a quiet machine)."""
    runs = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import jobtrail.__main__"], check=True)
        runs.append(time.monotonic() - started)
    return min(runs)


@pytest.mark.parametrize("command", [
    pytest.param([sys.executable, "-m", "jobtrail"], id="python-m"),
    pytest.param([str(_SCRIPT)], id="console-script"),
])
#: Signals during the imports, after the interpreter's own start-up (`list` takes about
#: 0.6 s here): a later one can land in the
#: interpreter's finalization after the command's output, where CPython has put the default
#: handler back and SIGINT ends the process as it ends any program (status -2)
@pytest.mark.parametrize("delay_s", [0.05, 0.1, 0.2, 0.3])
def test_sigint_during_imports_is_one_line_and_exit_130(
        settings: Settings, command: list[str], delay_s: float) -> None:
    assert Path(command[0]).exists(), f"no console script at {command[0]}"
    boot_s = _interpreter_start_s()
    proc = subprocess.Popen([*command, "list"], env=settings_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(boot_s + delay_s)
    if proc.poll() is not None:  # it finished first: then it finished as a clean run does
        _, error = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "Traceback" not in error, error
        return
    proc.send_signal(signal.SIGINT)
    out, error = proc.communicate(timeout=60)
    assert "Traceback" not in error, error
    if proc.returncode == -signal.SIGINT:
        # the signal came after the command's work, in the interpreter's finalization
        # (CPython's default handler again): then its whole output was written, as by a
        # clean run, and nothing was said on stderr
        clean = subprocess.run([*command, "list"], env=settings_env(settings),
                               capture_output=True, text=True, timeout=60)
        assert clean.returncode == 0 and out == clean.stdout and error == "", error
        return
    assert proc.returncode == 130, error
    assert error.count("\n") <= 1 and "interrupted" in error, error


def _assert_ends_interrupted(script: str) -> None:
    """Run *script* in a fresh interpreter: it must end as an interrupted command does
    (exit 130, nothing on stdout, the one line "interrupted" on stderr)."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "interrupted\n")


def test_an_interrupt_cpython_cannot_raise_still_ends_the_command() -> None:
    # a Ctrl-C that lands in a weakref callback (importlib's module-lock callback, during
    # an import) is "ignored" by CPython: printed with a traceback, and the command went on
    script = (
        "import sys, weakref\n"
        "import jobtrail.__main__ as entry\n"
        "sys.unraisablehook = entry._unraisable\n"
        "class Thing: pass\n"
        "def callback(ref): raise KeyboardInterrupt\n"
        "thing = Thing(); ref = weakref.ref(thing, callback); del thing\n"
        "print('went on')\n"
    )
    _assert_ends_interrupted(script)


def test_the_entry_module_loads_nothing_before_its_ctrl_c_handling() -> None:
    # a Ctrl-C during an import made before jobtrail.__main__ runs ends as a traceback:
    # the package and the entry module import nothing of their own (the package imported
    # typing, 15 ms of that window, and the failure was seen in `import typing`)
    probe = ("import sys; before = set(sys.modules); import jobtrail.__main__; "
             "print(' '.join(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.split()
    assert loaded == ["__future__", "jobtrail", "jobtrail.__main__"], loaded


def test_an_interrupt_cpython_turned_into_another_error_still_ends_as_one_line(
        tmp_path: Path) -> None:
    # a Ctrl-C that lands while CPython builds an ImportError (`from _ssl import
    # RAND_egd`, under asyncio's import) came out as "TypeError: expected a message
    # argument" with a traceback; here an import sends the SIGINT and does the same
    (tmp_path / "jobtrail_probe_import.py").write_text(
        "import os, signal\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    import time; time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    raise TypeError('expected a message argument') from None\n")
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import jobtrail.__main__ as entry\n"
        "import builtins\n"
        "real = builtins.__import__\n"
        "def probe(name, *a, **k):\n"
        "    if name == 'jobtrail.cli.main':\n"
        "        return real('jobtrail_probe_import')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = probe\n"
        "entry.main()\n"
    )
    _assert_ends_interrupted(script)
