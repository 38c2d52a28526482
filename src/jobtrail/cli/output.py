"""Rendering for the CLI: Rich consoles, job tables, --json, and errors as one line.

Invariant: data goes to stdout, progress and errors to stderr; no command
shows a traceback for a JobtrailError or a usage error.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import select
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, NoReturn, cast

from rich.console import Console, RenderableType
from rich.markup import escape as rich_escape
from rich.padding import Padding
from rich.table import Table

from jobtrail.models import Job

__all__ = ["BROKEN_PIPE", "WIDE", "Interrupts", "add_id_column", "add_label_column",
           "add_text_column", "data_table", "err", "escape", "exit_with",
           "interrupt_between_steps", "job_table", "out", "print_json", "progress_bar",
           "reflow_help", "render_job", "wrapped", "write_lines"]

class _BlanksAtLineEndsDropped:
    """stdout (as it is at each write) without the spaces that end a line.

    Rich pads every cell of a table or grid to its column's width, so a block
    printed through it (`status`, `list`, `demo`'s answers) ended its lines in
    spaces, which land in a file or a pipe. Spaces are held until a character
    that is not a space follows on the same line; a newline drops them.
    """

    def __init__(self) -> None:
        self._held = ""

    def write(self, text: str) -> int:
        kept: list[str] = []
        for n, part in enumerate(text.split("\n")):
            if n:
                kept.append("\n")
                self._held = ""
            body = part.rstrip(" ")
            if body:
                kept.append(self._held + body)
                self._held = part[len(body):]
            else:
                self._held += part
        sys.stdout.write("".join(kept))
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()

    def fileno(self) -> int:
        return sys.stdout.fileno()

    @property
    def encoding(self) -> str:
        return getattr(sys.stdout, "encoding", None) or "utf-8"


# emoji off: `:thumbs_up:` in a problem or `:m:` in a key (`stats:m:...`) is data, not an emoji code
# (the cast: Rich uses write, flush, isatty, fileno and encoding of its file, all here)
out = Console(file=cast("IO[str]", _BlanksAtLineEndsDropped()), highlight=False, soft_wrap=True,
              emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def progress_bar(*, disable: bool = False) -> Any:
    """Return a Rich Progress (description, bar, done/total, elapsed) on stderr.

    It shows only on a terminal (and not when *disable*), and clears itself
    when done, so piped output and --json stay clean.
    """
    # lazy: rich.progress costs start-up time that commands without a bar need not pay
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True,
                    disable=disable or not err.is_terminal)


def exit_with(message: str, code: int = 1) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with *code*."""
    line = " ".join(_shown(message).split())
    sys.stderr.write(f"error: {line}\n")
    raise SystemExit(code)


def exit_with_lines(messages: list[str], code: int = 1) -> NoReturn:
    """Print each message as its own `error: <message>` line on stderr and exit with *code*.

    For a command refused for several ids (cancel, requeue): one line each, not one line
    of all of them joined (200 ids made a 3.7 KB line).
    """
    for message in messages:
        sys.stderr.write(f"error: {' '.join(_shown(message).split())}\n")
    raise SystemExit(code)


def reflow_help(command: Any) -> None:
    """Put each paragraph of *command*'s help, and of every command under it, on one line.

    Typer joins a docstring's first paragraph but keeps the hard wraps of the
    others, so a docstring wrapped at 100 columns showed broken lines at any
    other width; one line a paragraph, Rich wraps it at the terminal's edge.
    A paragraph marked ``\\b`` (click's "keep as written") and what follows
    ``\\f`` (left out of the help) stay as they are.
    """
    if command.help:
        shown, cut, rest = inspect.cleandoc(command.help).partition("\f")
        command.help = "\n\n".join(
            p if p.startswith("\b") else " ".join(p.split())
            for p in shown.split("\n\n")) + cut + rest
    for sub in getattr(command, "commands", {}).values():
        reflow_help(sub)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM (timeout, systemd, docker stop) stop a command like Ctrl-C does.

    Without it SIGTERM ends the process at once: a purge or restore leaves its
    audit row "running", a reproduction orphans its worker and redis-server.
    With it, the command's own KeyboardInterrupt handling runs (batches in
    flight finish, audit rows are ended, children stopped); the previous
    handler is back afterwards.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Interrupts:
    """The signals interrupt_between_steps() holds: call it to ask whether one came.

    Attributes:
        signum: The first held signal's number (SIGINT 2, SIGTERM 15); 0 before one came.
        count: How many came.
        raise_again: Whether a second one raises KeyboardInterrupt (the default), or is
            only counted, for a step that checks `count` itself (write_lines' give_up).
    """

    def __init__(self) -> None:
        self.signum = 0
        self.count = 0
        self.raise_again = True

    def __call__(self) -> bool:
        return self.count > 0

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, the shell's convention: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


@contextmanager
def interrupt_between_steps() -> Iterator[Interrupts]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the step in flight has ended.

    Yields an Interrupts that tells whether one came (and which); the command
    checks it between steps (a chunk of records and their messages) and stops
    there, so a KeyboardInterrupt never lands inside Redis or Celery code
    (where it can be swallowed, or leave records without their messages), and
    SIGTERM no longer ends the process before it has printed what it did. A
    second signal raises KeyboardInterrupt at once (unless `raise_again` is
    off), so a step that hangs can still be left. The previous handlers are
    back afterwards. Main thread only.
    """
    came = Interrupts()

    def hold(signum: int, _frame: object) -> None:
        came.count += 1
        if came.signum and came.raise_again:
            raise KeyboardInterrupt(f"signal {signum}")
        came.signum = came.signum or signum

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield came
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: Bytes a pipe takes whole, without blocking once poll() says it is writable (POSIX
#: PIPE_BUF is at least 512; Linux says writable with a free 4 KiB page).
_ATOMIC_WRITE = 512
#: Why write_lines stopped when its reader closed stdout. What a pipe held unread then is
#: dropped with it: the count of lines written is not the count its reader read.
BROKEN_PIPE = "stdout was closed (broken pipe)"
#: How often a write that waits for stdout asks give_up, seconds.
_GIVE_UP_POLL_S = 0.1


def write_lines(lines: Sequence[str], *,
                give_up: Callable[[], bool] = lambda: False) -> tuple[int, str | None]:
    """Write *lines* to stdout, one a line, as they are (no markup), and count what got there.

    They go straight to stdout's file descriptor (after what Python holds for it
    is flushed), in writes of whole lines of at most _ATOMIC_WRITE bytes, each
    made once poll() says stdout takes it: a pipe takes such a write whole and
    at once, so the count is exactly the lines the pipe, the file or the
    terminal took, even when the writing is cut off (a pipe closed by its
    reader drops what it held unread: BROKEN_PIPE). No signal handler has to
    raise to leave a write that waits (a reader that stopped reading): *give_up*
    is asked while it waits.

    Args:
        lines: Texts without a newline (job ids).
        give_up: Asked every _GIVE_UP_POLL_S while stdout takes nothing; True ends
            the writing there (interrupt_between_steps' second signal).

    Returns:
        (how many of *lines* were written, in order; None when all were, else why
        the writing stopped: BROKEN_PIPE, after which stdout
        points at /dev/null so that Python's exit flush is silent, or "interrupted
        while printing" when *give_up* said so).
    """
    written = 0
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
        ready = select.poll()
        ready.register(fd, select.POLLOUT)
        for done, piece in _pieces([(line + "\n").encode("utf-8", "surrogateescape")
                                    for line in lines]):
            while piece:
                while not ready.poll(_GIVE_UP_POLL_S * 1000):
                    if give_up():
                        return written, "interrupted while printing"
                piece = piece[os.write(fd, piece):]  # a file or a tty may take part of a piece
            written = done
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return written, BROKEN_PIPE
    return written, None


def _pieces(lines: list[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield (lines written once this piece is, piece): whole lines, _ATOMIC_WRITE bytes at most
    each unless one line alone is longer."""
    start = size = 0
    for n, line in enumerate(lines):
        if n > start and size + len(line) > _ATOMIC_WRITE:
            yield n, b"".join(lines[start:n])
            start, size = n, 0
        size += len(line)
    if start < len(lines):
        yield len(lines), b"".join(lines[start:])


def print_json(data: Any) -> None:
    """Print *data* as JSON on stdout (one document, indented, UTF-8)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_STATUS_STYLE = {"pending": "yellow", "processing": "cyan", "completed": "green",
                 "failed": "red", "cancelled": "bright_black"}


def status_text(status: str) -> str:
    """Return *status* with its Rich colour markup."""
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


_VERIFICATION_STYLE = {"verified": "green", "unverified": "yellow", "contradicted": "red"}


def verification_text(verification: dict[str, Any] | None) -> str:
    """Return a job's verification as one Rich line: coloured status, method: detail."""
    if not verification:
        return "[yellow]unverified[/] (recorded before answers were verified)"
    status = str(verification.get("status", "unverified"))
    style = _VERIFICATION_STYLE.get(status, "white")
    method = escape(str(verification.get("method", "")))
    detail = escape(str(verification.get("detail", "")))
    return f"[{style}]{escape(status)}[/] ({method}): {detail}"


def render_job(job: Job) -> None:
    """Print one job as a labelled block."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # wraps between words; only a word wider than it folds
    table.add_row("id", job.id)
    table.add_row("status", status_text(job.status.value))
    table.add_row("problem", escape(job.problem))
    table.add_row("kind", job.kind or "-")
    if job.answer:
        table.add_row("answer", escape(job.answer))
        table.add_row("verification", verification_text(job.verification))
    if job.error:
        table.add_row("error", escape(job.error))
    table.add_row("attempts", str(job.attempts))
    table.add_row("worker", job.worker or "-")
    if job.batch:  # the batch message that carries it (a single job's block is unchanged)
        table.add_row("batch", job.batch)
    table.add_row("created", _when(job.created_at))
    table.add_row("started", _when(job.started_at))
    table.add_row("finished", _when(job.finished_at))
    out.print(table)
    if job.steps:
        steps = Table.grid(padding=(0, 1), pad_edge=True)
        steps.add_column(no_wrap=True, justify="right")
        steps.add_column(overflow="fold")
        for i, step in enumerate(job.steps, 1):
            steps.add_row(f"{i}.", escape(step))
        out.print(steps)


#: Console width from which job tables add their optional columns (kind).
WIDE = 100


def data_table(title: str | None = None) -> Table:
    """Return an empty table in the CLI's style: no outer edge, `│` between columns.

    Every column goes in through add_id_column(), add_label_column() or
    add_text_column(), which say how it gives way at 80 columns: an id never,
    a label by an ellipsis, text by wrapping between words.
    """
    return Table(title=title, title_justify="left", show_edge=False, pad_edge=False)


def add_id_column(table: Table, header: str, ids: Iterable[str]) -> None:
    """Add a column of ids that never wraps: an id is copied whole, from one line.

    Its minimum width is the longest id, so Rich narrows the other columns
    instead of cutting or wrapping an id. A cell may hold several ids, one a line.
    """
    longest = max((len(line) for i in ids for line in i.splitlines()), default=0)
    table.add_column(header, no_wrap=True, min_width=max(longest, len(header)))


def add_label_column(table: Table, header: str, *, min_width: int | None = None) -> None:
    """Add a column of short values (a status, a time, a count): one line each, cut with `…`
    when the table has no room, never folded into a second line mid-word."""
    table.add_column(header, no_wrap=True, overflow="ellipsis",
                     min_width=len(header) if min_width is None else min_width)


def add_text_column(table: Table, header: str) -> None:
    """Add a column of free text (a problem, an answer, a cause): it wraps between words,
    and a word longer than the column ends in `…` instead of being split."""
    table.add_column(header, overflow="ellipsis",
                     min_width=max(len(word) for word in header.split()))


def wrapped(lines: Iterable[str], *, indent: int = 0) -> RenderableType:
    """Return *lines* (Rich markup) as a block that wraps between words at the console's
    width, each continuation under its line's start (*indent* columns in): a list of
    ids breaks after a comma, never inside an id, as a terminal's own wrap would."""
    grid = Table.grid()
    grid.add_column(overflow="fold")  # only a word wider than the terminal folds
    for line in lines:
        grid.add_row(line)
    return Padding(grid, (0, 0, 0, indent)) if indent else grid


def job_table(jobs: Iterable[Job | tuple[str, str]], *, title: str | None = None,
              width: int | None = None) -> Table:
    """Return a table of jobs: id, status, kind, problem, answer or error.

    A row given as (id, verdict) is an index entry whose record is gone: its
    status reads "record missing" and the verdict (trace's) takes the answer's place.
    Below WIDE columns (*width*, default the console's) the kind is left out,
    so that problem and answer keep room to be read.
    """
    jobs = list(jobs)
    wide = (out.width if width is None else width) >= WIDE
    table = data_table(title)
    add_id_column(table, "id", (j[0] if isinstance(j, tuple) else j.id for j in jobs))
    table.add_column("status", overflow="ellipsis", min_width=len("processing"))
    if wide:
        add_label_column(table, "kind")
    for col in ("problem", "answer / error"):
        add_text_column(table, col)
    for job in jobs:
        if isinstance(job, tuple):
            table.add_row(job[0], "[bold red]record missing[/]", *(["-"] if wide else []), "-",
                          escape(clipped(job[1])))
            continue
        table.add_row(job.id, status_text(job.status.value), *([job.kind or "-"] if wide else []),
                      escape(clipped(job.problem)),
                      escape(clipped(job.answer or job.error or "-")))
    return table


#: A list row shows this many characters of a text; `status ID` and `trace ID` show it whole.
ROW_TEXT_CHARS = 80


def clipped(text: str, limit: int = ROW_TEXT_CHARS) -> str:
    """Return *text* cut to at most *limit* characters at a word boundary, ending in `…`
    when cut, so that one long answer or verdict does not make a table row a page tall."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    head = cut.rsplit(" ", 1)[0] if " " in cut[limit // 2:] else cut
    return head.rstrip(" ,;:") + "…"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """Make untrusted *text* safe to print: Rich markup escaped, control characters shown.

    Problem text and errors come from users; an ESC sequence in them must not
    drive the terminal, so every C0/C1 control character but tab and newline
    prints as its `\\xNN` code.
    """
    return rich_escape(_shown(text))


def _shown(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
