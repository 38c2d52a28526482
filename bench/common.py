"""What the benchmarks share: a private server's settings, percentiles, the report file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def private_settings(server: EmbeddedRedis, work: Path) -> Settings:
    """Settings on DBs 10/11/12 of *server*, with the state directory in *work*."""
    return Settings(main_url=server.url(10), broker_url=server.url(11),
                    results_url=server.url(12), state_dir=work / "state")


def percentile(ordered: list[float], q: float) -> float:
    """The *q*-quantile (0..1) of an ascending list, nearest rank below."""
    return ordered[int(q * (len(ordered) - 1))]


def write_report(name: str, report: dict[str, Any]) -> None:
    """Print *report* as JSON and keep it in bench/results/<name>.json."""
    print(json.dumps(report, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2))
