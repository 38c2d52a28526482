"""Problem text -> SymPy expressions, by a small recursive-descent parser (no eval).

Invariant: the text is tokenized against the allow-list of ``tokens.py``,
parsed into a tree of this module's own nodes, checked for size (constant
powers, towers, factorials, symbolic exponents) by logarithmic estimates,
and only then turned into SymPy objects by calling SymPy constructors
directly. Nothing is ever passed to ``sympify``, ``parse_expr`` or Python's
evaluator.

Grammar (``^`` is power, right-associative; juxtaposition multiplies)::

    sum     := product (("+" | "-") product)*            -> one flat "+" node
    product := signed (("*" | "/") signed | <implicit> power)*   -> one flat "*" node
    signed  := ("+" | "-")* power
    power   := postfix ("^" signed)?
    postfix := atom "!"*
    atom    := NUM | VAR | CONST | FUNC ["^" signed] (call | power) | "(" sum ")"
    call    := "(" sum ("," sum)* ")"
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.errors import ProblemTooLargeError, UnsupportedProblemError
from jobtrail.solver.tokens import Token, parse_error, tokenize

__all__ = ["MAX_DIGITS", "MAX_FACTORIAL", "MAX_SYMBOLIC_EXPONENT", "parse_expression"]

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
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "asinh": sympy.asinh,
    "acosh": sympy.acosh,
    "atanh": sympy.atanh,
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
}
_CONSTANTS: dict[str, sympy.Expr] = {
    "pi": sympy.pi,
    "E": sympy.E,
    "oo": sympy.oo,
    "I": sympy.I,
}
_IMPLICIT_STARTERS = frozenset({"var", "const", "func"})
_LOG10_E = math.log10(math.e)


class _Parser:
    def __init__(self, fragment: str, tokens: list[Token]) -> None:
        self.fragment = fragment
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "op" and token.value in ops

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise parse_error(self.fragment, len(self.fragment), "unexpected end of expression")
        self.index += 1
        return token

    def expect(self, op: str, opened_at: int) -> None:
        if not self.at_op(op):
            raise parse_error(self.fragment, opened_at, "unbalanced parentheses")
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
        while True:
            if self.at_op("*", "/"):
                op = self.take().value
                factor = self.signed()
                factors.append(factor if op == "*" else Op("recip", (factor,)))
                continue
            token = self.peek()
            if token is not None and (
                token.kind in _IMPLICIT_STARTERS or (token.kind == "op" and token.value == "(")
            ):
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
            base = Op("^", (base, self.signed()))
        self.depth -= 1
        return base

    def postfix(self) -> Node:
        node = self.atom()
        entered = self.depth
        while self.at_op("!"):
            self.index += 1
            self.enter()
            node = Op("!", (node,))
        self.depth = entered
        return node

    def atom(self) -> Node:
        token = self.take()
        if token.kind in {"num", "var", "const"}:
            return Leaf(token.kind, token.value)
        if token.kind == "func":
            return self.function(token)
        if token.value == "(":
            node = self.sum()
            self.expect(")", token.position)
            return node
        raise parse_error(self.fragment, token.position)

    def function(self, token: Token) -> Node:
        name = token.value
        exponent: Node | None = None
        if self.at_op("^"):
            self.index += 1
            exponent = self.signed()
            if exponent == Op("neg", (Leaf("num", "1"),)) and name in _INVERSES:
                name, exponent = _INVERSES[name], None
        if self.at_op("("):
            opened = self.take().position
            args = [self.sum()]
            while self.at_op(","):
                self.index += 1
                args.append(self.sum())
            self.expect(")", opened)
        else:
            args = [self.power()]
        arity = (1, 2) if name == "log" else (1,)
        if len(args) not in arity:
            raise parse_error(self.fragment, token.position, f"{name} takes one argument")
        call = Op(name, tuple(args))
        return call if exponent is None else Op("^", (call, exponent))


def _too_large(detail: str) -> ProblemTooLargeError:
    return ProblemTooLargeError(f"number too large: {detail}", what="number")


def _check_size(node: Node) -> float | None:
    """Return an upper bound on log10 of the height of *node* if it is constant, else None.

    The height of p/q is max(|p|, |q|); a result above ``MAX_DIGITS`` digits,
    a constant factorial above ``MAX_FACTORIAL`` or a non-constant base
    raised to more than ``MAX_SYMBOLIC_EXPONENT`` raises.
    """
    if isinstance(node, Leaf):
        if node.kind == "num":
            if "." in node.value:
                return float(len(node.value) - 1)
            return math.log10(int(node.value) + 1)
        return None if node.kind == "var" else 1.0
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


class _Builder:
    def __init__(self) -> None:
        self.symbols: dict[str, sympy.Symbol] = {}

    def leaf(self, node: Leaf) -> sympy.Expr:
        if node.kind == "num":
            if "." in node.value:
                return sympy.Rational(node.value)
            return sympy.Integer(node.value)
        if node.kind == "const":
            return _CONSTANTS[node.value]
        return self.symbols.setdefault(node.value, sympy.Symbol(node.value))

    def build(self, node: Node) -> sympy.Expr:
        if isinstance(node, Leaf):
            return self.leaf(node)
        args = [self.build(arg) for arg in node.args]
        name = node.name
        if name == "+":
            return sympy.Add(*args)
        if name == "neg":
            return sympy.Mul(-1, args[0])
        if name == "*":
            return sympy.Mul(*args)
        if name == "recip":
            return sympy.Pow(args[0], -1)
        if name == "^":
            return sympy.Pow(args[0], args[1])
        if name in {"!", "factorial"}:
            return sympy.factorial(args[0])
        if name == "sqrt":
            return sympy.sqrt(args[0])
        return _FUNCTIONS[name](*args)


def parse_expression(fragment: str) -> sympy.Expr:
    """Parse one maths expression, e.g. ``"x^2 - 5x + 6"`` or ``"2^10 / 4"``.

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
    tree = _Parser(fragment, tokenize(fragment)).parse()
    _check_size(tree)
    expr = _Builder().build(tree)
    if expr.has(sympy.zoo) or expr.has(sympy.nan):
        raise UnsupportedProblemError(
            f"'{fragment}' is undefined (division by zero)", kind="arithmetic"
        )
    return expr
