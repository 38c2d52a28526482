"""Solution sets cut to the domain of the text (domain.py), and how answers write them.

A family ``x = 2*pi*n`` is kept for a set of integers n (``Range(-3, oo)``, Integers
minus {0}), written ``n >= -3`` or ``n != 0``; an identity is kept on a region of x,
written ``all x > 0`` or ``all x with -1 <= x <= 1``.

Invariant: which members are kept is decided by ``domain.allowed_members`` from the
text's conditions; single values are tested at their exact value by
``verify.membership.violated``, the test the verification applies again to every
reported point (as ``algebra`` uses ``zero_divisor`` for divisors).
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import UnsupportedProblemError
from jobtrail.solver.domain import (
    Condition,
    allowed_members,
    integer_pieces,
    integer_set,
    region_of,
)
from jobtrail.solver.render import join_latex, sort_key
from jobtrail.solver.verify.membership import violated

__all__ = [
    "MAX_MEMBERS",
    "PERIODIC_NOTE",
    "describe_families",
    "describe_members",
    "describe_region",
    "restrict_families",
    "split_solution",
    "system_within_domain",
    "within_domain",
]

PERIODIC_NOTE = "(n an integer)"
_N = sympy.Symbol("n", integer=True)

MAX_MEMBERS = 60
"""Most members a family bounded on both sides is written out as (finitely many roots)."""

def split_solution(solution: sympy.Set, n: sympy.Symbol
                   ) -> tuple[list[sympy.Basic], list[tuple[sympy.Expr, list[Condition]]]] | None:
    """*solution* as single values and families over the integers.

    Args:
        solution: SymPy's real solution set: a union of ``FiniteSet`` s, ``ImageSet`` s over
            ``Integers``, their intersections with an interval (SymPy writes
            ``Intersection(ImageSet(...), Interval(10, oo))`` for ``sqrt(x - 10)``) and
            their complements of finitely many points.
        n: The integer symbol to write the families in.

    Returns:
        ``(values, families)``: each family its member in *n* and the conditions its
        interval or its removed points set (``x - 10 >= 0``, ``x != 0``); None for any
        other kind of part.
    """
    values: list[sympy.Basic] = []
    families: list[tuple[sympy.Expr, list[Condition]]] = []
    for part in solution.args if isinstance(solution, sympy.Union) else [solution]:
        bounds: list[Condition] = []
        if isinstance(part, sympy.FiniteSet):
            values.extend(part)
            continue
        if isinstance(part, sympy.Intersection) and len(part.args) == 2:
            images = [a for a in part.args if isinstance(a, sympy.ImageSet)]
            intervals = [a for a in part.args if isinstance(a, sympy.Interval)]
            if len(images) != 1 or len(intervals) != 1:
                return None
            part, interval = images[0], intervals[0]
            bounds = _interval_conditions(interval, part)
        elif isinstance(part, sympy.Complement) and isinstance(part.args[1], sympy.FiniteSet):
            part, holes = part.args  # sin(x)/sqrt(x): the family without x = 0
            bounds = [Condition(_X - hole, "!=", part) for hole in holes]
        if not isinstance(part, sympy.ImageSet) or part.base_sets != (sympy.S.Integers,) or len(
                part.lamda.variables) != 1:
            return None
        families.append((part.lamda.expr.xreplace({part.lamda.variables[0]: n}), bounds))
    return values, families


_X = sympy.Dummy("x")


def _interval_conditions(interval: sympy.Interval, part: sympy.Set) -> list[Condition]:
    """``x - lo >= 0`` and ``hi - x >= 0`` (strict where open) for the *interval*, in the
    dummy ``_X`` (``allowed_members`` puts the member in)."""
    found = []
    if interval.inf.is_finite:
        found.append(Condition(_X - interval.inf, ">" if interval.left_open else ">=", part))
    if interval.sup.is_finite:
        found.append(Condition(interval.sup - _X, ">" if interval.right_open else ">=", part))
    return found


def restrict_families(families: Sequence[tuple[sympy.Expr, Sequence[Condition]]],
                      variable: sympy.Symbol, conditions: Sequence[Condition],
                      n: sympy.Symbol, steps: list[str]
                      ) -> tuple[list[sympy.Basic], list[tuple[sympy.Expr, sympy.Set]]]:
    """Keep each family only for the n whose member lies in the domain; a family bounded
    on both sides becomes its members, one with no member in the domain is dropped, and
    families with the same member are joined. Each change adds a step.

    Args:
        families: Members in *n* with the conditions of their intervals (``split_solution``).
        variable: The unknown.
        conditions: The text's conditions that hold *variable*.
        n: The integer symbol of the members.
        steps: The answer's steps, appended to.

    Returns:
        ``(values, kept)``: the members of bounded families, and each family left with
        its integers (``Integers``, ``Range(-3, oo)``, ...).

    Raises:
        UnsupportedProblemError: Which members lie in the domain could not be decided, or
            more than ``MAX_MEMBERS`` remain of a bounded family.
    """
    ranges: dict[sympy.Expr, sympy.Set] = {}
    for member, bounds in families:
        written = [*conditions, *(Condition(c.expr.xreplace({_X: variable}), c.relation, c.part)
                                  for c in bounds)]
        allowed = allowed_members(member, n, written, variable)
        if allowed is None:
            raise UnsupportedProblemError(
                f"could not verify the solutions {variable} = {member} (n an integer): which "
                "of them lie in the domain of the equation could not be decided ("
                + "; ".join(c.describe() for c in conditions) + ")", kind="equation")
        joined = sympy.Union(ranges.get(member, sympy.S.EmptySet), allowed)
        ranges[member] = integer_set(integer_pieces(joined) or [])
    values: list[sympy.Basic] = []
    kept: list[tuple[sympy.Expr, sympy.Set]] = []
    why = "; ".join(c.describe() for c in conditions) or "some members are undefined"
    for member, allowed in ranges.items():
        pieces = integer_pieces(allowed) or []
        shown = f"{variable} = {member}"
        if allowed == sympy.S.Integers:
            kept.append((member, allowed))
            continue
        if not pieces:
            steps.append(f"discard {shown} (n an integer): no member lies in the domain ({why})")
            continue
        steps.append(f"{shown} lies in the domain only for {describe_members(n, allowed)} "
                     f"({why})")
        if any(not lo.is_finite or not hi.is_finite for lo, hi in pieces):
            kept.append((member, allowed))
            continue
        ks = [k for lo, hi in pieces for k in range(int(lo), int(hi) + 1)]
        if len(ks) > MAX_MEMBERS:
            raise UnsupportedProblemError(
                f"{len(ks)} solutions of the form {shown} lie in the domain; more than "
                f"{MAX_MEMBERS} are not written out", kind="equation")
        values.extend(member.xreplace({n: k}) for k in ks)
    return values, kept


def _merged(pieces: list[tuple[sympy.Expr, sympy.Expr]]
            ) -> list[tuple[sympy.Expr, sympy.Expr, list[sympy.Expr]]]:
    """Runs one integer apart joined into one run with that integer excluded."""
    out: list[tuple[sympy.Expr, sympy.Expr, list[sympy.Expr]]] = []
    for lo, hi in pieces:
        if out and out[-1][1] + 2 == lo:
            first, _, holes = out[-1]
            out[-1] = (first, hi, [*holes, lo - 1])
        else:
            out.append((lo, hi, []))
    return out


_LATEX_OPS = {"<=": "\\leq", ">=": "\\geq", "!=": "\\neq", "<": "<", ">": ">", "=": "="}


class _Writer:
    """Plain text or LaTeX for the parts of a condition: values, operators, words."""

    def __init__(self, latex: bool) -> None:
        self.latex = latex

    def value(self, value: sympy.Basic) -> str:
        return sympy.latex(value) if self.latex else str(value)

    def compare(self, left: sympy.Basic, op: str, right: sympy.Basic) -> str:
        shown = _LATEX_OPS[op] if self.latex else op
        return f"{self.value(left)} {shown} {self.value(right)}"

    def between(self, lo: sympy.Basic, op_lo: str, middle: sympy.Basic, op_hi: str,
                hi: sympy.Basic) -> str:
        return f"{self.compare(lo, op_lo, middle)} {_LATEX_OPS[op_hi] if self.latex else op_hi}" \
            f" {self.value(hi)}"

    def word(self, word: str) -> str:
        return f"\\text{{ {word} }}" if self.latex else f" {word} "


def describe_members(n: sympy.Symbol, members: sympy.Set, latex: bool = False) -> str:
    """The integers *members* in words, e.g. ``"n >= -3"``, ``"n != 0"``, ``"n <= -1 or
    n >= 3"``; ``""`` for all integers.

    Args:
        n: The family's integer symbol.
        members: A set of integers (``allowed_members``).
        latex: LaTeX (``n \\geq -3``) instead of plain text.

    Raises:
        ValueError: *members* is not a set of integers ``integer_pieces`` can read.
    """
    pieces = integer_pieces(members)
    if pieces is None:
        raise ValueError(f"not a set of integers: {members}")
    out = _Writer(latex)
    shown = []
    for lo, hi, holes in _merged(pieces):
        bounds = []
        if lo == hi:
            bounds.append(out.compare(n, "=", lo))
        elif lo.is_finite and hi.is_finite:
            bounds.append(out.between(lo, "<=", n, "<=", hi))
        elif lo.is_finite:
            bounds.append(out.compare(n, ">=", lo))
        elif hi.is_finite:
            bounds.append(out.compare(n, "<=", hi))
        bounds += [out.compare(n, "!=", hole) for hole in holes]
        shown.append(out.word("and").join(bounds))
    return out.word("or").join(shown)


def _intervals(region: sympy.Set) -> list[sympy.Interval] | None:
    """*region* as sorted disjoint intervals (points as degenerate ones); None if not plain."""
    if region is sympy.S.EmptySet:
        return []
    if region is sympy.S.Reals:
        return [sympy.Interval(-sympy.oo, sympy.oo)]
    if isinstance(region, sympy.Interval):
        return [region]
    if isinstance(region, sympy.FiniteSet):
        if not all(p.is_extended_real for p in region):
            return None
        return [sympy.Interval(p, p) for p in sorted(region, key=float)]  # a FiniteSet
    if isinstance(region, sympy.Union):
        found = []
        for arg in region.args:
            pieces = _intervals(arg)
            if pieces is None:
                return None
            found.extend(pieces)
        return sorted(found, key=lambda piece: float(piece.inf))
    return None


def _bounds(out: _Writer, variable: sympy.Symbol, piece: sympy.Interval) -> list[str]:
    lo, hi = piece.inf, piece.sup
    if lo == hi:
        return [out.compare(variable, "=", lo)]
    left = "<" if piece.left_open else "<="
    right = "<" if piece.right_open else "<="
    if lo.is_finite and hi.is_finite:
        return [out.between(lo, left, variable, right, hi)]
    if lo.is_finite:
        return [out.compare(variable, ">" if piece.left_open else ">=", lo)]
    if hi.is_finite:
        return [out.compare(variable, right, hi)]
    return []


def describe_region(variable: sympy.Symbol, region: sympy.Set,
                    latex: bool = False) -> str | None:
    """Every value of *region* in words: ``"all x > 0"``, ``"all x != 0"``, ``"all x with
    -1 <= x <= 1"``, ``"all x with x <= -2 or x >= 2"``; None if it cannot be written so.

    Args:
        variable: The unknown.
        region: A union of real intervals and points (``real_domain``), or the complex
            plane (or the reals) minus finitely many points.
        latex: LaTeX (``\\text{all } x > 0``) instead of plain text.
    """
    out = _Writer(latex)
    everything = f"\\text{{all }} {out.value(variable)}" if latex else f"all {variable}"
    if isinstance(region, sympy.Complement) and region.args[0] in (
            sympy.S.Reals, sympy.S.Complexes) and isinstance(region.args[1], sympy.FiniteSet):
        holes = [out.compare(variable, "!=", p) for p in sorted(region.args[1], key=str)]
        if len(holes) == 1:
            return f"{everything[:-len(out.value(variable))]}{holes[0]}"
        return everything + out.word("with") + out.word("and").join(holes)
    pieces = _intervals(region)
    if not pieces:
        return None
    joined: list[tuple[sympy.Interval, list[sympy.Expr]]] = []
    for piece in pieces:
        # a point is a FiniteSet (Interval(p, p) evaluates to one): closed both sides
        if joined and getattr(joined[-1][0], "right_open", False) and getattr(
                piece, "left_open", False) and joined[-1][0].sup == piece.inf:
            last, holes = joined[-1]
            joined[-1] = (sympy.Interval(last.inf, piece.sup, last.left_open,
                                         piece.right_open), [*holes, piece.inf])
        else:
            joined.append((piece, []))
    shown = [out.word("and").join(_bounds(out, variable, piece)
                                  + [out.compare(variable, "!=", h) for h in holes])
             for piece, holes in joined]
    if shown == [""]:
        return everything
    single = _bounds(out, variable, joined[0][0]) if len(joined) == 1 else []
    if len(single) == 1 and not joined[0][1] and single[0].startswith(out.value(variable)) or (
            len(joined) == 1 and not single and len(joined[0][1]) == 1):
        return f"{everything[:-len(out.value(variable))]}{shown[0]}"
    return everything + out.word("with") + out.word("or").join(shown)


def describe_families(variable: sympy.Symbol, solution: sympy.Set) -> tuple[str, str] | None:
    """Write *solution* (families, single values beside them) as the answer does.

    Args:
        variable: The unknown.
        solution: A union of ``ImageSet`` s over sets of integers and ``FiniteSet`` s.

    Returns:
        ``(text, latex)``: ``x = 2*pi*n, x = 2*pi*n + pi (n an integer)``, single values
        first; a family kept only for some n (``restrict_families``) says for which:
        ``(n an integer, n >= -3)`` when every family has the same range, else ``x =
        ... for n >= -3`` each. None for any other set.
    """
    parts = list(solution.args) if isinstance(solution, sympy.Union) else [solution]
    values = [v for part in parts if isinstance(part, sympy.FiniteSet) for v in part]
    images = [part for part in parts if not isinstance(part, sympy.FiniteSet)]
    if not images or not all(isinstance(part, sympy.ImageSet) for part in images):
        return None
    n = _N
    families = []
    for part in images:
        lamda = part.lamda
        if len(part.base_sets) != 1 or len(lamda.variables) != 1:
            return None
        try:
            describe_members(n, part.base_sets[0])
        except ValueError:
            return None
        families.append((lamda.expr.subs(lamda.variables[0], n), part.base_sets[0]))
    families.sort(key=lambda family: sort_key(family[0]))
    bases = [base for _, base in families]
    same = all(base == bases[0] for base in bases)
    texts = [f"{variable} = {v}" for v in sorted(values, key=sort_key)]
    latexes = [f"{sympy.latex(variable)} = {sympy.latex(v)}" for v in sorted(values, key=sort_key)]
    for expr, base in families:
        where = "" if same else describe_members(n, base)
        texts.append(f"{variable} = {expr}" + (f" for {where}" if where else ""))
        latexes.append(f"{sympy.latex(variable)} = {sympy.latex(expr)}" + (
            f" \\text{{ for }} {describe_members(n, base, True)}" if where else ""))
    if not same or bases[0] == sympy.S.Integers:
        return (f"{', '.join(texts)} {PERIODIC_NOTE}",
                f"{join_latex(latexes)} \\quad (n \\in \\mathbb{{Z}})")
    return (f"{', '.join(texts)} (n an integer, {describe_members(n, bases[0])})",
            f"{join_latex(latexes)} \\quad (n \\in \\mathbb{{Z}}, "
            f"{describe_members(n, bases[0], True)})")


def within_domain(solution: sympy.Set, variable: sympy.Symbol, domain: sympy.Set,
                   conditions: Sequence[Condition], steps: list[str]) -> sympy.Set:
    """*solution* cut to the domain of the text as written (domain.py): roots outside it
    dropped, families kept for the n inside it, an identity given on its region. Each
    change adds a step.

    Args:
        solution: SymPy's solution set of the equation (as SymPy read it).
        variable: The unknown.
        domain: ``S.Reals`` or ``S.Complexes``.
        conditions: The text's conditions that hold *variable*.
        steps: The answer's steps, appended to.

    Returns:
        The set to answer: single values, families over sets of integers, a region, or
        *solution* unchanged when it is of another kind.

    Raises:
        UnsupportedProblemError: Where the equation is defined could not be decided for
            an identity or a family.
    """
    if solution is sympy.S.EmptySet or solution.free_symbols:
        return solution
    split = split_solution(solution, _N)
    if split is not None:
        values, families = split
        kept: list[tuple[sympy.Expr, sympy.Set]] = []
        if families and domain == sympy.S.Reals:
            more, kept = restrict_families(families, variable, conditions, _N, steps)
            values = [*values, *more]
        elif families:
            return solution
        inside = []
        for root in sorted(set(values), key=sort_key):
            failed = violated(conditions, {variable: root})
            if failed is None:
                inside.append(root)
            else:
                steps.append(f"discard {variable} = {root}: outside the domain of the equation "
                             f"({failed.describe()})")
        return sympy.Union(sympy.FiniteSet(*inside), *(
            sympy.ImageSet(sympy.Lambda(_N, member), base) for member, base in kept))
    if not conditions or (solution != domain and describe_region(variable, solution) is None):
        return solution  # no domain to cut to, or a set no answer can write (ConditionSet)
    region = region_of(conditions, variable, domain)
    if region is None:
        raise UnsupportedProblemError(
            "could not verify the solutions: where the equation is defined could not be "
            "decided (" + "; ".join(c.describe() for c in conditions) + ")", kind="equation")
    cut = sympy.Intersection(solution, region)
    if cut != solution:
        shown = (describe_region(variable, region) or str(region)).removeprefix("all ")
        shown = shown.removeprefix(f"{variable} with ")
        steps.append(f"the equation is defined only for {shown}")
    return cut


def system_within_domain(tuples: list[sympy.Tuple], variables: list[sympy.Symbol],
                          conditions: Sequence[Condition], steps: list[str]
                          ) -> list[sympy.Tuple]:
    """*tuples* without the solutions (all values numbers) outside the domain of the text
    as written, each dropped with a step: ``1/x + 1/y = 1, x = y`` gives (0, 0) and (2,
    2); (0, 0) divides by 0.

    Args:
        tuples: The solutions, values in the order of *variables*.
        variables: The unknowns.
        conditions: The text's conditions (``parse.conditions_read()``).
        steps: The answer's steps, appended to.
    """
    # a root, logarithm or inverse function written in the text puts the system over the
    # reals, as it does an equation (algebra.solve_equation): x^2 + y^2 = 25, sqrt(x) = 3
    # has no real solution, though nonlinsolve gives x = 9, y = +-2*sqrt(14)*I
    real = any(c.relation != "!=" for c in conditions)
    kept = []
    for values in tuples:
        shown = ", ".join(f"{v} = {value}" for v, value in zip(variables, values, strict=True))
        if real and any(v.is_real is False for v in values):
            steps.append(f"discard {shown}: not real, and the text is defined over the reals")
            continue
        failed = None if any(v.free_symbols for v in values) else violated(
            conditions, dict(zip(variables, values, strict=True)))
        if failed is None:
            kept.append(values)
            continue
        steps.append(f"discard {shown}: outside the domain of the system ({failed.describe()})")
    return kept
