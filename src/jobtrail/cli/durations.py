"""Duration strings of the command line (`7d`, `12h`, `30m`, `45s`, `1h30m`) <-> seconds.

Invariant: durations are parsed here and only seconds (float) reach the services;
format_duration() prints seconds back in the same notation.
"""

from __future__ import annotations

import re

import typer

__all__ = ["duration_option", "format_duration", "parse_duration"]

_UNITS_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def parse_duration(text: str) -> float:
    """Return *text* in seconds: a number with an optional unit s, m, h, d or w, or several.

    A bare number is seconds; parts add up (`1h30m` is 5400).

    Raises:
        ValueError: *text* is empty, negative or has an unknown unit.
    """
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS_S[match.group(2)]
        pos = match.end()
    if pos != len(compact):
        raise ValueError(f"{text!r} is not a duration (examples: 7d, 12h, 30m, 45s, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """Return *seconds* in the notation parse_duration() reads: `30d`, `1h30m`, `45s`, `0.5s`.

    Whole weeks print as days (`14d`, as people say retention); a fraction of a
    second is kept on the seconds part.
    """
    if seconds < 0:
        return "-" + format_duration(-seconds)
    whole = int(seconds)
    fraction = seconds - whole
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or fraction or not parts:
        parts.append(f"{whole + fraction:g}s" if fraction else f"{whole}s")
    return "".join(parts)


def duration_option(text: str | None, option: str) -> float | None:
    """Parse a duration option's value, as a usage error naming *option* if malformed.

    Raises:
        typer.BadParameter: The value is not a duration.
    """
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc
