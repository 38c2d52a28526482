"""Untrusted text: every hostile input fails fast with a clear ProblemError."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

import jobtrail.solver
import jobtrail.solver.kinds
from jobtrail.errors import (
    ProblemError,
    ProblemParseError,
    ProblemTooLargeError,
    UnsupportedProblemError,
)
from jobtrail.solver import MAX_PROBLEM_CHARS, Answer, classify, solve

TIME_LIMIT_S = 2.0

HOSTILE = [
    ("__import__('os').system('id')", ProblemParseError, 'could not parse near "__import__'),
    ("x**(10**10**10)", ProblemTooLargeError, "number too large"),
    ("9^9^9", ProblemTooLargeError, "number too large"),
    ("10**10**10", ProblemTooLargeError, "number too large"),
    ("2^2^2^2^2", ProblemTooLargeError, "number too large"),
    ("solve x^(10^10) = 1", ProblemTooLargeError, "number too large"),
    ("x^5000 + 1", ProblemTooLargeError, "number too large"),
    ("5000!", ProblemTooLargeError, "number too large: factorial"),
    ("10!!!", ProblemTooLargeError, "number too large"),
    ("1" * 1500, ProblemTooLargeError, "number too large: a literal has 1500 digits"),
    ("", ProblemParseError, "empty problem"),
    ("   \t\n  ", ProblemParseError, "empty problem"),
    ("x" * 102_400, ProblemTooLargeError, "problem text is 102400 characters; the limit is 2000"),
    ("lambda: 1", ProblemParseError, "could not parse near 'lambda"),
    ("().__class__", ProblemParseError, "could not parse near '__class__"),
    ("x.__class__", ProblemParseError, "could not parse near '__class__"),
    ("open('/etc/passwd')", ProblemParseError, "could not parse near"),
    ("import os", ProblemParseError, "unknown word 'import'"),
    ("globals()['x']", ProblemParseError, "could not parse near"),
    ("(x + 1", ProblemParseError, "unbalanced parentheses"),
    ("x + 1))", ProblemParseError, "unbalanced parentheses"),
    ("solve", ProblemParseError, "nothing to solve"),
    ("hello world", ProblemParseError, "unknown word 'hello'"),
    ("1/0", UnsupportedProblemError, "division by zero"),
    ("log(0)", UnsupportedProblemError, "undefined"),
    ("☃☃☃ ∂∑", ProblemParseError, "could not parse near '☃☃☃"),
    ("x\x00 + 1", ProblemParseError, "could not parse near '\\x00"),
    ("\x00\x00", ProblemParseError, "could not parse near '\\x00"),
    ("(" * 200 + "x" + ")" * 200, ProblemTooLargeError, "nested too deeply"),
    ("solve x^30 + x + 1 = 0", ProblemTooLargeError, "polynomial degree 30"),
    ("1 = 1", UnsupportedProblemError, "no unknown"),
    ("triangle with sides 1, 2 and 10", UnsupportedProblemError, "triangle inequality"),
    ("triangle with sides 1, 2 and 3", UnsupportedProblemError, "triangle inequality"),
    ("triangle with sides 0, 4 and 5", UnsupportedProblemError, "must be positive"),
    ("x > 2", ProblemParseError, "could not parse near"),
    ("{x}", ProblemParseError, "could not parse near '{x}'"),
]


@pytest.mark.parametrize(("problem", "error", "message"), HOSTILE, ids=lambda v: repr(v)[:30])
def test_hostile_input_fails_fast_and_clearly(
    problem: str, error: type[ProblemError], message: str
) -> None:
    # Given untrusted text; When it is solved
    started = time.perf_counter()
    with pytest.raises(error) as caught:
        solve(problem)
    elapsed_s = time.perf_counter() - started
    # Then the error is the expected class, says what is wrong, and came quickly
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert len(str(caught.value)) < 200
    assert elapsed_s < TIME_LIMIT_S


def test_parse_error_carries_the_position() -> None:
    with pytest.raises(ProblemParseError) as caught:
        solve("2 + __import__('os')")
    assert caught.value.position == 4


def test_limit_is_at_least_two_thousand() -> None:
    assert MAX_PROBLEM_CHARS >= 2000
    with pytest.raises(ProblemTooLargeError):
        solve("1+" * (MAX_PROBLEM_CHARS // 2) + "1")


@pytest.mark.parametrize("problem", ["", "  ", "hello world", "__import__('os')"])
def test_classify_rejects_unreadable_text(problem: str) -> None:
    with pytest.raises(ProblemParseError):
        classify(problem)


def test_long_flat_sums_do_not_recurse() -> None:
    # Given 900 terms (a left-deep tree would blow the recursion limit)
    answer = solve("x" + "+x" * 900)
    assert answer.text == "901*x"


def test_non_string_input_is_a_parse_error() -> None:
    with pytest.raises(ProblemParseError):
        solve(b"1 + 1")  # type: ignore[arg-type]


def test_sympy_failure_becomes_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a solver that fails the way SymPy does (a builtin exception)
    def broken(text: str) -> Answer:
        raise NotImplementedError("no algorithm")

    monkeypatch.setitem(jobtrail.solver.kinds.SOLVERS, "arithmetic", broken)
    with pytest.raises(UnsupportedProblemError, match="could not solve this arithmetic problem"):
        solve("1 + 1")


class HostInterruptError(Exception):
    """Stands for Celery's SoftTimeLimitExceeded: raised into the solver by its host."""


def test_host_exceptions_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(text: str) -> Answer:
        raise HostInterruptError

    monkeypatch.setitem(jobtrail.solver.kinds.SOLVERS, "arithmetic", interrupted)
    with pytest.raises(HostInterruptError):
        solve("1 + 1")


def test_no_eval_or_exec_in_solver_source() -> None:
    package = Path(jobtrail.solver.__file__).parent
    for path in package.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "eval(" not in source, path
        assert "exec(" not in source, path
        assert "sympify(" not in source, path
        assert "parse_expr(" not in source, path


_ALPHABET = list("x y 2 3 0 + - * / ^ ( ) = , ! . sin e pi solve lim -> d/dx".split(" ")) + [
    " ",
    "'",
    "_",
    "∞",
    "²",
]


def test_random_text_only_ever_raises_problem_errors() -> None:
    # Given 400 random short strings from maths-like pieces (fixed seed)
    rng = random.Random(20240601)
    for _ in range(400):
        problem = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 8)))
        started = time.perf_counter()
        # When solved, Then an Answer or a ProblemError, quickly
        try:
            result = solve(problem)
        except ProblemError:
            pass
        else:
            assert isinstance(result, Answer)
        assert time.perf_counter() - started < TIME_LIMIT_S, problem
