"""Arithmetic answers checked exactly from the text (solver.verify.exact), not by the parse.

Before, ``check_arithmetic`` compared SymPy's parse of the text with itself at 30 and
60 mpmath digits: a misparse verified itself. These tests pin the exact re-evaluation
of the text over ``fractions.Fraction`` and the cases it leaves to mpmath.
"""

from __future__ import annotations

import re
import time
from fractions import Fraction

import pytest
import sympy

from jobtrail.errors import UnsupportedProblemError
from jobtrail.solver import solve
from jobtrail.solver.verify import check_arithmetic, run
from jobtrail.solver.verify.exact import EXACT_METHOD, find_rational_value

MPMATH_METHOD = "mpmath at 60 digits (two precisions agree)"


@pytest.mark.parametrize(("problem", "value"), [
    ("1 + 1", "2"),
    ("evaluate 2^10 / 4", "256"),
    ("2^3^2", "512"),           # right-associative in parse.py and in Python's grammar
    ("-2^2", "-4"),             # -(2^2) in both
    ("2^-1 + 1/3", "5/6"),
    ("0.1 + 0.2", "0.3"),       # decimals exact, as parse.py reads them
    ("1.5e-3 * 2", "0.003"),
    ("2 × 3 − 1 ÷ 4", "23/4"),  # the same text.normalize() as the parser
    ("3²", "9"),
])
def test_rational_arithmetic_is_verified_by_exact_re_evaluation_of_the_text(
        problem: str, value: str) -> None:
    # Given an arithmetic problem of literals and + - * / ^, when it is solved
    answer = solve(problem)
    # Then the answer is the value, verified by the exact reading of the text
    assert answer.text == value
    assert answer.verification.status == "verified"
    assert answer.verification.method == EXACT_METHOD
    assert answer.verification.max_error == 0.0


def test_the_detail_gives_the_exact_value() -> None:
    answer = solve("evaluate 2^10 / 4")
    assert answer.verification.detail == "the text evaluates exactly to 256"


@pytest.mark.parametrize(("problem", "value"), [
    ("sqrt(2)*sqrt(8)", "4"),   # a function
    ("2(3+4)", "14"),           # implicit multiplication
    ("10!", "3628800"),         # a factorial
    ("4^(1/2)", "2"),           # a fractional exponent
])
def test_text_outside_the_exact_subset_keeps_the_mpmath_check(problem: str, value: str) -> None:
    answer = solve(problem)
    assert answer.text == value
    assert (answer.verification.status, answer.verification.method) == (
        "verified", MPMATH_METHOD)


@pytest.mark.parametrize(("text", "value"), [
    ("2^3^2", Fraction(512)),
    ("-2^2", Fraction(-4)),
    ("2**-3**2", Fraction(1, 512)),      # 2^(-(3^2)), as parse.py's signed exponent
    ("--1", Fraction(1)),
    ("-" * 1501 + "1", Fraction(-1)),    # a loop, not a recursion
    ("+".join(["1"] * 900), Fraction(900)),
    ("1/2/4", Fraction(1, 8)),
    (".5 + 1.25e2", Fraction(251, 2)),
    ("7^10000 / 7^9999", Fraction(7)),
])
def test_find_rational_value_follows_the_parsers_precedence(text: str, value: Fraction) -> None:
    assert find_rational_value(text) == value


@pytest.mark.parametrize("text", [
    "2^100000000",      # exponent beyond MAX_EXPONENT
    "(2^60000)^2",      # result beyond MAX_BITS
    "1e99999999",       # a literal's exponent beyond MAX_EXPONENT
    "1/0", "0^-1",      # undefined: left to the current path
    "x + 1", "2(3+4)", "2 3", "10!", "5 % 3", "|-2|", "2^(1/2)",
    "0x10", "1_000", "1j", "True", "'1'", "1, 2", "2 plus 2",
])
def test_find_rational_value_is_none_outside_its_subset_or_bounds(text: str) -> None:
    started = time.perf_counter()
    assert find_rational_value(text) is None
    assert time.perf_counter() - started < 0.5  # refused by the bounds, not computed


def test_a_disagreement_between_the_two_readings_is_unverified_not_verified() -> None:
    # Given a misparse: text "1 + 1" whose parsed value (given) and answer are both 3
    given = result = sympy.Integer(3)
    # When checked the old way (no text) the parse is compared with itself
    before, _ = run(check_arithmetic, given, result)
    assert (before.status, before.method) == ("verified", MPMATH_METHOD)
    # Then with the text the exact value 2 disagrees with 3: unverified (not contradicted:
    # which reading is right is unknown), naming both values
    verification, numeric = run(check_arithmetic, given, result, text="1 + 1")
    assert (verification.status, verification.method) == ("unverified", EXACT_METHOD)
    assert verification.detail == ("the two readings of the text disagree: the parser's "
                                   "value is 3, the text evaluates exactly to 2 "
                                   "(difference -1)")
    assert verification.max_error == pytest.approx(1 / 3)
    assert numeric is None


def test_a_huge_exact_value_is_shown_as_a_decimal() -> None:
    verification, _ = run(check_arithmetic, sympy.Integer(3) ** 1000, sympy.Integer(3) ** 1000,
                          text="3^1000")
    assert verification.status == "verified"
    assert verification.detail == "the text evaluates exactly to ≈ 1.32207081948081e+477"


@pytest.mark.parametrize(("problem", "value"), [("1/(1/0)", "0"), ("7/0^-1", "0"),
                                                ("2/(1/0) + 3", "3")])
def test_a_division_by_zero_that_sympy_absorbed_is_refused_and_not_verified(
        problem: str, value: str) -> None:
    # Given a text dividing by zero inside a quotient: SymPy's 1/0 is zoo and 1/zoo is 0,
    # so the parser returned a value (the parse compared with itself said "verified")
    # Then the parser refuses it as undefined, as it does 1/0
    with pytest.raises(UnsupportedProblemError, match="undefined"):
        solve(problem)
    with pytest.raises(UnsupportedProblemError, match="undefined"):
        solve(f"solve x + {problem} = 2")
    # and the exact reading alone, given the value SymPy had absorbed it into, keeps it
    # unverified (a ZeroDivisionError)
    verification, _ = run(check_arithmetic, sympy.Integer(value), sympy.Integer(value),
                          text=problem)
    assert (verification.status, verification.method) == ("unverified", EXACT_METHOD)
    assert verification.detail == (
        f"the text divides by zero, so its value is undefined; the parser's value is {value}")


@pytest.mark.parametrize("part", ["atanh(1)", "atanh(-1)", "acoth(1)", "acoth(-1)", "asech(0)"])
def test_a_function_infinite_at_a_finite_point_is_refused_not_absorbed(part: str) -> None:
    # Given a function at its pole, which SymPy gives as oo or -oo (atanh(1) = oo), not
    # zoo: 1/atanh(1) was then 0, so "solve x + 1/atanh(1) = 2" was answered x = 2,
    # "d/dx x/atanh(1)" 0 and "evaluate atan(atanh(1))" pi/2, each verified
    # (the 1/zoo class of sympy/sympy#8242, #27053)
    # Then each is refused as undefined, as 1/(1/0) and log(0) are
    for problem in (f"evaluate 1/{part}", f"solve x + 1/{part} = 2", f"d/dx x/{part}",
                    f"evaluate atan({part})"):
        with pytest.raises(UnsupportedProblemError, match="undefined"):
            solve(problem)


@pytest.mark.parametrize(("problem", "text"), [
    ("evaluate 1/oo", "0"), ("evaluate e^(-oo)", "0"), ("evaluate 2^oo", "oo"),
    ("lim x->0+ 1/x", "oo"), ("integrate e^(-x) from 0 to oo", "1")])
def test_an_infinity_written_in_the_text_is_still_read(problem: str, text: str) -> None:
    # Given an infinity the text writes itself (oo), then it is read as before
    assert solve(problem).text == text


@pytest.mark.parametrize(("problem", "reason"), [
    ("1/(1/0)", "division by zero"), ("evaluate atanh(1)", "atanh has a pole there"),
    ("evaluate log(0)", "log has a pole there"), ("oo - oo", "an undefined value"),
])
def test_an_undefined_part_is_refused_with_its_reason(problem: str, reason: str) -> None:
    # Given a text with an undefined part; then the refusal names why (every one said
    # "division by zero", atanh(1) and oo - oo included)
    with pytest.raises(UnsupportedProblemError, match=re.escape(f"undefined ({reason})")):
        solve(problem)
