"""Turn untrusted problem text into a normalized, character-checked ASCII string.

Invariant: the string returned by ``normalize()`` is at most
``MAX_PROBLEM_CHARS`` long and holds only characters from ``_ALLOWED``:
ASCII letters and digits, spaces and the punctuation ``+ - * / ^ ( ) , . = ! : ; ? |``
plus ``>`` only inside ``->`` and ``_`` only right after ``log`` (a logarithm's
base). Anything else is refused with the position of the first offending
character in the *original* text.
"""

from __future__ import annotations

import re
import unicodedata

from jobtrail.config import SOLVER_MAX_PROBLEM_CHARS
from jobtrail.errors import ProblemParseError, ProblemTooLargeError

__all__ = ["EXCERPT_CHARS", "MAX_PROBLEM_CHARS", "excerpt", "normalize", "quoted",
           "rewritten_characters"]

MAX_PROBLEM_CHARS = SOLVER_MAX_PROBLEM_CHARS
"""Longest problem text accepted, in characters (before normalization)."""

_SUPERSCRIPTS = {
    "⁰": "0",
    "¹": "1",
    "²": "2",
    "³": "3",
    "⁴": "4",
    "⁵": "5",
    "⁶": "6",
    "⁷": "7",
    "⁸": "8",
    "⁹": "9",
    "⁻": "-",
    "⁺": "+",
    "ⁿ": "n",
    "ˣ": "x",
}
_SUPERSCRIPT_RUN = re.compile("[" + "".join(_SUPERSCRIPTS) + "]+")

# Characters people paste, mapped to what they look like.
_REPLACEMENTS = {
    "\u2212": "-",  # minus sign
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\ufe63": "-",  # small hyphen-minus
    "\uff0d": "-",  # fullwidth hyphen-minus
    "×": "*",
    "·": "*",
    "⋅": "*",
    "∙": "*",
    "∗": "*",
    "÷": "/",
    "∕": "/",
    "⁄": "/",
    "√": " sqrt ",
    "π": " pi ",
    "∞": "oo",
    "→": "->",
    "⟶": "->",
    "⇒": "->",
    "∫": " integral ",
    "θ": " theta ",
    "α": " alpha ",
    "β": " beta ",
    "γ": " gamma ",
    "φ": " phi ",
    "ω": " omega ",
    "°": " degrees ",
    "\t": " ",
    "\r": " ",
    "\n": " ",
}

_ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-*/^(),.=!:;?>|_"
)
# Characters refused with a hint at what to write instead.
_HINTS = {
    "%": "'%' is not supported: write p/100 for p percent",
    "[": "use ( ) for grouping",
    "]": "use ( ) for grouping",
    "{": "use ( ) for grouping",
    "}": "use ( ) for grouping",
}
_SPACES = re.compile(r" {2,}")


#: Longest excerpt of a problem an error message quotes, in characters (before `…`).
EXCERPT_CHARS = 20


def quoted(text: str) -> str:
    """Return *text* between quotes that cannot be mistaken for part of it, control characters
    escaped: `'x+1'`; `"'x+1"` when it holds a `'` (and no `"`); else `'...'` with each `'`
    written `\\'`.

    Args:
        text: A piece of untrusted problem text.

    Returns:
        The quoted text, e.g. for an error message.
    """
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if "'" in shown and '"' not in shown:
        return f'"{shown}"'
    return "'" + shown.replace("'", "\\'") + "'"


def _word_boundary(text: str, cut: int) -> bool:
    """Whether cutting *text* at *cut* keeps every word and number whole."""
    return not (text[cut - 1].isalnum() and text[cut].isalnum())


def excerpt(text: str, position: int, width: int = EXCERPT_CHARS) -> str:
    """Return the quoted piece of *text* an error at *position* points at, marked as an excerpt.

    The piece runs from *position* to the end of *text*, or is cut at a word
    boundary at most *width* characters in and ends with `…`, so a quote never
    ends inside a word or number, and a cut never passes for the user's own
    text (`'(x+1'` is the whole unclosed bracket; `'(3x + 4y…'` says more
    follows). At or past the end of *text* it is the end of the text,
    `the end of '…+ 3x +'` (whole words, up to twice *width*); an empty text is `''`.

    Args:
        text: The text the position refers to.
        position: 0-based index into *text* (len(text) for "at its end").
        width: Longest piece, in characters (a single longer word is cut).

    Returns:
        A phrase for a message: the quoted piece (see quoted()), or `the end of ...`.
    """
    if text and position >= len(text):
        tail = text.rstrip()
        start = max(0, len(tail) - width)
        while start > max(0, len(tail) - 2 * width) and not _word_boundary(tail, start):
            start -= 1  # the whole last word, up to twice the width; else cut inside it
        return "the end of " + quoted(("…" if start > 0 else "") + tail[start:].lstrip())
    piece = text[position:]
    if len(piece) <= width:
        return quoted(piece)
    cut = width
    while cut > 1 and not _word_boundary(piece, cut):
        cut -= 1
    if cut == 1 and not _word_boundary(piece, 1):
        cut = width  # one word longer than the excerpt: cut inside it, marked
    return quoted(piece[:cut].rstrip() + "…")


def _superscript(match: re.Match[str]) -> str:
    return "^(" + "".join(_SUPERSCRIPTS[c] for c in match.group(0)) + ")"


def normalize(problem: str) -> str:
    """Normalize *problem* to checked ASCII, mapping pasted Unicode forms.

    ``x²`` becomes ``x^(2)``, U+2212 and en dashes become ``-``, ``×`` and
    ``·`` become ``*``, ``÷`` becomes ``/``, ``√`` becomes ``sqrt``, ``π``
    becomes ``pi``, ``∞`` becomes ``oo``, ``→`` becomes ``->`` and ``∫``
    becomes ``integral``. Then NFKC folds fullwidth and other compatibility
    forms. Runs of spaces collapse to one.

    Args:
        problem: Untrusted problem text.

    Returns:
        The normalized text, stripped, never empty.

    Raises:
        ProblemTooLargeError: The text is longer than ``MAX_PROBLEM_CHARS``.
        ProblemParseError: The text is empty or whitespace ("empty problem"),
            or holds a character outside the allow-list ("could not parse
            near '...'", with ``position`` in the original text).
    """
    if len(problem) > MAX_PROBLEM_CHARS:
        raise ProblemTooLargeError(
            f"problem text is {len(problem)} characters; the limit is {MAX_PROBLEM_CHARS}",
            what="text",
        )
    if not problem.strip():
        raise ProblemParseError("empty problem", text=problem, position=None)
    pieces: list[str] = []
    for position, char in enumerate(problem):
        if char in _ALLOWED and (
            (char != ">" or (pieces and pieces[-1].endswith("-")))
            and (char != "_" or "".join(pieces[-3:]).lower().endswith("log"))
        ):
            pieces.append(char)
            continue
        mapped = _REPLACEMENTS.get(char)
        if mapped is None and char in _SUPERSCRIPTS:
            mapped = char  # handled as a run below
        if mapped is None and char not in {">", "_"}:
            folded = unicodedata.normalize("NFKC", char)
            if folded and all(c in _ALLOWED for c in folded):
                mapped = folded
        if mapped is None:
            hint = f": {_HINTS[char]}" if char in _HINTS else ""
            raise ProblemParseError(
                f"could not parse near {excerpt(problem, position)}{hint}",
                text=problem,
                position=position,
            )
        pieces.append(mapped)
    joined = _SUPERSCRIPT_RUN.sub(_superscript, "".join(pieces))
    result = _SPACES.sub(" ", joined).strip()
    if not result:
        raise ProblemParseError("empty problem", text=problem, position=None)
    return result


def rewritten_characters(problem: str) -> str:
    """Return the characters of *problem* that ``normalize()`` rewrites, in order, once each.

    Whitespace and the allow-listed ASCII characters are left out, so
    ``"x² − 1"`` gives ``"²−"`` and ``"x^2 - 1"`` gives ``""``.

    Args:
        problem: Untrusted problem text.

    Returns:
        The distinct rewritten characters (e.g. ``× ÷ − √ ² π``), possibly empty.
    """
    seen: dict[str, None] = {}
    for char in problem:
        if char not in _ALLOWED and not char.isspace():
            seen.setdefault(char, None)
    return "".join(seen)
