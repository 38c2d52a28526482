"""Solvers for derivatives, integrals and limits.

Invariant: every function takes normalized problem text (see ``text.py``)
and returns an ``Answer`` or raises a ``ProblemError``; answers are SymPy's
own ``diff``/``integrate``/``limit`` results, printed with ``str``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import ProblemParseError, UnsupportedProblemError
from jobtrail.solver.answer import Answer
from jobtrail.solver.parse import parse_expression
from jobtrail.solver.render import choose_variable, strip_filler
from jobtrail.solver.text import excerpt
from jobtrail.solver.verify import (
    check_antiderivative,
    check_definite_integral,
    check_derivative,
    check_limit,
    run,
    settle,
)

__all__ = ["solve_derivative", "solve_integral", "solve_limit"]

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "twice": 2}
_MAX_ORDER = 20

_D_OPERATOR = re.compile(
    r"^d\s*(?:\^\s*\(?\s*(\d+)\s*\)?)?\s*/\s*d\s*([A-Za-z])\s*(?:\^\s*\(?\s*\d+\s*\)?)?\s*"
    r"(?:of\s+)?",
    re.I,
)
_DERIVATIVE_WORDS = re.compile(
    r"^(?:the\s+)?(?:(first|second|third|fourth|fifth|(\d+)(?:st|nd|rd|th))\s+)?"
    r"(?:derivative|differential)\s+(?:of\s+)?",
    re.I,
)
_DIFFERENTIATE = re.compile(r"^differentiate\s+", re.I)
_WITH_RESPECT = re.compile(
    r"\s*,?\s*(?:with\s+respect\s+to|w\.?\s?r\.?\s?t\.?)\s+([A-Za-z])\s*(twice)?\s*$", re.I
)
_TRAILING_TWICE = re.compile(r"\s+twice\s*$", re.I)
_FUNCTION_OF = re.compile(r"^(?:[a-zA-Z]\s*\(\s*[a-zA-Z]\s*\)|y)\s*=\s*")

_INTEGRAL_WORDS = re.compile(
    r"^(?:the\s+)?(?:definite\s+|indefinite\s+)?(?:integrate|integral|antiderivative)\s*"
    r"(?:of\s+)?",
    re.I,
)
_BOUNDS = re.compile(r"\s+(?:from|between)\s+(.+?)\s+(?:to|and)\s+(.+?)\s*$", re.I)
_DIFFERENTIAL = re.compile(r"\s*\bd([A-Za-z])\s*$|(?<=[\w)])d([A-Za-z])\s*$")

_LIMIT_ARROW = re.compile(
    r"^(?:the\s+)?lim(?:it)?\s*(?:of\s+)?\(?\s*([A-Za-z])\s*->\s*([+-]?\s*[^\s)]+)\s*\)?\s*"
    r"(?:of\s+)?(.*)$",
    re.I,
)
_LIMIT_AS = re.compile(
    r"^(?:the\s+)?lim(?:it)?\s*(?:of\s+)?(.+?),?\s+as\s+([A-Za-z])\s*"
    r"(?:->|approaches|tends\s+to|goes\s+to)\s*(.+)$",
    re.I,
)
_SUPERSCRIPT_SIDE = re.compile(r"\^\(([+-])\)")  # x->0⁺ arrives as x->0^(+)
_SIDE_WORDS = re.compile(r"\s*from\s+(?:the\s+)?(right|above|left|below)\s*$", re.I)


def _order_of(word: str | None, digits: str | None) -> int:
    if digits is not None:
        order = int(digits)
    elif word is not None:
        order = _ORDINALS[word.lower()]
    else:
        order = 1
    if not 1 <= order <= _MAX_ORDER:
        raise UnsupportedProblemError(
            f"derivative order must be between 1 and {_MAX_ORDER}", kind="derivative"
        )
    return order


def _split_derivative(body: str) -> tuple[str, int, str | None]:
    named: str | None = None
    order = 1
    respect = _WITH_RESPECT.search(body)
    if respect is not None:
        named = respect.group(1)
        order = 2 if respect.group(2) else 1
        body = body[: respect.start()]
    elif _TRAILING_TWICE.search(body):
        order = 2
        body = _TRAILING_TWICE.sub("", body)
    # a trailing "twice" gives the order unless the operator or an ordinal names one
    operator = _D_OPERATOR.match(body)
    if operator is not None:
        if operator.group(1) is not None:
            order = _order_of(None, operator.group(1))
        named = operator.group(2)
        return body[operator.end() :], order, named
    words = _DERIVATIVE_WORDS.match(body)
    if words is not None:
        if words.group(1) is not None:
            order = _order_of(words.group(1), words.group(2))
        return body[words.end() :], order, named
    verb = _DIFFERENTIATE.match(body)
    if verb is not None:
        return body[verb.end() :], order, named
    raise ProblemParseError(f"could not parse near {excerpt(body, 0)}", text=body, position=0)


def _rule_steps(expr: sympy.Expr, variable: sympy.Symbol) -> list[str]:
    if isinstance(expr, sympy.Add):
        return ["differentiate term by term"]
    if isinstance(expr, sympy.Mul):
        constant, rest = expr.as_independent(variable, as_Add=False)
        if constant != 1:
            return [f"constant factor {constant} stays"]
        u, v = rest.as_two_terms()
        return [
            f"product rule: (u*v)' = u'*v + u*v' with u = {u}, v = {v}",
            f"u' = {sympy.diff(u, variable)}, v' = {sympy.diff(v, variable)}",
        ]
    inner = expr.args[0] if expr.args else variable
    if isinstance(expr, sympy.Pow) and expr.exp.is_number and expr.base == variable:
        return [f"power rule: d/d{variable} {variable}^n = n*{variable}^(n - 1)"]
    if inner != variable and inner.has(variable):
        return [f"chain rule with inner function {inner}"]
    return []


def _differentiate(expr: sympy.Expr, variable: sympy.Symbol, order: int) -> sympy.Expr:
    """``diff(expr, variable, order)``, over the reals when *expr* holds ``Abs``.

    SymPy differentiates ``Abs(x)`` of a complex ``x`` as
    ``(re(x)*Derivative(re(x), x) + im(x)*Derivative(im(x), x))*sign(x)/x``;
    for a real variable it is ``sign(x)``, which is what ``d/dx |x|`` means
    (parameters are taken real too: ``d/dx |x - a|`` is ``sign(x - a)``).
    """
    if not expr.has(sympy.Abs):
        return sympy.diff(expr, variable, order)
    reals = {s: sympy.Dummy(s.name, real=True) for s in expr.free_symbols | {variable}}
    result = sympy.diff(expr.xreplace(reals), reals[variable], order)
    return result.xreplace({real: s for s, real in reals.items()})


def solve_derivative(text: str) -> Answer:
    """Differentiate, e.g. ``"Find the derivative of x^3 sin(x)"``.

    Accepts ``d/dx f``, ``d^2/dx^2 f``, ``derivative of f``, ``second
    derivative of f``, ``differentiate f with respect to y`` and ``... twice``.

    Args:
        text: Normalized problem text.

    Returns:
        Answer whose text is ``str(sympy.diff(f, x, n))`` unsimplified, e.g.
        ``x**3*cos(x) + 3*x**2*sin(x)``.

    Raises:
        ProblemParseError: The function is missing or unreadable.
        UnsupportedProblemError: The order is above 20.
    """
    body, order, named = _split_derivative(strip_filler(text))
    body = _FUNCTION_OF.sub("", body.strip())
    if not body:
        raise ProblemParseError("nothing to differentiate", text=text, position=len(text))
    expr = parse_expression(body)
    variable = choose_variable(expr, named)
    result = _differentiate(expr, variable, order)
    prefix = "" if order == 1 else f"{order} times "
    steps = [f"differentiate {expr} {prefix}with respect to {variable}"]
    if order == 1:
        steps.extend(_rule_steps(expr, variable))
    steps.append(f"result: {result}")
    answer = Answer("derivative", str(result), sympy.latex(result), tuple(steps))
    return settle(answer, *run(check_derivative, expr, variable, order, result))


def _split_integral(body: str) -> tuple[str, str | None, tuple[str, str] | None]:
    words = _INTEGRAL_WORDS.match(body)
    if words is None:
        raise ProblemParseError(f"could not parse near {excerpt(body, 0)}", text=body, position=0)
    body = body[words.end() :]
    named: str | None = None
    respect = _WITH_RESPECT.search(body)
    if respect is not None:
        named = respect.group(1)
        body = body[: respect.start()]
    bounds: tuple[str, str] | None = None
    found = _BOUNDS.search(body)
    if found is not None:
        upper = found.group(2)
        after = _DIFFERENTIAL.search(upper)  # "from 0 to 2 dx": the differential comes last
        if after is not None:
            named = after.group(1) or after.group(2)
            upper = upper[: after.start()].strip()
        bounds = (found.group(1), upper)
        body = body[: found.start()]
    differential = _DIFFERENTIAL.search(body)
    if differential is not None:
        named = differential.group(1) or differential.group(2)
        body = body[: differential.start()]
    return body.strip(), named, bounds


def solve_integral(text: str) -> Answer:
    """Integrate, e.g. ``"integrate x e^x dx"`` or ``"integral of sin(x) from 0 to pi"``.

    Args:
        text: Normalized problem text; ``dx`` or ``with respect to x`` names
            the variable, ``from a to b`` or ``between a and b`` the bounds
            (``oo``/``infinity`` allowed).

    Returns:
        Indefinite: ``"<antiderivative> + C"``; definite: the exact value,
        ``oo`` or ``-oo`` for a divergent integral.

    Raises:
        ProblemParseError: The integrand or a bound is missing or unreadable.
        UnsupportedProblemError: No closed form, or the integral is undefined.
    """
    body, named, bounds = _split_integral(strip_filler(text))
    if not body:
        raise ProblemParseError("nothing to integrate", text=text, position=len(text))
    expr = parse_expression(body)
    variable = choose_variable(expr, named)
    antiderivative = sympy.integrate(expr, variable)
    steps = [f"integrate {expr} with respect to {variable}"]
    if not antiderivative.has(sympy.Integral):
        steps.append(f"antiderivative: F({variable}) = {antiderivative}")
    if bounds is None:
        if antiderivative.has(sympy.Integral):
            raise UnsupportedProblemError(
                f"no closed-form antiderivative of {expr}", kind="integral"
            )
        latex = f"{sympy.latex(antiderivative)} + C"
        answer = Answer("integral", f"{antiderivative} + C", latex, tuple(steps))
        return settle(answer, *run(check_antiderivative, expr, variable, antiderivative))
    lower, upper = parse_expression(bounds[0]), parse_expression(bounds[1])
    value = sympy.integrate(expr, (variable, lower, upper))
    if value.has(sympy.Integral):
        raise UnsupportedProblemError(
            f"no closed form for this integral of {expr}", kind="integral"
        )
    if value.has(sympy.nan) or value.has(sympy.zoo):
        raise UnsupportedProblemError("the integral does not converge", kind="integral")
    if value not in (sympy.oo, -sympy.oo):
        pole = _non_integrable_point(expr, variable, lower, upper)
        if pole is not None:
            raise UnsupportedProblemError(
                f"the integral diverges: {expr} is not integrable at {variable} = "
                f"{_shown_point(pole)} (SymPy's finite {value} is at best a Cauchy principal "
                "value)",
                kind="integral")
    _refuse_if_not_real(value, (expr, lower, upper), "integral", lambda: (
        f"the integral has no real value: {expr} is not real on part of the interval "
        f"(SymPy gives {value})" if _not_real_inside(expr, variable, lower, upper) else None))
    if value in (sympy.oo, -sympy.oo):
        steps.append("the integral diverges")
    steps.append(f"from {variable} = {lower} to {variable} = {upper}: {value}")
    answer = Answer("integral", str(value), sympy.latex(value), tuple(steps))
    return settle(answer, *run(check_definite_integral, expr, variable, lower, upper, value))


def _refuse_if_not_real(value: sympy.Expr, parts: tuple[sympy.Expr, ...], kind: str,
                        not_real: Callable[[], str | None]) -> None:
    """Refuse *value* for a real problem (no part in *parts* holds ``i``) that it cannot answer.

    Raises:
        UnsupportedProblemError: ``_not_a_real_value`` gives a reason, or *not_real* (the
            function sampled on the range) does.
    """
    if any(part.has(sympy.I) for part in parts):
        return
    reason = _not_a_real_value(value, f"the {kind}") or not_real()
    if reason is not None:
        raise UnsupportedProblemError(reason, kind=kind)


def _not_a_real_value(value: sympy.Expr, what: str) -> str | None:
    """Why *value* cannot be the answer to a real integral or limit, or None.

    Args:
        value: SymPy's result for a problem whose text holds no ``i``.
        what: ``"the integral"`` or ``"the limit"``, for the reason.

    Returns:
        The reason: *value* is undefined (``nan``, ``zoo``), mixes an infinity with other
        terms (``oo - I*pi``), or is not real (the function is not real on all of the range);
        None for a real number, ``oo`` or ``-oo``.
    """
    if value in (sympy.oo, -sympy.oo):
        return None
    if value.has(sympy.nan) or value.has(sympy.zoo):
        return f"{what} is undefined: SymPy gives {value}"
    if value.has(sympy.AccumBounds):
        return (f"{what} diverges: SymPy's {value} is a range the values oscillate over, "
                "not a value")
    if value.has(sympy.oo) or value.has(-sympy.oo):
        return (f"{what} diverges: SymPy's {value} mixes an infinity with other terms, "
                "which no real value does")
    if not value.free_symbols:
        try:
            imaginary = sympy.im(sympy.N(value, 30))
        except (TypeError, ValueError, ArithmeticError):
            return None
        if imaginary.is_number and abs(imaginary) > sympy.Float("1e-20"):
            return (f"{what} has no real value: SymPy's {value} is not real (the function "
                    "is not real everywhere on the range, e.g. a logarithm or root of a "
                    "negative number)")
    return None


def _not_real_inside(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                     upper: sympy.Expr) -> bool:
    """*expr* has an imaginary part at one of six points inside [lower, upper].

    Finite bounds: lower + (upper - lower)*k/7, k = 1..6; an infinite bound is replaced by
    points 0.7 to 1000 beyond the other bound (or 0). False when a bound is not a real number.
    """
    fractions = [sympy.Rational(k, 7) for k in range(1, 7)]
    offsets = [sympy.Rational(7, 10), sympy.Rational(31, 10), sympy.Rational(173, 10),
               sympy.Integer(1000)]
    if lower.is_finite and upper.is_finite and lower.is_real and upper.is_real:
        samples = [lower + (upper - lower) * f for f in fractions]
    elif lower.is_infinite and upper.is_infinite:
        samples = [sign * o for o in offsets for sign in (1, -1)]
    elif upper.is_infinite and lower.is_real:
        samples = [lower + (o if upper is sympy.oo else -o) for o in offsets]
    elif lower.is_infinite and upper.is_real:
        samples = [upper + (o if lower is sympy.oo else -o) for o in offsets]
    else:
        return False
    return any(_imaginary_at(expr, variable, sample) for sample in samples)


def _imaginary_at(expr: sympy.Expr, variable: sympy.Symbol, sample: sympy.Expr) -> bool:
    """*expr* at *sample* (20 digits, never exactly) is a finite number with an imaginary part."""
    try:
        value = expr.evalf(20, subs={variable: sample})
        return bool(value.is_number and value.is_finite
                    and abs(sympy.im(value)) > sympy.Float("1e-15"))
    except (TypeError, ValueError, ArithmeticError):
        return False


def _not_real_near(expr: sympy.Expr, variable: sympy.Symbol, point: sympy.Expr,
                   side: str) -> bool:
    """*expr* is plainly not real on every side *point* is approached from.

    Sampled at two points per side (10^-4 and 10^-8 away, or 10^4 and 10^8 out for an
    infinite point); a side counts as not real when both samples have an imaginary part.
    """
    if point is sympy.oo:
        sides = [(sympy.Integer(10) ** 4, sympy.Integer(10) ** 8)]
    elif point is -sympy.oo:
        sides = [(-sympy.Integer(10) ** 4, -sympy.Integer(10) ** 8)]
    elif point.is_real:
        steps = (sympy.Rational(1, 10**4), sympy.Rational(1, 10**8))
        sides = [tuple(point + sign * step for step in steps)
                 for sign, name in ((1, "+"), (-1, "-")) if name in side]
    else:
        return False
    return bool(sides) and all(
        _imaginary_at(expr, variable, sample) for samples in sides for sample in samples)


def _non_integrable_point(expr: sympy.Expr, variable: sympy.Symbol, lower: sympy.Expr,
                          upper: sympy.Expr) -> sympy.Expr | None:
    """A point of [lower, upper] where *expr* is not integrable, or None if none is found.

    A singularity c with (x - c)*expr not tending to 0 on a side inside the interval
    (1/x, exp(x)/x, 1/log(x) at 1) makes the integral diverge there, whatever finite
    value SymPy gives (a Cauchy principal value). Where SymPy's ``limit`` cannot approach
    c (a ``CRootOf``: 1/(x^5 - x - 1) at 1.1673), a rational *expr* is not integrable at
    any root of its denominator once common factors are cancelled (a pole of order 1 or
    more). None when SymPy cannot say.
    """
    if not (lower.is_real and upper.is_real) or expr.free_symbols - {variable}:
        return None
    low, high = (lower, upper) if bool(lower <= upper) else (upper, lower)
    try:
        points = sympy.singularities(expr, variable, sympy.Interval(low, high))
    except (NotImplementedError, TypeError, ValueError):
        return None
    if not isinstance(points, sympy.FiniteSet):
        return None
    for point in sorted(points, key=sympy.default_sort_key):
        sides = [side for side, inside in (("+", point != high), ("-", point != low)) if inside]
        for side in sides:
            try:
                near = sympy.limit((variable - point) * expr, variable, point, side)
            except (NotImplementedError, ValueError):
                if _is_pole(expr, variable, point):
                    return point
                continue
            if near != 0 and not near.has(sympy.Limit):
                return point
    return None


def _is_pole(expr: sympy.Expr, variable: sympy.Symbol, point: sympy.Expr) -> bool:
    """*expr* is a rational function of *variable* whose cancelled denominator vanishes
    at *point* exactly (a ``CRootOf`` of it included)."""
    if not expr.is_rational_function(variable):
        return False
    _, denominator = sympy.fraction(sympy.cancel(expr))
    try:
        if isinstance(point, sympy.CRootOf):  # a root of den iff its minimal polynomial divides it
            minimal = sympy.Poly(point.poly.as_expr().xreplace({point.poly.gen: variable}),
                                 variable)
            return bool(sympy.Poly(denominator, variable).rem(minimal).is_zero)
        return denominator.subs(variable, point).is_zero is True
    except (sympy.PolynomialError, TypeError, ValueError):
        return False


def _shown_point(point: sympy.Expr) -> str:
    """*point* as text, with its value when it is not a plain number (``CRootOf(...) ≈ 1.16``)."""
    if point.is_Rational or not point.is_number:
        return str(point)
    try:
        return f"{point} ≈ {sympy.N(point, 15)}"
    except (TypeError, ValueError, ArithmeticError):
        return str(point)


def _split_limit(body: str) -> tuple[str, str, str]:
    body = _SUPERSCRIPT_SIDE.sub(r"\1", body)
    arrow = _LIMIT_ARROW.match(body)
    if arrow is not None and arrow.group(3).strip():
        return arrow.group(3), arrow.group(1), arrow.group(2)
    words = _LIMIT_AS.match(body)
    if words is not None:
        return words.group(1), words.group(2), words.group(3)
    raise ProblemParseError(
        f"could not parse near {excerpt(body, 0)}: write e.g. 'lim x->0 sin(x)/x'",
        text=body,
        position=0,
    )


def _point_and_side(point_text: str) -> tuple[sympy.Expr, str]:
    side = "+-"
    words = _SIDE_WORDS.search(point_text)
    if words is not None:
        side = "+" if words.group(1).lower() in {"right", "above"} else "-"
        point_text = point_text[: words.start()]
    point_text = point_text.strip()
    if len(point_text) > 1 and point_text[-1] in "+-":
        side = point_text[-1]
        point_text = point_text[:-1].rstrip("^ ")
    return parse_expression(point_text), side


def _does_not_exist(
    result: sympy.Basic, expr: sympy.Expr, variable: sympy.Symbol, point: sympy.Expr
) -> list[str] | None:
    if isinstance(result, sympy.AccumBounds):
        return [f"oscillates between {result.min} and {result.max}"]
    if result.has(sympy.AccumBounds):  # x*sin(x) at oo: oo*sign(AccumBounds(-1, 1))
        return [f"oscillates without settling: {result}"]
    if result is sympy.zoo or result is sympy.nan:
        left = sympy.limit(expr, variable, point, "-")
        right = sympy.limit(expr, variable, point, "+")
        return [f"left limit {left}, right limit {right}: they differ"]
    return None


def solve_limit(text: str) -> Answer:
    """Find a limit, e.g. ``"lim x->0 sin(x)/x"`` or ``"limit of (1 + 1/n)^n as n -> infinity"``.

    ``x->0+``/``x->0-`` (or ``from the right``/``from the left``) give a
    one-sided limit; otherwise a finite point is approached from both sides.
    A limit that does not exist (different one-sided limits, oscillation)
    answers ``does not exist``.

    Args:
        text: Normalized problem text.

    Returns:
        Answer with SymPy's value: ``1``, ``E`` (LaTeX ``e``), ``oo``.

    Raises:
        ProblemParseError: The limit is not in one of the forms above.
        UnsupportedProblemError: SymPy cannot decide the limit.

    Source:
        SymPy ``limit`` and its ``dir`` argument:
        https://docs.sympy.org/latest/modules/series/series.html#sympy.series.limits.limit
    """
    expr_text, name, point_text = _split_limit(strip_filler(text))
    expr = parse_expression(expr_text.strip())
    point, side = _point_and_side(point_text)
    variable = choose_variable(expr, name)
    infinite = point in (sympy.oo, -sympy.oo)
    shown_side = "" if infinite or side == "+-" else side
    steps = [f"limit of {expr} as {variable} -> {point}{shown_side}"]
    if not infinite:
        substituted = expr.subs(variable, point)
        if substituted.is_finite:
            steps.append(f"substitute {variable} = {point}: {substituted}")
        else:
            steps.append("substitution gives an undefined form")
    try:
        result = (
            sympy.limit(expr, variable, point)
            if infinite
            else sympy.limit(expr, variable, point, side)
        )
    except ValueError as exc:
        if "does not exist" not in str(exc):
            raise
        result = sympy.nan
        steps.append(str(exc))
    reason = _does_not_exist(result, expr, variable, point)
    if reason is not None:
        steps.extend(reason)
        answer = Answer("limit", "does not exist", "\\text{does not exist}", tuple(steps))
        return settle(answer, *run(check_limit, expr, variable, point, side, None))
    if result.has(sympy.Limit):
        raise UnsupportedProblemError(f"cannot find the limit of {expr}", kind="limit")
    _refuse_if_not_real(result, (expr, point), "limit", lambda: (
        f"the limit has no real value: {expr} is not real as {variable} -> {point}{shown_side} "
        f"(SymPy gives {result})" if _not_real_near(expr, variable, point, side) else None))
    steps.append(f"limit = {result}")
    answer = Answer("limit", str(result), sympy.latex(result), tuple(steps))
    return settle(answer, *run(check_limit, expr, variable, point, side, result))
