"""build_summary(): the evidence report, computed from `recording.json` and the monitor's report.

Invariant: pure (no I/O but the file sizes of the evidence directory).
Every number in the summary is read or computed from the two recorded
documents; a claim whose data is missing is left out, and each finding
names where its data is (`sources`), so a reviewer can check it line by line.
A finding's `holds` is True when the data matches the design, False when it
shows a defect (or a configuration that loses jobs), None when it only
describes. Removals jobtrail did not make (a DEL without a tombstone, an
eviction, a record that vanished with no event) are listed as unexpected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jobtrail.monitor.report import iso
from jobtrail.repro import findings, risk

__all__ = ["SUMMARY_FORMAT", "VERDICTS", "build_summary", "monitor_changes"]

SUMMARY_FORMAT = "jobtrail.repro.summary/1"
MATCHES, DEFECT, NOT_SHOWN = "matches the design", "defect", "not shown"
VERDICTS = (MATCHES, DEFECT, NOT_SHOWN)

#: Key kinds whose removal jobtrail never causes except as named in _expected().
_WATCHED_KINDS = frozenset({"job", "tombstone", "events", "celery_result"})


_BUILDERS: dict[str, Callable[[findings.Inputs], list[dict[str, Any]]]] = {
    "processing": findings.processing, "purge": findings.purge,
    "ttl-expiry": findings.ttl_expiry, "worker-crash": findings.worker_crash,
    "memory-pressure": risk.memory_pressure,
}


def monitor_changes(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every change of every diff in a monitoring report, with its DB, seq and time.

    Each item is the change's own fields (key, kind, type, change, before,
    after, cause, cause_label, by, at) plus `db`, `seq` and `after_at`.
    """
    for record in report.get("snapshots", []):
        diff = record.get("diff")
        if not diff:
            continue
        for change in diff["changes"]:
            yield {**change, "db": record["db"], "seq": record.get("seq"),
                   "after_at": diff["after_at"]}


def _transients(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for record in report.get("snapshots", []):
        diff = record.get("diff")
        if diff and diff.get("transient"):
            yield {"db": record["db"], "seq": record.get("seq"), "after_at": diff["after_at"],
                   "transient": diff["transient"]}


def _window_of(at: float, windows: list[tuple[str, float, float]]) -> str:
    for name, start, end in windows:
        if start <= at <= end:
            return name
    return "between scenarios"


def _expected(change: dict[str, Any]) -> bool:
    """True for a removal the design explains: a purge's DEL, or a result's expiry."""
    label = change.get("cause_label", "unknown")
    if change["kind"] == "job":
        return bool(label == "del by purge")
    if change["kind"] == "celery_result":
        return bool(label == "expired")
    return False


def _unexpected_label(change: dict[str, Any]) -> str:
    cause = change.get("cause", "unknown")
    if cause == "evicted":
        return "evicted by Redis (maxmemory policy)"
    if cause == "del":
        what = "job record" if change["kind"] == "job" else change["kind"]
        return f"{what} deleted outside jobtrail (DEL by another client, no tombstone)"
    if cause == "expired":
        return f"{change['kind']} expired"
    if cause == "unknown":
        return "removed with no keyspace event: cause unknown"
    return f"removed ({change.get('cause_label', cause)})"


def unexpected_events(recording: dict[str, Any], report: dict[str, Any],
                      windows: list[tuple[str, float, float]], monitor_file: str
                      ) -> list[dict[str, Any]]:
    """Return every removal jobtrail did not make, and every eviction, in time order."""
    traces = recording.get("final", {}).get("traces", {})
    events: list[dict[str, Any]] = []
    for change in monitor_changes(report):
        if change["change"] != "removed":
            continue
        evicted = change.get("cause") == "evicted"
        if not evicted and (change["kind"] not in _WATCHED_KINDS or _expected(change)):
            continue
        at = change.get("at") or change["after_at"]
        item: dict[str, Any] = {
            "db": change["db"], "key": change["key"], "kind": change["kind"],
            "cause": change.get("cause_label", "unknown"), "what": _unexpected_label(change),
            "at": at, "at_iso": iso(at), "during": _window_of(at, windows),
            "status_before": change.get("before"),
            "source": f"{monitor_file}: snapshot #{change['seq']} ({change['db']}) diff"}
        job_id = change["key"].rsplit(":", 1)[-1] if change["kind"] == "job" else None
        if job_id and job_id in traces:
            item["trace"] = traces[job_id]
        events.append(item)
    for t in _transients(report):
        for cause, n in t["transient"].items():
            # a transient del carries no key (a worker's heartbeat hash, created and
            # deleted within one interval, is jobtrail's own): only evictions are
            # unexpected here; records deleted by others show in the final traces below
            if cause == "evicted":
                verb = "evicted" if cause == "evicted" else f"removed ({cause})"
                events.append({"db": t["db"], "key": None, "kind": None, "cause": cause,
                               "what": f"{n} key(s) created and {verb} between two snapshots",
                               "at": t["after_at"], "at_iso": iso(t["after_at"]),
                               "during": _window_of(t["after_at"], windows), "count": n,
                               "source": f"{monitor_file}: snapshot #{t['seq']} "
                                         f"({t['db']}) diff, transient"})
    seen = {e["key"] for e in events if e.get("key")}
    for job_id, trace in traces.items():  # records gone by other means, as trace tells
        fate = trace.get("fate") if isinstance(trace, dict) else None
        if fate in ("deleted_externally", "evicted", "lost_in_failover") and not any(
                job_id in str(k) for k in seen):
            events.append({"db": "main", "key": None, "kind": "job", "cause": fate,
                           "what": f"job record {job_id} gone: trace says {fate}",
                           "at": float(trace.get("evidence", {}).get("at", 0.0)),
                           "at_iso": iso(float(trace.get("evidence", {}).get("at", 0.0))),
                           "during": "at the end of the run", "trace": trace,
                           "source": "recording.json: final.traces"})
    events.sort(key=lambda e: e["at"])
    return events


def _counts(scenario: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    before, after = scenario.get("before", {}), scenario.get("after", {})
    for db in before:
        kinds = sorted(set(before[db]["by_kind"]) | set(after.get(db, {}).get("by_kind", {})))
        out[db] = {"before": before[db]["keys"], "after": after.get(db, {}).get("keys"),
                   "by_kind": {k: [before[db]["by_kind"].get(k, 0),
                                   after.get(db, {}).get("by_kind", {}).get(k, 0)]
                               for k in kinds}}
    return out


def _conclusion(scenario: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    if "error" in scenario:
        return {"verdict": NOT_SHOWN, "reasons": [f"the scenario did not complete: "
                                                  f"{scenario['error']}"]}
    failed = [i for i, f in enumerate(items, 1) if f["holds"] is False]
    if failed:
        return {"verdict": DEFECT, "findings": failed,
                "reasons": [items[i - 1]["claim"] for i in failed]}
    unshown = [f["not_shown"] for f in items if f.get("not_shown")]
    if unshown:  # the scenario's own conditions, not the system, kept it from showing
        return {"verdict": NOT_SHOWN, "reasons": unshown}
    if not any(f["holds"] for f in items):
        return {"verdict": NOT_SHOWN, "reasons": ["no finding could be checked against the "
                                                  "design"]}
    held = [i for i, f in enumerate(items, 1) if f["holds"]]
    return {"verdict": MATCHES, "findings": held, "reasons": [items[i - 1]["claim"] for i in held]}


def _files(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(run_dir.glob("*")):
        if path.is_file() and not path.name.startswith("REPRODUCTION_SUMMARY"):
            out.append({"name": path.name, "bytes": path.stat().st_size})
    for path in sorted((run_dir / "workers").glob("*.log")):
        out.append({"name": f"workers/{path.name}", "bytes": path.stat().st_size})
    return out


def _monitor_facts(recording: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    summary = recording.get("monitor") or report.get("summary", {})
    dbs = summary.get("dbs", {})
    return {
        "rounds": summary.get("rounds", 0), "snapshots": summary.get("snapshots", 0),
        "elapsed_s": summary.get("elapsed_s"), "interval_s": report.get("interval_s"),
        "complete": report.get("complete"), "notices": summary.get("notices", []),
        "keyspace_events": {db: d.get("keyspace_events") for db, d in dbs.items()},
        "removals_by_cause": {db: d.get("removals_by_cause", {}) for db, d in dbs.items()},
        "counters": {db: d.get("counters", {}) for db, d in dbs.items()},
        "keys_first_last": {db: [d["keys_over_time"][0][1], d["keys_over_time"][-1][1]]
                            for db, d in dbs.items() if d.get("keys_over_time")},
    }


def build_summary(recording: dict[str, Any], report: dict[str, Any],
                  run_dir: Path) -> dict[str, Any]:
    """Return the evidence report (the JSON twin of REPRODUCTION_SUMMARY.md).

    Args:
        recording: The run's `recording.json` document.
        report: The run's monitoring report (monitor/report.py format).
        run_dir: The evidence directory (for the file list).

    Returns:
        `{format, run, setup, verdicts, scenarios, unexpected, files}`; see
        the module docstring for what a finding holds.
    """
    start = recording["started_at"]
    monitor_file = Path(str(recording.get("monitor", {}).get("files", {}).get(
        "report", "monitoring_report.json"))).name
    windows = [(s["name"], s["started_at"], s["ended_at"]) for s in recording["scenarios"]]
    changes = list(monitor_changes(report))
    scenarios = []
    for i, scenario in enumerate(recording["scenarios"]):
        ctx = findings.Inputs(scenario=scenario, index=i, changes=changes,
                              window=(scenario["started_at"], scenario["ended_at"]),
                              monitor_file=monitor_file, recording=recording)
        items = _BUILDERS[scenario["name"]](ctx) if "data" in scenario else []
        scenarios.append({
            "name": scenario["name"],
            "window": {"start_s": round(scenario["started_at"] - start, 3),
                       "end_s": round(scenario["ended_at"] - start, 3),
                       "start_iso": iso(scenario["started_at"]),
                       "end_iso": iso(scenario["ended_at"])},
            "counts": _counts(scenario), "findings": items,
            "conclusion": _conclusion(scenario, items),
            **({"error": scenario["error"]} if "error" in scenario else {}),
        })
    unexpected = unexpected_events(recording, report, windows, monitor_file)
    options = recording["options"]
    return {
        "format": SUMMARY_FORMAT,
        "run": {"dir": run_dir.name, "started_at": start, "started_iso": iso(start),
                "ended_at": recording.get("ended_at"),
                "elapsed_s": round(recording.get("ended_at", start) - start, 3),
                **options, "monitor": _monitor_facts(recording, report)},
        "setup": {**recording.get("setup", {}), "seeded": recording.get("seeded", [])},
        "verdicts": [{"scenario": s["name"], "verdict": s["conclusion"]["verdict"]}
                     for s in scenarios],
        "unexpected": unexpected,
        "unexpected_by_what": dict(Counter(e["what"] for e in unexpected)),
        "scenarios": scenarios,
        "final": recording.get("final", {}),
        "files": _files(run_dir),
    }
