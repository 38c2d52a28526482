"""The report's pure parts: the eviction-risk rule, masking, and which removals are unexpected."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from jobtrail.config import Settings
from jobtrail.repro.evidence import NOT_SHOWN, _conclusion, unexpected_events
from jobtrail.repro.findings import Inputs, lifecycle_ok, worker_crash
from jobtrail.repro.harness import masked_settings
from jobtrail.repro.render import _scenario
from jobtrail.repro.risk import CATEGORIES, category_risk
from jobtrail.repro.scenarios import CRASH_MARGIN_S, CRASH_PACE_S, crash_limits


@pytest.mark.parametrize(("policy", "maxmemory", "with_ttl", "expected"), [
    ("noeviction", 0, set(), {"job records": False, "queues": False, "results": False}),
    ("noeviction", 10**6, {"celery_result"}, {"job records": False, "queues": False,
                                              "results": False}),
    ("allkeys-lru", 10**6, set(), {"job records": True, "queues": True, "results": True}),
    ("allkeys-random", 0, set(), {"job records": True, "queues": True, "results": True}),
    ("volatile-lru", 10**6, {"celery_result"}, {"job records": False, "queues": False,
                                                "results": True}),
    ("volatile-ttl", 10**6, {"celery_result", "tombstone"},
     {"job records": True, "queues": False, "results": True}),
])
def test_category_risk_follows_the_policy_and_the_recorded_ttls(
        policy: str, maxmemory: int, with_ttl: set[str], expected: dict[str, bool]) -> None:
    got = {name: category_risk(policy, maxmemory, with_ttl, kinds)[0]
           for name, kinds in CATEGORIES.items()}
    assert got == expected


def test_latent_risk_is_said_to_be_latent() -> None:
    at_risk, why = category_risk("allkeys-lru", 0, set(), CATEGORIES["job records"])
    assert at_risk and "as soon as one is set" in why


def test_settings_are_masked(tmp_path: Path) -> None:
    settings = Settings(main_url="redis://:hunter2@db:6379/10", broker_url="redis://db/11",
                        results_url="redis://db/12", api_token="tok-123",  # type: ignore[arg-type]
                        archive_url="postgresql://u:pw@pg/jobs", state_dir=tmp_path)
    data = masked_settings(settings)
    text = repr(data)
    assert "hunter2" not in text and "tok-123" not in text and ":pw@" not in text
    assert data["main_url"] == "redis://:***@db:6379/10"
    assert data["api_token"] == "**********"


def _report(changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"snapshots": [{"db": "main", "seq": 3, "diff": {
        "after_at": 105.0, "changes": changes, "transient": {"evicted": 2}}}]}


def test_only_removals_jobtrail_did_not_make_are_unexpected() -> None:
    changes = [
        {"key": "job:a", "kind": "job", "change": "removed", "cause": "del",
         "cause_label": "del by purge", "by": "purge", "at": 101.0},
        {"key": "job:b", "kind": "job", "change": "removed", "cause": "del",
         "cause_label": "del", "at": 102.0, "before": "completed"},
        {"key": "job:c", "kind": "job", "change": "removed", "cause": "unknown",
         "cause_label": "unknown"},
        {"key": "celery-task-meta-a", "kind": "celery_result", "change": "removed",
         "cause": "expired", "cause_label": "expired", "at": 103.0},
        {"key": "celery-task-meta-b", "kind": "celery_result", "change": "removed",
         "cause": "del", "cause_label": "del", "at": 104.0},
        {"key": "stats", "kind": "stats", "change": "removed", "cause": "evicted",
         "cause_label": "evicted", "at": 100.5},
        {"key": "jobs:pending", "kind": "status_index", "change": "removed", "cause": "del",
         "cause_label": "del", "at": 100.2},
        {"key": "job:d", "kind": "job", "change": "status_changed", "before": "pending",
         "after": "completed"},
    ]
    recording = {"final": {"traces": {"b": {"fate": "deleted_externally", "verdict": "x"}}}}

    events = unexpected_events(recording, _report(changes), [("purge", 100.0, 102.5)], "r.json")

    assert [(e["key"], e["cause"]) for e in events] == [
        ("stats", "evicted"), ("job:b", "del"), ("celery-task-meta-b", "del"),
        ("job:c", "unknown"), (None, "evicted")]
    by_key = {e["key"]: e for e in events}
    assert "deleted outside jobtrail" in by_key["job:b"]["what"]
    assert by_key["job:b"]["trace"]["fate"] == "deleted_externally"
    assert by_key["job:b"]["during"] == "purge"
    assert by_key["celery-task-meta-b"]["during"] == "between scenarios"
    assert "cause unknown" in by_key["job:c"]["what"]
    assert by_key[None]["count"] == 2
    assert all(e["source"] == "r.json: snapshot #3 (main) diff" or e["key"] is None
               for e in events)


def test_lifecycle_check() -> None:
    def ev(*types: str) -> list[dict[str, Any]]:
        return [{"type": t, "at": float(i)} for i, t in enumerate(types)]

    assert lifecycle_ok(ev("created", "started", "completed"))
    assert lifecycle_ok(ev("created", "started", "redelivered", "started", "completed"))
    assert not lifecycle_ok(ev("created", "completed"))
    assert not lifecycle_ok(ev("started", "completed"))
    assert not lifecycle_ok([])


def test_a_record_gone_between_snapshots_is_reported_from_its_final_trace() -> None:
    # Given a record created and deleted by another client between two snapshots: the
    # monitor saw no key, only the final trace of the gone record tells
    recording = {"final": {"traces": {"j1": {"fate": "deleted_externally",
                                              "evidence": {"at": 105.0}}}}}

    events = unexpected_events(recording, _report([]), [("purge", 100.0, 110.0)], "r.json")

    gone = [e for e in events if e["kind"] == "job"]
    assert [(e["cause"], e["what"]) for e in gone] == [
        ("deleted_externally", "job record j1 gone: trace says deleted_externally")]
    assert gone[0]["source"] == "recording.json: final.traces"


def _crash_inputs(after: dict[str, Any], events: list[str]) -> Inputs:
    settings = crash_limits(1.0)
    data = {
        "job_id": "j1", "settings": settings, "pace_s": 1.0,
        "doomed": {"node": "doomed@h", "pid": 7, "signal": "SIGKILL", "killed_at": 10.0},
        "at_kill": {"record": {"status": "processing", "attempts": 1}},
        "after": {"record": after,
                  "events": [{"type": t, "at": 11.0 + i} for i, t in enumerate(events)]},
        "result": {"status": "FAILURE", "pttl_ms": 1000},
        "trace": {"fate": "failed", "verdict": "failed"},
    }
    return Inputs({"name": "worker-crash", "data": data}, 0, [], (0.0, 100.0), "m.json", {})


def test_a_redelivered_job_timed_out_by_the_scenario_limit_is_not_a_defect() -> None:
    # Given a loaded machine: the rescuer's attempt ran past the scenario's own soft limit
    events = ["created", "started", "redelivered", "started", "failed"]
    after = {"status": "failed", "attempts": 2, "worker": "rescuer@h",
             "error": f"timed out after {crash_limits(1.0)['solver_time_limit_s']:g} s"}

    out = worker_crash(_crash_inputs(after, events))

    # Then the redelivery holds, the time-out is described (not blamed on the system)
    assert [f["holds"] for f in out] == [True, True, True, None]
    assert "not lost" in out[-1]["claim"]


def test_a_redelivered_job_failed_for_another_reason_is_a_defect() -> None:
    events = ["created", "started", "redelivered", "started", "failed"]
    after = {"status": "failed", "attempts": 2, "worker": "rescuer@h",
             "error": "worker lost each time"}

    out = worker_crash(_crash_inputs(after, events))

    assert out[1]["holds"] is False


def test_crash_limits_follow_the_pace_the_scenario_sets_not_a_measurement() -> None:
    # the job runs as long as its paced workers make it: limits are that plus a margin
    assert crash_limits(1.0) == {"visibility_timeout_s": 8, "solver_time_limit_s": 6.0,
                                 "solver_hard_time_limit_s": 7.0}
    assert crash_limits(CRASH_PACE_S)["solver_time_limit_s"] == CRASH_PACE_S + CRASH_MARGIN_S
    assert "pace_s" in inspect.signature(crash_limits).parameters


def test_the_scenarios_own_time_out_is_not_shown_never_a_defect() -> None:
    # Given the rescuer's attempt ran past the scenario's own soft limit (a loaded machine)
    events = ["created", "started", "redelivered", "started", "failed"]
    after = {"status": "failed", "attempts": 2, "worker": "rescuer@h",
             "error": f"timed out after {crash_limits(1.0)['solver_time_limit_s']:g} s"}
    items = worker_crash(_crash_inputs(after, events))

    # Then the scenario's verdict is "not shown", with the reason, and no defect
    verdict = _conclusion({"name": "worker-crash"}, items)
    assert verdict["verdict"] == NOT_SHOWN
    assert verdict["reasons"] == [items[-1]["not_shown"]]
    assert verdict["reasons"][0].startswith("could not be shown")
    assert "own time limit" in verdict["reasons"][0]
    # and the summary says so in words, not "findings ... contradict the design"
    shown = _scenario(1, {"name": "worker-crash", "findings": items, "conclusion": verdict,
                          "window": {"start_s": 0.0, "end_s": 1.0, "start_iso": "a",
                                     "end_iso": "b"}})
    assert "**Conclusion: ⚠️ not shown.** Could not be shown that the redelivered" in "\n".join(
        shown)
    assert "contradict" not in "\n".join(shown)


def test_a_kill_after_the_job_finished_is_not_shown_with_the_reason() -> None:
    inputs = _crash_inputs({"status": "completed", "attempts": 1}, ["created", "started",
                                                                     "completed"])
    inputs.data["at_kill"] = {"record": {"status": "completed", "attempts": 1}}

    items = worker_crash(inputs)

    verdict = _conclusion({"name": "worker-crash"}, items)
    assert verdict["verdict"] == NOT_SHOWN
    assert "killed the worker when the job was completed" in verdict["reasons"][0]


def test_a_completed_redelivery_names_its_paced_attempt_time() -> None:
    events = ["created", "started", "redelivered", "started", "completed"]
    after = {"status": "completed", "attempts": 2, "worker": "rescuer@h",
             "started_at": 20.0, "finished_at": 21.04}

    items = worker_crash(_crash_inputs(after, events))

    assert items[1]["holds"] is True
    assert "its attempt ran 1.040 s (paced at 1 s)" in items[1]["claim"]