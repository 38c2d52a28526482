"""The CLI's tables read well at 80 and 120 columns: ids whole on one line, no word split.

Each view is rendered as its command renders it, on a console of the given
width, with realistic data; then every line must fit, every id must stand on
one line, and every word on screen must be a word of the data or its headers,
whole, or one cut with an ellipsis (`right-ang…`), never folded mid-word.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable

import pytest
import redis
from rich.console import Console, Group, RenderableType

from jobtrail.cli import output
from jobtrail.cli.demo import answer_view
from jobtrail.cli.doctor import findings_view
from jobtrail.cli.monitor import diff_view
from jobtrail.cli.output import job_table, render_job, wrapped
from jobtrail.cli.retention import policies_table, runs_view
from jobtrail.cli.trace import workers_table
from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.doctor import Finding, Severity
from jobtrail.keys import KeySpace
from jobtrail.models import Job, JobStatus, RetentionRun, WorkerHeartbeat
from jobtrail.monitor.diff import ChangeKind, KeyChange, RemovalCause, SnapshotDiff
from jobtrail.store import JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from tests.cli.test_cli import run

NOW = now_s()
IDS = [str(uuid.UUID(int=n * 0x1111_2222_3333_4444_5555)) for n in range(1, 6)]
_RULES = re.compile(r"[│┃━╇─┼╷╵┳┻┏┓┗┛┡┩]+")


def _jobs() -> list[Job | tuple[str, str]]:
    done = {"text": "right-angled: 3^2 + 4^2 = 5^2 (9 + 16 = 25)", "steps": [
        "read as: a triangle with sides 3, 4 and 5", "3^2 + 4^2 = 9 + 16 = 25 = 5^2",
        "a^2 + b^2 = c^2, so by the converse of Pythagoras' theorem the angle opposite the "
        "longest side is a right angle"],
        "verification": {"status": "verified", "method": "exact arithmetic",
                         "detail": "the sides satisfy Pythagoras' theorem exactly"}}
    return [
        Job(IDS[0], "Prove that a triangle with sides 3, 4 and 5 is right-angled",
            JobStatus.COMPLETED, NOW - 60, kind="geometry", started_at=NOW - 59,
            finished_at=NOW - 58, worker="jobtrail-41234@laptop", attempts=1, result=done),
        Job(IDS[1], "Find the derivative of x^3 sin(x)", JobStatus.PROCESSING, NOW - 5,
            kind="derivative", started_at=NOW - 4, worker="jobtrail-41234@laptop", attempts=2),
        Job(IDS[2], "__import__('os')", JobStatus.FAILED, NOW - 3, finished_at=NOW - 2,
            error="cannot read the problem: unexpected character '_' at position 0"),
        (IDS[3], "deleted_externally: the record is gone and no tombstone says why"),
    ]


def _views(width: int) -> Iterable[tuple[str, RenderableType, set[str]]]:
    jobs = _jobs()
    yield "list", job_table(jobs, width=width), set(IDS[:4])
    answers = [answer_view(j) for j in jobs[:3] if isinstance(j, Job)]
    yield "demo's answers", Group(*answers), set()
    beats = [WorkerHeartbeat("jobtrail-41234@laptop", 41234, NOW - 600, NOW - 3,
                             (IDS[1], IDS[4]), True, polled_at=NOW - 1, read_at=NOW),
             WorkerHeartbeat("repro-rescuer@laptop", 5120, NOW - 900, NOW - 400, (), False)]
    yield "workers", workers_table(beats, width=width), (
        {b.name for b in beats} | ({IDS[1], IDS[4]} if width >= 120 else set()))
    policies = [{"name": "old-completed", "selected": 12, "oldest_finished_at": NOW - 9e5,
                 "newest_finished_at": NOW - 6.1e5, "sample_ids": [], "stuck": {},
                 "selector": {"status": ["completed"], "older_than_s": 604800.0,
                              "keep_last": 100, "max_per_run": None}},
                {"name": "failed-and-cancelled", "selected": 0, "oldest_finished_at": None,
                 "newest_finished_at": None, "sample_ids": [], "stuck": {"processing": 2},
                 "selector": {"status": ["failed", "cancelled"], "older_than_s": 2592000.0,
                              "keep_last": 0, "max_per_run": 500}}]
    yield "retention policies", policies_table(policies), {p["name"] for p in policies}
    changes = [KeyChange(f"job:{IDS[0]}", "job", "hash", ChangeKind.REMOVED, "completed",
                         None, RemovalCause.DEL, "purge", NOW - 1),
               KeyChange(f"job:{IDS[1]}", "job", "hash", ChangeKind.STATUS_CHANGED, "pending",
                         "processing"),
               KeyChange(f"tombstone:{IDS[0]}", "tombstone", "hash", ChangeKind.ADDED)]
    yield "monitor diff", diff_view(SnapshotDiff("main", NOW - 10, NOW, changes, {}),
                                    width=width), {c.key for c in changes}
    long_keys = [KeyChange(f"celery-task-meta-{IDS[2]}", "celery_result", "string",
                           ChangeKind.REMOVED, None, None, RemovalCause.EXPIRED, "redis", NOW)]
    yield "monitor diff (results)", diff_view(SnapshotDiff("results", NOW - 10, NOW,
                                                           long_keys, {}), width=width), {
        c.key for c in long_keys}
    findings = [
        Finding("eviction", Severity.OK, "main (db 10) and broker (db 11) on 127.0.0.1:6390: "
                "maxmemory-policy noeviction, nothing is evicted"),
        Finding("pending-without-message", Severity.WARNING,
                "2 pending jobs have no message in the broker for over 60 s",
                {"sample": IDS[:2], "count": 14},
                "jobtrail requeue ID resends the task of each (jobtrail trace ID says why)"),
    ]
    yield "doctor", findings_view(findings), set(IDS[:2])
    runs = [RetentionRun(IDS[4], "purge", NOW - 30, NOW - 29, "root", "laptop",
                         "old-completed", {}, {"selected": 12, "archived": 12, "purged": 12,
                                               "skipped": 0}, "sqlite:///archive.db", "done")]
    yield "retention history", runs_view(runs, width=width), {IDS[4]}
    yield "purge's sample ids", wrapped([f"sample ids: {', '.join(IDS)}",
                                         "archive: sqlite:////home/me/.local/state/jobtrail/"
                                         "archive.db"], indent=2), set(IDS)


def _console(width: int) -> Console:
    """A console like the CLI's `out`, *width* columns wide, recording what it prints."""
    return Console(width=width, record=True, emoji=False, highlight=False, soft_wrap=True,
                   file=io.StringIO())


def _render(view: RenderableType, width: int) -> str:
    console = _console(width)
    console.print(view)
    return console.export_text()


def _vocabulary(text: str) -> set[str]:
    return set(text.split())


def _assert_reads_well(name: str, shown: str, ids: set[str], width: int, words: set[str]
                       ) -> None:
    lines = shown.splitlines()
    assert all(len(line) <= width for line in lines), (name, shown)
    for id_ in ids:  # whole, on one line
        assert any(id_ in line for line in lines), (name, id_, shown)
    for line in lines:
        for token in _RULES.sub(" ", line).split():
            if not re.search(r"[a-z]", token, flags=re.I):
                continue  # a number or a time: no word to break (and it may tick between runs)
            whole = token in words
            cut = token.endswith("…") and any(w.startswith(token[:-1]) for w in words)
            assert whole or cut, (name, f"{token!r} is not a whole word", shown)


def _words_of(width: int) -> set[str]:
    """Every word the data and headers of the views hold (the reference vocabulary)."""
    text = " ".join(_render(v, 4000) for _n, v, _i in _views(width))
    return _vocabulary(_RULES.sub(" ", text))


@pytest.mark.parametrize("width", [80, 120])
def test_tables_read_well(width: int) -> None:
    words = _words_of(width)
    for name, view, ids in _views(width):
        _assert_reads_well(name, _render(view, width), ids, width, words)


@pytest.mark.parametrize("width", [80, 120])
def test_status_reads_well(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _jobs()[0]
    assert isinstance(job, Job)
    shown = {}
    for columns in (4000, width):
        console = _console(columns)
        monkeypatch.setattr(output, "out", console)
        render_job(job)
        shown[columns] = console.export_text()
    words = _vocabulary(shown[4000])
    _assert_reads_well("status", shown[width], {job.id}, width, words)


@pytest.mark.parametrize("command", [("trace", "{id}"), ("list",), ("workers",),
                                     ("doctor",), ("status", "{id}")])
def test_commands_read_well_at_80_columns(settings: Settings, store: JobStore,
                                          main_db: redis.Redis, keys: KeySpace,
                                          command: tuple[str, ...]) -> None:
    # Given a job started by a live worker with a long node name
    job = store.create("Find the derivative of x^3 sin(x) with respect to x, please")
    store.start(job.id, worker="jobtrail-4123456@build-host-with-a-long-name")
    HeartbeatStore(main_db, keys).beat("jobtrail-4123456@build-host-with-a-long-name",
                                       pid=4123456, started_at=now_s(), jobs=[job.id],
                                       interval_s=30, polled_at=now_s())
    args = [a.format(id=job.id) for a in command]

    # When the command prints on a wide and on an 80-column terminal
    wide = run(settings, *args, env={"COLUMNS": "4000"})
    narrow = run(settings, *args, env={"COLUMNS": "80"})

    # Then at 80 every id and node name is whole on a line, and no word is split (workers
    # lays out blocks at 80 and a table when wide: its words are checked in-process above)
    assert narrow.returncode == wide.returncode and narrow.returncode in (0, 1), narrow.stderr
    words = _vocabulary(_RULES.sub(" ", wide.stdout if command[0] != "workers" else
                                   narrow.stdout))
    node = "jobtrail-4123456@build-host-with-a-long-name"
    named = {"trace": {node}, "list": {job.id}, "workers": {node, job.id}, "doctor": set(),
             "status": {job.id, node}}[command[0]]
    _assert_reads_well(" ".join(command), narrow.stdout, named, 80, words)


@pytest.mark.parametrize("command", [("trace", "{id}"), ("workers",), ("status", "{id}")])
def test_a_cloud_host_name_stays_whole_at_80_columns(settings: Settings, store: JobStore,
                                                     main_db: redis.Redis, keys: KeySpace,
                                                     command: tuple[str, ...]) -> None:
    # Given a job on a worker named as on a cloud host: wider than trace's details column
    node = "jobtrail-12345@ip-172-31-45-123.eu-west-1.compute.internal"
    job = store.create("solve x = 1")
    store.start(job.id, worker=node)
    HeartbeatStore(main_db, keys).beat(node, pid=12345, started_at=now_s(), jobs=[job.id],
                                       interval_s=30, polled_at=now_s())
    args = [a.format(id=job.id) for a in command]
    wide = run(settings, *args, env={"COLUMNS": "4000"})
    narrow = run(settings, *args, env={"COLUMNS": "80"})
    # Then the node name and the id are whole on a line at 80, and no word is split
    assert narrow.returncode == 0, narrow.stderr
    words = _vocabulary(_RULES.sub(" ", wide.stdout + narrow.stdout))
    named = {node} if command[0] == "trace" else {node, job.id}
    _assert_reads_well(" ".join(command), narrow.stdout, named, 80, words)


def test_a_long_answer_or_verdict_keeps_its_list_row_short_at_80_columns() -> None:
    # Given a failed job with a long error and an orphan index entry with trace's long verdict
    long_text = " ".join(["the record is gone and no tombstone says why, nor does the archive"] * 6)
    jobs: list[Job | tuple[str, str]] = [
        Job(IDS[0], "x = 1", JobStatus.FAILED, NOW - 3, finished_at=NOW - 2, error=long_text),
        (IDS[1], "deleted_externally: " + long_text)]
    # When the list table is printed at 80 columns
    shown = _render(job_table(jobs, width=80), 80)
    # Then each row is a few lines (the table: its header, two rows and its rule), cut with an
    # ellipsis at a word, the ids whole
    lines = shown.splitlines()
    assert len(lines) <= 4 + 2 * 8, shown
    assert all(any(id_ in line for line in lines) for id_ in IDS[:2])
    assert shown.count("…") >= 2 and "tombstone says" in shown
