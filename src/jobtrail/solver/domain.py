"""The real domain of a problem as written: where every root, logarithm, inverse function,
pole and division that the text writes is defined and real.

Invariant: the conditions come from the text as written, not from SymPy's reading of it.
``parse._Builder`` asks ``conditions_of`` about every call and power it builds, before
the automatic simplification of the enclosing expression can cancel it
(``sqrt(x + 20) - sqrt(x + 20)`` is 0, ``sin(asin(x))`` is x, ``x^2/x`` is x, and
``exp(log(x))`` is x). The symbolic sets built here (``real_domain``,
``allowed_members``) only *shape* an answer; the verification checks every reported
point against the same conditions numerically (``verify/membership.py``). Pure SymPy:
nothing here evaluates numerically or imports the verify package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

__all__ = [
    "Condition",
    "allowed_members",
    "conditions_in",
    "conditions_of",
    "integer_pieces",
    "integer_set",
    "real_domain",
    "region_of",
]

_PERIODIC = (sympy.sin, sympy.cos, sympy.tan, sympy.cot, sympy.sec, sympy.csc)
_RELATIONS = {">=": sympy.Ge, ">": sympy.Gt}
# Argument conditions of the inverse functions over the reals: f(a) is real iff each
# expression built from a is >= 0 (or > 0).
_ARGUMENT_CONDITIONS = {
    sympy.asin: ((lambda a: a + 1, ">="), (lambda a: 1 - a, ">=")),
    sympy.acos: ((lambda a: a + 1, ">="), (lambda a: 1 - a, ">=")),
    sympy.acosh: ((lambda a: a - 1, ">="),),
    sympy.atanh: ((lambda a: a + 1, ">"), (lambda a: 1 - a, ">")),
    sympy.acoth: ((lambda a: a**2 - 1, ">"),),
    sympy.asec: ((lambda a: a**2 - 1, ">="),),
    sympy.acsc: ((lambda a: a**2 - 1, ">="),),
    sympy.asech: ((lambda a: a, ">"), (lambda a: 1 - a, ">=")),
    sympy.acsch: ((lambda a: a, "!="),),
    sympy.tan: ((sympy.cos, "!="),),
    sympy.sec: ((sympy.cos, "!="),),
    sympy.cot: ((sympy.sin, "!="),),
    sympy.csc: ((sympy.sin, "!="),),
    sympy.coth: ((lambda a: a, "!="),),
    sympy.csch: ((lambda a: a, "!="),),
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One requirement of the real domain, from one part of the text.

    Attributes:
        expr: An expression of the unknowns that must satisfy *relation* against 0.
        relation: ``">="``, ``">"`` or ``"!="``; ``"real"`` when the rule is not known
            and *part* itself must be real and finite (``factorial(x)``, ``(-2)^x``).
        part: The written part that needs it, e.g. ``sqrt(x + 20)``.
    """

    expr: sympy.Expr
    relation: str
    part: sympy.Expr

    def describe(self) -> str:
        """The condition in words: ``"sqrt(x + 20) needs x + 20 >= 0"``."""
        if self.relation == "!=":
            return f"{self.part} is undefined where {self.expr} = 0"
        if self.relation == "real":
            return f"{self.part} must be real"
        return f"{self.part} needs {self.expr} {self.relation} 0"


def _written(func: type, args: Sequence[sympy.Expr]) -> sympy.Expr:
    try:
        return func(*args, evaluate=False)
    except TypeError:
        return func(*args)


def _power_conditions(base: sympy.Expr, exponent: sympy.Expr,
                      part: sympy.Expr) -> list[tuple[sympy.Expr, str]]:
    if exponent.is_number:
        if exponent.is_integer:
            return [(base, "!=")] if exponent.is_negative else []
        if exponent.is_extended_real:
            return [(base, ">" if exponent.is_negative else ">=")]
        return [(part, "real")]
    if not base.free_symbols:
        return [] if base.is_positive else [(part, "real")]
    return [(base, ">")]  # x^x, x^y: real powers of a positive base


def conditions_of(func: type, args: Sequence[sympy.Expr]) -> list[Condition]:
    """The conditions under which ``func(*args)`` is defined and real.

    Args:
        func: A SymPy class: ``sympy.Pow`` (roots, divisions: ``Pow(a, -1)``), a function
            such as ``sympy.log`` (``log(a, b)`` is base b), ``sympy.asin``, ``sympy.tan``
            or ``sympy.factorial``; any other has no condition.
        args: Its arguments as built (SymPy expressions).

    Returns:
        One ``Condition`` per requirement with a free symbol in it, e.g. ``x + 20 >= 0``
        for ``sqrt(x + 20)``; ``[]`` for everything real everywhere (sin, exp, abs, ...).
    """
    part = _written(func, args)
    found: list[tuple[sympy.Expr, str]] = []
    if func is sympy.Pow:
        found = _power_conditions(args[0], args[1], part)
    elif func is sympy.log:
        found = [(args[0], ">")]
        if len(args) == 2:
            found += [(args[1], ">"), (sympy.log(args[1]), "!=")]
    elif func is sympy.factorial:
        found = [(part, "real")]
    elif func in _ARGUMENT_CONDITIONS:
        found = [(build(args[0]), relation) for build, relation in _ARGUMENT_CONDITIONS[func]]
    return [Condition(expr, relation, part) for expr, relation in found if expr.free_symbols]


def conditions_in(expr: sympy.Expr) -> list[Condition]:
    """The conditions of every power and function inside the evaluated *expr*.

    For a solver's output (a family member such as ``log(2*pi*n)``), not for the text:
    the text's own conditions are collected as it is built (``parse.Reading``).
    """
    found: list[Condition] = []
    pending = [expr]
    while pending:  # only parts with free symbols: CRootOf's polynomial binds its own x
        sub = pending.pop()
        if not sub.free_symbols:
            continue
        if isinstance(sub, (sympy.Pow, sympy.Function)):
            found.extend(c for c in conditions_of(sub.func, sub.args) if c not in found)
        pending.extend(sub.args)
    return found


def _is_plain(region: sympy.Set) -> bool:
    """True for unions of real intervals and points, minus finitely many points."""
    if region in (sympy.S.EmptySet, sympy.S.Reals) or isinstance(region, sympy.Interval):
        return True
    if isinstance(region, sympy.FiniteSet):
        return all(p.is_extended_real for p in region)
    if isinstance(region, sympy.Union):
        return all(_is_plain(arg) for arg in region.args)
    if isinstance(region, sympy.Complement):
        return _is_plain(region.args[0]) and isinstance(region.args[1], sympy.FiniteSet)
    return False


def _solve_condition(expr: sympy.Expr, relation: str, symbol: sympy.Symbol) -> sympy.Set | None:
    """The real values of *symbol* where ``expr <relation> 0``; None if SymPy cannot say."""
    if expr.has(*_PERIODIC):
        return None  # solveset gives one period of a periodic inequality, not all of it
    try:
        if relation == "!=":
            zeros = sympy.solveset(expr, symbol, sympy.S.Reals)
            if not isinstance(zeros, sympy.FiniteSet) and zeros is not sympy.S.EmptySet:
                return None
            region = sympy.Complement(sympy.S.Reals, zeros)
        else:
            region = sympy.solveset(_RELATIONS[relation](expr, 0), symbol, sympy.S.Reals)
    except (NotImplementedError, ValueError, TypeError):
        return None
    return region if _is_plain(region) else None


def real_domain(conditions: Sequence[Condition], variable: sympy.Symbol) -> sympy.Set | None:
    """The real values of *variable* where every condition holds.

    Args:
        conditions: The text's conditions (``parse.conditions_read()``).
        variable: The unknown.

    Returns:
        A union of intervals and points (``Interval(-20, oo)``, ``Reals`` minus ``{0}``),
        ``Reals`` without conditions; None when a condition has another symbol, is
        periodic (``cos(x) != 0``) or SymPy cannot solve it.
    """
    region: sympy.Set = sympy.S.Reals
    for condition in conditions:
        if condition.relation == "real" or condition.expr.free_symbols != {variable}:
            return None
        solved = _solve_condition(condition.expr, condition.relation, variable)
        if solved is None:
            return None
        region = sympy.Intersection(region, solved)
    return region if _is_plain(region) else None


def region_of(conditions: Sequence[Condition], variable: sympy.Symbol,
              domain: sympy.Set) -> sympy.Set | None:
    """Where *variable* meets every condition, within *domain*.

    Args:
        conditions: The text's conditions that hold *variable*.
        variable: The unknown.
        domain: ``S.Reals`` (``real_domain``), or ``S.Complexes``, where only ``!=``
            conditions can hold and each must be 0 at finitely many points.

    Returns:
        The region (``Complement(Complexes, {0})`` for ``x^2/x``), or None when it
        cannot be found.
    """
    if domain == sympy.S.Reals:
        return real_domain(conditions, variable)
    holes: list[sympy.Basic] = []
    for condition in conditions:
        if condition.relation != "!=" or condition.expr.free_symbols != {variable}:
            return None
        try:
            zeros = sympy.solveset(condition.expr, variable, domain)
        except (NotImplementedError, ValueError, TypeError):
            return None
        if not isinstance(zeros, sympy.FiniteSet) and zeros is not sympy.S.EmptySet:
            return None
        holes.extend(zeros)
    return sympy.Complement(domain, sympy.FiniteSet(*holes)) if holes else domain


def _holds(value: sympy.Expr, relation: str) -> bool | None:
    """Whether the constant *value* meets *relation* against 0 (None: SymPy cannot tell)."""
    if relation == "!=":
        zero = value.is_zero
        return None if zero is None else not zero
    facts: list[bool | None] = [value.is_extended_real, value.is_finite] if relation == "real" \
        else [value.is_extended_nonnegative if relation == ">=" else value.is_extended_positive]
    if False in facts:
        return False
    return None if None in facts else True


def allowed_members(member: sympy.Expr, n: sympy.Symbol, conditions: Sequence[Condition],
                    variable: sympy.Symbol) -> sympy.Set | None:
    """The integers n for which the family member ``variable = member`` is in the domain.

    Each condition is taken at the member with n an integer symbol, so SymPy's rules for
    integer multiples of pi apply (``cos(2*pi*n + pi)`` is -1); what still depends on n
    is solved over the reals in n. The member's own parts must be defined too
    (``1/(2*pi*n)`` needs n != 0).

    Args:
        member: The family's expression in *n*, e.g. ``2*pi*n + pi``.
        n: The integer symbol of the family.
        conditions: The text's conditions.
        variable: The unknown.

    Returns:
        A set of integers (``Integers``, ``Range(-3, oo)``, ``Integers`` minus ``{0}``,
        ``EmptySet``, ...); None when it cannot be decided (a condition still periodic in
        n, another symbol, SymPy cannot solve it).
    """
    real_n = sympy.Dummy("t", real=True)
    allowed: sympy.Set = sympy.S.Reals
    for condition in [*conditions, *conditions_in(member)]:
        if not condition.expr.free_symbols <= {variable, n}:
            return None
        value = condition.expr.xreplace({variable: member})
        truth = _holds(value, condition.relation)  # for every integer n, when SymPy knows
        if truth is not None:
            if truth:
                continue
            return sympy.S.EmptySet
        if not value.has(n) or condition.relation == "real":
            return None
        solved = _solve_condition(value.xreplace({n: real_n}), condition.relation, real_n)
        if solved is None:
            return None
        allowed = sympy.Intersection(allowed, solved)
    pieces = integer_pieces(sympy.Intersection(sympy.S.Integers, allowed))
    return None if pieces is None else integer_set(pieces)


def integer_set(pieces: list[tuple[sympy.Expr, sympy.Expr]]) -> sympy.Set:
    """The integers of the runs *pieces* (``integer_pieces``), in one canonical form:
    ``Integers``, a ``Range`` or a union of them, or ``EmptySet``."""
    ranges = []
    for lo, hi in pieces:
        if not lo.is_finite and not hi.is_finite:
            return sympy.S.Integers
        ranges.append(sympy.Range(lo, hi + 1) if hi.is_finite else sympy.Range(lo, sympy.oo))
    return sympy.Union(*ranges) if ranges else sympy.S.EmptySet


def integer_pieces(members: sympy.Set) -> list[tuple[sympy.Expr, sympy.Expr]] | None:
    """*members* (a set of integers) as sorted, disjoint ``(first, last)`` runs, adjacent
    runs joined; ends ``-oo``/``oo``.

    Returns:
        ``[(-3, oo)]`` for ``Range(-3, oo)``, ``[(-oo, -1), (1, oo)]`` for Integers minus
        {0}, ``[]`` for the empty set; None for anything else (a step other than 1).
    """
    if members is sympy.S.EmptySet:
        return []
    if members is sympy.S.Integers:
        return [(-sympy.oo, sympy.oo)]
    if isinstance(members, sympy.Range):
        return [(members.inf, members.sup)] if members.step == 1 else None
    if isinstance(members, sympy.FiniteSet):
        if not all(k.is_integer for k in members):
            return None
        return _joined([(k, k) for k in members])
    if isinstance(members, sympy.Complement) and isinstance(members.args[1], sympy.FiniteSet):
        pieces = integer_pieces(members.args[0])
        if pieces is None or not all(hole.is_integer for hole in members.args[1]):
            return None
        for hole in members.args[1]:
            pieces = [cut for lo, hi in pieces for cut in (
                ((lo, hole - 1), (hole + 1, hi)) if lo <= hole <= hi else ((lo, hi),))
                if cut[0] <= cut[1]]
        return pieces
    if isinstance(members, sympy.Union):
        found = [integer_pieces(arg) for arg in members.args]
        if any(pieces is None for pieces in found):
            return None
        return _joined([piece for pieces in found if pieces for piece in pieces])
    return None


def _joined(pieces: list[tuple[sympy.Expr, sympy.Expr]]) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """*pieces* sorted, overlapping and adjacent runs made one."""
    joined: list[tuple[sympy.Expr, sympy.Expr]] = []
    for lo, hi in sorted(pieces, key=lambda piece: piece[0]):
        if joined and (not joined[-1][1].is_finite or joined[-1][1] + 1 >= lo):
            joined[-1] = (joined[-1][0], max(joined[-1][1], hi))
        else:
            joined.append((lo, hi))
    return joined
