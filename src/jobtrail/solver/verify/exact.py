"""Exact rational evaluation of arithmetic problem text, independent of the parser and SymPy.

Invariant: the text is read by Python's own parser (``ast.parse``, mode
``"eval"``; never compiled or evaluated) and only integer and decimal
literals, unary ``+``/``-``, binary ``+ - * /`` and ``**`` with an integer
exponent are evaluated, over ``fractions.Fraction``, within
``MAX_EXPONENT`` and ``MAX_BITS``. Anything else (a name, a call, implicit
multiplication, ``!``, ``|x|``, a fractional exponent, division by zero, a
bound exceeded) gives None: "not applicable", never an exception.

The notation shared with ``parse.py`` is applied to the text first: the
same ``text.normalize()`` (``×`` ``÷`` ``−`` superscripts), and ``^`` read
as ``**``, as ``tokens.py`` does. Python's grammar then gives the same
precedence as ``parse.py``'s: ``-2**2`` is ``-(2**2)``, ``2**3**2`` is
``2**(3**2)``, ``2**-1`` is ``2**(-1)``.

Source: Python's ``ast`` module (https://docs.python.org/3/library/ast.html,
"Abstract Grammar") and ``fractions.Fraction``
(https://docs.python.org/3/library/fractions.html), whose ``**`` with an
integer exponent is exact.
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed

from jobtrail.errors import ProblemError
from jobtrail.solver.answer import Verification
from jobtrail.solver.text import normalize
from jobtrail.solver.verify.numeric import fmt

__all__ = ["EXACT_METHOD", "MAX_BITS", "MAX_EXPONENT", "find_exact_verification",
           "find_rational_value"]

EXACT_METHOD = "exact rational re-evaluation of the text (Python fractions)"
"""``Verification.method`` of an answer checked by ``find_exact_verification``."""

MAX_EXPONENT = 10_000
"""Largest absolute integer exponent evaluated (of ``**`` and of a literal's ``e``)."""

MAX_BITS = 100_000
"""Largest bit length of any numerator or denominator, literal, intermediate or result."""

# A literal as tokens.py reads it (1, 1.5, .5, 1.5e-3); Python's other forms (0x1f,
# 1_000, 1j, 1.) are not the project's notation.
_LITERAL = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")
_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)


class _NotApplicableError(Exception):
    """The text is outside the evaluated subset or beyond the bounds."""


def find_rational_value(text: str) -> Fraction | None:
    """Evaluate arithmetic *text* exactly as a rational number, or None when not applicable.

    Args:
        text: Problem text after filler stripping (``render.strip_filler``),
            e.g. ``"2^10 / 4"``; normalized again here (idempotent).

    Returns:
        The exact value (``Fraction(256)``), or None: the text holds anything
        but number literals, parentheses, unary ``+ -`` and binary
        ``+ - * / ^ **``; an exponent is not an integer or exceeds
        ``MAX_EXPONENT`` in magnitude; a value would exceed ``MAX_BITS``
        bits; it divides by zero; or Python cannot parse it.
    """
    try:
        return _read(text)
    except ZeroDivisionError:
        return None


def _read(text: str) -> Fraction | None:
    """As ``find_rational_value``, but a division by zero raises ZeroDivisionError."""
    try:
        source = normalize(text).replace("^", "**")
        tree = ast.parse(source, mode="eval")
        return _evaluate(tree.body, source)
    except (_NotApplicableError, ProblemError, SyntaxError, ValueError, RecursionError):
        return None


def find_exact_verification(text: str, result: Fraction) -> Verification | None:
    """Check the rational *result* against *text* read exactly, or None when not applicable.

    Args:
        text: Problem text after filler stripping, e.g. ``"2^10 / 4"``.
        result: The answer's exact value, read by ``parse.py`` and SymPy.

    Returns:
        None when ``find_rational_value(text)`` is None and the text does
        not divide by zero; else ``verified`` (method ``EXACT_METHOD``, the
        value in the detail, ``max_error`` 0) when the two values are equal,
        and ``unverified`` naming both when they differ: the two readings of
        the text disagree and neither is known to be right, so the answer is
        not contradicted (which would replace it by the other reading).
        Also ``unverified`` when the text divides by zero inside a value
        SymPy absorbed (``1/(1/0)`` is 0 to SymPy, whose ``1/0`` is ``zoo``).
    """
    try:
        exact = _read(text)
    except ZeroDivisionError:
        return Verification("unverified", EXACT_METHOD,
                            f"the text divides by zero, so its value is undefined; the "
                            f"parser's value is {_shown(result)}")
    if exact is None:
        return None
    if exact == result:
        return Verification("verified", EXACT_METHOD,
                            f"the text evaluates exactly to {_shown(exact)}", 0.0)
    # relative difference; a float may round it to 0.0 for huge close values: they differ
    scale = max(abs(exact), abs(result), Fraction(1))
    error = float(abs(exact - result) / scale) or math.ulp(0.0)
    return Verification("unverified", EXACT_METHOD,
                        f"the two readings of the text disagree: the parser's value is "
                        f"{_shown(result)}, the text evaluates exactly to {_shown(exact)} "
                        f"(difference {_shown(exact - result)})", error)


def _shown(value: Fraction) -> str:
    """*value* exactly when short (both parts up to 200 bits), else its 15-digit decimal."""
    if max(value.numerator.bit_length(), value.denominator.bit_length()) <= 200:
        return str(value)
    return "≈ " + fmt(mpmath.mpf(value.numerator) / value.denominator)


def _checked(value: Fraction) -> Fraction:
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
        raise _NotApplicableError("value too large")
    return value


def _literal(node: ast.Constant, source: str) -> Fraction:
    written = ast.get_source_segment(source, node)
    if written is None or isinstance(node.value, bool) or not _LITERAL.fullmatch(written):
        raise _NotApplicableError("not a literal of the project's notation")
    mantissa, _, exponent = written.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_EXPONENT:
        raise _NotApplicableError("literal exponent too large")
    if len(mantissa) * 4 > MAX_BITS:
        raise _NotApplicableError("literal too long")
    return _checked(Fraction(mantissa) * Fraction(10) ** int(exponent or "0"))


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1 or abs(exponent.numerator) > MAX_EXPONENT:
        raise _NotApplicableError("exponent not a small integer")
    size = max(base.numerator.bit_length(), base.denominator.bit_length())
    if size > 1 and (size - 1) * abs(exponent.numerator) > MAX_BITS:
        raise _NotApplicableError("power too large")
    return _checked(base ** exponent.numerator)


def _apply(op: ast.operator, left: Fraction, right: Fraction) -> Fraction:
    if isinstance(op, ast.Add):
        return _checked(left + right)
    if isinstance(op, ast.Sub):
        return _checked(left - right)
    if isinstance(op, ast.Mult):
        return _checked(left * right)
    if isinstance(op, ast.Div):
        return _checked(left / right)
    return _power(left, right)


def _evaluate(node: ast.expr, source: str) -> Fraction:
    if isinstance(node, ast.Constant):
        return _literal(node, source)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        negate = False
        while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            negate ^= isinstance(node.op, ast.USub)  # "--1": a loop, not a recursion
            node = node.operand
        value = _evaluate(node, source)
        return -value if negate else value
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY)):
        raise _NotApplicableError(type(node).__name__)
    if isinstance(node.op, ast.Pow):  # right-associative: nests to the right
        return _power(_evaluate(node.left, source), _evaluate(node.right, source))
    # A long sum or product nests to the left: walk its spine without recursing,
    # so "1 + 1 + ... + 1" (thousands of terms) needs no deep recursion.
    spine: list[ast.BinOp] = []
    left: ast.expr = node
    while isinstance(left, ast.BinOp) and isinstance(left.op, _BINARY) and not isinstance(
            left.op, ast.Pow):
        spine.append(left)
        left = left.left
    value = _evaluate(left, source)
    for step in reversed(spine):
        value = _apply(step.op, value, _evaluate(step.right, source))
    return value
