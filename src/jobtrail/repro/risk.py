"""Findings of the memory-pressure scenario: each server's figures, what its eviction policy
puts at risk, doctor's verdict, and what the fill of the private server removed.

Invariant: pure. The risk rule is Redis's: `noeviction` never evicts (writes
are refused once maxmemory is reached), `allkeys-*` may evict any key,
`volatile-*` only keys with an expiry set; no policy evicts while maxmemory
is 0 (no limit). Which key kinds carry a TTL is read from the recorded
snapshot, not assumed.

Source: https://redis.io/docs/latest/develop/reference/eviction/
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from jobtrail.repro.findings import Inputs, finding

__all__ = ["CATEGORIES", "category_risk", "memory_pressure"]

#: What a reviewer asks about -> the key kinds (keys.KeyKind values) that make it up.
CATEGORIES: dict[str, frozenset[str]] = {
    "job records": frozenset({"job", "job_index", "status_index", "events", "tombstone"}),
    "queues": frozenset({"queue", "kombu_unacked", "kombu_unacked_index", "kombu_binding"}),
    "results": frozenset({"celery_result"}),
}


def _mb(n: int) -> str:
    return f"{n:,} bytes ({n / 1_048_576:.1f} MiB)"


def category_risk(policy: str, maxmemory: int, kinds_with_ttl: set[str],
                  kinds: frozenset[str]) -> tuple[bool, str]:
    """Return (at risk, why) for the key kinds *kinds* on a server with *policy*.

    "At risk" includes a policy that would evict them as soon as a maxmemory is set.
    """
    if policy == "noeviction" or not policy:
        return False, "noeviction never evicts" + (
            " (writes are refused with OOM at the limit)" if maxmemory else "")
    limit = f"maxmemory {maxmemory:,} bytes" if maxmemory else \
        "no maxmemory now, so at risk as soon as one is set"
    if policy.startswith("allkeys-"):
        return True, f"{policy} may evict any key; {limit}"
    if policy.startswith("volatile-"):
        with_ttl = sorted(kinds & kinds_with_ttl)
        if with_ttl:
            return True, f"{policy} evicts keys with a TTL, and these have one: " \
                         f"{', '.join(with_ttl)}; {limit}"
        return False, f"{policy} evicts only keys with a TTL; none of these has one"
    return True, f"unknown policy {policy}"


def _server_findings(inp: Inputs) -> list[dict[str, Any]]:
    d = inp.data
    out = []
    for i, s in enumerate(d["servers"]):
        out.append(finding(
            f"server {s['server']} ({', '.join(s['dbs'])}): Redis {s['redis_version']}, "
            f"maxmemory {_mb(s['maxmemory']) if s['maxmemory'] else '0 (no limit)'}, "
            f"policy {s['maxmemory_policy']}, used_memory {_mb(s['used_memory'])}",
            None, s, [inp.src(f"servers[{i}]")]))
        with_ttl = {k for db in s["dbs"] for k, n in d["keys"][db]["with_ttl_by_kind"].items()
                    if n}
        risks = {name: category_risk(s["maxmemory_policy"], s["maxmemory"], with_ttl, kinds)
                 for name, kinds in CATEGORIES.items()}
        at_risk = [n for n, (r, _) in risks.items() if r]
        out.append(finding(
            f"on {s['server']}: " + "; ".join(
                f"{name} {'AT RISK' if r else 'not at risk'} ({why})"
                for name, (r, why) in risks.items()),
            not at_risk,
            {"at_risk": at_risk, "kinds_with_ttl": sorted(with_ttl),
             "why": {n: w for n, (_, w) in risks.items()}},
            [inp.src(f"servers[{i}]"), inp.src("keys.*.with_ttl_by_kind")]))
    for i, f in enumerate(d["doctor"]):
        out.append(finding(f"doctor {f['check']}: {f['severity']}: {f['message']}",
                           f["severity"] != "error", f["evidence"], [inp.src(f"doctor[{i}]")]))
    return out


def _fill_findings(inp: Inputs) -> list[dict[str, Any]]:
    fill = inp.data["fill"]
    out = [finding(
        f"on the private server maxmemory was lowered to {_mb(fill['maxmemory_set'])} "
        f"(used_memory {fill['used_memory_before']:,} + headroom) and "
        f"{fill['filler_written']} filler keys of {fill['filler_bytes']:,} bytes were written "
        f"to DB {fill['fill_db']}; then "
        + (f"Redis refused a write: {fill['oom_reply']!r}" if fill["oom_reply"] else
           "the fill stopped at its cap")
        + f"; INFO evicted_keys +{fill['evicted_keys_delta']}",
        None, {k: v for k, v in fill.items() if k != "gone_from_watched_dbs"},
        [inp.src("fill")])]
    gone = fill["gone_from_watched_dbs"]
    kinds = Counter(g["kind"] for g in gone)
    gone_keys = {(g["db"], g["key"]) for g in gone}
    removed = [c for c in inp.seen(change="removed") if (c["db"], c["key"]) in gone_keys]
    causes = Counter(c.get("cause_label", "unknown") for c in removed)
    hit = [name for name, ks in CATEGORIES.items() if any(g["kind"] in ks for g in gone)]
    out.append(finding(
        ("keys of the main, broker and results DBs gone after the fill: "
         + ", ".join(f"{k} {n}" for k, n in kinds.most_common())
         + "; the monitor gave their causes: "
         + (", ".join(f"{c} {n}" for c, n in causes.most_common()) or "none recorded")
         + (f"; {', '.join(hit)} were lost to eviction" if hit else ""))
        if gone else "no key of the main, broker or results DB was removed by the fill",
        not hit, {"gone": gone, "by_kind": dict(kinds), "monitor_causes": dict(causes)},
        [inp.src("fill.gone_from_watched_dbs")] + inp.monitor_src(removed)))
    out.append(finding(f"maxmemory put back to {fill['maxmemory_restored']} and the filler "
                       f"DB {fill['fill_db']} emptied", None,
                       {"maxmemory": fill["maxmemory_restored"]}, [inp.src("fill")]))
    return out


def memory_pressure(inp: Inputs) -> list[dict[str, Any]]:
    """Return the scenario's findings."""
    out = _server_findings(inp)
    if inp.data.get("fill"):
        out += _fill_findings(inp)
    return out
