"""Compile a SymPy expression into a plain closure over mpmath (or float) functions.

Invariant: the closure only calls mpmath (or ``math``) functions; building
it walks the tree once (microseconds, where ``sympy.lambdify`` generates
and ``exec``s source, about 5 ms a call), and evaluating it never calls
SymPy. Anything without a counterpart here raises ``Unsupported``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

__all__ = ["Unsupported", "build"]

Fn = Callable[[Sequence[Any]], Any]


class Unsupported(Exception):
    """The expression holds something this evaluator cannot compute."""


def _heaviside(x: Any) -> Any:
    return 0 if x < 0 else 1 if x > 0 else mpmath.mpf(1) / 2


def _sign(x: Any) -> Any:
    return mpmath.sign(x)


_MP: dict[str, Callable[..., Any]] = {
    name: getattr(mpmath, name) for name in (
        "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "acot", "asec",
        "acsc", "sinh", "cosh", "tanh", "coth", "sech", "csch", "asinh", "acosh", "atanh",
        "acoth", "asech", "acsch", "exp", "floor", "factorial", "gamma", "loggamma", "erf",
        "erfc", "erfi",
        "zeta", "polylog", "re", "im", "arg", "conj", "fresnels", "fresnelc", "lambertw",
        "besselj", "bessely", "besseli", "besselk", "binomial", "atan2", "ei", "li", "si",
        "ci", "shi", "chi", "digamma", "beta", "airyai", "airybi", "cbrt")
}
_MP.update({"ceiling": mpmath.ceil, "Abs": mpmath.fabs, "sign": _sign, "conjugate": mpmath.conj,
            "Heaviside": _heaviside, "LambertW": mpmath.lambertw, "Ei": mpmath.ei,
            "Si": mpmath.si, "Ci": mpmath.ci, "Shi": mpmath.shi, "Chi": mpmath.chi,
            "uppergamma": lambda a, z: mpmath.gammainc(a, z),
            "lowergamma": lambda a, z: mpmath.gammainc(a, 0, z), "polygamma": mpmath.psi,
            "RisingFactorial": mpmath.rf, "FallingFactorial": mpmath.ff,
            "elliptic_k": mpmath.ellipk, "elliptic_e": mpmath.ellipe,
            "frac": mpmath.frac})

_FLOAT: dict[str, Callable[..., Any]] = {
    name: getattr(math, name) for name in (
        "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
        "acosh", "atanh", "exp", "floor", "erf", "erfc", "gamma", "atan2")
}
_FLOAT.update({"cot": lambda x: 1 / math.tan(x), "sec": lambda x: 1 / math.cos(x),
               "csc": lambda x: 1 / math.sin(x), "acot": lambda x: math.atan(1 / x),
               "coth": lambda x: 1 / math.tanh(x), "ceiling": math.ceil, "Abs": abs,
               "sign": lambda x: (x > 0) - (x < 0), "factorial": lambda x: math.gamma(x + 1),
               "loggamma": math.lgamma,
               "Heaviside": lambda x: 0.0 if x < 0 else 1.0 if x > 0 else 0.5,
               "re": lambda x: x, "im": lambda x: 0.0})

_CONSTANTS_MP = {"Pi": lambda: +mpmath.pi, "Exp1": lambda: +mpmath.e,
                 "EulerGamma": lambda: +mpmath.euler, "GoldenRatio": lambda: +mpmath.phi,
                 "Catalan": lambda: +mpmath.catalan, "ImaginaryUnit": lambda: mpmath.mpc(0, 1),
                 "Infinity": lambda: mpmath.inf, "NegativeInfinity": lambda: -mpmath.inf}
_CONSTANTS_FLOAT = {"Pi": lambda: math.pi, "Exp1": lambda: math.e,
                    "EulerGamma": lambda: 0.5772156649015329,
                    "GoldenRatio": lambda: (1 + math.sqrt(5)) / 2,
                    "Catalan": lambda: 0.915965594177219, "Infinity": lambda: math.inf,
                    "NegativeInfinity": lambda: -math.inf}


def _log_mp(*args: Any) -> Any:
    return mpmath.log(args[0]) if len(args) == 1 else mpmath.log(args[0], args[1])


def _log_float(*args: Any) -> Any:
    return math.log(args[0]) if len(args) == 1 else math.log(args[0], args[1])


def _pow_float(base: Any, exp: Any) -> Any:
    value = base ** exp
    if isinstance(value, complex):
        raise ValueError("complex power")
    return value


def build(expr: sympy.Basic, variables: Sequence[sympy.Symbol], floats: bool = False) -> Fn:
    """Return a closure ``fn(args)`` computing *expr* at the values *args* of *variables*.

    Args:
        expr: A SymPy expression.
        variables: The symbols, in the order of *args*.
        floats: Compute with ``math`` floats (fast sampling) instead of mpmath
            at the ambient precision.

    Returns:
        The closure; it raises ArithmeticError/ValueError where undefined.

    Raises:
        Unsupported: A function, symbol or construct with no counterpart.
    """
    index = {v: i for i, v in enumerate(variables)}
    functions = _FLOAT if floats else _MP
    constants = _CONSTANTS_FLOAT if floats else _CONSTANTS_MP
    log = _log_float if floats else _log_mp
    power: Callable[[Any, Any], Any] = _pow_float if floats else mpmath.power

    def walk(e: sympy.Basic) -> Fn:
        if e in index:
            i = index[e]
            return lambda a: a[i]
        leaf = _number(e, floats)
        if leaf is not None:
            return leaf
        name = type(e).__name__
        if name in constants:
            make = constants[name]
            return lambda a: make()
        if isinstance(e, sympy.CRootOf):
            return _root_of(e, floats)
        if name in ("ComplexInfinity", "NaN") or (floats and name == "ImaginaryUnit"):
            raise Unsupported(name)
        parts = [walk(arg) for arg in e.args]
        if isinstance(e, sympy.Pow):
            return _pow(e, parts, floats, power)
        if isinstance(e, sympy.log):
            return lambda a: log(*(f(a) for f in parts))
        if isinstance(e, sympy.Piecewise):
            return _piecewise(e, walk)
        return _combine(e, name, parts, functions)

    return walk(expr)


def _number(e: sympy.Basic, floats: bool) -> Fn | None:
    """A closure for a literal number (integer, rational, float), else None."""
    if e.is_Integer:
        value = int(e)
        if floats:
            f = float(value)
            return lambda a: f
        return lambda a: mpmath.mpf(value)
    if e.is_Rational:
        p, q = int(e.p), int(e.q)
        if floats:
            r = p / q
            return lambda a: r
        return lambda a: mpmath.mpf(p) / q
    if e.is_Float:
        if floats:
            r = float(e)
            return lambda a: r
        m = e._mpf_
        return lambda a: mpmath.mpf(m)
    return None


def _q(v: Any) -> Any:
    """An mpmath number from a SymPy/gmpy rational (numerator, denominator)."""
    return mpmath.mpf(int(v.numerator)) / int(v.denominator)


def _root_of(e: sympy.CRootOf, floats: bool) -> Fn:
    """A CRootOf: Newton's method on its polynomial, from the centre of its isolating box.

    ``CRootOf.evalf`` of a complex root refines the box with exact
    arithmetic (0.7 s at 15 digits, 15 s at 80); the box SymPy already holds
    is enough to start Newton, and the root must end inside it.
    """
    coeffs = [mpmath.mpf(c.p) / c.q if c.is_Rational else mpmath.mpf(float(c))
              for c in e.poly.all_coeffs()]
    box = e._get_interval()
    inside: Callable[[Any], bool]
    if e.is_real:
        low, high = (_q(v) for v in (box.a, box.b))
        inside = lambda z: low <= mpmath.re(z) <= high  # noqa: E731
        start: Any = (low + high) / 2
    else:
        ax, ay, bx, by = (_q(v) for v in (box.ax, box.ay, box.bx, box.by))  # conj: already
        inside = lambda z: ax <= mpmath.re(z) <= bx and ay <= mpmath.im(z) <= by  # noqa: E731
        start = mpmath.mpc((ax + bx) / 2, (ay + by) / 2)
    if floats:
        if not e.is_real:
            raise Unsupported("complex CRootOf")
        with mpmath.workdps(20):
            real = float(mpmath.findroot(lambda t: mpmath.polyval(coeffs, t), start))
        return lambda a: real
    cache: dict[int, Any] = {}

    def value(a: Sequence[Any]) -> Any:
        prec = mpmath.mp.prec
        if prec not in cache:
            z = mpmath.findroot(lambda t: mpmath.polyval(coeffs, t), start)
            if not inside(z):
                raise ValueError("Newton left the isolating box of the CRootOf")
            cache[prec] = z
        return cache[prec]

    return value


def _pow(e: sympy.Pow, parts: list[Fn], floats: bool,
         power: Callable[[Any, Any], Any]) -> Fn:
    base, exp = parts
    if e.exp == sympy.S.Half:
        sqrt = math.sqrt if floats else mpmath.sqrt
        return lambda a: sqrt(base(a))
    if e.exp.is_Integer:
        k = int(e.exp)
        return lambda a: base(a) ** k
    return lambda a: power(base(a), exp(a))


def _combine(e: sympy.Basic, name: str, parts: list[Fn],
             functions: dict[str, Callable[..., Any]]) -> Fn:
    if isinstance(e, sympy.Add):
        return lambda a: reduce(lambda s, f: s + f(a), parts[1:], parts[0](a))
    if isinstance(e, sympy.Mul):
        return lambda a: reduce(lambda s, f: s * f(a), parts[1:], parts[0](a))
    if isinstance(e, (sympy.Max, sympy.Min)):
        pick = max if isinstance(e, sympy.Max) else min
        return lambda a: pick(f(a) for f in parts)
    if name in functions:
        fn = functions[name]
        return lambda a: fn(*(f(a) for f in parts))
    raise Unsupported(name)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "StrictLessThan": lambda x, y: x < y, "LessThan": lambda x, y: x <= y,
    "StrictGreaterThan": lambda x, y: x > y, "GreaterThan": lambda x, y: x >= y,
    "Equality": lambda x, y: x == y, "Unequality": lambda x, y: x != y,
}


def _condition(c: sympy.Basic, walk: Callable[[sympy.Basic], Fn]) -> Fn:
    if c is sympy.true:
        return lambda a: True
    if c is sympy.false:
        return lambda a: False
    name = type(c).__name__
    if name in _COMPARE:
        left, right, op = walk(c.lhs), walk(c.rhs), _COMPARE[name]
        return lambda a: op(left(a), right(a))
    parts = [_condition(arg, walk) for arg in c.args]
    if name == "And":
        return lambda a: all(p(a) for p in parts)
    if name == "Or":
        return lambda a: any(p(a) for p in parts)
    if name == "Not":
        return lambda a: not parts[0](a)
    raise Unsupported(name)


def _piecewise(e: sympy.Piecewise, walk: Callable[[sympy.Basic], Fn]) -> Fn:
    branches = [(walk(value), _condition(cond, walk)) for value, cond in e.args]

    def fn(a: Sequence[Any]) -> Any:
        for value, cond in branches:
            if cond(a):
                return value(a)
        raise ValueError("no branch of the Piecewise applies")

    return fn
