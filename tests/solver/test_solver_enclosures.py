"""Rigorous bounds: interval arithmetic over an integrand, and over its pieces' integrals.

Each bound is checked against values computed far more precisely than the bound's
106 bits: a bound that misses a value would let a wrong number pass as proven.
"""

from __future__ import annotations

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import pytest
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.verify.bounds import PieceIntegral, interval_fn

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

