"""Definite integrals whose mass a quadrature's nodes step over, and what may replace an answer.

A tester found right answers replaced by wrong numbers ("≈ 1.15e-64 (numeric; the
symbolic result disagreed)" for the integral of exp(-(x - 50)^2) over [0, 200], which is
sqrt(pi)), right answers failed as contradicted, and a wrong -oo given as unverified.
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import pytest
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import AnswerContradictedError, UnsupportedProblemError
from jobtrail.solver import solve
from jobtrail.solver.answer import Answer, Verification
from jobtrail.solver.verify import Estimate, check_definite_integral, run, settle
from jobtrail.solver.verify.located import certified

x = sympy.Symbol("x")
SQRT_PI = mpmath.sqrt(mpmath.pi)

# --- narrow peaks: SymPy's right answer completes, verified -----------------------------------

NARROW = [  # (problem, its value at the ambient mpmath precision)
    ("integrate exp(-(x - 50)^2) dx from 0 to 200", lambda: mpmath.sqrt(mpmath.pi)),
    ("integrate exp(-10^6 x^2) dx from -1 to 2", lambda: mpmath.sqrt(mpmath.pi) / 1000),
    ("integrate exp(-10^6 (x - 1/3)^2) dx from 0 to 1", lambda: mpmath.sqrt(mpmath.pi) / 1000),
    ("integrate 1/cosh(10^6 (x - 1/3)) dx from 0 to 1", lambda: mpmath.pi / 10**6),
    ("integrate exp(-10^8 (x - 1/3)^2) dx from 0 to 1", lambda: mpmath.sqrt(mpmath.pi) / 10**4),
    ("integrate exp(-10^10 (x - 1/3)^2) dx from 0 to 1",
     lambda: mpmath.sqrt(mpmath.pi) / 10**5),
    ("integrate sech(10^8 (x - 1/3)) dx from 0 to 1", lambda: mpmath.pi / 10**8),
    ("integrate exp(-x^2/10^-8) dx from -3 to 5", lambda: mpmath.sqrt(mpmath.pi) / 10**4),
    ("integrate exp(-(x - 100)^2) dx from -oo to oo", lambda: mpmath.sqrt(mpmath.pi)),
    ("integrate exp(-(x - 1000)^2) dx from -oo to oo", lambda: mpmath.sqrt(mpmath.pi)),
    ("integrate exp(-(x - 10^20)^2) dx from 0 to oo", lambda: mpmath.sqrt(mpmath.pi)),
    ("integrate 1/(1 + 10^16 (x - 1/pi)^2) dx from 0 to 1",
     lambda: (mpmath.atan(10**8 / mpmath.pi) + mpmath.atan(10**8 - 10**8 / mpmath.pi)) / 10**8),
    ("integrate 1 + exp(-10^6 (x - 1/3)^2) dx from 0 to 1",
     lambda: 1 + mpmath.sqrt(mpmath.pi) / 1000),
]


@pytest.mark.parametrize(("problem", "value"), NARROW, ids=[p for p, _ in NARROW])
def test_a_narrow_peak_is_found_and_the_exact_answer_verified(
        problem: str, value: Callable[[], object]) -> None:
    # Given an integrand whose mass sits in a peak far narrower than the interval
    # When it is solved
    answer = solve(problem)
    # Then SymPy's exact answer completes (not a numeric value standing in for it), it is
    # the right value, and the quadrature over the located pieces verified it
    assert not answer.text.startswith("≈"), answer.text
    with mpmath.workdps(30):
        want = value()
        got = mpmath.mpf(str(sympy.N(sympy.sympify(answer.text), 30)))
        assert abs(got - want) <= mpmath.mpf(10) ** -25 * abs(want)
    assert answer.verification.status == "verified", answer.verification
    assert "located" in answer.verification.method


# --- what may replace a symbolic answer: a value a rigorous enclosure certifies -------------

def test_a_wrong_value_for_a_narrow_peak_is_replaced_by_the_certified_value() -> None:
    # Given a wrong claim (twice the value) for a peak the plain quadrature misses
    verification, estimate = run(check_definite_integral, sympy.exp(-(x - 50) ** 2), x,
                                 sympy.Integer(0), sympy.Integer(200), 2 * sympy.sqrt(sympy.pi))
    # Then it is contradicted, and the estimate is the true value, every digit certified
    assert verification.status == "contradicted"
    assert estimate is not None and estimate.robust
    assert len(estimate.text.replace(".", "")) >= 7
    assert abs(mpmath.mpf(estimate.text) - SQRT_PI) <= mpmath.mpf(10) ** -6


def test_a_bump_the_quadrature_misses_still_cannot_give_a_wrong_number() -> None:
    # Given SymPy's wrong value for |sin x| over [0, 10] (cos(10) + 3, sympy#25066's
    # class), plus a bump of height 1/100 and width 1e-4 that tanh-sinh steps over
    bump = sympy.exp(-10**8 * (x - sympy.Rational(1, 3)) ** 2) / 100
    wrong = sympy.cos(10) + 3 + sympy.sqrt(sympy.pi) / 10**6
    verification, estimate = run(check_definite_integral, sympy.Abs(sympy.sin(x)) + bump, x,
                                 sympy.Integer(0), sympy.Integer(10), wrong)
    # Then the value given is the one the enclosure proves (6.16093024...), not the
    # quadrature's 6.16092847... that lacks the bump's 1.77e-6
    true = 7 + mpmath.cos(10) + SQRT_PI / 10**6
    assert verification.status == "contradicted"
    assert estimate is not None and estimate.robust, estimate
    digits = len(estimate.text.replace(".", "").lstrip("0"))
    assert abs(mpmath.mpf(estimate.text) - true) <= mpmath.mpf(10) ** (1 - digits) * true


def test_settle_gives_only_a_robust_value_and_otherwise_fails_with_both() -> None:
    # Given a contradicted answer
    answer = Answer("integral", "1", "1", ("from x = 0 to x = 1: 1",))
    verification = Verification("contradicted", "m", "symbolic result 1 = 1.0 disagrees "
                                "with numeric quadrature 2.0")
    # When the estimate is robust, it replaces the answer
    replaced = settle(answer, verification, Estimate("2.00000000", True, "enclosed"))
    assert replaced.text == "≈ 2.00000000 (numeric; the symbolic result disagreed)"
    assert "robust: enclosed" in replaced.steps
    # When it is not, the job fails with both values and the reason
    with pytest.raises(AnswerContradictedError) as caught:
        settle(answer, verification, Estimate("2.0", False, "no enclosure here"))
    assert caught.value.numeric == "2.0" and caught.value.symbolic == "1"
    assert "symbolic result 1" in str(caught.value) and "2.0" in str(caught.value)
    assert "no enclosure here" in str(caught.value)


def test_a_wrong_value_over_an_infinite_interval_is_never_replaced() -> None:
    # Given a wrong claim over (-oo, oo), where no enclosure bounds the tails
    verification, estimate = run(check_definite_integral, 1 / (1 + x**2), x, -sympy.oo,
                                 sympy.oo, sympy.Integer(3))
    # Then it is contradicted, but the quadrature's value is not robust
    assert verification.status == "contradicted"
    assert estimate is not None and not estimate.robust
    assert abs(mpmath.mpf(estimate.text) - mpmath.pi) <= mpmath.mpf(10) ** -12


@pytest.mark.parametrize(("low", "high", "text"), [
    ("1.99999999990", "2.00000000010", "2.000000000"),
    ("6.1609284708", "6.1609284710", "6.160928471"),  # both ends round to it
    ("-1e-12", "1e-12", "0.0"),
    ("1.4", "1.6", None),  # no digit is shared
    ("0.99999", "1.00001", None),  # 1.0000 and 0.99999 differ: fewer than 6 digits
])
def test_certified_digits_are_those_every_value_in_the_enclosure_rounds_to(
        low: str, high: str, text: str | None) -> None:
    assert certified(mpmath.mpf(low), mpmath.mpf(high), mpmath.mpf(1)) == text


# --- an infinite answer is checked too ---------------------------------------------------------

def test_minus_infinity_for_a_convergent_integral_is_contradicted() -> None:
    # sympy#22487: integrate((cos(x**2) - cos(x))/x**2, (x, -oo, oo)) gives -oo; the
    # integral is pi - sqrt(2 pi) = 0.635
    expr = (sympy.cos(x**2) - sympy.cos(x)) / x**2
    verification, estimate = run(check_definite_integral, expr, x, -sympy.oo, sympy.oo,
                                 -sympy.oo)
    assert verification.status == "contradicted", verification
    assert estimate is not None and not estimate.robust
    assert abs(float(estimate.text) - 0.635) < 0.05


def test_infinity_for_a_bounded_integrand_on_a_finite_interval_is_contradicted() -> None:
    verification, estimate = run(check_definite_integral, sympy.exp(-x**2), x,
                                 sympy.Integer(0), sympy.Integer(1), sympy.oo)
    assert verification.status == "contradicted"
    assert estimate is not None and estimate.robust
    assert abs(mpmath.mpf(estimate.text) - mpmath.sqrt(mpmath.pi) * mpmath.erf(1) / 2) <= (
        mpmath.mpf(10) ** -6)


@pytest.mark.parametrize(("integrand", "lower", "upper", "claim"), [
    ("1/x", 0, 1, "oo"), ("1/x", 1, "oo", "oo"), ("1/sqrt(x)", 1, "oo", "oo"),
    ("1/(x*log(x))", 2, "oo", "oo"), ("exp(x)", 0, "oo", "oo"), ("1/x", -1, 0, "-oo"),
    ("1/x**2", "-oo", -1, "oo"),
])
def test_a_right_infinite_answer_is_not_contradicted(integrand: str, lower: object,
                                                     upper: object, claim: str) -> None:
    # Given a divergent integral (1/x^2 from -oo to -1 converges, to 1: it must be
    # contradicted, the others not)
    verification, _ = run(check_definite_integral, sympy.sympify(integrand), x,
                          sympy.sympify(lower), sympy.sympify(upper), sympy.sympify(claim))
    divergent = integrand != "1/x**2"
    assert (verification.status != "contradicted") == divergent, verification


@pytest.mark.slow
def test_sympys_minus_infinity_fails_the_job_with_both_values() -> None:
    with pytest.raises(AnswerContradictedError) as caught:
        solve("integrate (cos(x^2) - cos(x))/x^2 dx from -oo to oo")
    assert "-oo" in str(caught.value) and caught.value.numeric.startswith("0.6")


# --- a bounded integrand never "diverges"; a pole is named ------------------------------------

def test_a_bounded_integrand_over_a_huge_interval_is_not_called_divergent() -> None:
    # The integral of sin(x) over [0, 10^100 pi] is 0: tanh-sinh's value grows with the
    # precision, which used to read as "the integral diverges"
    answer = solve("integrate sin(x) from 0 to 10^100 pi")
    assert answer.text == "0"
    assert answer.verification.status == "unverified"
    assert "diverge" not in answer.verification.detail


def test_a_pole_at_an_algebraic_number_is_reported_as_divergence() -> None:
    # 1/(x^5 - x - 1) has a pole at x = 1.1673..., a root no radical expresses
    with pytest.raises(UnsupportedProblemError, match=r"diverges.*1\.1673039782614"):
        solve("integrate 1/(x^5 - x - 1) dx from 1 to 2")
