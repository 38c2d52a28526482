"""render_markdown(): REPRODUCTION_SUMMARY.md from the summary document, and nothing else.

Invariant: pure; every line is rendered from REPRODUCTION_SUMMARY.json's
content (the JSON twin), so the two always say the same.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_markdown"]

_MARK = {True: "✅", False: "❌", None: "•"}
_VERDICT = {"matches the design": "✅ matches the design", "defect": "❌ DEFECT",
            "not shown": "⚠️ not shown"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _setup(summary: dict[str, Any]) -> list[str]:
    setup, run = summary["setup"], summary["run"]
    versions = setup.get("versions", {})
    lines = ["## Setup", ""]
    lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())
                 + f", Redis {setup.get('redis_version', '?')}")
    where = "a private redis-server started for this run" if setup.get("private_server") \
        else "the DBs of the env file (checked empty at the start)"
    args = setup.get("private_server_args")
    lines.append(f"- Redis: {where}" + (f", options {' '.join(args)}" if args else ""))
    for label, url in setup.get("urls", {}).items():
        lines.append(f"  - {label}: `{url}`")
    lines.append(f"- Archive: `{setup.get('archive', '?')}`")
    settings = setup.get("settings", {})
    shown = ("result_expires_s", "visibility_timeout_s", "tombstone_ttl_s",
             "solver_time_limit_s", "solver_hard_time_limit_s", "max_attempts", "key_prefix",
             "queue")
    lines.append("- Settings: " + ", ".join(f"{k} `{settings[k]!s}`" for k in shown
                                            if k in settings) + " (all in settings.json)")
    for name, o in setup.get("overrides", {}).items():
        lines.append(f"- Changed for this run: {name} = `{o['value']}` ({o['why']})")
    mon = run["monitor"]
    lines.append(f"- Monitor: a round every {run['interval_s']:g} s for at least "
                 f"{run['duration_s']:g} s: {mon['rounds']} rounds, {mon['snapshots']} "
                 f"snapshots; keyspace events "
                 + ", ".join(f"{db} {s}" for db, s in mon["keyspace_events"].items()))
    for notice in mon.get("notices", []):
        lines.append(f"  - notice: {notice}")
    seeded = setup.get("seeded", [])
    if seeded:
        lines += ["", f"Seeded jobs ({len(seeded)}):", "", "| id | problem |", "| --- | --- |"]
        lines += [f"| `{s['id']}` | {_cell(s['problem'])} |" for s in seeded[:50]]
        if len(seeded) > 50:
            lines.append(f"| ... | {len(seeded) - 50} more in recording.json |")
    return lines + [""]


def _counts(counts: dict[str, Any]) -> list[str]:
    lines = ["| DB | keys before | keys after | by kind (before -> after) |",
             "| --- | ---: | ---: | --- |"]
    for db, c in counts.items():
        kinds = ", ".join(f"{k} {a}->{b}" if a != b else f"{k} {a}"
                          for k, (a, b) in c["by_kind"].items()) or "-"
        lines.append(f"| {db} | {c['before']} | {c['after']} | {_cell(kinds)} |")
    return lines


def _scenario(n: int, s: dict[str, Any]) -> list[str]:
    w = s["window"]
    lines = [f"## {n}. {s['name']}", "",
             f"From t+{w['start_s']:.1f} s to t+{w['end_s']:.1f} s "
             f"({w['start_iso']} to {w['end_iso']}).", ""]
    if s.get("counts"):
        lines += _counts(s["counts"]) + [""]
    if s.get("error"):
        lines += [f"The scenario did not complete: {s['error']}", ""]
    if s["findings"]:
        lines += ["Findings:", ""]
        for i, f in enumerate(s["findings"], 1):
            lines.append(f"{i}. {_MARK[f['holds']]} {f['claim']}")
            lines.append(f"   - evidence: {'; '.join(f['sources'])}")
        lines.append("")
    c = s["conclusion"]
    if c.get("findings"):
        numbers = ", ".join(str(n) for n in c["findings"])
        why = f"findings {numbers} " + ("show it" if c["verdict"] == "matches the design"
                                         else "contradict the design")
        lines.append(f"**Conclusion: {_VERDICT[c['verdict']]}** ({why}).")
    else:
        lines.append(f"**Conclusion: {_VERDICT[c['verdict']]}.** " + " ".join(
            f"{r[:1].upper()}{r[1:]}." for r in c["reasons"]))
    return lines + [""]


def _trace(trace: dict[str, str]) -> str:
    verdict = trace["verdict"]
    return verdict if verdict.startswith(trace["fate"]) else f"{trace['fate']}: {verdict}"


def _unexpected(summary: dict[str, Any]) -> list[str]:
    events = summary["unexpected"]
    lines = ["## Unexpected events", ""]
    if not events:
        mon = summary["run"]["monitor"]
        off = [db for db, s in mon["keyspace_events"].items() if s != "on"]
        lines.append("None recorded: no job record, tombstone, events stream or Celery result "
                     "left a DB by any way but a purge or an expiry, and nothing was evicted"
                     + (f" (keyspace events were {', '.join(off)} off: causes there rest on "
                        "snapshots alone)" if off else "") + ".")
        return lines + [""]
    lines += ["| when | during | DB | key | what | trace |",
              "| --- | --- | --- | --- | --- | --- |"]
    for e in events:
        trace = e.get("trace")
        lines.append(f"| {e['at_iso']} | {e['during']} | {e['db']} | "
                     f"`{e['key'] or '-'}` | {_cell(e['what'])} | "
                     f"{_cell(_trace(trace)) if trace else '-'} |")
    lines += ["", "Sources: " + "; ".join(sorted({e["source"] for e in events}))]
    return lines + [""]


def render_markdown(summary: dict[str, Any]) -> str:
    """Return REPRODUCTION_SUMMARY.md for *summary* (build_summary's document)."""
    run = summary["run"]
    lines = [f"# Reproduction summary: {run['dir']}", "",
             f"Run started {run['started_iso']}, lasted {run['elapsed_s']:.1f} s; scenarios "
             f"{', '.join(run['scenarios'])}; {run['jobs']} seeded job(s). Every line below is "
             "computed from `recording.json` and the monitoring report of this directory; "
             "`REPRODUCTION_SUMMARY.json` holds the same content.", "",
             "| scenario | conclusion |", "| --- | --- |"]
    lines += [f"| {v['scenario']} | {_VERDICT[v['verdict']]} |" for v in summary["verdicts"]]
    n = len(summary["unexpected"])
    lines += ["", f"Unexpected events: {n}" + (" (see below)." if n else "."), ""]
    lines += _setup(summary)
    for i, s in enumerate(summary["scenarios"], 1):
        lines += _scenario(i, s)
    lines += _unexpected(summary)
    lines += ["## Evidence files", ""]
    lines += [f"- `{f['name']}` ({f['bytes']:,} bytes)" for f in summary["files"]]
    return "\n".join(lines) + "\n"
