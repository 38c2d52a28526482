"""Make SymPy's fallback numeric evaluation of functions keep the precision it claims.

Invariant: once ``install()`` has run (``jobtrail.solver`` runs it on
import), ``Function._eval_evalf(prec)`` returns a value whose ``prec`` bits
are right, or None ("no value"), never a value that rounding of the
arguments made wrong. SymPy's own version rounds the arguments to
``prec + 5`` bits and calls mpmath once: ``acos(7823207/7823209)`` at
2 digits gives exactly ``0`` (the argument rounds to 1). SymPy's assumption
system trusts that value (``Expr._eval_is_extended_positive_negative``
evaluates at 2 digits), so ``acos(7823207/7823209).is_zero`` becomes True,
``sin(acos(7823207/7823209))`` auto-evaluates to 0 while the expression is
built, and ``simplify(180*acos(7823207/7823209)/pi)`` returns 0: in some
processes only, because the order SymPy deduces facts in depends on the
hash seed.

When the value at *prec* is 0 or below ``2^-prec`` (where rounding the
arguments can make a small value 0 or flip its sign), the replacement
evaluates again at ``2*prec + 30`` bits,
doubling until two evaluations agree to *prec* bits (at most
``_MAX_PREC_BITS``), and returns the agreed value; when none agree it
returns None, which SymPy reads as "unknown".

``log`` has its own evalf (``evalf_log``), which computes ``log(1 + d)``
accurately for an argument near 1, except when the rounded result is exactly
0: ``log((pi^4 + pi^5)^(1/6) - e + 1)`` (about -2e-8) then evaluates to 0 at
2 digits, and ``limit(((pi^4 + pi^5)^(1/6) - e + 1)^x, x, oo)`` answers 0 or
oo depending on the hash seed. The replacement recomputes such a zero from
``d = argument - 1`` (evaluated adaptively) with ``mpmath.log1p``.

Source:
    ``sympy.core.evalf.evalf_log`` (SymPy 1.14); SymPy issue 23086
    ("Incorrect result of simplify", the bug is in ``Function._eval_evalf``):
    https://github.com/sympy/sympy/issues/23086
"""

from __future__ import annotations

from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed
from sympy.core import evalf as evalf_module  # type: ignore[import-untyped]

__all__ = ["install"]

_MAX_PREC_BITS = 4000
"""Highest working precision tried, bits (about 1200 digits); past it: no value."""

_ORIGINAL = sympy.Function._eval_evalf
_ORIGINAL_LOG = evalf_module.evalf_log


def _as_mp(value: Any, prec: int) -> Any:
    """*value* (a SymPy number from ``_from_mpmath``) as an mpmath number, or None."""
    if value is None:
        return None
    try:
        with mpmath.workprec(prec):
            return mpmath.mpmathify(value._to_mpmath(prec))
    except (TypeError, ValueError, AttributeError):
        return None


def _agree(low: Any, high: Any, prec: int) -> bool:
    """True if *low* equals *high* to *prec* bits relative to |high|."""
    if high == 0:
        return bool(low == 0)
    return bool(abs(low - high) <= abs(high) * mpmath.ldexp(1, -prec + 1))


def _eval_evalf(self: sympy.Function, prec: int) -> Any:
    """``Function._eval_evalf`` at rising precision until two evaluations agree."""
    first = _ORIGINAL(self, prec)
    if first is None:
        return None
    work = 2 * prec + 30
    low = _as_mp(first, work)
    if low is None:
        return first  # not a plain number (SymPy's own fallbacks): leave it alone
    if low != 0 and mpmath.mag(low) > -prec:
        return first  # not near 0: rounding the arguments cannot have flipped its sign
    while work <= _MAX_PREC_BITS:
        try:
            again = _ORIGINAL(self, work)
        except (ValueError, ArithmeticError):
            return None
        high = _as_mp(again, work)
        if high is None:
            return None
        if _agree(low, high, prec):
            with mpmath.workprec(prec):
                return sympy.Expr._from_mpmath(+high, prec)
        low, work = high, 2 * work
    return None


def _evalf_log(expr: sympy.log, prec: int, options: dict[str, Any]) -> Any:
    """``evalf_log``, with a real part that rounded to exactly 0 recomputed from ``arg - 1``."""
    result = _ORIGINAL_LOG(expr, prec, options)
    if len(expr.args) != 1 or not isinstance(result, tuple) or result[0] not in (
            None, mpmath.libmp.fzero):
        return result
    add = sympy.Add(sympy.S.NegativeOne, expr.args[0], evaluate=False)
    delta, delta_im, _, _ = evalf_module.evalf_add(add, prec, options)
    if delta is None or delta_im is not None:
        return result  # the argument is exactly 1, or complex: SymPy's value stands
    with mpmath.workprec(prec + 20):
        d = mpmath.mpf(delta)
        if d <= -1:
            return result
        value = mpmath.log1p(d)
    return (value._mpf_, result[1], prec, result[3])


def install() -> None:
    """Replace SymPy's fallback function evalf and ``log``'s evalf (idempotent)."""
    sympy.Function._eval_evalf = _eval_evalf
    evalf_module.evalf_log = _evalf_log
    table = evalf_module.evalf_table
    if table:
        table[sympy.log] = _evalf_log
