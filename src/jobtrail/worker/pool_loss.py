"""Why a prefork pool process was lost, in words, from billiard's WorkerLostError.

Invariant: a lost pool process is blamed on the hard time limit only on
evidence of the limit itself (Celery's own timeout handling, or the per-job
watchdog's exit code after a job ran that long); any other loss is named by
what billiard saw: the signal that ended the process, or its exit code.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

__all__ = ["WATCHDOG_EXIT_CODE", "PoolLoss", "pool_loss"]

#: The exit code of a pool process the per-job watchdog ended
#: (faulthandler.dump_traceback_later(exit=True) calls _exit(1)).
WATCHDOG_EXIT_CODE = 1

#: billiard's wording (billiard.common.human_status in Pool.mark_as_worker_lost):
#: "Worker exited prematurely: signal 9 (SIGKILL) Job: 0." or "...: exitcode 1 Job: 0."
_LOST = re.compile(r"exited prematurely: (?:signal (?P<signum>\d+)|exitcode (?P<code>-?\d+))")


@dataclass(frozen=True, slots=True)
class PoolLoss:
    """How a pool process ended: by signal *signum*, or with exit code *exit_code*
    (each None when billiard did not say)."""

    signum: int | None
    exit_code: int | None

    @property
    def cause(self) -> str:
        """The loss in words, e.g. "pool process exited by signal 9 (SIGKILL)"."""
        if self.signum is not None:
            try:
                name = signal.Signals(self.signum).name
            except ValueError:
                return f"pool process exited by signal {self.signum}"
            return f"pool process exited by signal {self.signum} ({name})"
        if self.exit_code is not None:
            return f"pool process exited with exit code {self.exit_code}"
        return "pool process lost (cause not reported)"

    @property
    def by_watchdog(self) -> bool:
        """True when the exit is the per-job watchdog's (exit code WATCHDOG_EXIT_CODE);
        alone this is no proof: a caller also checks that the job ran its hard limit."""
        return self.exit_code == WATCHDOG_EXIT_CODE


def pool_loss(exc: BaseException) -> PoolLoss:
    """Read how a pool process ended from billiard's WorkerLostError *exc* (its message).

    Returns:
        PoolLoss with the signal number or the exit code; both None when the
        message is not billiard's (the cause then reads "cause not reported").
    """
    found = _LOST.search(str(exc))
    if found is None:
        return PoolLoss(None, None)
    signum, code = found.group("signum"), found.group("code")
    return PoolLoss(int(signum) if signum else None, int(code) if code else None)
