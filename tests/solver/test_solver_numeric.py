"""Definite integrals and limits cross-checked numerically with mpmath."""

from __future__ import annotations

from collections.abc import Callable

import mpmath  # type: ignore[import-untyped]  # no py.typed
import pytest
import sympy  # type: ignore[import-untyped]  # no py.typed in sympy 1.14

from jobtrail.solver import solve

Function = Callable[[mpmath.mpf], mpmath.mpf]

DEFINITE: list[tuple[str, Function, object, object]] = [
    ("integrate x e^x dx from 0 to 1", lambda v: v * mpmath.exp(v), 0, 1),
    ("integral of sin(x) from 0 to pi", mpmath.sin, 0, mpmath.pi),
    ("integrate 1/x dx from 1 to e", lambda v: 1 / v, 1, mpmath.e),
    ("integrate e^(-x) from 0 to infinity", lambda v: mpmath.exp(-v), 0, mpmath.inf),
    ("∫ cos(t) dt from 0 to pi/2", mpmath.cos, 0, mpmath.pi / 2),
    ("integrate 1/(1 + x^2) dx from -oo to oo", lambda v: 1 / (1 + v**2), -mpmath.inf, mpmath.inf),
    ("integrate x^2 dx between 0 and 3", lambda v: v**2, 0, 3),
    ("integrate sqrt(x) dx from 0 to 4", mpmath.sqrt, 0, 4),
]


@pytest.mark.parametrize(("problem", "integrand", "lower", "upper"), DEFINITE)
def test_definite_integral_matches_quadrature(
    problem: str, integrand: Function, lower: object, upper: object
) -> None:
    # Given an exact answer from the solver
    answer = solve(problem)
    assert answer.kind == "integral"
    exact = sympy.N(sympy.sympify(answer.text), 30)
    # When the same integral is computed by numerical quadrature
    numeric = mpmath.quad(integrand, [lower, upper])
    # Then they agree
    assert abs(float(exact) - float(numeric)) < 1e-9


def test_demo_definite_integral_is_one() -> None:
    assert solve("integrate x e^x dx from 0 to 1").text == "1"
    assert solve("integral of sin(x) from 0 to pi").text == "2"


LIMITS: list[tuple[str, Function, object, int]] = [
    ("lim x->0 sin(x)/x", lambda v: mpmath.sin(v) / v, 0, 1),
    ("Find the limit of (1 + 1/n)^n as n -> infinity", lambda v: (1 + 1 / v) ** v, mpmath.inf, 1),
    ("lim x->oo (2x + 1)/(x + 3)", lambda v: (2 * v + 1) / (v + 3), mpmath.inf, 1),
    ("lim x->0 (1 - cos(x))/x^2", lambda v: (1 - mpmath.cos(v)) / v**2, 0, 1),
    ("limit of (x^2 - 4)/(x - 2) as x approaches 2", lambda v: (v**2 - 4) / (v - 2), 2, 1),
    ("lim x->0 tan(x)/x", lambda v: mpmath.tan(v) / v, 0, 1),
    ("lim x->0- sin(3x)/x", lambda v: mpmath.sin(3 * v) / v, 0, -1),
    ("lim x->0 (e^x - 1)/x", lambda v: mpmath.expm1(v) / v, 0, 1),
]


@pytest.mark.parametrize(("problem", "function", "point", "direction"), LIMITS)
def test_limit_matches_mpmath_limit(
    problem: str, function: Function, point: object, direction: int
) -> None:
    answer = solve(problem)
    assert answer.kind == "limit"
    exact = float(sympy.N(sympy.sympify(answer.text), 30))
    numeric = mpmath.limit(function, point, direction=direction)
    assert abs(exact - float(numeric)) < 1e-6


@pytest.mark.parametrize(
    ("problem", "function", "sign"),
    [("lim x->0+ 1/x", lambda v: 1 / v, 1), ("lim x->0- 1/x", lambda v: 1 / v, -1)],
)
def test_one_sided_infinite_limits_grow_without_bound(
    problem: str, function: Function, sign: int
) -> None:
    answer = solve(problem)
    assert answer.text == ("oo" if sign > 0 else "-oo")
    assert sign * function(sign * mpmath.mpf("1e-12")) > 1e11
