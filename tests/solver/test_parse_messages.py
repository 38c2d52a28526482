"""Parse errors quote the problem faithfully: a whole piece, or an excerpt marked with `…`.

Before, a message quoted a fixed 12 or 20 characters (`near '(3x + 4y - 7'`,
cut inside a number), an empty string at the end of the text (`near ''`),
and put quotes around text that holds a quote (`near ''x+1'`).
"""

from __future__ import annotations

import re

import pytest

from jobtrail.errors import ProblemParseError
from jobtrail.solver import solve
from jobtrail.solver.text import normalize

#: (problem, the whole message)
MESSAGES = [
    ("x+", "could not parse near the end of 'x+': unexpected end of expression"),
    ("sin(", "could not parse near the end of 'sin(': unexpected end of expression"),
    ("2**", "could not parse near the end of '2**': unexpected end of expression"),
    ("solve x^2 + 3x + = 1",
     "could not parse near the end of 'x^2 + 3x +': unexpected end of expression"),
    ("solve x^2=", "could not parse 'x^2=': nothing after '='"),
    ("solve = 4", "could not parse '= 4': nothing before '='"),
    ("(x+1", "could not parse near '(x+1': unbalanced parentheses"),
    ("x+1)", "could not parse near ')': unbalanced parentheses"),
    ("solve 'x+1", "could not parse near \"'x+1\""),
    ("solve x + 1 = 'abc def'", "could not parse near \"'abc def'\""),
    ("x + 1 = 2 = 3 = 4 = 5 = 6",
     "could not parse near 'x + 1 = 2 = 3 = 4 =…': more than one '='"),
    ("x @@@@@@@@@@@@@@@@@@@@@@@@@@@@@", "could not parse near '@@@@@@@@@@@@@@@@@@@@…'"),
    ("x + 123456789012345678901234567 +",
     "could not parse near the end of '…123456789012345678901234567 +': "
     "unexpected end of expression"),
]

MALFORMED = [problem for problem, _ in MESSAGES] + [
    "solve x^2 + (3x + 4y - 7z + 12w = 5", "sin(x)+cos(x)+tan(x)+sec(x)+csc(x) + (1", "x==1",
    '"', "[1,2", "d/dx (x^2", "limit x->0 of sin(x)/x)", "((x)", "x^", "x @ 1", "ø + 1",
    "solve x² + 3x +", "sin()", "2(", ")x(", "|x", "x +* 2", "solve x ** ** 2", "a, b",
    "differentiate", "lim x", "solve x + y = 1, x - y", "d/dx x^2 + + ", "x ` 1",
    "integral of sin(x) from 0 to (pi", "solve supercalifragilisticexpialidocious = 1",
]

#: The quoted piece of a message: 'single' or "double" (which holds a ').
_QUOTED = re.compile(r"""(?:near (?:the end of )?|parse )('(?:[^'\\]|\\.)*'|"[^"]*")""")


def _message(problem: str) -> str:
    with pytest.raises(ProblemParseError) as refused:
        solve(problem)
    return str(refused.value)


@pytest.mark.parametrize(("problem", "message"), MESSAGES)
def test_the_message_of_a_malformed_problem(problem: str, message: str) -> None:
    assert _message(problem) == message


@pytest.mark.parametrize("problem", MALFORMED)
def test_the_quoted_piece_is_the_problem_s_own_text_whole_or_marked(problem: str) -> None:
    match = _QUOTED.search(_message(problem))
    assert match, _message(problem)
    piece = match.group(1)[1:-1].replace("\\'", "'")
    try:
        text = normalize(problem)
    except ProblemParseError:  # refused at the character check: quoted from the text as given
        text = problem
    # never empty, and every character of it is the problem's (read as normalize() reads it,
    # or as given when a character is refused)
    assert piece and piece.strip("…") in text, (piece, text)
    # a piece that is not the text's whole end says so with '…'; none ends inside a word
    start = text.index(piece.strip("…"))
    end = start + len(piece.strip("…"))
    if not piece.endswith("…") and end < len(text):
        assert not (text[end - 1].isalnum() and text[end].isalnum()), piece


def test_a_piece_that_holds_both_quotes_escapes_one() -> None:
    assert _message("x = 'a\"") == "could not parse near '\\'a\"'"
