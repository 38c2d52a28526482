"""`python -m jobtrail` and the `jobtrail` console script: run the CLI.

main() is the entry point ([project.scripts] names it) rather than
jobtrail.cli.main:main because the CLI's imports (Typer, Rich, redis, the
stores) take over a second: a Ctrl-C then would end in a KeyboardInterrupt
traceback raised from an import, before cli.main's own handlers exist. This
module imports nothing of its own, so an interrupt at any moment after it is
loaded ends as one line and exit 130.
"""

from __future__ import annotations

# signal's C module, loaded with the interpreter: `import signal` builds its enums (6 ms),
# time in which a Ctrl-C raised at module level, before main(), as a traceback
import _signal  # type: ignore[import-not-found]  # no stub in typeshed
import os
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def main() -> None:
    """Run `jobtrail` (cli.main.main); exits 130 with "interrupted" on a KeyboardInterrupt.

    Raises SystemExit always (the command's exit code); an interrupt ends the process
    with os._exit(130) after flushing stdout and stderr, also when CPython turned it
    into another exception (any exception after a SIGINT came counts as one). An
    interrupt that CPython cannot raise (it hit a weakref callback or a finalizer, such
    as importlib's module-lock callback during an import: "Exception ignored in ...") reaches
    sys.unraisablehook, which ends the process the same way instead of printing a
    traceback and going on.
    """
    sys.unraisablehook = _unraisable
    _signal.signal(_signal.SIGINT, _on_sigint)
    try:
        from jobtrail.cli.main import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        _interrupted()
    except Exception:
        # CPython can turn the KeyboardInterrupt into another error: one raised while an
        # ImportError is built (`from _ssl import RAND_egd`, asyncio's import) became
        # "TypeError: expected a message argument", a traceback
        if _sigints[0]:
            _interrupted()
        raise


#: SIGINTs this process received (_on_sigint); the command's own handlers may replace it.
_sigints = [0]


def _on_sigint(signum: int, frame: object) -> None:
    """SIGINT: counted, then KeyboardInterrupt, as CPython's default_int_handler raises."""
    _sigints[0] += 1
    raise KeyboardInterrupt


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """sys.unraisablehook: an ignored KeyboardInterrupt ends the command as one does."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _interrupted()
    sys.__unraisablehook__(unraisable)


def _interrupted() -> None:
    """Say "interrupted" on stderr, flush, and end the process with status 130."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # a second Ctrl-C must not cut the line
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    sys.stdout.flush()
    # os._exit, not SystemExit: CPython (3.11) ends itself by SIGINT at exit (status -2,
    # not 130) when the interrupt hit code built from a string at import (dataclasses,
    # namedtuple); an interrupted command has nothing left to clean up
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
