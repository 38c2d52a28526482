"""Shared helpers of the kind solvers: splitting text, choosing variables, printing.

Invariant: pure functions over strings and SymPy objects; nothing here
parses Python or reads state.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from decimal import Decimal, localcontext

import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import ProblemParseError
from jobtrail.solver.answer import Answer
from jobtrail.solver.parse import Readings, note_reading, read_expression
from jobtrail.solver.text import excerpt

__all__ = [
    "choose_variable",
    "decimal_text",
    "with_readings",
    "join_latex",
    "numeric_or_none",
    "parse_equation",
    "sort_key",
    "split_top_level",
    "strip_filler",
    "wrap",
]

_FILLER = re.compile(
    r"^(?:(?:please|now|can you|could you|find|compute|calculate|evaluate|determine|"
    r"work out|what is|whats|show that|prove that|the value of|the|value of)\s+)+",
    re.IGNORECASE,
)
_TRAILING = re.compile(r"[\s.?!:;,]+$")


def strip_filler(text: str) -> str:
    """Drop polite or imperative lead-in words and trailing punctuation.

    Args:
        text: Normalized problem text, e.g. ``"Please evaluate 2^10 / 4."``.

    Returns:
        The remaining text, e.g. ``"2^10 / 4"``; ``"10!"`` keeps its ``!``.
    """
    stripped = _FILLER.sub("", text.strip())
    trailing = _TRAILING.search(stripped)
    if trailing is not None and not trailing.group(0).lstrip().startswith("!"):
        stripped = stripped[: trailing.start()]
    return stripped.strip()


def split_top_level(text: str, separators: str = ",;") -> list[str]:
    """Split *text* at *separators* and the word ``and`` outside parentheses.

    Args:
        text: e.g. ``"2x + y = 5, x - y = 1"``.
        separators: Single characters that separate parts.

    Returns:
        The stripped, non-empty parts in order.
    """
    parts: list[str] = []
    depth = 0
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and char in separators:
            parts.append(text[start:index])
            start = index + 1
        elif depth == 0 and re.match(r"\sand\s", text[index : index + 5], re.IGNORECASE):
            parts.append(text[start:index])
            start = index + 5
            index += 4
        index += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_equation(text: str) -> tuple[sympy.Expr, sympy.Expr]:
    """Parse ``"lhs = rhs"`` (or a bare expression, meaning ``= 0``).

    Args:
        text: One equation, e.g. ``"x^2 - 5x + 6 = 0"``.

    Returns:
        ``(lhs, rhs)`` as SymPy expressions.

    Raises:
        ProblemParseError: A side is unreadable or there is more than one ``=``.
    """
    sides = text.split("=")
    if len(sides) > 2:
        raise ProblemParseError(
            f"could not parse near {excerpt(text.strip(), 0)}: more than one '='",
            text=text,
            position=None,
        )
    for side, where in zip(sides, ("before", "after"), strict=False):
        if len(sides) == 2 and not side.strip():
            raise ProblemParseError(
                f"could not parse {excerpt(text.strip(), 0)}: nothing {where} '='",
                text=text,
                position=None,
            )
    left = read_expression(sides[0].strip())
    if len(sides) == 1:
        note_reading(text.strip(), left.text, left.notes, left.decimal, left.divisors,
                     left.conditions)
        return left.expr, sympy.Integer(0)
    right = read_expression(sides[1].strip())
    note_reading(
        text.strip(),
        f"{left.text} = {right.text}",
        left.notes | right.notes,
        left.decimal or right.decimal,
        left.divisors + right.divisors,
        left.conditions + right.conditions,
    )
    return left.expr, right.expr


def choose_variable(expr: sympy.Basic, named: str | None) -> sympy.Symbol:
    """Pick the variable to solve, differentiate or integrate for.

    Args:
        expr: The expression holding the variables.
        named: The variable the problem names (``"for y"``, ``"dy"``), if any.

    Returns:
        The named symbol; else the only free symbol; else ``x`` if present;
        else the first in alphabetical order. A constant expression gets ``x``.
    """
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    if named is not None:
        for symbol in symbols:
            if symbol.name == named:
                return symbol
        return sympy.Symbol(named)
    if not symbols:
        return sympy.Symbol("x")
    for symbol in symbols:
        if symbol.name == "x":
            return symbol
    first: sympy.Symbol = symbols[0]
    return first


def numeric_or_none(value: sympy.Basic, digits: int = 15) -> sympy.Float | None:
    """Return a real decimal approximation of *value*, or None if it has none.

    Args:
        value: A constant SymPy expression.
        digits: Significant digits.

    Returns:
        The Float, or None for non-real, infinite or symbolic values and for
        a value SymPy could only bound (``4*atan(1/5) - atan(1/239) - pi/4``
        evaluates to ``-0.e-125``: no significant digit, |value| < 1e-125).
    """
    try:
        number = sympy.N(value, digits)
    except (TypeError, ValueError, ArithmeticError):
        return None
    if isinstance(number, sympy.Float) and number._prec > 1:
        return number
    return None  # not a real number, or no significant digit: SymPy's "-0.e-125"


def sort_key(value: sympy.Basic) -> tuple[int, float, float, object]:
    """Order solutions by real part, then imaginary part, then text.

    Args:
        value: A solution value, possibly complex or symbolic.

    Returns:
        A key placing numeric values first, ascending.
    """
    if value.has(sympy.CRootOf):
        # Evaluating CRootOf numerically is slow; SymPy's index order is
        # already real roots ascending, then complex ones.
        return (1, 0.0, 0.0, sympy.default_sort_key(value))
    try:
        real, imag = (float(part) for part in sympy.N(value, 20).as_real_imag())
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        return (2, 0.0, 0.0, str(value))  # AttributeError: a set has no as_real_imag
    return (0, real, imag, str(value))


def wrap(value: sympy.Basic) -> str:
    """Return ``str(value)``, in parentheses unless it is an atom or a non-negative integer.

    Args:
        value: The SymPy value to print before ``^``.

    Returns:
        e.g. ``"3"``, ``"x"``, ``"(sqrt(2))"``, ``"(-1)"``.
    """
    if (value.is_Integer and value.is_nonnegative) or value.is_Symbol:
        return str(value)
    return f"({value})"


def join_latex(items: Iterable[str]) -> str:
    """Join LaTeX fragments with a comma and a thin space."""
    return ", \\; ".join(items)


_MAX_DECIMAL_CHARS = 24
# A rational number standing alone in a SymPy str: not an exponent, argument or factor.
_RATIONAL_TEXT = re.compile(r"(?<![\w.)(*/^])(-?\d+)/(\d+)(?![\w.(*/^])")
_RATIONAL_LATEX = re.compile(r"(?<![\w{(^])(-?)\\frac\{(\d+)\}\{(\d+)\}")


def _as_decimal(numerator: int, denominator: int) -> str | None:
    rest, places = denominator, 0
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
            places += 1
    if rest != 1:
        return None  # 1/3 has no terminating decimal; it stays a fraction
    with localcontext() as context:
        context.prec = len(str(abs(numerator))) + places + 2
        value = Decimal(numerator) / Decimal(denominator)
        shown = format(value, "f")
        if len(shown) > _MAX_DECIMAL_CHARS:
            shown = format(value.normalize(), "e")  # 1e-300, exact: 1.5e-30
    return shown if len(shown) <= _MAX_DECIMAL_CHARS else None


def decimal_text(text: str, latex: bool = False) -> str:
    """Write the stand-alone fractions of an answer with terminating decimals as decimals.

    ``"x = 3/2000"`` becomes ``"x = 0.0015"`` and ``1/10^300`` becomes
    ``1e-300`` (exact scientific notation when the plain decimal is longer
    than 24 characters); ``"x = 1/3"``, ``"x**(3/2)"`` and ``"3*x/2000"`` are
    left alone.

    Args:
        text: A SymPy ``str`` answer, or its LaTeX when *latex* is true
            (``\\frac{3}{2000}``).
        latex: *text* is LaTeX.

    Returns:
        The text with those fractions replaced.
    """

    def plain(match: re.Match[str]) -> str:
        shown = _as_decimal(int(match.group(1)), int(match.group(2)))
        return match.group(0) if shown is None else shown

    def tex(match: re.Match[str]) -> str:
        shown = _as_decimal(int(match.group(2)), int(match.group(3)))
        return match.group(0) if shown is None else f"{match.group(1)}{shown}"

    return _RATIONAL_LATEX.sub(tex, text) if latex else _RATIONAL_TEXT.sub(plain, text)


def with_readings(answer: Answer, readings: Readings) -> Answer:
    """Return *answer* with the "read as" steps first, and decimals kept decimal.

    When the problem was written with decimal or scientific literals, the
    answer's stand-alone exact fractions with a terminating decimal are shown
    as decimals (``x = 1.5e-3`` answers ``x = 0.0015``, not ``x = 3/2000``).

    Args:
        answer: What the kind's solver returned.
        readings: What ``collect_readings`` collected during that solve.

    Returns:
        The answer, unchanged when there is nothing to add.
    """
    if not readings.steps and not readings.decimal:
        return answer
    text, latex = answer.text, answer.latex
    if readings.decimal:
        text, latex = decimal_text(text), decimal_text(latex, latex=True)
    steps = tuple(readings.steps) + tuple(answer.steps)
    return dataclasses.replace(answer, text=text, latex=latex, steps=steps)
