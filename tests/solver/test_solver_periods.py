"""The completeness search of a periodic answer spans a whole period of every family,
however long: a family missing from [-10, 10] is not a family checked.

Before: a family period over 1e3 was ignored and [-10, 10] searched alone, so
`sin(4x/1000) + sin(3x/1000) = 0`, answered without its family x = 1000*pi + 2000*pi*n
(sympy/sympy#30401: _solve_trig2 drops the roots where tan(x/2) is infinite), came back
verified ("all 1 numeric root(s) in [-10, 10] are covered").
"""

from __future__ import annotations

import pytest
import sympy

from jobtrail.errors import AnswerContradictedError
from jobtrail.solver import solve
from jobtrail.solver.verify import check_equation, run

x = sympy.Symbol("x")


def test_a_family_missing_over_a_period_of_thousands_is_found() -> None:
    # Given SymPy's answer to sin(4x/1000) + sin(3x/1000) = 0, short of one family
    # When it is solved, Then the search over a whole period finds the root at +-1000*pi
    with pytest.raises(AnswerContradictedError) as caught:
        solve("solve sin(4x/1000) + sin(3x/1000) = 0")
    assert "3141.59265" in str(caught.value), caught.value


def test_a_family_dropped_from_a_period_of_millions_is_found() -> None:
    # Given cos(x/10^6) = 0 (period 2*pi*10^6) answered with one of its two families
    expr = sympy.cos(x / 10**6)
    family = sympy.solveset(expr, x, sympy.S.Reals).args[0]
    verification, _ = run(check_equation, expr, x, family, sympy.S.Reals)
    # Then the root of the other one is found, a million and a half away
    assert verification.status == "contradicted", verification.detail
    assert "-1570796.3267" in verification.detail


def test_the_whole_answer_over_a_long_period_is_verified() -> None:
    answer = solve("solve cos(x/1000000) = 0")
    assert answer.text == ("x = 2000000*pi*n + 1500000*pi, x = 2000000*pi*n + 500000*pi "
                           "(n an integer)")
    assert answer.verification.status == "verified", answer.verification
    assert "[-6.59734e+06, 6.59734e+06]" in answer.verification.detail


def test_periods_too_far_apart_to_search_both_leave_completeness_unchecked() -> None:
    # Given sin(x) sin(x/10^6) = 0: a whole period of 2*pi*10^6 sampled finely enough for
    # one of 2*pi would take millions of points
    answer = solve("solve sin(x) sin(x/1000000) = 0")
    # Then the answer is given as unverified, saying why, not verified over [-10, 10]
    assert answer.verification.status == "unverified", answer.verification
    assert "completeness not checked (periods from 6.28319 to 6.28319e+06" in \
        answer.verification.detail


@pytest.mark.parametrize("problem", ["solve sin(30 x) = 0", "solve tan(26 x) = 1"])
def test_a_short_period_is_still_searched_over_the_base_window(problem: str) -> None:
    # was unverified: the window of a whole period was planned with 500 samples per
    # period over [-10, 10], past the cap, although [-10, 10] holds many periods already
    answer = solve(problem)
    assert answer.verification.status == "verified", answer.verification
    assert "in [-10, 10] are covered" in answer.verification.detail
