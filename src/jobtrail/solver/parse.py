"""Problem text -> SymPy expressions, by a small recursive-descent parser (no eval).

Invariant: the text is tokenized against the allow-list of ``tokens.py``,
parsed into a tree of this module's own nodes, checked for size (constant
powers, towers, factorials, symbolic exponents) by logarithmic estimates,
and only then turned into SymPy objects by calling SymPy constructors
directly. Nothing is ever passed to ``sympify``, ``parse_expr`` or Python's
evaluator. Every reading that is not literally the text carries notes, and
inside ``collect_readings`` becomes one ``"read as <explicit text>"`` step
(docs/problems.md lists the conventions).

Grammar (``^`` is power, right-associative; juxtaposition multiplies)::

    sum      := product (("+" | "-") product)*            -> one flat "+" node
    product  := signed (("*" | "/") signed | <implicit> power)*   -> one flat "*" node
    signed   := ("+" | "-")* power
    power    := postfix ("^" signed)?
    postfix  := atom ("!" | "deg")*
    atom     := NUM | VAR | CONST | FUNC [base] ["^" signed] (call | argument)
              | "(" sum ")" | "|" sum "|"
    base     := "_" postfix | NUM      (log only: log_2 8, log10(x))
    call     := "(" sum ("," sum)* ")"
    argument := ("+" | "-")* (FUNC ... | power (VAR | CONST-but-e | "(" after a number)*
                ["/" NUM, unspaced])       (sin 2x is sin(2*x); see _Parser.argument)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from fractions import Fraction

import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import ProblemTooLargeError, UnsupportedProblemError
from jobtrail.solver.domain import Condition, conditions_of
from jobtrail.solver.tokens import Token, parse_error, tokenize

__all__ = [
    "MAX_DIGITS",
    "MAX_FACTORIAL",
    "MAX_SYMBOLIC_EXPONENT",
    "Reading",
    "Readings",
    "collect_readings",
    "conditions_read",
    "divisors_read",
    "note_reading",
    "parse_expression",
    "read_expression",
]

MAX_DIGITS = min(10_000, sys.get_int_max_str_digits() or 10_000)
"""Largest number of digits a constant subexpression may reach.

Capped by CPython's int-to-string limit (4300 digits by default, see
``sys.set_int_max_str_digits``), since a larger answer could not be printed.
"""

MAX_FACTORIAL = 1500
"""Largest argument of a constant factorial (1500! has 4115 digits)."""

MAX_SYMBOLIC_EXPONENT = 1000
"""Largest absolute constant exponent of a non-constant base (``x^1000``)."""

MAX_DEPTH = 60
"""Deepest nesting of parentheses, powers and calls accepted."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """A number literal, constant or variable; ``kind`` as in ``Token``."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Op:
    """An operator node with its operands.

    ``+`` and ``*`` take any number of operands (flattened, so long sums do
    not nest); ``neg`` (negation), ``recip`` (reciprocal), ``!`` take one;
    ``^`` takes base and exponent; function names take their arguments.
    """

    name: str
    args: tuple[Node, ...]


Node = Leaf | Op

_FUNCTIONS: dict[str, sympy.FunctionClass] = {
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "cot": sympy.cot,
    "sec": sympy.sec,
    "csc": sympy.csc,
    "asin": sympy.asin,
    "acos": sympy.acos,
    "atan": sympy.atan,
    "acot": sympy.acot,
    "asec": sympy.asec,
    "acsc": sympy.acsc,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "coth": sympy.coth,
    "sech": sympy.sech,
    "csch": sympy.csch,
    "asinh": sympy.asinh,
    "acosh": sympy.acosh,
    "atanh": sympy.atanh,
    "acoth": sympy.acoth,
    "asech": sympy.asech,
    "acsch": sympy.acsch,
    "exp": sympy.exp,
    "log": sympy.log,
    "abs": sympy.Abs,
    "factorial": sympy.factorial,
}
_INVERSES = {
    "sin": "asin",
    "cos": "acos",
    "tan": "atan",
    "sinh": "asinh",
    "cosh": "acosh",
    "tanh": "atanh",
    "cot": "acot",
    "sec": "asec",
    "csc": "acsc",
    "coth": "acoth",
    "sech": "asech",
    "csch": "acsch",
}
_CONSTANTS: dict[str, sympy.Expr] = {
    "pi": sympy.pi,
    "E": sympy.E,
    "oo": sympy.oo,
    "I": sympy.I,
}
_IMPLICIT_STARTERS = frozenset({"var", "const", "func"})
_LOG10_E = math.log10(math.e)

_ARGUMENT_ENDS = frozenset({"+", "-", ")", ",", "|", "*", "/"})
# Precedence of a rendered node, loosest first (see ``_render``).
_SUM, _PRODUCT, _POWER, _POSTFIX, _ATOM = range(1, 6)


class _Parser:
    def __init__(self, fragment: str, tokens: list[Token]) -> None:
        self.fragment = fragment
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.abs_depth = 0
        self.notes: set[str] = {token.note for token in tokens if token.note}
        self.decimal = any(
            token.kind == "num" and not token.value.isdigit() for token in tokens
        )
        for before, after, then in zip(tokens, tokens[1:], [*tokens[2:], None], strict=False):
            if (
                before.kind == "num"
                and after.kind == "const"
                and after.value == "E"
                and not (then is not None and then.kind == "op" and then.value == "^")
            ):
                self.notes.add("number next to e")  # 2e and 2 e-3 hold Euler's e: say so

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.index + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "op" and token.value in ops

    def at_implicit(self) -> bool:
        token = self.peek()
        if token is None:
            return False
        if token.kind in _IMPLICIT_STARTERS:
            return True
        return token.kind == "op" and (
            token.value == "(" or (token.value == "|" and self.abs_depth == 0)
        )

    def spaced_before(self, token: Token) -> bool:
        return token.position > 0 and self.fragment[token.position - 1].isspace()

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise parse_error(self.fragment, len(self.fragment), "unexpected end of expression")
        self.index += 1
        return token

    def expect(self, op: str, opened_at: int) -> None:
        if not self.at_op(op):
            reason = "unbalanced parentheses" if op == ")" else "unbalanced '|'"
            raise parse_error(self.fragment, opened_at, reason)
        self.index += 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ProblemTooLargeError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)", what="nesting"
            )

    def parse(self) -> Node:
        if not self.tokens:
            raise parse_error(self.fragment, 0, "empty expression")
        node = self.sum()
        token = self.peek()
        if token is not None:
            reason = "unbalanced parentheses" if token.value == ")" else ""
            after = self.peek(1)
            if token.value == "," and after is not None and after.kind == "num":
                reason = "write a decimal with a point (1.5) and a number without separators"
            raise parse_error(self.fragment, token.position, reason)
        return node

    def sum(self) -> Node:
        terms = [self.product()]
        while self.at_op("+", "-"):
            op = self.take().value
            term = self.product()
            terms.append(term if op == "+" else Op("neg", (term,)))
        return terms[0] if len(terms) == 1 else Op("+", tuple(terms))

    def product(self) -> Node:
        factors = [self.signed()]
        after_division = False
        while True:
            if self.at_op("*", "/"):
                self.note_power_before_division(factors[-1])
                op = self.take().value
                factor = self.signed()
                factors.append(factor if op == "*" else Op("recip", (factor,)))
                after_division = op == "/"
                continue
            if self.at_implicit():
                if after_division:
                    # 1/2x is (1/2)*x, as in SymPy and Python; say so.
                    self.notes.add("implicit multiplication after a division")
                factors.append(self.power())
                continue
            return factors[0] if len(factors) == 1 else Op("*", tuple(factors))

    def signed(self) -> Node:
        negate = False
        while self.at_op("+", "-"):
            negate ^= self.take().value == "-"
        node = self.power()
        return Op("neg", (node,)) if negate else node

    def power(self) -> Node:
        self.enter()
        base = self.postfix()
        if self.at_op("^"):
            self.index += 1
            grouped = self.at_op("(")
            exponent = self.signed()
            if not grouped:
                self.note_exponent(exponent)
            base = Op("^", (base, exponent))
        self.depth -= 1
        return base

    def note_power_before_division(self, factor: Node) -> None:
        """Note ``x^1/2``: (x^1)/2 by convention, though often meant as x^(1/2).

        Only an integer exponent over an integer divisor that does not
        divide it, both written without spaces (``x^1/2``, ``x^2/3``,
        ``x^-1/2``); not ``x^2/2``, ``x^2 / 3``, ``e^x/2`` or ``x^2/y``.
        """
        slash, divisor = self.peek(), self.peek(1)
        if isinstance(factor, Op) and factor.name == "neg":
            factor = factor.args[0]
        if (
            slash is None
            or divisor is None
            or slash.value != "/"
            or divisor.kind != "num"
            or not divisor.value.isdigit()
            or self.spaced_before(slash)
            or self.spaced_before(divisor)
            or not (isinstance(factor, Op) and factor.name == "^")
        ):
            return
        exponent = factor.args[1]
        if isinstance(exponent, Op) and exponent.name == "neg":
            exponent = exponent.args[0]  # x^-1/2: (x^(-1))/2, though often meant as x^(-1/2)
        if not (isinstance(exponent, Leaf) and exponent.kind == "num" and exponent.value.isdigit()):
            return
        if self.fragment[slash.position - 1].isdigit() and int(divisor.value) != 0:
            if int(exponent.value) % int(divisor.value):
                self.notes.add("power before a division")

    def note_exponent(self, exponent: Node) -> None:
        """Note an exponent written without parentheses that a reader might group otherwise."""
        negated = isinstance(exponent, Op) and exponent.name == "neg"
        inner = exponent.args[0] if isinstance(exponent, Op) and negated else exponent
        if isinstance(inner, Op) and inner.name == "^":
            self.notes.add("power tower read from the right")  # 2^3^2 = 2^(3^2)
        following = self.peek()
        if following is not None and self.at_implicit() and not self.spaced_before(following):
            self.notes.add("power before implicit multiplication")  # e^2x = e^2*x

    def postfix(self) -> Node:
        node = self.atom()
        entered = self.depth
        factorials = 0
        while self.at_op("!", "deg"):
            op = self.take().value
            self.enter()
            if op == "!":
                factorials += 1
                node = Op("!", (node,))
            else:
                self.notes.add("degrees")
                node = Op("deg", (node,))
        if factorials > 1:
            self.notes.add("repeated factorial")  # 3!! is (3!)!, not a double factorial
        self.depth = entered
        return node

    def atom(self) -> Node:
        token = self.take()
        if token.kind in {"num", "var", "const"}:
            return Leaf(token.kind, token.value)
        if token.kind == "func":
            return self.function(token)
        if token.value == "(":
            outer_abs, self.abs_depth = self.abs_depth, 0
            node = self.sum()
            self.expect(")", token.position)
            self.abs_depth = outer_abs
            return node
        if token.value == "|":
            self.abs_depth += 1
            node = self.sum()
            self.expect("|", token.position)
            self.abs_depth -= 1
            return Op("abs", (node,))
        raise parse_error(self.fragment, token.position)

    def log_base(self, token: Token) -> Node | None:
        """Read ``log_b``, ``log_(b)`` or ``log10(x)``/``log2 x`` (digits right after ``log``)."""
        if self.at_op("_"):
            self.index += 1
            return self.postfix()
        digits = self.peek()
        following = self.peek(1)
        if (
            digits is None
            or following is None
            or digits.kind != "num"
            or not digits.value.isdigit()
            or digits.position != token.position + 3
            or self.fragment[token.position : token.position + 3].lower() != "log"
        ):
            return None
        is_call = following.kind == "op" and following.value == "("
        if is_call or (following.kind != "op" and self.spaced_before(following)):
            self.index += 1
            return Leaf("num", digits.value)
        return None

    def function(self, token: Token) -> Node:
        name = token.value
        base = self.log_base(token) if name == "log" else None
        exponent: Node | None = None
        if self.at_op("^"):
            self.index += 1
            exponent = self.signed()
            if exponent == Op("neg", (Leaf("num", "1"),)) and name in _INVERSES:
                name, exponent = _INVERSES[name], None
        if self.at_op("("):
            opened = self.take().position
            outer_abs, self.abs_depth = self.abs_depth, 0
            args = [self.sum()]
            while self.at_op(","):
                self.index += 1
                args.append(self.sum())
            self.expect(")", opened)
            self.abs_depth = outer_abs
        else:
            self.notes.add("function without parentheses")
            args = [self.argument()]
        arity = (1, 2) if name == "log" and base is None else (1,)
        if len(args) not in arity:
            raise parse_error(self.fragment, token.position, f"{name} takes one argument")
        if base is not None:
            args.append(base)
        if name == "log":
            if len(args) == 2:
                self.notes.add("logarithm base")
            elif self.fragment[token.position : token.position + 2].lower() != "ln":
                self.notes.add("log is the natural logarithm")
        call = Op(name, tuple(args))
        return call if exponent is None else Op("^", (call, exponent))

    def argument(self) -> Node:
        """The argument of a function written without parentheses: the term that follows.

        ``sin 2x`` is sin(2*x), ``sin x^2`` is sin(x^2), ``sin pi/6`` is
        sin(pi/6) (a division by a number written without spaces stays
        inside), ``sin 2(x + 1)`` is sin(2*(x + 1)); the term ends at ``+``,
        ``-``, ``*``, a spaced ``/`` or one by anything but a number (``sin
        x/x`` is sin(x)/x, ``log x / x`` is log(x)/x), another function
        (``sin x cos x``) and Euler's e (``sin x e^x``). ``sin cos x`` is
        sin(cos(x)).
        """
        self.enter()
        negate = False
        while self.at_op("+", "-"):
            negate ^= self.take().value == "-"
        first = self.peek()
        if first is not None and first.kind == "func":
            node = self.power()
        else:
            factors = [self.power()]
            only_numbers = isinstance(factors[0], Leaf) and factors[0].kind == "num"
            while True:
                token = self.peek()
                if token is None:
                    break
                if token.kind == "var" or (token.kind == "const" and token.value != "E"):
                    factors.append(self.power())
                    only_numbers = False
                elif token.kind == "op" and token.value == "(" and only_numbers:
                    factors.append(self.power())
                    only_numbers = False
                elif self.at_unspaced_division():
                    self.index += 1
                    factors.append(Op("recip", (Leaf("num", self.take().value),)))
                    break
                else:
                    break
            node = factors[0] if len(factors) == 1 else Op("*", tuple(factors))
        self.depth -= 1
        return Op("neg", (node,)) if negate else node

    def at_unspaced_division(self) -> bool:
        slash, number, after = self.peek(), self.peek(1), self.peek(2)
        if slash is None or number is None or not self.at_op("/") or number.kind != "num":
            return False
        if self.spaced_before(slash) or self.spaced_before(number):
            return False
        # "sin x/2^x" or "sin x/2y": the divisor is more than a number; leave it outside.
        return after is None or (after.kind == "op" and after.value in _ARGUMENT_ENDS)


def _wrap(node: Node, least: int) -> str:
    text, precedence = _render(node)
    return f"({text})" if precedence < least else text


def _number_text(value: str) -> tuple[str, int]:
    mantissa, _, exponent = value.lower().partition("e")
    if not exponent:
        return value, _ATOM
    exponent = exponent.lstrip("+")
    shown = f"({exponent})" if exponent.startswith("-") else exponent
    return f"{mantissa}*10^{shown}", _PRODUCT


def _negated(node: Node) -> str:
    shown = _wrap(node, _PRODUCT)
    return f"({shown})" if isinstance(node, Op) and node.name == "neg" else shown


def _render_product(args: tuple[Node, ...]) -> str:
    first = args[0]
    text = _wrap(first, _PRODUCT)
    pending_division = isinstance(first, Op) and any(
        isinstance(arg, Op) and arg.name == "recip" for arg in first.args
    )
    previous = first
    for arg in args[1:]:
        if isinstance(arg, Op) and arg.name == "recip":
            if previous is first and isinstance(first, Op) and first.name == "^":
                text = f"({text})"  # x^1/2 is shown as (x^1)/2
            text = f"{text}/{_wrap(arg.args[0], _POWER)}"
            pending_division = True
            previous = arg
            continue
        previous = arg
        if pending_division:
            text, pending_division = f"({text})", False
        text = f"{text}*{_wrap(arg, _POWER)}"
    return text


def _render(node: Node) -> tuple[str, int]:
    """Render *node* as explicit plain text: every product, power and call written out."""
    if isinstance(node, Leaf):
        if node.kind == "num":
            return _number_text(node.value)
        return ("e" if node.value == "E" else node.value), _ATOM
    name, args = node.name, node.args
    if name == "+":
        text = _wrap(args[0], _SUM)
        for arg in args[1:]:
            if isinstance(arg, Op) and arg.name == "neg":
                text = f"{text} - {_negated(arg.args[0])}"
            else:
                text = f"{text} + {_wrap(arg, _PRODUCT)}"
        return text, _SUM
    if name == "neg":
        return f"-{_negated(args[0])}", _PRODUCT
    if name == "*":
        return _render_product(args), _PRODUCT
    if name == "recip":
        return f"1/{_wrap(args[0], _POWER)}", _PRODUCT
    if name == "^":
        return f"{_wrap(args[0], _POSTFIX)}^{_wrap(args[1], _ATOM)}", _POWER
    if name == "!":
        return f"{_wrap(args[0], _ATOM)}!", _POSTFIX
    if name == "deg":
        return f"{_wrap(args[0], _POWER)}*pi/180", _PRODUCT
    return _render_call(name, args), _ATOM


def _render_call(name: str, args: tuple[Node, ...]) -> str:
    inside = ", ".join(_render(arg)[0] for arg in args)
    if name == "log" and len(args) == 2:
        return f"log_{_wrap(args[1], _ATOM)}({_render(args[0])[0]})"
    return f"{'ln' if name == 'log' else name}({inside})"


def _too_large(detail: str) -> ProblemTooLargeError:
    return ProblemTooLargeError(f"number too large: {detail}", what="number")


def _leaf_size(node: Leaf) -> float | None:
    if node.kind != "num":
        return None if node.kind == "var" else 1.0
    mantissa, _, power_of_ten = node.value.lower().partition("e")
    shift = abs(int(power_of_ten)) if power_of_ten else 0
    if shift > MAX_DIGITS:
        raise _too_large(f"a value would have more than {MAX_DIGITS} digits")
    if "." in mantissa:
        return float(len(mantissa) - 1 + shift)
    return math.log10(int(mantissa) + 1) + shift


def _literal_exponent_size(exponent: Node, height: float) -> float:
    """log10 of the numerator of a literal exponent (2^0.0015 is small), else *height*."""
    if isinstance(exponent, Op) and exponent.name == "neg":
        exponent = exponent.args[0]
    if not (isinstance(exponent, Leaf) and exponent.kind == "num"):
        return height
    mantissa, _, power_of_ten = exponent.value.lower().partition("e")
    value = Fraction(mantissa) * Fraction(10) ** int(power_of_ten or 0)
    return math.log10(abs(value.numerator) + 1)


def _check_size(node: Node) -> float | None:
    """Return an upper bound on log10 of the height of *node* if it is constant, else None.

    The height of p/q is max(|p|, |q|); a result above ``MAX_DIGITS`` digits,
    a constant factorial above ``MAX_FACTORIAL`` or a non-constant base
    raised to more than ``MAX_SYMBOLIC_EXPONENT`` raises.
    """
    if isinstance(node, Leaf):
        return _leaf_size(node)
    sizes = [_check_size(arg) for arg in node.args]
    if any(size is None for size in sizes):
        if (
            node.name == "^"
            and sizes[1] is not None
            and sizes[1] > math.log10(MAX_SYMBOLIC_EXPONENT + 1)
        ):
            raise _too_large(f"the exponent is above {MAX_SYMBOLIC_EXPONENT}")
        return None
    known = [size for size in sizes if size is not None]
    if node.name == "+":
        result = sum(known) + math.log10(len(known))
    elif node.name == "*":
        result = sum(known)
    elif node.name in {"^", "exp", "sinh", "cosh"}:
        base, exponent = (known[0], known[1]) if node.name == "^" else (_LOG10_E, known[0])
        if node.name == "^":
            exponent = _literal_exponent_size(node.args[1], exponent)
        if exponent > math.log10(MAX_DIGITS) + 1:
            raise _too_large(f"a power would have more than {MAX_DIGITS} digits")
        result = base * 10**exponent
    elif node.name in {"!", "factorial"}:
        if known[0] > math.log10(MAX_FACTORIAL + 1):
            raise _too_large(f"factorial of a number above {MAX_FACTORIAL}")
        argument = 10 ** known[0]
        result = argument * math.log10(max(argument, 2.0))
    else:
        result = max(known)
    if result > MAX_DIGITS:
        raise _too_large(f"a value would have more than {MAX_DIGITS} digits")
    return result


def _undefined_reason(node: Op, args: list[sympy.Expr]) -> str:
    """Why *node* over *args* is undefined, in words for the refusal."""
    if node.name == "recip" or (node.name == "^" and args[0] == 0):
        return "division by zero" if args[0] == 0 else "an undefined value"
    if node.name in _FUNCTIONS and not any(a.has(*_INFINITIES, sympy.nan) for a in args):
        return f"{node.name} has a pole there"
    return "an undefined value"


class UndefinedValue(Exception):
    """A part of an expression is undefined (SymPy's zoo or nan, or an infinity made of
    finite parts): _Builder.build."""


#: SymPy's infinities: an infinity the text does not write itself is a pole (_Builder.build).
_INFINITIES = (sympy.oo, -sympy.oo, sympy.zoo)


class _Builder:
    def __init__(self) -> None:
        self.symbols: dict[str, sympy.Symbol] = {}
        self.divisors: list[sympy.Expr] = []
        self.conditions: list[Condition] = []

    def leaf(self, node: Leaf) -> sympy.Expr:
        if node.kind == "num":
            mantissa, _, exponent = node.value.lower().partition("e")
            number = sympy.Rational(mantissa) if "." in mantissa else sympy.Integer(mantissa)
            if exponent:
                number = number * sympy.Rational(10) ** int(exponent)
            return number
        if node.kind == "const":
            return _CONSTANTS[node.value]
        return self.symbols.setdefault(node.value, sympy.Symbol(node.value))

    def build(self, node: Node) -> sympy.Expr:
        """The SymPy value of *node*; UndefinedValue when any part of it is undefined.

        Each part is checked as it is built, not only the whole: SymPy absorbs an
        undefined part (1/(1/0) is 1/zoo = 0, 2/0^-1 + 3 is 3), which read the text
        as a number. A part that is infinite though its own parts are finite is a
        function at its pole, undefined too: SymPy gives atanh(1), acoth(1) and
        asech(0) as oo (not zoo), and 1/atanh(1) as 0. An infinity the text writes
        (oo, infinity) is read as such: 1/oo is 0, 2^oo is oo."""
        if isinstance(node, Leaf):
            return self.leaf(node)
        args = [self.build(arg) for arg in node.args]
        value = self._apply(node, args)
        if value.has(sympy.zoo, sympy.nan) or (
                value.has(*_INFINITIES) and not any(arg.has(*_INFINITIES) for arg in args)):
            raise UndefinedValue(_undefined_reason(node, args))
        return value

    def _apply(self, node: Op, args: list[sympy.Expr]) -> sympy.Expr:
        self._condition(node.name, args)
        name = node.name
        if name == "+":
            return sympy.Add(*args)
        if name == "neg":
            return sympy.Mul(-1, args[0])
        if name == "*":
            return sympy.Mul(*args)
        if name == "recip":
            self._divides_by(args[0])
            return sympy.Pow(args[0], -1)
        if name == "^":
            if args[1].is_number and args[1].is_negative:
                self._divides_by(args[0])
            return sympy.Pow(args[0], args[1])
        if name in {"!", "factorial"}:
            return sympy.factorial(args[0])
        if name == "sqrt":
            return sympy.sqrt(args[0])
        if name == "deg":
            return sympy.Mul(args[0], sympy.pi, sympy.Rational(1, 180))
        return _FUNCTIONS[name](*args)

    def _condition(self, name: str, args: list[sympy.Expr]) -> None:
        """Record where the part *name* of *args* is defined and real (domain.py), as
        written: the enclosing expression may cancel it once built."""
        if name == "recip":
            func, args = sympy.Pow, [args[0], sympy.Integer(-1)]
        elif name == "sqrt":
            func, args = sympy.Pow, [args[0], sympy.Rational(1, 2)]
        elif name == "^":
            func = sympy.Pow
        elif name in {"!", "factorial"}:
            func = sympy.factorial
        else:
            func = _FUNCTIONS.get(name)
        if func is not None:
            found = conditions_of(func, args)
            self.conditions.extend(c for c in found if c not in self.conditions)

    def _divides_by(self, divisor: sympy.Expr) -> None:
        if divisor.free_symbols and divisor not in self.divisors:
            self.divisors.append(divisor)


@dataclass(frozen=True, slots=True)
class Reading:
    """One expression as the parser read it.

    Attributes:
        expr: The SymPy expression.
        text: The reading written out explicitly, e.g. ``"sin(2*x)"`` for
            ``"sin 2x"``: every product is ``*``, every call has parentheses,
            ``ln`` is the natural logarithm, ``log_b(x)`` the base-b one, a
            number in scientific notation is ``1.5*10^(-3)``.
        notes: Why the reading may differ from what the text seems to say
            (``"function without parentheses"``, ``"scientific notation"``,
            ...); empty when the text says exactly what was read.
        decimal: The text holds a decimal or scientific literal.
        divisors: Every expression with a variable the text divides by (or raises to
            a negative power), as written: ``x^2/x`` is ``x`` once SymPy has
            cancelled, and divides by ``x``.
        conditions: Where every part of the text is defined and real, as written
            (``domain.Condition``): ``sqrt(x + 20) - sqrt(x + 20)`` is 0 once built,
            and needs ``x + 20 >= 0``; divisions give ``!= 0`` conditions.
    """

    expr: sympy.Expr
    text: str
    notes: frozenset[str]
    decimal: bool
    divisors: tuple[sympy.Expr, ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(slots=True)
class Readings:
    """The "read as" steps of one solve, collected by ``collect_readings``.

    Attributes:
        rewritten: The problem had characters ``normalize()`` rewrote
            (``× ÷ − √ ² π`` ...), so every reading that differs from its
            normalized text is shown.
        steps: ``"read as <expression>"`` lines, in order, without repeats.
        divisors: The ``Reading.divisors`` of every expression parsed.
        decimal: Some expression held a decimal or scientific literal.
        conditions: The ``Reading.conditions`` of every expression parsed.
    """

    rewritten: bool = False
    steps: list[str] = field(default_factory=list)
    divisors: list[sympy.Expr] = field(default_factory=list)
    decimal: bool = False
    conditions: list[Condition] = field(default_factory=list)


_READINGS: ContextVar[Readings | None] = ContextVar("jobtrail_solver_readings", default=None)


@contextmanager
def collect_readings(rewritten: bool = False) -> Iterator[Readings]:
    """Collect the "read as" steps of every ``parse_expression`` call made inside the block.

    Args:
        rewritten: The problem text had characters that normalization rewrote.

    Yields:
        The ``Readings`` being filled.
    """
    readings = Readings(rewritten)
    token = _READINGS.set(readings)
    try:
        yield readings
    finally:
        _READINGS.reset(token)


def note_reading(literal: str, reading: str, notes: frozenset[str], decimal: bool,
                 divisors: tuple[sympy.Expr, ...] = (),
                 conditions: tuple[Condition, ...] = ()) -> None:
    """Record that *literal* was read as *reading*, if a ``collect_readings`` block is open.

    A ``"read as <reading>"`` step is added when *notes* is not empty, or the
    problem had rewritten characters and *reading* differs from *literal*
    (spaces aside).

    Args:
        literal: The normalized text that was parsed, e.g. ``"x = 1.5e-3"``.
        reading: Its explicit reading, e.g. ``"x = 1.5*10^(-3)"``.
        notes: The notes of the ``Reading`` (or the union, for several).
        decimal: The text held a decimal or scientific literal.
        divisors: Its ``Reading.divisors`` (of both sides, for an equation).
        conditions: Its ``Reading.conditions`` (of both sides, for an equation).
    """
    readings = _READINGS.get()
    if readings is None:
        return
    readings.divisors.extend(d for d in divisors if d not in readings.divisors)
    readings.conditions.extend(c for c in conditions if c not in readings.conditions)
    readings.decimal = readings.decimal or decimal
    changed = readings.rewritten and literal.replace(" ", "") != reading.replace(" ", "")
    step = f"read as {reading}"
    if (notes or changed) and step not in readings.steps:
        readings.steps.append(step)


def read_expression(fragment: str) -> Reading:
    """Parse one maths expression and say how it was read; records nothing.

    Args:
        fragment: Normalized text of a single expression.

    Returns:
        The ``Reading``: expression, explicit text and notes.

    Raises:
        ProblemParseError, ProblemTooLargeError, UnsupportedProblemError: As
            ``parse_expression``.
    """
    parser = _Parser(fragment, tokenize(fragment))
    tree = parser.parse()
    _check_size(tree)
    builder = _Builder()
    try:
        expr = builder.build(tree)
    except UndefinedValue as exc:
        raise UnsupportedProblemError(
            f"'{fragment}' is undefined ({exc})", kind="arithmetic"
        ) from None
    return Reading(expr, _render(tree)[0], frozenset(parser.notes), parser.decimal,
                   tuple(builder.divisors), tuple(builder.conditions))


def parse_expression(fragment: str) -> sympy.Expr:
    """Parse one maths expression, e.g. ``"x^2 - 5x + 6"`` or ``"2^10 / 4"``.

    Inside a ``collect_readings`` block, a reading that is not literally
    the text (see ``note_reading``) adds a ``"read as ..."`` step.

    Args:
        fragment: Normalized text of a single expression (no ``=`` or top
            level commas).

    Returns:
        The SymPy expression, evaluated by SymPy's automatic simplification
        (``2^10/4`` is ``256``); variables are plain complex ``Symbol``s.

    Raises:
        ProblemParseError: A token is not allowed, parentheses are
            unbalanced, or the expression is incomplete.
        ProblemTooLargeError: A literal, a constant power or tower, a
            factorial or a symbolic exponent is beyond the limits above, or
            the nesting is deeper than ``MAX_DEPTH``.
        UnsupportedProblemError: The expression is undefined, e.g. ``1/0``
            ("division by zero").
    """
    reading = read_expression(fragment)
    note_reading(fragment, reading.text, reading.notes, reading.decimal, reading.divisors,
                 reading.conditions)
    return reading.expr


def divisors_read() -> tuple[sympy.Expr, ...]:
    """The divisors (``Reading.divisors``) of every expression parsed so far in the open
    ``collect_readings`` block; () outside one."""
    readings = _READINGS.get()
    return () if readings is None else tuple(readings.divisors)


def conditions_read() -> tuple[Condition, ...]:
    """The conditions (``Reading.conditions``) of every expression parsed so far in the
    open ``collect_readings`` block; () outside one."""
    readings = _READINGS.get()
    return () if readings is None else tuple(readings.conditions)
