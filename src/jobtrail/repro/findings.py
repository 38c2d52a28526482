"""Findings of the processing, purge, TTL and crash scenarios, computed from recorded data.

Invariant: pure. Each function reads one scenario's recorded `data` and the
monitor's changes in the scenario's window, and returns findings
`{claim, holds, evidence, sources}`; a claim is only made when the data it
rests on was recorded.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobtrail.models import JobStatus, allowed_sources
from jobtrail.monitor.report import iso

__all__ = ["Inputs", "finding", "lifecycle_ok", "processing", "purge", "statuses_of",
           "ttl_expiry", "worker_crash"]

#: Lifecycle event -> the status it puts the job in (models.TRANSITIONS).
_EVENT_STATUS = {"created": "pending", "started": "processing", "redelivered": "pending",
                 "retried": "pending", "completed": "completed", "failed": "failed"}
#: A job's status -> the Celery result status its task stores.
_CELERY_STATUS = {"completed": "SUCCESS", "failed": "FAILURE"}


@dataclass(frozen=True, slots=True)
class Inputs:
    """One scenario's recording, its index, and the monitor's changes of the whole run."""

    scenario: dict[str, Any]
    index: int
    changes: list[dict[str, Any]]
    window: tuple[float, float]
    monitor_file: str
    recording: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        """The scenario's observations."""
        data: dict[str, Any] = self.scenario["data"]
        return data

    def src(self, path: str) -> str:
        """Return the source line of a field of this scenario's data."""
        return f"recording.json: scenarios[{self.index}].data.{path}"

    def seen(self, *, db: str | None = None, key: str | None = None,
             change: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Return the monitor's changes in this scenario's window matching the filters."""
        start, end = self.window
        out = []
        for c in self.changes:
            at = c.get("at") or c["after_at"]
            if not start <= at <= end:
                continue
            if (db and c["db"] != db) or (key and c["key"] != key) or \
                    (change and c["change"] != change) or (kind and c["kind"] != kind):
                continue
            out.append(c)
        return out

    def monitor_src(self, items: Iterable[dict[str, Any]]) -> list[str]:
        """Return the monitor report's snapshot records holding *items*."""
        seqs = sorted({(c["seq"], c["db"]) for c in items})
        return [f"{self.monitor_file}: snapshot #{s} ({db}) diff" for s, db in seqs]


def finding(claim: str, holds: bool | None, evidence: dict[str, Any],
            sources: list[str], *, not_shown: str = "") -> dict[str, Any]:
    """Return one finding.

    *not_shown* says why the run could not show what the finding is about (the
    scenario's own timing, never the system's doing): the scenario's verdict is
    then "not shown" with that reason, unless another finding shows a defect.
    """
    found = {"claim": claim, "holds": holds, "evidence": evidence, "sources": sources}
    return {**found, "not_shown": not_shown} if not_shown else found


def statuses_of(events: list[dict[str, Any]]) -> list[str]:
    """Return the statuses a job went through, from its lifecycle events."""
    return [_EVENT_STATUS[e["type"]] for e in events if e["type"] in _EVENT_STATUS]


def lifecycle_ok(events: list[dict[str, Any]]) -> bool:
    """True when the events start with `created` and each status change is in TRANSITIONS."""
    seq = statuses_of(events)
    if not events or events[0]["type"] != "created":
        return False
    return all(JobStatus(a) in allowed_sources(JobStatus(b))
               for a, b in zip(seq, seq[1:], strict=False))


def _secs(x: float) -> str:
    return f"{x:,.3f} s" if x < 10 else f"{x:,.1f} s"


def _spread(values: list[float]) -> str:
    if not values:
        return "none"
    lo, hi = min(values), max(values)
    if len(values) == 1:
        return _secs(lo)
    if _secs(lo) == _secs(hi):
        return f"{_secs(lo)} for each of {len(values)}"
    return f"{_secs(lo)} to {_secs(hi)} (median {_secs(statistics.median(values))})"


def _date_done(value: str | None) -> float | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _times(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds in pending (created -> first start) and processing (last start -> end)."""
    at = {e["type"]: e["at"] for e in events}  # last of each type
    first_start = next((e["at"] for e in events if e["type"] == "started"), None)
    out: dict[str, float] = {}
    if first_start is not None and "created" in at:
        out["pending_s"] = round(first_start - at["created"], 6)
    end = at.get("completed", at.get("failed"))
    if end is not None and "started" in at:
        out["processing_s"] = round(end - at["started"], 6)
    return out


def _job_changes(inp: Inputs, ids: set[str]) -> list[dict[str, Any]]:
    """Return the monitor's changes of the `job:<id>` records of *ids* in the window."""
    return [c for c in inp.seen(db="main", kind="job") if c["key"].rsplit(":", 1)[-1] in ids]


def _monitor_statuses(changes: list[dict[str, Any]]) -> dict[str, int]:
    moves: Counter[str] = Counter()
    for c in changes:
        if c["change"] == "status_changed":
            moves[f"{c.get('before')} -> {c.get('after')}"] += 1
        elif c["change"] == "added":
            moves[f"added as {c.get('after')}"] += 1
    return dict(moves)


def processing(inp: Inputs) -> list[dict[str, Any]]:
    """Statuses reached, lifecycle order, time in each status, results stored."""
    jobs = inp.data["jobs"]
    out = []
    final = Counter((j["record"] or {}).get("status", "gone") for j in jobs)
    terminal = final["completed"] + final["failed"]
    errors = {j["id"]: j["record"]["error"] for j in jobs
              if j["record"] and j["record"]["status"] == "failed"}
    out.append(finding(
        f"{final['completed']} of {len(jobs)} jobs completed"
        + (f", {final['failed']} failed with a reason" if final["failed"] else "")
        + ("" if terminal == len(jobs) else f"; {len(jobs) - terminal} did not finish"),
        terminal == len(jobs), {"by_status": dict(final), "errors": errors},
        [inp.src("jobs[*].record.status")]))
    paths = Counter(" -> ".join(statuses_of(j["events"])) for j in jobs)
    bad = [j["id"] for j in jobs if not lifecycle_ok(j["events"])]
    out.append(finding(
        "lifecycle events: " + "; ".join(f"{n} job(s) {p}" for p, n in paths.items())
        + (f"; {len(bad)} outside the lifecycle" if bad else ", every step allowed"),
        not bad, {"paths": dict(paths), "outside_lifecycle": bad},
        [inp.src("jobs[*].events")]))
    times = {j["id"]: _times(j["events"]) for j in jobs}
    pending = [t["pending_s"] for t in times.values() if "pending_s" in t]
    working = [t["processing_s"] for t in times.values() if "processing_s" in t]
    if pending or working:
        out.append(finding(
            f"time pending {_spread(pending)}; time processing {_spread(working)} "
            f"(from the events of {len(times)} jobs)", None,
            {"per_job": times}, [inp.src("jobs[*].events[*].at")]))
    results = inp.data["results"]
    statuses = {j["id"]: (j["record"] or {}).get("status") for j in jobs}
    mismatch = [r["id"] for r in results
                if _CELERY_STATUS.get(statuses.get(r["id"]) or "") != r["status"]]
    found = Counter(r["status"] for r in results if r["exists"])
    out.append(finding(
        f"{sum(found.values())} of {len(results)} Celery results stored ("
        + ", ".join(f"{s} {n}" for s, n in found.items()) + ")"
        + (f"; {len(mismatch)} disagree with the job record" if mismatch else
           ", each matching its job's status"),
        not mismatch, {"by_status": dict(found), "disagree": mismatch},
        [inp.src("results[*]")]))
    seen = _job_changes(inp, {j["id"] for j in jobs})
    moves = _monitor_statuses(seen)
    if moves:
        out.append(finding(
            "the monitor's snapshots saw " + "; ".join(f"{m}: {n}" for m, n in moves.items())
            + " (a status held for less than one interval falls between two snapshots)",
            None, {"transitions": moves}, inp.monitor_src(seen)))
    return out


def _removal(inp: Inputs, key: str) -> dict[str, Any] | None:
    found = inp.seen(key=key, change="removed")
    return found[-1] if found else None


def purge(inp: Inputs) -> list[dict[str, Any]]:
    """Selected and purged; record gone by purge; results, tombstone, archive, trace."""
    d = inp.data
    chosen, report = d["chosen"], d["report"]
    out = [finding(
        f"policy {d['policy']['name']} (status completed, keep the newest "
        f"{d['policy']['keep_last']}) selected {report['selected']} job(s), archived "
        f"{report['archived']}, purged {report['purged']}: {', '.join(report['sample_ids'])}",
        report["purged"] == 1 and report["sample_ids"] == [chosen],
        {k: report[k] for k in ("selected", "archived", "purged", "skipped", "run_id")},
        [inp.src("report")])]
    gone = not d["records_after"].get(chosen, True)
    removals = [c for c in _job_changes(inp, {chosen}) if c["change"] == "removed"]
    removal = removals[-1] if removals else None
    jobs_before = inp.scenario["before"]["main"]["by_kind"].get("job", 0)
    jobs_after = inp.scenario["after"]["main"]["by_kind"].get("job", 0)
    cause = removal.get("cause_label") if removal else None
    out.append(finding(
        f"job:{chosen} is {'gone from' if gone else 'still in'} the main DB"
        + (f" (monitor: removed, {cause}, at {iso(removal['at'])})" if removal and
           removal.get("at") else f" (monitor: removed, {cause})" if removal else "")
        + f"; job records in the main DB {jobs_before} -> {jobs_after}",
        gone and cause in (None, "del by purge"),
        {"record_exists": not gone, "monitor_cause": cause, "job_records": [jobs_before,
                                                                            jobs_after]},
        [inp.src("records_after"), f"recording.json: scenarios[{inp.index}].before/after.main"]
        + inp.monitor_src([removal] if removal else [])))
    results = d["results_after"]
    expires = d["result_expires_s"]
    ttls = [r["pttl_ms"] / 1000 for r in results if r["exists"] and r["pttl_ms"] >= 0]
    persistent = sum(1 for r in results if r["exists"] and r["pttl_ms"] < 0)
    # with result_expires_s > 0 every result must have a TTL in (0, result_expires_s]
    ok = all(r["exists"] for r in results) and (
        not persistent and all(0 < t <= expires for t in ttls) if expires
        else not ttls)
    removed_results = inp.seen(db="results", change="removed")
    own = next((r for r in results if r["id"] == chosen), None)
    out.append(finding(
        f"{sum(r['exists'] for r in results)} of {len(results)} celery-task-meta keys remain in "
        f"the results DB, the purged job's "
        + ("among them" if own and own["exists"] else "NOT among them")
        + f"; TTL left {_spread(ttls)}, result_expires_s {expires}; the monitor saw "
        f"{len(removed_results)} removal(s) in the results DB during the purge",
        ok and not removed_results,
        {"ttl_s": {r["id"]: r["pttl_ms"] / 1000 for r in results}, "result_expires_s": expires,
         "results_removed": [c["key"] for c in removed_results]},
        [inp.src("results_after")] + inp.monitor_src(removed_results)))
    tomb = d["tombstone"]
    out.append(finding(
        f"tombstone:{chosen} present: policy {tomb['policy']}, purged at "
        f"{iso(tomb['purged_at'])}, status {tomb['status']}, TTL "
        f"{_secs(tomb['ttl_s']) if tomb['ttl_s'] is not None else 'none'}" if tomb else
        f"no tombstone:{chosen}", bool(tomb and tomb["policy"] == d["policy"]["name"]),
        {"tombstone": tomb}, [inp.src("tombstone")]))
    row = d["archive_row"]
    out.append(finding(
        f"archive row for {chosen} in {d['archive']}: policy {row['policy']}, run "
        f"{row['run_id']}, status {row['status']}, {row['events']} events, Celery result "
        f"{row['celery_status'] or 'not captured'}" if row else
        f"no archive row for {chosen} in {d['archive']}", row is not None,
        {"archive_row": row}, [inp.src("archive_row")]))
    trace = d["trace"]
    out.append(finding(f"trace {chosen}: {trace['fate']} ({trace['verdict']})",
                       trace["fate"] == "purged", trace, [inp.src("trace")]))
    return out


def ttl_expiry(inp: Inputs) -> list[dict[str, Any]]:
    """TTLs against result_expires; the short-TTL run's expiries as the monitor saw them."""
    d = inp.data
    expires = d["result_expires_s"]
    out = []
    rows = []
    for r in (r for r in d["seeded_results"] if r["exists"]):
        done = _date_done(r["date_done"])
        ttl = r["pttl_ms"] / 1000 if r["pttl_ms"] >= 0 else None
        total = None if done is None or ttl is None else round(ttl + r["read_at"] - done, 3)
        rows.append({"id": r["id"], "ttl_s": ttl, "since_date_done_s":
                     None if done is None else round(r["read_at"] - done, 3),
                     "ttl_plus_age_s": total})
    if rows:
        totals = [r["ttl_plus_age_s"] for r in rows if r["ttl_plus_age_s"] is not None]
        ttls = [r["ttl_s"] for r in rows if r["ttl_s"] is not None]
        ok = (all(abs(t - expires) <= 2 for t in totals) and len(totals) == len(rows)) \
            if expires else not ttls
        out.append(finding(
            f"{len(rows)} result keys of the seeded jobs: TTL left {_spread(ttls)}; TTL left + "
            f"time since date_done {_spread(totals)}, against result_expires_s {expires}",
            ok, {"results": rows, "result_expires_s": expires},
            [inp.src("seeded_results")]))
    short = d["short_ttl_s"]
    stored = [r["pttl_ms"] / 1000 for r in d["stored"] if r["pttl_ms"] >= 0]
    out.append(finding(
        f"{len(d['short_ids'])} jobs solved by {d['worker']} with result_expires_s {short}: "
        f"results stored with TTL {_spread(stored)}",
        len(stored) == len(d["short_ids"]) and all(0 < t <= short for t in stored),
        {"ttl_s": {r["id"]: r["pttl_ms"] / 1000 for r in d["stored"]}}, [inp.src("stored")]))
    captured: dict[str, dict[str, Any]] = {}
    other: dict[str, dict[str, Any]] = {}
    for r in d["stored"]:
        removal = _removal(inp, r["key"])
        done = _date_done(r["date_done"])
        if removal is None:
            continue
        entry = {"cause": removal.get("cause_label"), "at": removal.get("at"),
                 "after_date_done_s": round(removal["at"] - done, 3)
                 if removal.get("at") and done else None, "seq": removal["seq"]}
        (captured if removal.get("cause") == "expired" else other)[r["id"]] = entry
    missed = [i for i in d["short_ids"] if i not in captured and i not in other]
    lags = [e["after_date_done_s"] for e in captured.values() if e["after_date_done_s"]]
    out.append(finding(
        f"{len(captured)} of {len(d['short_ids'])} short-TTL results captured by the monitor "
        f"as 'expired' keyspace events, {_spread(lags)} after date_done"
        + (f"; {len(other)} removed otherwise" if other else "")
        + (f"; {len(missed)} not captured" if missed else ""),
        False if other else (True if not missed else None),
        {"expired": captured, "other": other, "not_captured": missed},
        inp.monitor_src(c for i in d["stored"] for c in inp.seen(key=i["key"]))))
    fates = Counter(t["fate"] for t in d["traces"].values())
    present = sum(1 for j in d["records_after"] if j["record"])
    out.append(finding(
        f"their job records remain ({present} of {len(d['records_after'])}); trace: "
        + ", ".join(f"{f} {n}" for f, n in fates.items()),
        present == len(d["records_after"]) and set(fates) == {"result_expired"},
        {"traces": d["traces"]}, [inp.src("records_after"), inp.src("traces")]))
    return out


def _ran_past_scenario_limit(record: dict[str, Any], settings: dict[str, Any]) -> bool:
    """True when *record* failed by the scenario's own soft or hard time limit."""
    error = str(record.get("error") or "")
    return record.get("status") == "failed" and any(
        error.startswith(f"timed out after {settings[name]:g} s")
        for name in ("solver_time_limit_s", "solver_hard_time_limit_s"))


def _attempt_time(record: dict[str, Any], pace_s: float | None) -> str:
    """Return `; its attempt ran 3.04 s (paced at 3 s)` from the record, or ""."""
    started, finished = record.get("started_at"), record.get("finished_at")
    if started is None or finished is None or pace_s is None:
        return ""
    return f"; its attempt ran {_secs(finished - started)} (paced at {pace_s:g} s)"


def worker_crash(inp: Inputs) -> list[dict[str, Any]]:
    """Killed mid-task; redelivered; attempts; lifecycle; trace."""
    d = inp.data
    at_kill = d["at_kill"]["record"] or {}
    doomed = d["doomed"]
    mid_task = at_kill.get("status") == "processing"
    out = [finding(
        f"{doomed['node']} (pid {doomed['pid']}) killed with {doomed['signal']} at "
        f"{iso(doomed['killed_at'])} while job {d['job_id']} was {at_kill.get('status')} "
        f"(attempt {at_kill.get('attempts')})",
        None if not mid_task else True, {"at_kill": at_kill, "doomed": doomed},
        [inp.src("at_kill"), inp.src("doomed")],
        not_shown="" if mid_task else (
            f"could not be shown: the harness killed the worker when the job was "
            f"{at_kill.get('status')}, not processing (its own timing, not the system's)"))]
    if not mid_task:
        return out
    after = d["after"]["record"] or {}
    events = d["after"]["events"]
    redelivered = next((e["at"] for e in events if e["type"] == "redelivered"), None)
    timed_out = _ran_past_scenario_limit(after, d["settings"])
    out.append(finding(
        f"job {d['job_id']} {after.get('status', 'gone')} by {after.get('worker') or '-'} "
        f"with attempts = {after.get('attempts')}"
        + (f"; redelivered {_secs(redelivered - doomed['killed_at'])} after the kill "
           f"(visibility timeout {d['settings']['visibility_timeout_s']} s)" if redelivered
           else "; no redelivered event")
        + _attempt_time(after, d.get("pace_s")),
        (after.get("status") == "completed" or timed_out) and after.get("attempts") == 2
        and redelivered is not None,
        {"record": after, "redelivered_at": redelivered}, [inp.src("after")]))
    out.append(finding(
        "lifecycle events: " + " -> ".join(e["type"] for e in events),
        lifecycle_ok(events), {"events": events}, [inp.src("after.events")]))
    if timed_out:
        pace = d.get("pace_s")
        out.append(finding(
            f"the redelivered attempt {after.get('error')}: the scenario's own time limit "
            f"({d['settings']['solver_time_limit_s']:g} s"
            + (f" for a job it paces at {pace:g} s" if pace is not None else "")
            + ") was too short for this machine's load; the job was not lost",
            None, {"record": after, "settings": d["settings"], "pace_s": pace},
            [inp.src("after")],
            not_shown="could not be shown that the redelivered job completes: the scenario's "
                      "own time limit ran out on this machine's load (not the system's "
                      "doing); rerun on a quieter machine"))
        return out
    r = d["result"]
    out.append(finding(
        f"Celery result {r['status'] or 'missing'}, TTL "
        f"{_secs(r['pttl_ms'] / 1000) if r['pttl_ms'] >= 0 else 'none'}; trace: "
        f"{d['trace']['fate']}", r["status"] == "SUCCESS" and d["trace"]["fate"] == "completed",
        {"result": r, "trace": d["trace"]}, [inp.src("result"), inp.src("trace")]))
    seen = _job_changes(inp, {d["job_id"]})
    moves = _monitor_statuses(seen)
    if moves:
        out.append(finding("the monitor's snapshots saw " + "; ".join(
            f"{m}: {n}" for m, n in moves.items()), None, {"transitions": moves},
            inp.monitor_src(seen)))
    return out
