"""The files of a monitor run, and the snapshot file format.

A run started at `<ts>` (UTC, `%Y%m%dT%H%M%SZ`) writes into its directory:

- `monitor_<ts>.log`: a human timeline, one line per state change;
- `db_queries_<ts>.log`: every Redis command the monitor sent, with its
  duration, and every keyspace event received;
- `monitoring_report_<ts>.json`: one JSON document holding every snapshot
  record (the first of each DB with all its entries, the later ones with
  their diff to the previous), a running summary and `complete`.

Invariant: `monitoring_report_<ts>.json` is a complete JSON document at every
moment. Each snapshot is added by writing a new file beside it (the bytes
written so far are copied in the kernel, then the new record and the new
summary are appended) and renaming it over the old one, which POSIX makes
atomic; a monitor killed at any point leaves the report as of its last
snapshot. Memory stays one record; the copy costs disk I/O linear in the
report, which holds one full keyspace per DB plus the changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from jobtrail.clock import now_s
from jobtrail.errors import MonitorError
from jobtrail.keys import KeySpace
from jobtrail.monitor.snapshot import Snapshot

__all__ = [
    "REPORT_FORMAT",
    "SNAPSHOTS_FORMAT",
    "QueryLog",
    "ReportWriter",
    "RunPaths",
    "Timeline",
    "read_report",
    "read_snapshots",
    "snapshot_record",
    "stamp",
    "write_snapshots",
]

REPORT_FORMAT = "jobtrail.monitor.report/1"
SNAPSHOTS_FORMAT = "jobtrail.monitor.snapshots/1"
_CHUNK = 10_000


def stamp(at: float) -> str:
    """Return *at* (epoch s) as the run's file-name timestamp, `20240131T120000Z`."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


def iso(at: float) -> str:
    """Return *at* (epoch s) as `2024-01-31T12:00:00.123Z`."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class RunPaths:
    """The three files of a run started at *started_at* in *out_dir*."""

    log: Path
    queries: Path
    report: Path

    @classmethod
    def create(cls, out_dir: Path, started_at: float) -> RunPaths:
        """Return the paths for a run started at *started_at* (epoch s), creating *out_dir*."""
        out_dir.mkdir(parents=True, exist_ok=True)
        ts = stamp(started_at)
        return cls(out_dir / f"monitor_{ts}.log", out_dir / f"db_queries_{ts}.log",
                   out_dir / f"monitoring_report_{ts}.json")


class _LineFile:
    """A line-buffered text file shared by threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fp: IO[str] = open(path, "a", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                                 buffering=1)

    def write(self, line: str) -> None:
        with self._lock:
            if not self._fp.closed:
                self._fp.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._fp.close()


class QueryLog(_LineFile):
    """`db_queries_<ts>.log`: `<iso time> [<db>] cmd <duration ms> <command> -> <reply>`
    and `<iso time> [<db>] event <event> <key>` lines."""

    def command(self, db: str, command: str, duration_s: float, reply: str) -> None:
        """Record one command sent to *db* and how long its reply took (seconds)."""
        self.write(f"{iso(now_s())} [{db}] cmd {duration_s * 1000:.3f} ms {command} -> {reply}")

    def event(self, db: str, event: str, key: str, at: float) -> None:
        """Record one keyspace event received at *at* (epoch s)."""
        self.write(f"{iso(at)} [{db}] event {event} {key!r}")


class Timeline(_LineFile):
    """`monitor_<ts>.log`: `<iso time> [<db>] <what happened>` lines."""

    def line(self, at: float, db: str, text: str) -> None:
        """Add one timeline line."""
        self.write(f"{iso(at)} [{db}] {text}")


def _entries_json(snapshot: Snapshot) -> Iterator[str]:
    """Yield the JSON text of `{key: [type, expire_at_ms, status], ...}` in chunks."""
    yield "{"
    chunk: dict[str, Any] = {}
    first = True
    for key, value in snapshot.iter_entries():
        chunk[key] = value
        if len(chunk) >= _CHUNK:
            yield ("" if first else ", ") + json.dumps(chunk)[1:-1]
            first, chunk = False, {}
    if chunk:
        yield ("" if first else ", ") + json.dumps(chunk)[1:-1]
    yield "}"


def snapshot_record(snapshot: Snapshot, keys: KeySpace, **extra: Any) -> dict[str, Any]:
    """Return a snapshot's header, its counts by type and by kind, and *extra* fields."""
    return {**snapshot.header(), "counts_by_type": snapshot.counts_by_type(),
            "counts_by_kind": snapshot.counts_by_kind(keys), **extra}


def _write_record(write: Callable[[str], object], record: Mapping[str, Any],
                  snapshot: Snapshot | None) -> None:
    """Write *record* as JSON (ASCII), with *snapshot*'s entries streamed in as `entries`."""
    text = json.dumps(record)
    if snapshot is None:
        write(text)
        return
    write(text[:-1] + ', "entries": ')
    for part in _entries_json(snapshot):
        write(part)
    write("}")


def write_snapshots(fp: IO[str], snapshots: Iterable[Snapshot], keys: KeySpace) -> None:
    """Write a snapshot file: `{"format", "snapshots": [record + entries, ...]}`."""
    fp.write(json.dumps({"format": SNAPSHOTS_FORMAT})[:-1] + ', "snapshots": [\n')
    for i, snapshot in enumerate(snapshots):
        if i:
            fp.write(",\n")
        _write_record(fp.write, snapshot_record(snapshot, keys), snapshot)
    fp.write("\n]}\n")


def read_snapshots(path: Path) -> list[Snapshot]:
    """Read the snapshots of a file written by write_snapshots (`monitor snapshot`).

    A monitoring report is accepted too: its first snapshot of each DB (the
    one stored with all its entries) is returned.

    Raises:
        MonitorError: The file cannot be read or is not a snapshot file.
    """
    try:
        with open(path, encoding="utf-8") as fp:
            data = json.load(fp)
    except (OSError, ValueError) as exc:
        raise MonitorError(f"cannot read snapshot file {path}: {exc}") from exc
    snapshots = data.get("snapshots") if isinstance(data, dict) else None
    if not isinstance(snapshots, list):
        raise MonitorError(f"{path} is not a jobtrail snapshot file (it holds no snapshots; "
                           "write one with `jobtrail monitor snapshot --out FILE`)")
    try:
        return [Snapshot.from_dict(r) for r in snapshots if isinstance(r, dict) and "entries" in r]
    except (KeyError, TypeError, ValueError) as exc:
        raise MonitorError(f"{path} is not a jobtrail snapshot file (a snapshot lacks "
                           f"{exc!s})") from exc


def read_report(path: Path) -> dict[str, Any]:
    """Return a monitoring report as parsed JSON.

    Raises:
        MonitorError: The file cannot be read or is not a report.
    """
    try:
        with open(path, encoding="utf-8") as fp:
            data: dict[str, Any] = json.load(fp)
    except (OSError, ValueError) as exc:
        raise MonitorError(f"cannot read report {path}: {exc}") from exc
    if data.get("format") != REPORT_FORMAT:
        raise MonitorError(f"{path} is not a jobtrail monitoring report")
    return data


class ReportWriter:
    """Writes `monitoring_report_<ts>.json`, a valid JSON document after every add().

    Layout: `{"format", <header fields>, "snapshots": [record, ...],
    "summary": {...}, "complete": bool}`.

    Args:
        path: The report's path.
        header: Fields written before `snapshots` (run options, DBs, notices).
    """

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")
        self._records = 0
        self._body_end = 0
        head = json.dumps({"format": REPORT_FORMAT, **header})
        self._prefix = head[:-1] + ', "snapshots": [\n'
        self._commit(None, None, {}, complete=False)

    def _commit(self, record: Mapping[str, Any] | None, snapshot: Snapshot | None,
                summary: Mapping[str, Any], *, complete: bool) -> None:
        with open(self._tmp, "wb") as out:

            def write(text: str) -> None:
                out.write(text.encode("ascii"))  # json.dumps escapes everything else

            if self._body_end == 0:
                write(self._prefix)
            else:
                with open(self.path, "rb") as old:
                    _copy_bytes(old, out, self._body_end)
            if record is not None:
                if self._records:
                    write(",\n")
                _write_record(write, record, snapshot)
                self._records += 1
            body_end = out.tell()
            write("\n],\n" + json.dumps({"summary": summary, "complete": complete})[1:] + "\n")
        os.replace(self._tmp, self.path)
        self._body_end = body_end

    def add(self, record: Mapping[str, Any], summary: Mapping[str, Any], *,
            entries_of: Snapshot | None = None) -> None:
        """Append one snapshot *record* (with *entries_of*'s entries) and the new summary."""
        self._commit(record, entries_of, summary, complete=False)

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Write the final summary and mark the report complete."""
        self._commit(None, None, summary, complete=True)


def _copy_bytes(src: BinaryIO, dst: BinaryIO, count: int) -> None:
    """Copy the first *count* bytes of *src* to the end of *dst*, in the kernel where possible."""
    dst.flush()
    src_fd, dst_fd = src.fileno(), dst.fileno()
    offset = 0
    with contextlib.suppress(OSError):  # no copy_file_range here: copy below
        while offset < count:
            sent = os.copy_file_range(src_fd, dst_fd, count - offset, offset_src=offset)
            if sent == 0:
                break
            offset += sent
    dst.seek(0, os.SEEK_END)
    while offset < count:
        src.seek(offset)
        block = src.read(min(1 << 20, count - offset))
        if not block:
            raise MonitorError(f"report {src.name} is shorter than expected")
        dst.write(block)
        offset += len(block)
