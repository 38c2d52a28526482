"""`python -m jobtrail.repro.paced_worker PACE_S ARGS...`: a worker whose solves take PACE_S more.

Harness only: the worker-crash scenario kills a worker in the middle of a
job, and must know how long that job runs on any machine. A SymPy solve's
time is measured, and a loaded machine stretches it past any limit set from
it; a sleep is not stretched. So the scenario's workers run this module: the
real `jobtrail.solve_job` task, records and limits, with a sleep of PACE_S
seconds before each solve, inside the task (the time limits count it), and a
problem the solver answers in milliseconds. ARGS are `celery worker` options.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import wraps

from jobtrail.solver import Answer

__all__ = ["main", "pace_solves"]

#: The solver function as jobtrail.worker.tasks imports and calls it.
_SOLVE = "solve"


def pace_solves(pace_s: float) -> None:
    """Make every solve of this process's solve task sleep *pace_s* seconds first.

    Call before the worker's pool forks (its processes inherit the change).

    Raises:
        ValueError: *pace_s* is negative.
    """
    if pace_s < 0:
        raise ValueError(f"pace must be 0 s or more, not {pace_s:g}")
    from jobtrail.worker import tasks  # the task module the pool runs

    real: Callable[[str], Answer] = getattr(tasks, _SOLVE)  # the name the task body calls

    @wraps(real)
    def paced(problem: str) -> Answer:
        time.sleep(pace_s)  # interrupted by the soft time limit like a solve is
        return real(problem)

    setattr(tasks, _SOLVE, paced)


def main(argv: list[str] | None = None) -> None:
    """Run a prefork worker on the environment's settings with its solves paced.

    Args:
        argv: `[PACE_S, *celery_worker_options]` (default: sys.argv[1:]).
    """
    args = sys.argv[1:] if argv is None else argv
    pace_solves(float(args[0]))
    from jobtrail.worker.app import get_app, settings_of

    app = get_app()
    app.worker_main(argv=["worker", "--pool", "prefork", "-Q", settings_of(app).queue,
                          *args[1:]])


if __name__ == "__main__":
    main()
