"""Split a normalized maths fragment into allow-listed tokens.

Invariant: every token ``tokenize()`` returns is a number literal of at most
``MAX_LITERAL_DIGITS`` digits (decimal, or scientific like ``1.5e-3``), one of
the operators ``+ - * / ^ ( ) , ! | _`` or ``deg`` (a degree sign or the word
``degrees``), a function name from ``FUNCTIONS``, a constant from
``CONSTANTS`` or a variable name from ``VARIABLE_WORDS`` or a single ASCII
letter. Nothing else passes, so no identifier of Python's (``__import__``,
``lambda``, ``open``) can reach SymPy, and the text is never evaluated.

A token that stands for something other than its literal text carries a
``note`` (``"scientific notation"``, ``"letters split"``, ``"word operator"``,
``"** as power"``) so the parser can tell the user how the text was read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobtrail.errors import ProblemParseError, ProblemTooLargeError
from jobtrail.solver.text import excerpt

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_LITERAL_DIGITS",
    "VARIABLE_WORDS",
    "Token",
    "parse_error",
    "tokenize",
]

MAX_LITERAL_DIGITS = 1000
"""Longest integer or decimal literal accepted, in digits."""

FUNCTIONS = frozenset(
    {
        "sin", "cos", "tan", "cot", "sec", "csc",
        "asin", "acos", "atan", "arcsin", "arccos", "arctan",
        "acot", "asec", "acsc",
        "sinh", "cosh", "tanh", "coth", "sech", "csch",
        "asinh", "acosh", "atanh", "acoth", "asech", "acsch",
        "exp", "log", "ln", "sqrt", "abs", "factorial",
    }
)  # fmt: skip
"""Function names accepted, lower case."""

CONSTANTS = frozenset({"pi", "e", "E", "oo", "infinity", "inf", "I", "i"})
"""Constant names accepted: pi, Euler's e, infinity and the imaginary unit."""

VARIABLE_WORDS = frozenset(
    {"alpha", "beta", "gamma", "delta", "theta", "phi", "psi", "omega", "mu", "sigma", "tau"}
)
"""Multi-letter variable names accepted (Greek letters spelled out)."""

# Short words that must never be split into a product of variables.
_STOP_WORDS = frozenset(
    {"and", "or", "the", "of", "is", "to", "as", "for", "at", "by", "in", "on", "an", "if", "it"}
)
_MAX_SPLIT_LETTERS = 3
# Letters that name a function when a parenthesis follows directly: f(x), g(t).
_FUNCTION_LETTERS = frozenset({"f", "g"})
# Names of functions jobtrail does not know that are short enough to be split into a product
# ("re(x)" would be r*e*x): refused as unknown functions instead.
_UNKNOWN_FUNCTIONS = frozenset(
    {"re", "im", "arg", "max", "min", "mod", "gcd", "lcm", "erf", "sgn", "det",
     "erfc", "erfi", "sign", "floor", "ceil", "ceiling", "round", "frac", "trunc", "cbrt",
     "root", "zeta", "digamma", "polygamma", "loggamma", "lgamma", "binomial", "sinc",
     "ei", "si", "ci", "li", "shi", "chi", "lambertw", "heaviside", "dirac", "conj",
     "tg", "ctg", "cotg", "arctg", "arcctg", "sen", "lg", "lb", "exp2", "expm", "log1p"}
)  # fmt: skip
# Variable words that also name a function jobtrail does not know: refused when a
# parenthesis follows directly ("gamma(5)" is the gamma function, not gamma*5).
_FUNCTION_VARIABLES = frozenset({"gamma", "beta", "psi", "delta", "theta"})
# SymPy's names of undefined values, refused as words ("evaluate zoo" was o**2*z, verified).
_UNDEFINED_WORDS = {"zoo": "complex infinity", "nan": "not a number"}
# Letters that, next to a function name inside one word, spell another function's name:
# "arcot" is not a*r*cot, "cosh"-like "sinch" not sin(c*h). A split that puts them there is
# refused as an unknown function rather than read as a product.
_FUNCTION_PREFIXES = ("arc", "ar", "a")
_FUNCTION_SUFFIXES = ("h",)

# A mantissa followed by e/E and an exponent is one number (``1.5e-3``,
# ``6.02E+23``, ``1e3``); ``2e``, ``2e^x`` and ``2 e-3`` keep Euler's e.
_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<num>(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+(?![.\d]))?)"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op>\*\*|[-+*/^(),!|_])"
)
_SCIENTIFIC = re.compile(r"[eE]")

# Words read as operators: (token kind, value) pairs they stand for.
_WORD_OPERATORS: dict[str, tuple[tuple[str, str], ...]] = {
    "squared": (("op", "^"), ("num", "2")),
    "cubed": (("op", "^"), ("num", "3")),
    "plus": (("op", "+"),),
    "minus": (("op", "-"),),
    "times": (("op", "*"),),
    "over": (("op", "/"),),
    "degrees": (("op", "deg"),),
    "degree": (("op", "deg"),),
    "deg": (("op", "deg"),),
}


@dataclass(frozen=True, slots=True)
class Token:
    """One allow-listed token.

    Attributes:
        kind: ``"num"``, ``"op"``, ``"func"``, ``"const"`` or ``"var"``.
        value: The literal, operator (``**`` is given as ``^``, ``degrees``
            as ``deg``), canonical function or constant name (``ln`` ->
            ``log``, ``arcsin`` -> ``asin``, ``infinity`` -> ``oo``, ``e`` ->
            ``E``, ``i`` -> ``I``), or variable name.
        position: 0-based index of the token in the fragment.
        note: Why the token is not its literal text (``"scientific
            notation"``, ``"letters split"``, ``"word operator"``, ``"** as
            power"``), or ``""``.
    """

    kind: str
    value: str
    position: int
    note: str = ""


_FUNCTION_ALIASES = {"ln": "log", "arcsin": "asin", "arccos": "acos", "arctan": "atan",
                     "arccot": "acot", "arcsec": "asec", "arccsc": "acsc",
                     "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh",
                     "arccoth": "acoth", "arcsech": "asech", "arccsch": "acsch",
                     "arsinh": "asinh", "arcosh": "acosh", "artanh": "atanh",
                     "arcoth": "acoth", "arsech": "asech", "arcsch": "acsch",
                     "cosec": "csc", "cosech": "csch", "cotan": "cot"}  # fmt: skip
# Spelled-out names, read as the function (never split: "cosine" is not cos(i*n*e)).
_FUNCTION_WORDS = {
    "sine": "sin",
    "cosine": "cos",
    "tangent": "tan",
    "cotangent": "cot",
    "secant": "sec",
    "cosecant": "csc",
    "arcsine": "asin",
    "arccosine": "acos",
    "arctangent": "atan",
}
# Names recognized inside a run of letters, longest first ("sinh" before "sin").
_SPLIT_NAMES = tuple(sorted(FUNCTIONS | set(_FUNCTION_ALIASES) | {"pi"},
                            key=lambda name: (-len(name), name)))
_CONSTANT_ALIASES = {"e": "E", "i": "I", "infinity": "oo", "inf": "oo"}


def parse_error(fragment: str, position: int, reason: str = "") -> ProblemParseError:
    """Build the ``ProblemParseError`` for *fragment* at *position*.

    Args:
        fragment: The text being read.
        position: 0-based index of the offending character (len(fragment): its end).
        reason: Optional explanation appended after a colon.

    Returns:
        The error, message ``could not parse near '<excerpt>'[: reason]`` (see
        text.excerpt(): the piece from *position*, cut at a word with ``…``; at
        the end, ``near the end of '<tail>'``).
    """
    message = f"could not parse near {excerpt(fragment, position)}"
    if reason:
        message = f"{message}: {reason}"
    return ProblemParseError(message, text=fragment, position=position)


def _split_word(word: str) -> list[tuple[int, str]] | None:
    """Split a run of letters into function names, ``pi`` and single letters, or None.

    ``"xy"`` is x*y, ``"sinx"`` is sin x, ``"lnx"`` is ln x (not l*n*x),
    ``"pix"`` is pi*x (not p*i*x); at most ``_MAX_SPLIT_LETTERS`` single
    letters, so ``"hello"`` is refused as an unknown word.
    """
    lower = word.lower()
    pieces: list[tuple[int, str]] = []
    singles = 0
    offset = 0
    while offset < len(word):
        named = next((name for name in _SPLIT_NAMES if lower.startswith(name, offset)), None)
        size = len(named) if named is not None else 1
        singles += named is None
        pieces.append((offset, word[offset : offset + size]))
        offset += size
    return pieces if singles <= _MAX_SPLIT_LETTERS else None


def _paren_follows(fragment: str, end: int) -> bool:
    """True if "(" comes next in *fragment* from *end*, after any spaces: "gamma (5)" is
    the gamma function as "gamma(5)" is (it was read as 5*gamma), "sin (x)" is sin(x)."""
    return fragment[end:].lstrip(" ")[:1] == "("


def _unknown_function(lower: str) -> str | None:
    """The unknown function name *lower* is, or starts with (3 letters or more), else None."""
    if lower in _UNKNOWN_FUNCTIONS:
        return lower
    return next((name for name in sorted(_UNKNOWN_FUNCTIONS, key=len, reverse=True)
                 if len(name) > 2 and lower.startswith(name)), None)


def _misread_function(lower: str, pieces: list[tuple[int, str]]) -> str | None:
    """The name a split of *lower* would misread as a product, or None.

    A function piece with ``a``/``ar``/``arc`` in single letters right before it, or a
    single ``h`` right after it, spells an inverse or hyperbolic function ("arcot",
    "asinch"); the split would silently read a*r*cot.
    """
    for index, (offset, piece) in enumerate(pieces):
        if piece.lower() not in FUNCTIONS and piece.lower() not in _FUNCTION_ALIASES:
            continue
        before = ""
        for _, single in reversed(pieces[:index]):
            if len(single) != 1:
                break
            before = single.lower() + before
        prefix = next((p for p in _FUNCTION_PREFIXES if before.endswith(p)), None)
        if prefix is not None:
            return lower[offset - len(prefix) : offset + len(piece)]
        after = pieces[index + 1][1].lower() if index + 1 < len(pieces) else ""
        if after in _FUNCTION_SUFFIXES:
            return lower[offset : offset + len(piece) + 1]
    return None


def _word_tokens(word: str, position: int, fragment: str) -> list[Token]:
    lower = word.lower()
    if lower in _UNDEFINED_WORDS:  # SymPy's names of undefined values: never z*o*o, n*a*n
        raise parse_error(fragment, position, f"'{word}' ({_UNDEFINED_WORDS[lower]}) is not "
                          "a value jobtrail computes with")
    if lower in FUNCTIONS or lower in _FUNCTION_ALIASES:
        return [Token("func", _FUNCTION_ALIASES.get(lower, lower), position)]
    if word in CONSTANTS or lower in {"pi", "infinity", "inf"}:
        key = lower if lower in {"pi", "infinity", "inf"} else word
        return [Token("const", _CONSTANT_ALIASES.get(key, key), position)]
    if lower in VARIABLE_WORDS:
        end = position + len(word)
        if lower in _FUNCTION_VARIABLES and _paren_follows(fragment, end):
            raise parse_error(fragment, position, f"unknown function '{word}': write "
                              f"{lower}*(...) for a product with the variable {lower}")
        return [Token("var", lower, position)]
    if lower in _FUNCTION_WORDS:
        return [Token("func", _FUNCTION_WORDS[lower], position, "word operator")]
    if lower in _WORD_OPERATORS:
        pairs = _WORD_OPERATORS[lower]
        return [Token(kind, value, position, "word operator") for kind, value in pairs]
    if len(word) == 1:
        end = position + 1
        if lower in _FUNCTION_LETTERS and _paren_follows(fragment, end):
            # f(x) is function notation, never f*x
            raise parse_error(fragment, position, f"unknown function '{word}': write the "
                              "expression itself (there are no function definitions)")
        return [Token("var", word, position)]
    unknown = _unknown_function(lower)
    if unknown is not None:
        raise parse_error(fragment, position, f"unknown function '{word[:len(unknown)]}'")
    if lower not in _STOP_WORDS:
        return _split_tokens(word, position, fragment)
    raise parse_error(fragment, position, f"unknown word '{word}'")


def _split_tokens(word: str, position: int, fragment: str) -> list[Token]:
    """*word* split into function names, ``pi`` and letters (``_split_word``), as tokens."""
    pieces = _split_word(word)
    if pieces is None:
        raise parse_error(fragment, position, f"unknown word '{word}'")
    misread = _misread_function(word.lower(), pieces)
    if misread is not None:
        raise parse_error(fragment, position, f"unknown function '{misread}' (not read "
                          "as a product of letters)")
    out: list[Token] = []
    for offset, piece in pieces:
        for token in _word_tokens(piece, position + offset, fragment):
            out.append(Token(token.kind, token.value, token.position, "letters split"))
    return out


def tokenize(fragment: str) -> list[Token]:
    """Split *fragment* into allow-listed tokens.

    Args:
        fragment: Normalized maths text, e.g. ``"x^2 - 5x + 6"``.

    Returns:
        The tokens in order; whitespace is dropped.

    Raises:
        ProblemParseError: A character or word is not allowed
            ("could not parse near '...'").
        ProblemTooLargeError: A literal has more than ``MAX_LITERAL_DIGITS``
            digits ("number too large: ...").
    """
    tokens: list[Token] = []
    position = 0
    while position < len(fragment):
        match = _TOKEN.match(fragment, position)
        if match is None:
            raise parse_error(fragment, position)
        group = match.lastgroup
        value = match.group(0)
        if group == "num":
            digits = len(re.sub(r"[^0-9]", "", value))
            if digits > MAX_LITERAL_DIGITS:
                raise ProblemTooLargeError(
                    f"number too large: a literal has {digits} digits; "
                    f"the limit is {MAX_LITERAL_DIGITS}"
                )
            note = "scientific notation" if _SCIENTIFIC.search(value) else ""
            tokens.append(Token("num", value, position, note))
        elif group == "word":
            tokens.extend(_word_tokens(value, position, fragment))
        elif group == "op":
            if value == "**":
                tokens.append(Token("op", "^", position, "** as power"))
            else:
                tokens.append(Token("op", value, position))
        position = match.end()
    return tokens
