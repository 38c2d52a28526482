"""Whether a point lies in the real domain of the problem as written, decided numerically.

Invariant: each ``domain.Condition`` (from the text as written, before SymPy cancelled
anything) is evaluated by mpmath at rising precision (``numeric.stable``), never by the
SymPy set arithmetic that shaped the answer: an exact point is in the domain only if
every condition settles on the right side of 0 (a boundary value that settles on 0
counts as 0, so ``sqrt(0)`` is defined and ``log(0)`` is not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.domain import Condition, integer_pieces
from jobtrail.solver.verify.evaluate import Unsupported
from jobtrail.solver.verify.numeric import call, compile_expr, stable

__all__ = ["family_members", "left_out_members", "outside_near", "violated"]

_WIDE = (-10**6, -1000, -100, -10, -3, -2, -1, 0, 1, 2, 3, 10, 100, 1000, 10**6)
"""Members n of a family substituted back: near 0 and far out, where a domain ends."""

_EDGE = 3
"""Members taken next to each finite end of a family's range of n."""


def _meets(value: Any, relation: str) -> bool:
    """Whether the settled number *value* meets *relation* against 0 (tiny imaginary
    parts, rounding noise of a real value, ignored)."""
    imag = mpmath.im(value)
    real = mpmath.re(value)
    if relation == "!=":
        return bool(value != 0)
    if abs(imag) > mpmath.mpf(10) ** -20 * (1 + abs(real)):
        return False  # not real: no sign
    return bool(real >= 0) if relation == ">=" else bool(real > 0)


def violated(conditions: Sequence[Condition],
             values: dict[sympy.Symbol, sympy.Basic]) -> Condition | None:
    """The first of *conditions* that fails at the exact point *values*.

    Args:
        conditions: The text's conditions (``parse.conditions_read()``).
        values: Exact values (SymPy numbers) of the unknowns; a condition with any other
            symbol is skipped.

    Returns:
        The failed condition; None if each holds, or cannot be settled numerically.
    """
    for condition in conditions:
        if not condition.expr.free_symbols <= set(values):
            continue
        target = condition.part if condition.relation == "real" else condition.expr
        at = target.xreplace(values)
        if at.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            return condition  # the part's own argument is undefined there
        try:
            settled = stable(compile_expr(at, []))
        except Unsupported:
            continue
        if settled is None:
            if call(compile_expr(at, [])) is None:
                return condition  # undefined there
            continue
        value = settled[0]
        if condition.relation == "real":
            if abs(mpmath.im(value)) > mpmath.mpf(10) ** -20 * (1 + abs(value)):
                return condition
        elif not _meets(value, condition.relation):
            return condition
    return None


def outside_near(conditions: Sequence[Condition], variable: sympy.Symbol,
                 point: Any) -> Condition | None:
    """The first condition clearly failed at the inexact real *point* (a numeric root).

    A value within 1e-10 of 0 counts as on the boundary: inside for ``>=``, outside for
    ``>`` and ``!=`` (a root cannot sit where a logarithm or a pole is).

    Args:
        conditions: The text's conditions; those with other symbols are skipped.
        variable: The unknown.
        point: A real number (float or mpmath).

    Returns:
        The failed condition, or None.
    """
    tol = mpmath.mpf(10) ** -10
    with mpmath.workdps(50):
        x = mpmath.mpmathify(point)
        for condition in conditions:
            if condition.expr.free_symbols != {variable}:
                continue
            target = condition.part if condition.relation == "real" else condition.expr
            try:
                value = call(compile_expr(target, [variable]), x)
            except Unsupported:
                continue
            if value is None:
                return condition
            imag, real = mpmath.im(value), mpmath.re(value)
            if condition.relation == "real":
                if abs(imag) > 1e-12 * (1 + abs(real)):
                    return condition
            elif condition.relation == "!=":
                if abs(value) <= tol:
                    return condition
            elif abs(imag) > 1e-12 * (1 + abs(real)) or real < -tol or (
                    condition.relation == ">" and real <= tol):
                return condition
    return None


def family_members(base: sympy.Set) -> list[int]:
    """The members n of a family to substitute back: a wide sample, and the first few
    next to each finite end of its range.

    Args:
        base: The family's integers (``Integers``, ``Range(-3, oo)``, ...).

    Returns:
        Integers in *base*, ascending; for ``Integers``: -10^6, -1000, -100, -10, -3..3,
        10, 100, 1000, 10^6.
    """
    pieces = integer_pieces(base) or []
    chosen = {k for k in _WIDE if any(lo <= k <= hi for lo, hi in pieces)}
    for lo, hi in pieces:
        if lo.is_finite:
            chosen.update(int(lo) + i for i in range(_EDGE) if lo + i <= hi)
        if hi.is_finite:
            chosen.update(int(hi) - i for i in range(_EDGE) if hi - i >= lo)
    return sorted(chosen)


def left_out_members(base: sympy.Set) -> list[int]:
    """The integers just outside each finite end of *base* (not in it): members the answer
    leaves out, so each must be no solution. [] for all integers."""
    pieces = integer_pieces(base) or []
    out = {int(k) for lo, hi in pieces for k in (lo - 1, hi + 1) if k.is_finite}
    return sorted(k for k in out if not any(lo <= k <= hi for lo, hi in pieces))
