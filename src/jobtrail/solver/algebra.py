"""Solvers for arithmetic, simplify, single equations and systems of equations.

Invariant: every function takes normalized problem text (see ``text.py``)
and returns an ``Answer`` or raises a ``ProblemError``; all arithmetic is
exact SymPy arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import ProblemParseError, ProblemTooLargeError, UnsupportedProblemError
from jobtrail.solver.answer import Answer
from jobtrail.solver.domain import Condition
from jobtrail.solver.parse import conditions_read, divisors_read, parse_expression
from jobtrail.solver.render import (
    choose_variable,
    join_latex,
    numeric_or_none,
    parse_equation,
    sort_key,
    split_top_level,
    strip_filler,
)
from jobtrail.solver.solution_sets import (
    describe_families,
    describe_region,
    system_within_domain,
    within_domain,
)
from jobtrail.solver.text import excerpt
from jobtrail.solver.verify import (
    check_arithmetic,
    check_equation,
    check_simplify,
    check_system,
    run,
    settle,
)
from jobtrail.solver.verify.equations import non_real_part, zero_divisor
from jobtrail.solver.verify.evaluate import Unsupported
from jobtrail.solver.verify.membership import violated
from jobtrail.solver.verify.numeric import call, compile_expr, stable

__all__ = [
    "solve_arithmetic",
    "solve_equation",
    "solve_simplify",
    "solve_system",
    "split_system",
    "MAX_EQUATION_DEGREE",
]

_SIMPLIFY_VERB = re.compile(
    r"^(simplify|expand|factori[sz]e|factor)\s*(?:the\s+)?(?:expression\s+)?:?\s*", re.I
)
_SOLVE_VERB = re.compile(
    r"^solve\s*(?:the\s+)?(?:(?:system|simultaneous|linear|equations?)\s*)*(?:of\s+equations?\s*)?:?\s*",
    re.I,
)
_FOR_VARS = re.compile(r"\s+for\s+([A-Za-z](?:\s*(?:,|and)\s*[A-Za-z])*)\s*$", re.I)
_MAX_PRINCIPAL = 12  # more principal solutions than this are not listed (sin(exp(x)) = 0)

MAX_EQUATION_DEGREE = 20
"""Highest polynomial degree solved; above it root isolation takes seconds to minutes."""


def _nothing_after(verb: str, text: str) -> ProblemParseError:
    return ProblemParseError(f"nothing to {verb} after '{verb}'", text=text, position=len(text))


def solve_arithmetic(text: str) -> Answer:
    """Evaluate a constant expression exactly, e.g. ``"evaluate 2^10 / 4"`` -> ``256``.

    Args:
        text: Normalized problem text.

    Returns:
        Answer with the exact value; irrational values also get a 15-digit
        decimal step.

    Raises:
        ProblemParseError: The expression is unreadable.
        ProblemTooLargeError: A number is beyond the size limits.
        UnsupportedProblemError: The value is undefined (``1/0``).
    """
    body = strip_filler(text)
    value = given = parse_expression(body)
    if not value.is_Rational:
        simpler = sympy.simplify(value)
        if sympy.count_ops(simpler) < sympy.count_ops(value):
            value = simpler
    steps = [f"{body} = {value}"]
    if not value.is_Rational:
        number = numeric_or_none(value)
        if number is not None:
            steps.append(f"approximately {number}")
    answer = Answer("arithmetic", str(value), sympy.latex(value), tuple(steps))
    return settle(answer, *run(check_arithmetic, given, value, text=body))


def solve_simplify(text: str) -> Answer:
    """Simplify, expand or factor an expression, e.g. ``"simplify (x^2 - 1)/(x - 1)"``.

    Args:
        text: Normalized problem text; the verb (``simplify``, ``expand``,
            ``factor``/``factorise``) picks the operation, default simplify.

    Returns:
        Answer with the resulting expression; for a quotient the steps show
        the factored numerator and denominator and the cancelled factor.

    Raises:
        ProblemParseError: Nothing follows the verb, or it is unreadable.
    """
    body = strip_filler(text)
    match = _SIMPLIFY_VERB.match(body)
    verb = match.group(1).lower() if match else "simplify"
    body = body[match.end() :] if match else body
    if not body:
        raise _nothing_after(verb, text)
    expr = parse_expression(body)
    steps: list[str] = []
    if verb == "expand":
        result = sympy.expand(expr)
    elif verb.startswith("factor"):
        result = sympy.factor(expr)
    else:
        numerator, denominator = sympy.fraction(sympy.together(expr))
        if denominator.free_symbols:
            steps.append(f"numerator: {sympy.factor(numerator)}")
            steps.append(f"denominator: {sympy.factor(denominator)}")
            common = sympy.gcd(numerator, denominator)
            if common.free_symbols:
                steps.append(f"cancel the common factor {common} (valid where {common} != 0)")
        result = sympy.simplify(expr)
    steps.append(f"{verb}: {result}")
    answer = Answer("simplify", str(result), sympy.latex(result), tuple(steps))
    return settle(answer, *run(check_simplify, expr, result))


def _format_roots(variable: sympy.Symbol, roots: list[sympy.Basic]) -> tuple[str, str]:
    ordered = sorted(roots, key=sort_key)
    text = ", ".join(f"{variable} = {root}" for root in ordered)
    latex = join_latex(f"{sympy.latex(variable)} = {sympy.latex(root)}" for root in ordered)
    return text, latex


def _polynomial_steps(expr: sympy.Expr, variable: sympy.Symbol) -> list[str]:
    numerator, denominator = sympy.fraction(sympy.together(expr))
    steps: list[str] = []
    if denominator.has(variable):
        steps.append(f"multiply by {denominator}, which must not be 0: {numerator} = 0")
    _, factors = sympy.factor_list(numerator, variable)
    pairs = sorted(((b, p) for b, p in factors if b.has(variable)), key=lambda bp: str(bp[0]))
    if len(pairs) > 1 or (pairs and pairs[0][1] > 1):
        shown = "*".join(f"({b})" + (f"^{p}" if p > 1 else "") for b, p in pairs)
        steps.append(f"factor: {shown} = 0")
        steps.append(" or ".join(f"{b} = 0" for b, _ in pairs))
    elif sympy.degree(numerator, variable) == 2:
        a, b, c = sympy.Poly(numerator, variable).all_coeffs()
        steps.append(f"quadratic formula with a = {a}, b = {b}, c = {c}")
        steps.append(f"discriminant b^2 - 4ac = {sympy.expand(b**2 - 4 * a * c)}")
    return steps


def _is_rational_in(expr: sympy.Expr, variable: sympy.Symbol) -> bool:
    numerator, denominator = sympy.fraction(sympy.together(expr))
    return bool(numerator.is_polynomial(variable) and denominator.is_polynomial(variable))


def _describe_set(
    variable: sympy.Symbol, solution: sympy.Set, domain: sympy.Set
) -> tuple[str, str, list[str]]:
    if isinstance(solution, sympy.FiniteSet):
        text, latex = _format_roots(variable, list(solution))
        return text, latex, []
    if solution is sympy.S.EmptySet:
        text = "no real solution" if domain == sympy.S.Reals else "no solution"
        return text, f"\\text{{{text}}}", []
    if solution == domain:
        return f"all {variable}", f"\\text{{all }} {sympy.latex(variable)}", ["identity"]
    periodic = describe_families(variable, solution)
    if periodic is not None:
        return periodic[0], periodic[1], ["general solution (periodic)"]
    region = describe_region(variable, solution)
    region_latex = describe_region(variable, solution, latex=True)
    if region is not None and region_latex is not None:
        return region, region_latex, []
    raise UnsupportedProblemError(
        f"cannot express the solutions of this equation in closed form: {solution}",
        kind="equation",
    )


def _without_unknown(body: str, expr: sympy.Expr, symbols: set[sympy.Basic]) -> Answer:
    if not symbols:
        raise UnsupportedProblemError(f"'{body}' has no unknown to solve for", kind="equation")
    variable = sorted(str(symbol) for symbol in symbols)[0]
    steps = [f"rearrange: {expr} = 0"]
    if expr == 0:
        steps.append("the equation is an identity")
        return Answer("equation", f"all {variable}", f"\\text{{all }} {variable}", tuple(steps))
    steps.append(f"{expr} = 0 is false")
    return Answer("equation", "no solution", "\\text{no solution}", tuple(steps))


def solve_equation(text: str) -> Answer:
    """Solve one equation in one unknown, e.g. ``"solve x^2 - 5x + 6 = 0"`` -> ``x = 2, x = 3``.

    Polynomial and rational equations are solved over the complex numbers
    (``x^2 = -1`` -> ``x = -I, x = I``); others over the reals. Periodic
    solution sets are written in general form with an integer ``n``, e.g.
    ``x = 2*n*pi, x = 2*n*pi + pi (n an integer)``; the steps add the
    principal solutions in [0, 2*pi).

    Args:
        text: Normalized problem text; ``solve`` is optional, ``for y``
            names the unknown, a missing ``=`` means ``= 0``.

    Every answer keeps to the domain of the text as written (``domain.py``), which
    SymPy's reading may have lost (``sqrt(x)^2`` is x): a root outside it is
    discarded, a family is kept for the n inside it (``(n an integer, n >= -3)``),
    an identity holds on it (``all x > 0``). A text with a root, logarithm or
    inverse function of the unknown is solved over the reals.

    Returns:
        Answer with ``x = a, x = b`` (ascending), ``no solution``,
        ``no real solution``, ``all x`` or ``all x > 0``-style regions.

    Raises:
        ProblemParseError: Nothing to solve, or the equation is unreadable.
        ProblemTooLargeError: A polynomial of degree above ``MAX_EQUATION_DEGREE``.
        UnsupportedProblemError: No unknown, or no closed form, or the domain of an
            identity or a family could not be decided ("could not verify ...").

    Source:
        SymPy ``solveset`` semantics: https://docs.sympy.org/latest/modules/solvers/solveset.html
    """
    body = strip_filler(text)
    match = _SOLVE_VERB.match(body)
    body = body[match.end() :] if match else body
    named = None
    for_match = _FOR_VARS.search(body)
    if for_match is not None:
        named = for_match.group(1).strip()
        body = body[: for_match.start()]
    if not body.strip():
        raise _nothing_after("solve", text)
    lhs, rhs = parse_equation(body)
    expr = sympy.Add(lhs, -rhs)
    written = conditions_read()
    if not expr.free_symbols and (expr != 0 or not written):
        return _without_unknown(body, expr, lhs.free_symbols | rhs.free_symbols)
    # x^2/x = x is 0 = 0 once read, and still holds x
    variable = choose_variable(expr if expr.free_symbols else sympy.Add(
        lhs, rhs, *(c.part for c in written)), named)
    conditions = [c for c in written if variable in c.part.free_symbols]
    steps: list[str] = []
    if rhs != 0:
        steps.append(f"rearrange: {expr} = 0")
    if _is_rational_in(expr, variable):
        degree = sympy.degree(sympy.fraction(sympy.together(expr))[0], variable)
        if degree > MAX_EQUATION_DEGREE:
            raise ProblemTooLargeError(
                f"polynomial degree {degree} is above the limit of {MAX_EQUATION_DEGREE}",
                what="degree",
            )
        domain: sympy.Set = sympy.S.Complexes
        steps.extend(_polynomial_steps(expr, variable))
    else:
        domain = sympy.S.Reals
    if any(c.relation != "!=" for c in conditions):
        domain = sympy.S.Reals  # sqrt(x)^2 = x is x = x once read: a root is written
    divisors = [d for d in divisors_read() if d.has(variable)]
    solution = sympy.solveset(expr, variable, domain)
    if domain == sympy.S.Reals and isinstance(solution, sympy.FiniteSet):
        solution = _discard(solution, variable, steps, "substituted, the equation does not "
                            "hold over the reals (log, roots and powers take principal values)",
                            lambda root: _outside_real_domain(expr, variable, root))
    if isinstance(solution, sympy.FiniteSet) and not solution.free_symbols:
        solution = _discard(solution, variable, steps, "the equation divides by 0 there "
                            "(undefined)",
                            lambda root: zero_divisor(divisors, variable, root) is not None)
    solution = within_domain(solution, variable, domain, conditions, steps)
    answer_text, latex, more = _describe_set(variable, solution, domain)
    steps.extend(more)
    if isinstance(solution, sympy.FiniteSet) and solution.has(sympy.CRootOf):
        numerator = sympy.fraction(sympy.together(expr))[0]
        approx = ", ".join(str(r) for r in sympy.Poly(numerator, variable).nroots(n=6))
        steps.append(f"numerically: {approx}")
    if more == ["general solution (periodic)"]:
        principal = sympy.solveset(expr, variable, sympy.Interval.Ropen(0, 2 * sympy.pi))
        inside = [] if not isinstance(principal, sympy.FiniteSet) else [
            v for v in sorted(principal, key=sort_key) if violated(conditions, {variable: v})
            is None]
        if 0 < len(inside) <= _MAX_PRINCIPAL:
            values = ", ".join(str(v) for v in inside)
            steps.append(f"principal solutions in [0, 2*pi): {values}")
    steps.append(answer_text)
    answer = Answer("equation", answer_text, latex, tuple(steps))
    return settle(answer, *run(check_equation, expr, variable, solution, domain,
                               divisors=divisors, conditions=conditions))


def _discard(solution: sympy.FiniteSet, variable: sympy.Symbol, steps: list[str], why: str,
             drop: Callable[[sympy.Basic], bool]) -> sympy.FiniteSet:
    """*solution* without the roots *drop* picks; a ``discard ...: <why>`` step names them."""
    dropped = [root for root in solution if drop(root)]
    if not dropped:
        return solution
    shown = ", ".join(f"{variable} = {root}" for root in sorted(dropped, key=sort_key))
    steps.append(f"discard {shown}: {why}")
    return sympy.FiniteSet(*(root for root in solution if root not in dropped))


def _outside_real_domain(expr: sympy.Expr, variable: sympy.Symbol, root: sympy.Expr) -> bool:
    """True if *root* clearly is no real solution of ``expr = 0``: undefined there, non-zero,
    or zero only with a part of the equation not real there.

    ``solveset`` over the reals combines logarithms first, so ``log(x) + log(x + 1) =
    log(6)`` comes back as {-3, 2}; at -3 the left side is ``log(6) + 2*pi*I``.
    A root whose value does not settle numerically is kept (the check decides).
    """
    if root.free_symbols:
        return False
    try:
        f = compile_expr(expr, [variable])
        at = compile_expr(root, [])
    except Unsupported:
        return False
    settled = stable(lambda: f(at()))
    if settled is None:
        return call(lambda: f(at())) is None  # undefined at the root (else: not settled)
    if abs(settled[0]) > 1e-10:
        return True
    value = call(at)  # log(x - 1) = log(2x) holds at -1 only with ln 2 + pi*I on each side
    return value is not None and non_real_part(expr, variable, mpmath.re(value)) is not None


def split_system(text: str) -> tuple[list[str], list[str] | None]:
    """Split a system's text into its equations and the unknowns it names.

    Args:
        text: Normalized text, e.g. ``"Solve the system 2x + 3y = 7, x - y = 1 for x, y"``.

    Returns:
        ``(parts, named)``: the equation texts split at top-level ``,``,
        ``;`` and ``and``, and the names after ``for`` (None if absent).
    """
    body = strip_filler(text)
    match = _SOLVE_VERB.match(body)
    body = body[match.end() :] if match else body
    named: list[str] | None = None
    for_match = _FOR_VARS.search(body)
    if for_match is not None:
        named = [v for v in re.split(r"\s*(?:,|and)\s*", for_match.group(1).strip()) if v]
        body = body[: for_match.start()]
    return split_top_level(body), named


def _is_linear(equations: list[sympy.Expr], variables: list[sympy.Symbol]) -> bool:
    for equation in equations:
        try:
            if sympy.Poly(equation, *variables).total_degree() > 1:
                return False
        except sympy.PolynomialError:
            return False
    return True


def _exclusions(divisors: Sequence[sympy.Expr], variables: list[sympy.Symbol],
                values: sympy.Tuple) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """Pairs (a, b) with a != b for every solution *values*: where its text divides by 0.

    A divisor of the text, with *values* put in, that still depends on a free unknown
    gives ``(y, 2)`` (y != 2) when it is 0 at finitely many values of its one unknown,
    else ``(divisor, 0)``.
    """
    point = dict(zip(variables, values, strict=True))
    free = {v for v, value in point.items() if value == v}
    out: list[tuple[sympy.Expr, sympy.Expr]] = []
    for divisor in divisors:
        there = sympy.factor(divisor.xreplace(point))
        if not there.free_symbols & free:
            continue
        pairs = [(there, sympy.S.Zero)]
        if len(there.free_symbols) == 1:
            (unknown,) = there.free_symbols
            roots = sympy.solve(there, unknown)
            if roots and all(root.is_number for root in roots):
                pairs = [(unknown, root) for root in roots]
        out.extend(pair for pair in pairs if pair not in out)
    return out


def _format_tuple(
    variables: list[sympy.Symbol], values: tuple[sympy.Basic, ...],
    excluded: Sequence[tuple[sympy.Expr, sympy.Expr]] = (),
) -> tuple[str, str]:
    pairs = list(zip(variables, values, strict=True))
    fixed = [(v, value) for v, value in pairs if value != v]
    free = [v for v, value in pairs if value == v]
    text = ", ".join(f"{v} = {value}" for v, value in fixed)
    latex = join_latex(f"{sympy.latex(v)} = {sympy.latex(value)}" for v, value in fixed)
    if free:
        plural = "s" if len(free) > 1 else ""
        names = ", ".join(str(v) for v in free)
        condition = f"{names} any number{plural}"
        latex_condition = f"{names} \\text{{ any number{plural}}}"
        if excluded:
            condition += " with " + " and ".join(f"{a} != {b}" for a, b in excluded)
            latex_condition += ", " + ", ".join(
                f"{sympy.latex(a)} \\neq {sympy.latex(b)}" for a, b in excluded)
        text = f"{text} ({condition})" if text else condition
        latex = f"{latex} \\quad ({latex_condition})"
    return text, latex


def _refuse_unwritten_domain(tuples: Sequence[Any], variables: Sequence[sympy.Symbol],
                             conditions: Sequence[Condition],
                             divisors: Sequence[sympy.Expr]) -> None:
    """Refuse an answer whose free unknowns (``y any number``) the text's domain restricts.

    The answer writes a free unknown's divisor exclusions (``x != 0``) only: a root, a
    logarithm or an inverse function on it (``x + y = 1, log(y) - log(y) = 0`` needs
    y > 0) would be left out of the answer, and the check samples the free unknowns at a
    few points, where such a condition may happen to hold.

    Raises:
        UnsupportedProblemError: A condition other than a written divisor involves a
            free unknown ("could not verify the solutions: ...").
    """
    free = {s for t in tuples for value in t for s in value.free_symbols} & set(variables)
    for condition in conditions:
        if not condition.expr.free_symbols & free:
            continue
        if condition.relation == "!=" and any(
                sympy.expand(condition.expr - d) == 0 for d in divisors):
            continue  # written into the answer as an exclusion (_exclusions)
        raise UnsupportedProblemError(
            "could not verify the solutions: the answer leaves "
            f"{', '.join(sorted(str(v) for v in free))} free, and the text is defined only "
            f"where {condition.describe()}, which the answer cannot state")


def solve_system(text: str) -> Answer:
    """Solve a system of equations, e.g. ``"2x + y = 5, x - y = 1"`` -> ``x = 2, y = 1``.

    Linear systems are solved by ``linsolve`` with the row-reduced augmented
    matrix in the steps; others by ``nonlinsolve``. An inconsistent system
    answers ``no solution``; a dependent one answers in terms of the free
    unknowns, e.g. ``x = 2 - y (y any number)``. Several solutions are joined
    with `` or ``.

    Args:
        text: Normalized text; equations separated by ``,``, ``;`` or ``and``;
            optional ``for x, y`` naming the unknowns (others are parameters).

    Returns:
        Answer with ``x = 2, y = 1``-style text.

    Raises:
        ProblemParseError: An equation is unreadable or lacks ``=``.
        UnsupportedProblemError: The solver cannot give a closed form.
    """
    parts, named = split_system(text)
    if len(parts) < 2:
        raise _nothing_after("solve", text)
    equations: list[sympy.Expr] = []
    for part in parts:
        if "=" not in part:
            raise ProblemParseError(
                f"could not parse near {excerpt(part, 0)}: expected an equation with '='",
                text=text,
                position=None,
            )
        lhs, rhs = parse_equation(part)
        equations.append(sympy.Add(lhs, -rhs))
    divisors = divisors_read()
    # x*y/y = 2 holds y though SymPy cancelled it on reading: y is still an unknown
    symbols = set().union(*(eq.free_symbols for eq in equations),
                          *(d.free_symbols for d in divisors))
    if named is not None:
        variables = [sympy.Symbol(name) for name in named]
    else:
        variables = sorted(symbols, key=lambda s: s.name)
    if not variables:
        raise UnsupportedProblemError("the system has no unknowns", kind="system")
    steps = [f"unknowns: {', '.join(str(v) for v in variables)}"]
    linear = _is_linear(equations, variables)
    if linear:
        matrix, vector = sympy.linear_eq_to_matrix(equations, variables)
        augmented = matrix.row_join(vector)
        steps.append(f"augmented matrix: {augmented.tolist()}")
        steps.append(f"reduced row echelon form: {augmented.rref()[0].tolist()}")
        solution = sympy.linsolve(equations, variables)
    else:
        steps.append("nonlinear system")
        solution = sympy.nonlinsolve(equations, variables)
    if solution is sympy.S.EmptySet:
        steps.append("the equations are inconsistent")
        answer = Answer("system", "no solution", "\\text{no solution}", tuple(steps))
        return settle(answer, *run(check_system, equations, variables, None, linear))
    if not isinstance(solution, sympy.FiniteSet) or any(
        not isinstance(t, sympy.Tuple) for t in solution
    ):
        raise UnsupportedProblemError(f"cannot solve this system in closed form: {solution}")
    if any(isinstance(v, sympy.Set) for t in solution for v in t):
        # nonlinsolve's answer to sin(x) = y, y = 2: (ImageSet(...), 2), complex families
        # that neither the rendering nor the check takes as values
        raise UnsupportedProblemError("cannot solve this system in closed form: a variable's "
                                      f"solutions form a set ({solution})")
    tuples = sorted(solution, key=lambda t: [sort_key(v) for v in t])
    conditions = conditions_read()
    if not linear:  # a linear system's one solution outside the domain is refused (check)
        tuples = system_within_domain(tuples, variables, conditions, steps)
        if not tuples:
            answer = Answer("system", "no solution", "\\text{no solution}", tuple(steps))
            return settle(answer, *run(check_system, equations, variables, None, linear))
    _refuse_unwritten_domain(tuples, variables, conditions, divisors)
    formatted = [_format_tuple(variables, tuple(t), _exclusions(divisors, variables, t))
                 for t in tuples]
    texts = [text for text, _ in formatted]
    latexes = [latex for _, latex in formatted]
    if any(value.free_symbols & set(variables) for t in tuples for value in t):
        steps.append("the equations are dependent: infinitely many solutions")
    answer_text = " or ".join(texts)
    steps.append(answer_text)
    answer = Answer("system", answer_text, " \\text{ or } ".join(latexes), tuple(steps))
    return settle(answer, *run(check_system, equations, variables, tuples, linear,
                               divisors=divisors, conditions=conditions))
