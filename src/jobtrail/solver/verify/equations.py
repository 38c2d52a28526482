"""Verify the answers of equations and systems: substitution back, then completeness.

Invariant: pure; every residual is computed by mpmath at 50 digits from the
equation as parsed, never from the solver's own sets; a reported solution
that fails, or a numeric root no reported solution covers, contradicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.answer import Verification
from jobtrail.solver.domain import Condition, integer_pieces
from jobtrail.solver.verify.membership import (
    family_members,
    left_out_members,
    outside_near,
    violated,
)
from jobtrail.solver.verify.numeric import (
    Budget,
    call,
    compile_expr,
    fmt,
    parameter_values,
    real_roots,
    stable,
)

__all__ = ["check_equation", "check_system", "non_real_part", "zero_divisor"]

_DPS = 50
_RESIDUAL = mpmath.mpf("1e-20")
_SAMPLE_POINTS = ("-2.37", "-1.13", "-0.41", "0.29", "0.73", "1.61", "2.47", "3.9")


def _residual(expr: sympy.Expr, variables: Sequence[sympy.Symbol],
              point: Sequence[Any], dps: int = _DPS) -> Any:
    """|expr| at *point* divided by the size of its terms there (None if undefined)."""
    with mpmath.workdps(dps):
        args = [mpmath.mpmathify(p) for p in point]
        value = call(compile_expr(expr, variables), *args)
        if value is None:
            return None
        terms = (call(compile_expr(t, variables), *args) for t in sympy.Add.make_args(expr))
        size = max(sum((abs(t) for t in terms if t is not None), mpmath.mpf(0)), 1)
        return abs(value) / size


#: Members n of a family whose residual is judged: |n| up to this, and the _EDGE_N next
#: to each finite end of its range (the others are checked for the domain only).
_NEAR_N = 3
_EDGE_N = 3


def _member_residual(expr: sympy.Expr, variable: sympy.Symbol, value: sympy.Basic,
                     number: Any) -> Any:
    """The residual of ``expr = 0`` at the exact *value* (*number* at 50 digits), looked at
    again at 150 digits if above ``_RESIDUAL`` (cancellation inside a term); None if
    undefined.

    A product is 0 where one factor is and the others are finite: if the whole is not
    small, a factor whose residual is, beside factors whose values agree at 50 and 150
    digits (no pole: ``tan(x)`` near pi/2 grows with the precision), gives its own
    residual, so ``sin(x)*exp(sqrt(x))`` at x = 2*pi*10^6 is measured on sin(x), not
    against exp(2506).
    """
    precise: list[Any] = []  # *value* at 150 digits, computed once when first needed

    def residual_of(part: sympy.Expr) -> Any:
        residual = _residual(part, [variable], [number])
        if residual is not None and residual > _RESIDUAL:
            precise[:] = precise or [_number(value, 3 * _DPS)]
            if precise[0] is not None:
                again = _residual(part, [variable], [precise[0]], 3 * _DPS)
                residual = residual if again is None else again
        return residual

    whole = residual_of(expr)
    factors = [f for f in sympy.Mul.make_args(expr) if f.has(variable)]
    if whole is None or whole <= _RESIDUAL or len(factors) < 2 or precise[0] is None:
        return whole
    for factor in factors:
        residual = residual_of(factor)
        if residual is None or residual > _RESIDUAL:
            continue
        others = [f for f in factors if f is not factor]
        with mpmath.workdps(3 * _DPS):
            low = [_at(f, variable, number, _DPS) for f in others]
            high = [_at(f, variable, precise[0], 3 * _DPS) for f in others]
        if all(a is not None and b is not None and abs(a - b) <= mpmath.mpf(10) ** -10 * abs(b)
               for a, b in zip(low, high, strict=True)):
            return residual
    return whole


def _at(expr: sympy.Expr, variable: sympy.Symbol, point: Any, dps: int) -> Any:
    with mpmath.workdps(dps):
        return call(compile_expr(expr, [variable]), point)


def _number(value: sympy.Basic, dps: int = _DPS) -> Any:
    with mpmath.workdps(dps):
        return call(compile_expr(value, []))


class _Reported:
    """The reported solutions as numbers: finite values and linear families a*n + b."""

    def __init__(self, values: list[Any], families: list[tuple[Any, Any]],
                 bases: Sequence[sympy.Set] | None = None) -> None:
        self.values = values
        self.families = families
        self.bases = list(bases) if bases is not None else [sympy.S.Integers] * len(families)

    def covers(self, root: float) -> bool:
        tol = 1e-6 * (1 + abs(root))
        for v in self.values:
            if abs(v - root) <= tol:
                return True
        for (a, b), base in zip(self.families, self.bases, strict=True):
            if a == 0:
                continue
            n = mpmath.nint((root - b) / a)
            if abs(a * n + b - root) <= tol and base.contains(int(n)) is sympy.true:
                return True
        return False


def _family(expr: sympy.Expr, n: sympy.Symbol) -> tuple[Any, Any] | None:
    with mpmath.workdps(_DPS):
        fn = compile_expr(expr, [n])
        values = [call(fn, mpmath.mpf(k)) for k in (0, 1, 2)]
    if any(v is None for v in values):
        return None
    b, a = values[0], values[1] - values[0]
    if abs(values[2] - b - 2 * a) > mpmath.mpf(10) ** -30 * (1 + abs(a)):
        return None
    return a, b


def _fail(detail: str, error: Any) -> Verification:
    return Verification("contradicted", "substitution at 50 digits", detail,
                        float(error) if error is not None else None)


def _substitute_all(expr: sympy.Expr, variable: sympy.Symbol, values: list[sympy.Basic],
                    families: list[sympy.Expr], n: sympy.Symbol, real: bool,
                    budget: Budget, divisors: Sequence[sympy.Expr] = (),
                    bases: Sequence[sympy.Set] = (), conditions: Sequence[Condition] = ()
                    ) -> tuple[Verification | None, float]:
    worst = 0.0
    members = [(v, str(v), True) for v in values]
    for f, base in zip(families, bases or [sympy.S.Integers] * len(families), strict=True):
        ends = [int(e) for piece in integer_pieces(base) or [] for e in piece if e.is_finite]
        members += [(f.subs(n, k), f"{f} with n = {k}",
                     abs(k) <= _NEAR_N or any(abs(k - e) < _EDGE_N for e in ends))
                    for k in family_members(base)]
    for value, shown, judged in members:
        budget.check()
        number = _number(value)
        if number is None:
            return _fail(f"{variable} = {shown} is undefined numerically", None), worst
        if real and isinstance(number, mpmath.mpc) and abs(number.imag) > 1e-30 * (
                1 + abs(number)):
            return _fail(f"{variable} = {shown} is not real ({fmt(number)})", None), worst
        zero = zero_divisor(divisors, variable, value)
        if zero is not None:
            return _fail(f"the equation is undefined at {variable} = {shown}: it divides "
                         f"by {zero}, which is 0 or undefined there", None), worst
        outside = violated(conditions, {variable: value})
        if outside is not None:
            return _fail(f"{variable} = {shown} is outside the domain of the equation: "
                         f"{outside.describe()}", None), worst
        if real:
            number = mpmath.re(number)
            complex_part = non_real_part(expr, variable, number)
            if complex_part is not None:
                return _fail(f"{variable} = {shown} is no real solution: {complex_part} is not "
                             "real there", None), worst
        if not judged:
            # far out (n = 10^6: x near 6e6): 50 or 150 digits cannot resolve a residual
            # beside exp(x) (sin(x) exp(x) = sin(x)); such a member is checked for the
            # domain above, its residual only near n = 0 and at the ends of its range
            continue
        residual = _member_residual(expr, variable, value, number)
        if residual is None:
            return _fail(f"the equation is undefined at {variable} = {shown}", None), worst
        worst = max(worst, float(residual))
        if residual > _RESIDUAL:
            return _fail(f"{variable} = {shown} does not satisfy the equation "
                         f"(relative residual {fmt(residual, 3)})", residual), worst
    return None, worst


def zero_divisor(divisors: Sequence[sympy.Expr], variable: sympy.Symbol,
                 point: sympy.Basic) -> sympy.Expr | None:
    """The first of *divisors* (expressions of *variable* alone) that is 0 at *point*.

    Args:
        divisors: What the problem text divides by, as written (``parse.Reading.divisors``),
            e.g. ``x`` for ``x^2/x``, which SymPy cancels to ``x`` on reading.
        variable: The unknown.
        point: The exact value (a SymPy number), so 0 is told from rounding noise.

    Returns:
        The divisor (0 or undefined there), or None if each is a number other than 0
        there (or has other symbols).
    """
    return _zero_divisor_at([d for d in divisors if d.free_symbols == {variable}],
                            {variable: point})


def _zero_divisor_at(divisors: Sequence[sympy.Expr],
                     values: dict[sympy.Symbol, sympy.Basic]) -> sympy.Expr | None:
    """The first of *divisors* that is 0 or undefined with *values* (exact) put in."""
    for divisor in divisors:
        if not divisor.free_symbols <= set(values):
            continue
        at = divisor.xreplace(values)
        if at.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            return divisor  # 1/(1/x) at 0: the divisor itself is undefined
        value = stable(compile_expr(at, []))
        if value is not None and value[0] == 0:
            return divisor
    return None


def _vanishes(divisors: Sequence[sympy.Expr], variable: sympy.Symbol, root: Any) -> bool:
    """True if a divisor is 0 at the numeric *root* (to 1e-10 of 1): it is no root."""
    with mpmath.workdps(_DPS):
        for divisor in divisors:
            if divisor.free_symbols == {variable}:
                value = call(compile_expr(divisor, [variable]), mpmath.mpmathify(root))
                if value is not None and abs(value) <= mpmath.mpf(10) ** -10:
                    return True
    return False


def non_real_part(expr: sympy.Expr, variable: sympy.Symbol, point: Any) -> str | None:
    """The first power or function in *expr* whose value at the real *point* is not real.

    Args:
        expr: The equation's left side minus its right side.
        variable: The unknown.
        point: A real number (mpmath or Python).

    Returns:
        ``"<part> = <value>"`` for the first part found, e.g. ``"log(2*x) = 0.693147 +
        3.14159*I"``; None if every part is real (or undefined) there.

    Over the reals every part of the equation must be real: ``log(x - 1) = log(2*x)``
    holds at x = -1 with principal values (ln 2 + pi*I on each side), but x = -1 is
    no real solution.
    """
    with mpmath.workdps(_DPS):
        for sub in sympy.preorder_traversal(expr):
            if not isinstance(sub, (sympy.Pow, sympy.Function)) or not sub.has(variable):
                continue
            value = call(compile_expr(sub, [variable]), point)
            if value is not None and abs(mpmath.im(value)) > mpmath.mpf(10) ** -12 * (
                    1 + abs(value)):
                return f"{sub} = {fmt(value, 6)}"
    return None


def _complex_roots(expr: sympy.Expr, variable: sympy.Symbol, budget: Budget) -> list[Any] | None:
    numerator, denominator = sympy.fraction(sympy.together(expr))
    poly = sympy.Poly(numerator, variable)
    if poly.degree() < 1:
        return []
    with mpmath.workdps(_DPS):
        coeffs = [_number(c) for c in poly.all_coeffs()]
        if any(c is None for c in coeffs):
            return None
        budget.check()
        try:
            roots = mpmath.polyroots(coeffs, maxsteps=200, extraprec=2 * _DPS)
        except mpmath.libmp.NoConvergence:
            return None
        den = compile_expr(denominator, [variable])
        kept = []
        for r in roots if isinstance(roots, list) else [roots]:
            d = call(den, r)
            if d is not None and abs(d) > mpmath.mpf(10) ** -20:
                kept.append(r)
        return kept


def check_equation(expr: sympy.Expr, variable: sympy.Symbol, solution: sympy.Set,
                   domain: sympy.Set, budget: Budget,
                   divisors: Sequence[sympy.Expr] = (),
                   conditions: Sequence[Condition] = ()) -> Verification:
    """Check a solved equation ``expr = 0`` against its reported solution set.

    Each reported value (and members of each periodic family: n from -10^6 to 10^6,
    and next to each end of its range of n) must be in the domain of the text as
    written and satisfy the equation at 50 digits; the members just outside a family's
    range must not be solutions; then, without parameters, every root
    of the numerator polynomial (complex domain, ``mpmath.polyroots``) or
    every real root found by sampling ``[-10, 10]`` (widened to hold the
    reported values) must be covered by a reported solution.

    Args:
        expr: Left side minus right side.
        variable: The unknown.
        solution: SymPy's solution set (FiniteSet, EmptySet, ImageSet union or the domain).
        domain: ``S.Complexes`` or ``S.Reals``.
        budget: Time allowance.
        divisors: What the text divides by, as written: a reported solution where
            one is 0 is no solution (``x^2/x = 0`` at x = 0), even where SymPy's
            cancellation (to ``x = 0``) left no trace of it in *expr*.
        conditions: Where each part of the text is defined and real, as written
            (``parse.conditions_read()``): a reported solution outside is none, a
            numeric root outside is no root, and a region answer (``all x > 0``) must
            match them.

    Returns:
        The verification.
    """
    params = sorted(expr.free_symbols - {variable}, key=lambda s: s.name)
    given = parameter_values(params)
    expr_p = expr.xreplace(given)
    n = sympy.Symbol("n", integer=True)
    values: list[sympy.Basic] = []
    families: list[sympy.Expr] = []
    bases: list[sympy.Set] = []
    everything = solution == domain
    parts = list(solution.args) if isinstance(solution, sympy.Union) else [solution]
    real = domain == sympy.S.Reals
    conditions = [c for c in conditions if c.expr.free_symbols <= {variable}]
    if isinstance(solution, sympy.FiniteSet):
        values = [v.xreplace(given) for v in solution]
    elif solution is not sympy.S.EmptySet and not everything and not all(
            isinstance(part, (sympy.ImageSet, sympy.FiniteSet)) for part in parts):
        return check_region(expr_p, variable, solution, real, conditions,
                            [d.xreplace(given) for d in divisors])
    elif solution is not sympy.S.EmptySet and not everything:
        for part in parts:
            if isinstance(part, sympy.FiniteSet):  # single values beside families
                values.extend(v.xreplace(given) for v in part)
                continue
            lamda = part.lamda
            families.append(lamda.expr.subs(lamda.variables[0], n).xreplace(given))
            bases.append(part.base_sets[0])
    if everything:
        if conditions:
            return check_region(expr_p, variable, solution, real, conditions,
                                [d.xreplace(given) for d in divisors])
        return _check_identity(expr_p, variable)
    failed, worst = _substitute_all(expr_p, variable, values, families, n, real, budget,
                                    [d.xreplace(given) for d in divisors], bases, conditions)
    if failed is None:
        failed = _check_left_out(expr_p, variable, families, bases, n, real, conditions,
                                 [d.xreplace(given) for d in divisors])
    if failed is not None:
        return failed
    checked = f"{len(values) + len(families)} reported solution(s) satisfy the equation"
    if params:
        return Verification("unverified", "substitution at 50 digits",
                            f"{checked}; completeness not checked (parameters "
                            f"{', '.join(str(p) for p in params)})", worst)
    return _check_complete(expr_p, variable, real, values, families, n, checked, worst, budget,
                           [d.xreplace(given) for d in divisors], bases, conditions)


def _check_identity(expr: sympy.Expr, variable: sympy.Symbol) -> Verification:
    worst = 0.0
    for p in _SAMPLE_POINTS:
        r = _residual(expr, [variable], [p])
        if r is not None:
            worst = max(worst, float(r))
            if r > _RESIDUAL:
                return _fail(f"the answer says every {variable} solves it, but "
                             f"{variable} = {p} does not", r)
    return Verification("verified", "substitution at 50 digits",
                        f"the equation holds at {len(_SAMPLE_POINTS)} sample points", worst)


_REGION_POINTS = ("-1000.25", "-50.5", "-7.3", "7.3", "50.5", "1000.25")


def _solves_at(expr: sympy.Expr, variable: sympy.Symbol, value: sympy.Basic, real: bool,
               conditions: Sequence[Condition], divisors: Sequence[sympy.Expr]) -> bool:
    """True if the exact *value* is in the domain of the text and satisfies ``expr = 0``."""
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return False  # no number: log(2*pi*n) at n = 0
    if violated(conditions, {variable: value}) is not None or zero_divisor(
            divisors, variable, value) is not None:
        return False
    number = _number(value)
    if number is None:
        return False
    if real:
        if isinstance(number, mpmath.mpc) and abs(number.imag) > 1e-30 * (1 + abs(number)):
            return False
        number = mpmath.re(number)
        if non_real_part(expr, variable, number) is not None:
            return False
    residual = _member_residual(expr, variable, value, number)
    return residual is not None and residual <= _RESIDUAL


def _check_left_out(expr: sympy.Expr, variable: sympy.Symbol, families: Sequence[sympy.Expr],
                    bases: Sequence[sympy.Set], n: sympy.Symbol, real: bool,
                    conditions: Sequence[Condition],
                    divisors: Sequence[sympy.Expr]) -> Verification | None:
    """A family kept for some n only: each member just past an end of its range must be no
    solution (outside the domain, or not satisfying the equation)."""
    for family, base in zip(families, bases, strict=True):
        for k in left_out_members(base):
            if _solves_at(expr, variable, family.subs(n, k), real, conditions, divisors):
                return _fail(f"{variable} = {family} with n = {k} solves the equation, but "
                             "the answer leaves it out", None)
    return None


def _region_points(region: sympy.Set) -> list[sympy.Basic]:
    """Sample points for a region answer: fixed ones, and each finite end of the region,
    exactly and just beside it."""
    points = [sympy.Rational(p) for p in _SAMPLE_POINTS + _REGION_POINTS]
    if isinstance(region, sympy.Complement) and isinstance(region.args[1], sympy.FiniteSet):
        edges = list(region.args[1])
    elif region in (sympy.S.Reals, sympy.S.Complexes):
        edges = []
    else:
        boundary = region.boundary
        edges = list(boundary) if isinstance(boundary, sympy.FiniteSet) else []
    for edge in edges:
        if edge.is_finite and edge.is_extended_real:
            step = (1 + abs(edge)) / 100
            points += [edge, edge - step, edge + step, edge - 1, edge + 1]
    return points


def check_region(expr: sympy.Expr, variable: sympy.Symbol, region: sympy.Set, real: bool,
                 conditions: Sequence[Condition],
                 divisors: Sequence[sympy.Expr] = ()) -> Verification:
    """Check an answer that every value of *region* solves the equation (``all x > 0``).

    At fixed sample points and at each end of the region (exactly, and just beside it),
    a point inside the region must be in the domain of the text and satisfy the
    equation at 50 digits, and a point outside must not.

    Args:
        expr: Left side minus right side.
        variable: The unknown.
        region: The reported set: real intervals and points, or the domain without
            finitely many points (``Complement(Complexes, {0})``).
        real: Whether the equation is solved over the reals.
        conditions: The text's conditions (``check_equation``).
        divisors: What the text divides by, as written.

    Returns:
        The verification: contradicted at the first point that disagrees.
    """
    inside = outside = 0
    for point in _region_points(region):
        member = region.contains(point)
        if member not in (sympy.true, sympy.false):
            continue
        holds = _solves_at(expr, variable, point, real, conditions, divisors)
        if member is sympy.true and not holds:
            return _fail(f"the answer says every {variable} in it solves the equation, but "
                         f"{variable} = {point} does not (or the equation is undefined there)",
                         None)
        if member is sympy.false and holds:
            return _fail(f"{variable} = {point} solves the equation, but the answer leaves it "
                         "out", None)
        inside, outside = inside + (member is sympy.true), outside + (member is sympy.false)
    return Verification("verified", "substitution at 50 digits",
                        f"the equation holds at the {inside} sample points inside the reported "
                        f"set and not at the {outside} outside it", 0.0)


def _check_complete(expr: sympy.Expr, variable: sympy.Symbol, real: bool,
                    values: list[sympy.Basic], families: list[sympy.Expr], n: sympy.Symbol,
                    checked: str, worst: float, budget: Budget,
                    divisors: Sequence[sympy.Expr] = (), bases: Sequence[sympy.Set] = (),
                    conditions: Sequence[Condition] = ()) -> Verification:
    """Every numeric root (polyroots, or real sampling) must be a reported solution,
    except where a divisor of the text vanishes or the text is not defined (no root)."""
    if not real:
        roots = _complex_roots(expr, variable, budget)
        method = "substitution at 50 digits; mpmath.polyroots of the numerator"
        window = "the complex plane"
    else:
        reals = [float(mpmath.re(_number(v))) for v in values]
        low = min([-10.0] + [1.5 * r - 1 for r in reals if abs(r) < 1e3])
        high = max([10.0] + [1.5 * r + 1 for r in reals if abs(r) < 1e3])
        method = "substitution at 50 digits; sign changes and minima sampled, mpmath.findroot"
        periods = [abs(float(d)) for d in (sympy.diff(f, n) for f in families)
                   if d.is_number and d.is_real and d != 0]
        plan = _period_window(periods, low, high)
        if plan is None:
            return Verification("unverified", method, f"{checked}; completeness not checked "
                                f"(periods from {min(periods):g} to {max(periods):g}: no "
                                f"sampling of a whole period fine enough for the shortest)",
                                worst)
        roots = real_roots(expr, variable, (low, high), budget,
                           min(10001, int(1001 * max(1.0, (high - low) / 20))))
        low, high, samples = plan
        if samples:
            wide = real_roots(expr, variable, (low, high), budget, samples)
            roots = None if roots is None or wide is None else sorted({*roots, *wide})
        window = f"[{low:g}, {high:g}]"
    if roots is None:
        return Verification("unverified", method,
                            f"{checked}; completeness not checked (no numeric roots)", worst)
    roots = [r for r in roots if not _vanishes(divisors, variable, r)
             and (not real or outside_near(conditions, variable, r) is None)]
    with mpmath.workdps(_DPS):
        numbers = [_number(v) for v in values]
        reported = _Reported([v for v in numbers if v is not None],
                             [f for f in (_family(e, n) for e in families) if f is not None],
                             bases or None)
        if len(reported.families) < len(families):
            return Verification("unverified", method, f"{checked}; a family is not of the "
                                "form a*n + b, completeness not checked", worst)
        for root in roots:
            if not reported.covers(root):
                return Verification(
                    "contradicted", method,
                    f"the equation has a root {variable} ≈ {fmt(root)} that no reported "
                    f"solution covers (numeric search over {window})", None)
    return Verification("verified", method, f"{checked}; all {len(roots)} numeric root(s) "
                        f"in {window} are covered", worst)


#: Samples per shortest family period when the search covers a whole longest period.
_SAMPLES_PER_PERIOD = 500
#: The most samples of that search; past it completeness is not checked.
_MAX_PERIOD_SAMPLES = 40001


def _period_window(periods: Sequence[float], low: float, high: float,
                   ) -> tuple[float, float, int] | None:
    """Return (low, high, samples) of a search over a whole period of every family.

    A family's roots repeat every period, so a search that does not span the longest
    one can miss a whole family (sin(x/10) = 1/2 repeats every 20*pi; the families of
    sin(4x/1000) + sin(3x/1000) = 0 every 2000*pi, where [-10, 10] holds one root of
    eight). The window is widened to 1.05 times the longest period each side, sampled
    _SAMPLES_PER_PERIOD times per shortest period (0 samples: no family, nothing to
    add to the base window *low*..*high*).

    Returns:
        The window and its samples, or None when that would take more than
        _MAX_PERIOD_SAMPLES (periods too far apart to search both).
    """
    if not periods or (-1.05 * max(periods) >= low and 1.05 * max(periods) <= high):
        return low, high, 0  # the base window holds a whole period of every family already
    longest, shortest = max(periods), min(periods)
    low, high = min(low, -1.05 * longest), max(high, 1.05 * longest)
    samples = int((high - low) / shortest * _SAMPLES_PER_PERIOD) + 1
    if samples > _MAX_PERIOD_SAMPLES:
        return None
    return low, high, max(samples, 1001)


def _rank(rows: list[list[Any]]) -> int:
    rows = [list(r) for r in rows]
    rank = 0
    cols = len(rows[0]) if rows else 0
    tol = mpmath.mpf(10) ** -30
    for c in range(cols):
        pivot = max(range(rank, len(rows)), key=lambda i: abs(rows[i][c]), default=None)
        if pivot is None or abs(rows[pivot][c]) <= tol:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for i in range(len(rows)):
            if i != rank:
                factor = rows[i][c] / rows[rank][c]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[rank], strict=True)]
        rank += 1
    return rank


def check_system(equations: Sequence[sympy.Expr], variables: Sequence[sympy.Symbol],
                 solutions: Sequence[Sequence[sympy.Basic]] | None, linear: bool,
                 budget: Budget, divisors: Sequence[sympy.Expr] = (),
                 conditions: Sequence[Condition] = ()) -> Verification:
    """Check a solved system: each solution tuple substituted into each equation.

    Linear systems are also checked for completeness by numeric ranks of the
    coefficient and augmented matrices (consistency, number of free unknowns).

    Args:
        equations: Each ``lhs - rhs``.
        variables: The unknowns, in the order of the tuples.
        solutions: The reported tuples (free unknowns appear as themselves),
            or None for "no solution".
        linear: Whether the system is linear in *variables*.
        budget: Time allowance.
        divisors: What the text divides by, as written (see ``check_equation``): a
            tuple where one is 0 or undefined is no solution (``x^2/x = 0, y = 1``).
        conditions: Where each part of the text is defined and real, as written: a
            tuple outside is no solution (``sqrt(x) = y, x = -1``).

    Returns:
        The verification.
    """
    unknowns = list(variables)
    params = sorted(set().union(*(e.free_symbols for e in equations)) - set(unknowns),
                    key=lambda s: s.name)
    given = parameter_values(params + unknowns)
    eqs = [e.xreplace({p: given[p] for p in params}) for e in equations]
    worst = 0.0
    for tup in solutions or []:
        budget.check()
        free = {v: given[v] for v in unknowns if any(val.has(v) for val in tup)}
        point = [_number(val.xreplace(free).xreplace({p: given[p] for p in params}))
                 for val in tup]
        if any(p is None for p in point):
            return _fail("a reported solution is undefined numerically", None)
        exact = dict(zip(unknowns, (val.xreplace(free).xreplace({p: given[p] for p in params})
                                    for val in tup), strict=True))
        zero = _zero_divisor_at(divisors, {**exact, **{p: given[p] for p in params}})
        if zero is not None:
            shown = ", ".join(f"{v} = {val}" for v, val in zip(unknowns, tup, strict=True))
            return _fail(f"the system is undefined at {shown}: it divides by {zero}, which is "
                         "0 or undefined there", None)
        outside = violated(conditions, {**exact, **{p: given[p] for p in params}})
        if outside is not None:
            shown = ", ".join(f"{v} = {val}" for v, val in zip(unknowns, tup, strict=True))
            return _fail(f"{shown} is outside the domain of the system: {outside.describe()}",
                         None)
        for eq in eqs:
            r = _residual(eq, unknowns, point)
            if r is None or r > _RESIDUAL:
                shown = ", ".join(f"{v} = {val}" for v, val in zip(unknowns, tup, strict=True))
                return _fail(f"{shown} does not satisfy {eq} = 0", r)
            worst = max(worst, float(r))
    if not linear or params:
        status = "unverified" if solutions else "unverified"
        why = "nonlinear system" if not linear else "parameters"
        detail = (f"{len(solutions)} reported solution(s) satisfy every equation; "
                  if solutions else "no solution reported; ")
        return Verification(status, "substitution at 50 digits",
                            f"{detail}completeness not checked ({why})", worst)
    matrix, vector = sympy.linear_eq_to_matrix(list(eqs), unknowns)
    with mpmath.workdps(_DPS):
        a = [[_number(c) for c in matrix.row(i)] for i in range(matrix.rows)]
        ab = [row + [_number(vector[i])] for i, row in enumerate(a)]
        rank_a, rank_ab = _rank(a), _rank(ab)
    method = "substitution at 50 digits; numeric ranks of the matrices"
    if solutions is None:
        if rank_a < rank_ab:
            return Verification("verified", method, "the system is inconsistent "
                                f"(rank {rank_a} < augmented rank {rank_ab})", None)
        return Verification("contradicted", method, "the answer says no solution, but the "
                            f"system is consistent (ranks {rank_a} = {rank_ab})", None)
    free_count = len({v for t in solutions for val in t for v in val.free_symbols} &
                     set(unknowns))
    if rank_a != rank_ab or len(solutions) != 1 or free_count != len(unknowns) - rank_a:
        return Verification("contradicted", method,
                            f"ranks {rank_a}/{rank_ab} imply {len(unknowns) - rank_a} free "
                            f"unknown(s), the answer has {free_count}", worst)
    return Verification("verified", method, "the solution satisfies every equation and "
                        f"the ranks ({rank_a}) confirm it is complete", worst)
