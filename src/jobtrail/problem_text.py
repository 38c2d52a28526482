"""The door check of a problem text: one rule for every way a job is submitted.

Invariant: CLI submit, the API, JobService and plain Celery's
`app.send_task("jobtrail.solve", ...)` call check_problem_text() before
anything is written or sent, so the same text gets the same one-line error.
"""

from __future__ import annotations

import unicodedata

from jobtrail.errors import ProblemParseError, ProblemTooLargeError

__all__ = ["MAX_SUBMIT_BYTES", "check_problem_text"]

#: Problem text larger than this is refused at submission (the solver's own,
#: much smaller limit fails a job cleanly; this one protects the main DB).
MAX_SUBMIT_BYTES = 1_000_000
#: The whitespace control characters, refused like every other one, named, with what to write.
_WHITESPACE_CONTROLS = {
    "\t": ("tab", "write a space"),
    "\n": ("line feed", "a problem is one line"),
    "\r": ("carriage return", "a problem is one line"),
}
#: Unicode categories that print as nothing, or move or break the text around them: format
#: characters (zero-width space U+200B, bidi overrides U+202E, soft hyphen, BOM) and the line
#: and paragraph separators. No problem needs them; the solver cannot read them.
_INVISIBLE = frozenset({"Cf", "Zl", "Zp"})


def check_problem_text(problem: str, *, max_chars: int) -> None:
    """Refuse a problem text no job should be created for, with one line that says why.

    The one door check of every submission (CLI, API, JobService): the CLI,
    the API and the Python entry points give the same message for the same text.
    A problem is one line of printable text: every C0 and C1 control character
    is refused, tab, line feed and carriage return too (a line of `submit
    --file` cannot hold a line break, so the API does not take one either; a
    tab would be stored as is and break the columns of `list`), each with its
    position (0-based, in characters). Blank text around the problem is read
    as blank: "  \t\n " is an empty problem.

    Args:
        problem: The untrusted problem text.
        max_chars: Longest text accepted, characters (Settings.max_problem_chars).

    Raises:
        ProblemParseError: The text is empty or blank ("empty problem"), holds a
            control character such as NUL, ESC or a tab, an invisible one (zero-width space,
            bidi override, line separator: what a display would hide), or
            characters UTF-8 cannot encode (lone surrogates: bytes that were
            not UTF-8 on a command line).
        ProblemTooLargeError: The text is longer than *max_chars* characters.
    """
    if len(problem) > max_chars:
        raise ProblemTooLargeError(
            f"problem text is {len(problem)} characters; the limit is {max_chars}", what="text")
    if not problem.strip():
        raise ProblemParseError("empty problem", text=problem, position=None)
    for position, char in enumerate(problem):
        category = unicodedata.category(char)
        if category == "Cs":
            raise ProblemParseError(f"problem text is not valid UTF-8 (character {position})",
                                    text=problem.encode("utf-8", "replace").decode(),
                                    position=position)
        if category == "Cc":
            name, hint = _WHITESPACE_CONTROLS.get(char, ("", ""))
            raise ProblemParseError(
                f"problem text holds the control character U+{ord(char):04X}"
                f"{f' ({name})' if name else ''} at character {position}"
                f"{f': {hint}' if hint else ''}", text=problem, position=position)
        if category in _INVISIBLE:
            raise ProblemParseError(
                f"problem text holds the invisible character U+{ord(char):04X} at character "
                f"{position}", text=problem, position=position)
    size = len(problem.encode("utf-8"))
    if size > MAX_SUBMIT_BYTES:  # unreachable at the solver's limit; guards a raised setting
        raise ProblemTooLargeError(
            f"problem text is {size} bytes; at most {MAX_SUBMIT_BYTES} are accepted", what="text")
