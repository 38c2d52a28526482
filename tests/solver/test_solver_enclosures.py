"""Rigorous bounds: interval arithmetic over an integrand, its pieces' integrals, its mass.

Each bound is checked against values computed far more precisely than the bound's
106 bits: a bound that misses a value would let a wrong number pass as proven.
"""

from __future__ import annotations

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import pytest
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.verify.bounds import PieceIntegral, interval_fn
from jobtrail.solver.verify.mass import locate, refine
from jobtrail.solver.verify.numeric import Budget, compile_expr

x = sympy.Symbol("x")

BOUNDED = [
    sympy.exp(-(x - 50) ** 2), 1 / sympy.cosh(10**6 * (x - sympy.Rational(1, 3))),
    sympy.Abs(sympy.sin(x) * sympy.cos(x)), sympy.sqrt(x + 5) * sympy.atan(x),
    (sympy.cos(x**2) - sympy.cos(x)) / (x**2 + 1), sympy.erf(x) * sympy.exp(x / 3),
    sympy.tanh(x) + sympy.asinh(x) - sympy.cot(x + 7),
]


@pytest.mark.parametrize("expr", BOUNDED, ids=str)
def test_interval_bounds_hold_every_sampled_value(expr: sympy.Expr) -> None:
    bounds = interval_fn(expr, x)
    f = sympy.lambdify(x, expr, "mpmath")
    for lo, hi in [(-3, -2.5), (-1, 1), (0.1, 0.2), (0, 1), (2, 9)]:
        box = bounds(mpmath.mpf(lo), mpmath.mpf(hi))
        if box is None:
            continue
        with mpmath.workdps(60):  # the reference far more precise than the bounds' 106 bits
            for k in range(41):
                value = f(mpmath.mpf(lo) + (mpmath.mpf(hi) - mpmath.mpf(lo)) * k / 40)
                assert box[0] <= value <= box[1], (lo, hi, k, value, box)


@pytest.mark.parametrize("expr", BOUNDED, ids=str)
def test_piece_enclosures_hold_the_integral(expr: sympy.Expr) -> None:
    pieces = PieceIntegral(expr, x)
    f = sympy.lambdify(x, expr, "mpmath")
    for lo, hi in [(-1, -0.875), (0.1, 0.2), (0, 0.5), (1, 1.0625)]:
        box = pieces(mpmath.mpf(lo), mpmath.mpf(hi))
        assert box is not None
        with mpmath.workdps(40):
            value = mpmath.quad(f, [lo, hi])
        assert box[0] <= value <= box[1], (lo, hi, value, box)


def test_locate_finds_a_peak_a_millionth_wide_and_encloses_its_integral() -> None:
    # Given exp(-10^12 (x - 1/3)^2) on [0, 1]: all of its mass within 3e-6 of 1/3
    expr = sympy.exp(-10**12 * (x - sympy.Rational(1, 3)) ** 2)
    f = compile_expr(expr, [x])
    with mpmath.workdps(30):
        located = locate(interval_fn(expr, x), f, [mpmath.mpf(0), mpmath.mpf(1)], Budget(2))
    # Then the quadrature runs only around 1/3, the rest is bounded as negligible
    assert located.complete
    assert all(run[0] < mpmath.mpf(1) / 3 < run[-1] and run[-1] - run[0] < 1e-3
               for run in located.runs)
    assert located.skipped < mpmath.mpf(10) ** -30
    # and the rigorous enclosure holds the integral, sqrt(pi)/10^6, tighter once refined
    value = mpmath.sqrt(mpmath.pi) / 10**6
    assert located.enclosure is not None
    assert located.enclosure[0] <= value <= located.enclosure[1]
    tight = refine(PieceIntegral(expr, x), located, value * mpmath.mpf(10) ** -9, Budget(2))
    assert tight.enclosure is not None
    assert tight.enclosure[0] <= value <= tight.enclosure[1]
    assert tight.enclosure[1] - tight.enclosure[0] <= value * mpmath.mpf(10) ** -9
