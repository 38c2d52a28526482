"""Job id arguments: a whole id or a unique prefix of at least 8 characters, one rule.

Every command that takes job ids (status, trace, cancel, requeue, restore)
resolves them here, all before it acts on any (store.ids does the lookup,
shared with the API):

- a text with characters no id has, a text shorter than a prefix needs that
  is no job's id, or a prefix of several jobs' ids: a usage error (exit 2,
  one line, the candidates named);
- a text no job's id is or begins with: not found (exit 3), with trace's
  verdict (not_found_line) and where to look next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import typer

from jobtrail.cli.context import runtime, trace_sources
from jobtrail.cli.output import exit_with
from jobtrail.errors import AmbiguousJobIdError, InvalidIdError
from jobtrail.keys import JOB_ID_PATTERN
from jobtrail.models import Fate
from jobtrail.store.ids import check_prefix_length, match_job_id
from jobtrail.trace import trace_job

__all__ = ["EXIT_NOT_FOUND", "ID_HELP", "check_id", "not_found_line", "resolve_id",
           "resolve_ids"]

#: The help text of a job id argument.
ID_HELP = "The job id (the Celery task id), or a unique prefix of 8 or more characters."
#: Exit status of a command given an id that names no job.
EXIT_NOT_FOUND = 3
#: Ids named in the error of an ambiguous prefix.
_SHOWN = 3


def check_id(text: str, param_hint: str = "JOB_ID") -> str:
    """Return *text* if it may be a job id or a prefix of one.

    Raises:
        typer.BadParameter: It has characters no job id has.
    """
    if not JOB_ID_PATTERN.match(text):
        raise typer.BadParameter(f"{text!r} is not a job id", param_hint=param_hint)
    return text


def resolve_ids(ctx: typer.Context, texts: Sequence[str], param_hint: str = "JOB_IDS", *,
                archived: Callable[[str], list[str]] | None = None,
                ) -> tuple[list[str], list[str]]:
    """Return (whole ids, texts that name no job) for *texts*, each in the order given.

    Every text is checked before any is looked up, so a usage error stops the
    command before it has done anything.

    Args:
        ctx: The command's context (its runtime's main DB).
        texts: Ids or prefixes as typed.
        param_hint: The argument's name in a usage error.
        archived: For restore: the archived ids *text* is or begins (at most
            four), asked when the main DB knows none.

    Raises:
        typer.BadParameter: A text is not an id, is shorter than a prefix needs
            and no job's id, or begins several jobs' ids.
        RedisUnavailableError: The main DB could not be reached.
        ArchiveError: *archived* could not read the archive.
    """
    for text in texts:
        check_id(text, param_hint)
    rt = runtime(ctx)
    ids: list[str] = []
    missing: list[str] = []
    for text in texts:
        try:
            job_id = match_job_id(rt.clients.main, rt.keys, text)
            if job_id is None and archived is not None:
                job_id = _only(text, archived(text))
        except AmbiguousJobIdError as exc:
            raise typer.BadParameter(str(exc), param_hint=param_hint) from None
        if job_id is not None:
            ids.append(job_id)
        else:
            try:
                check_prefix_length(text)
            except InvalidIdError as exc:
                raise typer.BadParameter(str(exc), param_hint=param_hint) from None
            missing.append(text)
    return ids, missing


def _only(text: str, matches: list[str]) -> str | None:
    if len(matches) > 1:
        raise AmbiguousJobIdError(text, matches[:_SHOWN], more=len(matches) > _SHOWN)
    return matches[0] if matches else None


def resolve_id(ctx: typer.Context, text: str, param_hint: str = "JOB_ID", *,
               missing_ok: bool = False) -> str:
    """Return the whole job id *text* names; exit 3 (not_found_line) when it names none.

    Args:
        missing_ok: Return *text* as typed instead (trace: other stores may know it).

    Raises:
        typer.BadParameter: As resolve_ids().
        RedisUnavailableError: The main DB could not be reached.
    """
    ids, missing = resolve_ids(ctx, [text], param_hint)
    if missing and not missing_ok:
        exit_with(not_found_line(ctx, text), EXIT_NOT_FOUND)
    return ids[0] if ids else text


def not_found_line(ctx: typer.Context, job_id: str) -> str:
    """Return the one line of a job id whose record is not in the main DB.

    It is `job ID not found: <trace's verdict>`, then the command that restores
    a purged job, or that shows the evidence of one that went another way.
    """
    result = trace_job(trace_sources(ctx), job_id)
    if result.fate is Fate.PURGED:
        hint = f"; restore it with: jobtrail restore {job_id}"
    elif result.fate is not Fate.UNKNOWN:
        hint = f"; jobtrail trace {job_id} shows the evidence"
    elif not result.evidence.unreachable:
        hint = (" (trace looked in the main DB, the broker, the results and the archive of "
                "purged jobs)")
    else:
        hint = ""
    return f"job {job_id} not found: {result.verdict}{hint}"
