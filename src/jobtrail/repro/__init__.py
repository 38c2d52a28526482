"""The reproduction harness: scenarios in, an evidence report a reviewer can trust out.

`run_reproduction(RunOptions(...))` seeds jobs on isolated Redis DBs, runs the
scenarios with real workers while the monitor records, and writes
`repro_<ts>/` with REPRODUCTION_SUMMARY.md and its JSON twin, computed from
the recorded data only.
"""

from __future__ import annotations

from jobtrail.repro.context import Progress
from jobtrail.repro.harness import RunOptions, RunResult, run_reproduction
from jobtrail.repro.scenarios import ORDER, Scenario

__all__ = ["ORDER", "Progress", "RunOptions", "RunResult", "Scenario", "run_reproduction"]
