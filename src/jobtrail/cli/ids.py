"""Job id arguments: a whole id or a unique prefix of at least 8 characters, checked once.

Every command that takes a job id resolves it here (store.ids does the lookup,
shared with the API): a malformed id or an ambiguous prefix is a usage error
(exit 2, one line); a prefix nothing matches stays as typed, so the command's
own lookup reports it not found (exit 3).
"""

from __future__ import annotations

import typer

from jobtrail.cli.context import runtime
from jobtrail.errors import AmbiguousJobIdError
from jobtrail.keys import JOB_ID_PATTERN
from jobtrail.store.ids import resolve_job_id

__all__ = ["ID_HELP", "check_id", "resolve_id"]

#: The help text of a job id argument.
ID_HELP = "The job id (the Celery task id), or a unique prefix of 8 or more characters."


def check_id(text: str, param_hint: str = "JOB_ID") -> str:
    """Return *text* if it may be a job id or a prefix of one.

    Raises:
        typer.BadParameter: It has characters no job id has.
    """
    if not JOB_ID_PATTERN.match(text):
        raise typer.BadParameter(f"{text!r} is not a job id", param_hint=param_hint)
    return text


def resolve_id(ctx: typer.Context, text: str, param_hint: str = "JOB_ID") -> str:
    """Return the whole job id *text* names (itself when nothing matches).

    Raises:
        typer.BadParameter: *text* is not an id, or a prefix of several jobs' ids.
        RedisUnavailableError: The main DB could not be reached.
    """
    rt = runtime(ctx)
    try:
        return resolve_job_id(rt.clients.main, rt.keys, check_id(text, param_hint))
    except AmbiguousJobIdError as exc:
        raise typer.BadParameter(str(exc), param_hint=param_hint) from None
