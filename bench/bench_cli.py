"""Benchmark: start-up of `jobtrail status ID`, `trace ID` and `list` against the import floor.

Run: .venv/bin/python bench/bench_cli.py [--runs 5]

Each command runs as a new process (`python -m jobtrail ...`), as a user runs
it, against a private redis-server holding one job; the floor is a process
that only imports the libraries those commands need,
`python -c "import redis, typer, rich, pydantic_settings"`. Runs are
interleaved (floor, status, trace, list, floor, ...) so load from other work
touches all alike. Prints each command's median wall time, the floor's and
the difference. Target: every difference <= 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import private_settings, write_report  # noqa: E402
from jobtrail.config import settings_environ  # noqa: E402
from jobtrail.embedded import EmbeddedRedis  # noqa: E402
from jobtrail.keys import KeySpace  # noqa: E402
from jobtrail.store import JobStore  # noqa: E402

FLOOR = [sys.executable, "-c", "import redis, typer, rich, pydantic_settings"]
TARGET_S = 0.2


def _wall_s(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:])} failed: {done.stderr.strip()}")
    return elapsed


def _measure(server: EmbeddedRedis, work: Path, runs: int) -> dict[str, list[float]]:
    settings = private_settings(server, work)
    job = JobStore(server.client(10), KeySpace()).create("solve x^2 - 5x + 6 = 0")
    env = {**os.environ, **settings_environ(settings)}
    cli = [sys.executable, "-m", "jobtrail"]
    commands = {"status": [*cli, "status", job.id], "trace": [*cli, "trace", job.id],
                "list": [*cli, "list"]}
    for argv in [FLOOR, *commands.values()]:  # warm the OS's file cache
        _wall_s(argv, env)
    times: dict[str, list[float]] = {"floor": [], **{name: [] for name in commands}}
    for _ in range(runs):
        times["floor"].append(_wall_s(FLOOR, env))
        for name, argv in commands.items():
            times[name].append(_wall_s(argv, env))
    return times


def main() -> None:
    """Measure and print the report (also kept in bench/results/cli.json)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start("--appendonly", "no", "--save", "")
        try:
            times = _measure(server, Path(tmp), args.runs)
        finally:
            server.stop()
    floor = statistics.median(times["floor"])

    report = {"runs": args.runs, "floor_s": round(floor, 3), "target_s": TARGET_S,
              "commands": {name: {"median_s": round(statistics.median(t), 3),
                                  "over_floor_s": round(statistics.median(t) - floor, 3),
                                  "met": statistics.median(t) - floor <= TARGET_S}
                           for name, t in times.items() if name != "floor"}}
    print(f"floor (import redis, typer, rich, pydantic_settings): {floor:.3f} s")
    for name, row in report["commands"].items():
        print(f"{name:7} median {row['median_s']:.3f} s  floor +{row['over_floor_s']:.3f} s  "
              f"{'met' if row['met'] else 'MISSED'}")
    write_report("cli", report)


if __name__ == "__main__":
    main()
