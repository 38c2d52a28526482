"""Judge a solver's answer text against a corpus reference, with mpmath only (no SymPy).

Used by bench/bench_solver.py (the verdicts), bench/make_solver_corpus.py (it
evaluates the reference expressions with the same reader) and
tests/solver/test_solver_corpus.py (which tests this checker).

The answer text is SymPy ``str`` syntax (jobtrail's ``Answer.text``, see
src/jobtrail/solver/render.py): ``"x = 2, x = 3"``, ``"2*cos(2*x)"``,
``"(x - 1)*exp(x) + C"``, ``"x = 2*pi*n, x = 2*pi*n + pi (n an integer)"``,
``"x = 2, y = 1 or x = -2, y = -1"``, ``"(2, 3)"``. It is read with Python's
``ast`` module against an allow-list of names and evaluated with mpmath at
``DPS`` digits, never with ``eval`` or SymPy, so the verdict does not rest on
the code path that produced the answer.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from typing import Any

import mpmath

DPS = 50
"""Working precision of every evaluation, in decimal digits."""

REL_TOL = 1e-8
ABS_TOL = 1e-10
FAMILY_RANGE = 80
"""A periodic family ``f(n)`` is expanded for n in [-FAMILY_RANGE, FAMILY_RANGE]."""

Value = Any  # mpf, mpc, bool or tuple of them


class Unreadable(Exception):
    """The answer text is outside what the checker can read (counted as unjudged)."""


def _log(z: Value, base: Value | None = None) -> Value:
    return mpmath.log(z) if base is None else mpmath.log(z) / mpmath.log(base)


def _sign(z: Value) -> Value:
    return mpmath.sign(z)


def _heaviside(z: Value, h0: Value = 0.5) -> Value:
    z = _real(z)
    return mpmath.mpf(1) if z > 0 else (mpmath.mpf(0) if z < 0 else h0)


def _real(z: Value) -> Value:
    if isinstance(z, mpmath.mpc):
        if abs(z.imag) > mpmath.mpf(10) ** (-DPS // 2) * max(1, abs(z.real)):
            raise Unreadable(f"comparison of a complex value {z}")
        return z.real
    return z


def _root(z: Value, n: Value, k: Value = 0) -> Value:
    return mpmath.root(z, int(n), int(k))


def _real_root(z: Value, n: Value) -> Value:
    z = _real(z)
    n = int(n)
    return mpmath.sign(z) * mpmath.root(abs(z), n) if n % 2 else mpmath.root(z, n)


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "cot": mpmath.cot,
    "sec": mpmath.sec, "csc": mpmath.csc, "asin": mpmath.asin, "acos": mpmath.acos,
    "atan": mpmath.atan, "acot": mpmath.acot, "asec": mpmath.asec, "acsc": mpmath.acsc,
    "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh, "coth": mpmath.coth,
    "sech": mpmath.sech, "csch": mpmath.csch, "asinh": mpmath.asinh, "acosh": mpmath.acosh,
    "atanh": mpmath.atanh, "acoth": mpmath.acoth, "exp": mpmath.exp, "log": _log,
    "ln": _log, "sqrt": mpmath.sqrt, "cbrt": mpmath.cbrt, "Abs": abs, "abs": abs,
    "sign": _sign, "re": mpmath.re, "im": mpmath.im, "conjugate": mpmath.conj,
    "arg": mpmath.arg, "floor": mpmath.floor, "ceiling": mpmath.ceil, "erf": mpmath.erf,
    "erfc": mpmath.erfc, "erfi": mpmath.erfi, "gamma": mpmath.gamma,
    "factorial": mpmath.factorial, "Si": mpmath.si, "Ci": mpmath.ci, "Shi": mpmath.shi,
    "Chi": mpmath.chi, "Ei": mpmath.ei, "li": mpmath.li, "LambertW": mpmath.lambertw,
    "atan2": mpmath.atan2, "Heaviside": _heaviside, "Min": min, "Max": max,
    "polylog": mpmath.polylog, "zeta": mpmath.zeta, "fresnels": mpmath.fresnels,
    "fresnelc": mpmath.fresnelc, "root": _root, "real_root": _real_root,
    "uppergamma": lambda a, z: mpmath.gammainc(a, z, mpmath.inf),
    "lowergamma": lambda a, z: mpmath.gammainc(a, 0, z), "expint": mpmath.expint,
    "binomial": mpmath.binomial, "digamma": mpmath.digamma, "polygamma": mpmath.polygamma,
    "besselj": mpmath.besselj, "bessely": mpmath.bessely, "hyper": None,
}  # fmt: skip
FUNCTIONS = {name: f for name, f in FUNCTIONS.items() if f is not None}


def _constants() -> dict[str, Value]:
    return {"pi": mpmath.pi, "E": mpmath.e, "e": mpmath.e, "I": mpmath.mpc(0, 1),
            "oo": mpmath.inf, "EulerGamma": mpmath.euler, "Catalan": mpmath.catalan,
            "GoldenRatio": mpmath.phi, "True": True, "False": False}


_COMPARE: dict[type, Callable[[Value, Value], bool]] = {
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
}  # fmt: skip
_BINARY: dict[type, Callable[[Value, Value], Value]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: _power(a, b), ast.BitAnd: lambda a, b: bool(a) and bool(b),
    ast.BitOr: lambda a, b: bool(a) or bool(b),
}  # fmt: skip


def _power(base: Value, exponent: Value) -> Value:
    if base == 0 and _real(exponent) < 0:
        raise ZeroDivisionError("0 to a negative power")
    return mpmath.power(base, exponent)


class _Evaluator:
    def __init__(self, names: dict[str, Value], source: str = "") -> None:
        self.names = {**_constants(), **names}
        self.source = source  # number literals are read from it digit for digit

    def __call__(self, node: ast.AST) -> Value:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise Unreadable(f"unsupported syntax {type(node).__name__}")
        return method(node)

    def _Expression(self, node: ast.Expression) -> Value:
        return self(node.body)

    def _Constant(self, node: ast.Constant) -> Value:
        if isinstance(node.value, bool):
            return node.value
        if isinstance(node.value, int):
            return mpmath.mpf(node.value)
        if isinstance(node.value, float):
            literal = self.source[node.col_offset:node.end_col_offset] if self.source else ""
            try:
                return mpmath.mpf(literal)
            except (ValueError, TypeError):
                return mpmath.mpf(repr(node.value))
        raise Unreadable(f"literal {node.value!r}")

    def _Name(self, node: ast.Name) -> Value:
        if node.id not in self.names:
            raise Unreadable(f"unknown name {node.id}")
        return self.names[node.id]

    def _Tuple(self, node: ast.Tuple) -> Value:
        return tuple(self(element) for element in node.elts)

    def _UnaryOp(self, node: ast.UnaryOp) -> Value:
        value = self(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.Invert | ast.Not):
            return not value
        raise Unreadable("unary operator")

    def _BinOp(self, node: ast.BinOp) -> Value:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise Unreadable(f"operator {type(node.op).__name__}")
        return op(self(node.left), self(node.right))

    def _Compare(self, node: ast.Compare) -> Value:
        left = _real(self(node.left))
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = _real(self(right_node))
            if not _COMPARE[type(op_node)](left, right):
                return False
            left = right
        return True

    def _Call(self, node: ast.Call) -> Value:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise Unreadable("call form")
        name = node.func.id
        if name == "Piecewise":
            return self._piecewise(node.args)
        if name == "CRootOf" and len(node.args) == 2:
            return self._crootof(node.args[0], int(self(node.args[1])))
        if name in ("Eq", "Ne"):
            a, b = (self(arg) for arg in node.args)
            return (a == b) == (name == "Eq")
        if name in ("And", "Or", "Not"):
            values = [bool(self(arg)) for arg in node.args]
            return all(values) if name == "And" else any(values) if name == "Or" else not values[0]
        function = FUNCTIONS.get(name)
        if function is None:
            raise Unreadable(f"unknown function {name}")
        return function(*(self(arg) for arg in node.args))

    def _crootof(self, poly: ast.expr, index: int) -> Value:
        """SymPy's ``CRootOf(p, k)``: real roots ascending, then complex by (re, im)."""
        key = (ast.unparse(poly), index)
        if key not in _ROOTS:
            _ROOTS[key] = self._crootof_uncached(poly, index)
        return _ROOTS[key]

    def _crootof_uncached(self, poly: ast.expr, index: int) -> Value:
        names = {n.id for n in ast.walk(poly) if isinstance(n, ast.Name)} - set(_constants())
        if len(names) != 1:
            raise Unreadable("CRootOf of a polynomial in no or several variables")
        var = names.pop()

        def p(t: Value) -> Value:
            return _Evaluator({**self.names, var: t}, self.source)(poly)

        big = mpmath.mpf(10) ** 12
        degree = int(mpmath.nint(mpmath.log(abs(p(big))) / mpmath.log(big)))
        if not 1 <= degree <= 40:
            raise Unreadable(f"CRootOf of degree {degree}")
        xs = [mpmath.mpf(j) for j in range(degree + 1)]
        matrix = mpmath.matrix([[x**i for i in range(degree, -1, -1)] for x in xs])
        coefficients = mpmath.lu_solve(matrix, mpmath.matrix([p(x) for x in xs]))
        coefficients = [mpmath.nint(c) if abs(c - mpmath.nint(c)) < 1e-30 else c
                        for c in coefficients]
        roots = mpmath.polyroots(coefficients, maxsteps=200, extraprec=60)
        real = sorted(mpmath.re(r) for r in roots if abs(mpmath.im(r)) < 1e-30)
        other = sorted((r for r in roots if abs(mpmath.im(r)) >= 1e-30),
                       key=lambda r: (mpmath.re(r), mpmath.im(r)))
        ordered = real + other
        if not 0 <= index < len(ordered):
            raise Unreadable(f"CRootOf index {index} of {len(ordered)} roots")
        return ordered[index]

    def _piecewise(self, pairs: list[ast.expr]) -> Value:
        for pair in pairs:
            if not isinstance(pair, ast.Tuple) or len(pair.elts) != 2:
                raise Unreadable("Piecewise form")
            if self(pair.elts[1]):
                return self(pair.elts[0])
        raise Unreadable("Piecewise with no true condition")


_PARSED: dict[str, ast.Expression] = {}
_ROOTS: dict[tuple[str, int], Value] = {}


def parse(text: str) -> ast.Expression:
    """Read *text* as an expression tree (cached), or raise ``Unreadable``."""
    tree = _PARSED.get(text)
    if tree is None:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise Unreadable(f"not an expression: {text[:60]!r}") from exc
        _PARSED[text] = tree
    return tree


def evaluate(text: str, names: dict[str, Any] | None = None) -> Value:
    """Evaluate the SymPy-``str``-syntax *text* with mpmath at ``DPS`` digits.

    Args:
        text: e.g. ``"2*cos(2*x)"``.
        names: Variable values, e.g. ``{"x": 0.7}`` (floats or strings).

    Returns:
        An mpf, mpc, bool or tuple.

    Raises:
        Unreadable: The text uses syntax or a name outside the allow-list.
        ZeroDivisionError, ValueError: Undefined at this point.
    """
    with mpmath.workdps(DPS):
        values = {k: mpmath.mpf(v) if isinstance(v, int | float | str) else v
                  for k, v in (names or {}).items()}
        return _Evaluator(values, text.strip())(parse(text))


def close(got: Value, want: float | complex, rel: float = REL_TOL, abs_: float = ABS_TOL) -> bool:
    """True when *got* (mpf/mpc) equals *want* within ``abs_ + rel*|want|``."""
    if isinstance(got, bool) or isinstance(got, tuple):
        return False
    try:
        if not mpmath.isfinite(got):
            return False
        return bool(abs(got - mpmath.mpmathify(want)) <= abs_ + rel * abs(want))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- answer texts

_NUMERIC_LABEL = re.compile(
    r"^\s*(?:≈|~|approximately|approx\.?|numerically)?\s*(.+?)\s*(?:\((?:numeric|approximate)"
    r"[^)]*\))?\s*$", re.I)


def _candidates(text: str) -> list[str]:
    """The answer text, then forms with a numeric label stripped (``≈ 2.0 (numeric ...)``)."""
    out = [text.strip()]
    labelled = _NUMERIC_LABEL.match(text)
    if labelled is not None and labelled.group(1) != out[0]:
        out.append(labelled.group(1))
    return out


def evaluate_answer(text: str, names: dict[str, Any] | None = None) -> Value:
    """Evaluate an answer text, accepting a numeric label around the value."""
    last: Exception | None = None
    for candidate in _candidates(text):
        try:
            return evaluate(candidate, names)
        except Unreadable as exc:
            last = exc
    assert last is not None
    raise last


def _split_assignments(text: str) -> list[tuple[str, str]]:
    """``"x = 2, y = 1"`` -> ``[("x", "2"), ("y", "1")]`` (commas inside values kept)."""
    parts = re.split(r",\s*(?=[A-Za-z_]\w*\s*=(?!=))", text.strip())
    pairs = []
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or not re.fullmatch(r"\s*[A-Za-z_]\w*\s*", name):
            raise Unreadable(f"not an assignment: {part[:40]!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


_PERIODIC = re.compile(r"\s*\(n an integer\)\s*$")
_NO_SOLUTION = {"no solution", "no real solution", "no real solutions", "no solutions"}


def equation_values(text: str, var: str) -> tuple[list[Value], bool, bool]:
    """Read an equation answer.

    Returns:
        (values, periodic, identity): the values with families expanded over
        n in [-FAMILY_RANGE, FAMILY_RANGE]; whether a family was given; whether
        the answer says every value solves it (``all x``).
    """
    stripped = text.strip()
    if stripped.lower() in _NO_SOLUTION:
        return [], False, False
    if stripped.lower() == f"all {var}":
        return [], False, True
    periodic = bool(_PERIODIC.search(stripped))
    stripped = _PERIODIC.sub("", stripped)
    values: list[Value] = []
    for name, value in _split_assignments(stripped):
        if name != var:
            raise Unreadable(f"solution for {name}, expected {var}")
        if periodic and re.search(r"\bn\b", value):
            values.extend(evaluate(value, {"n": k}) for k in range(-FAMILY_RANGE,
                                                                     FAMILY_RANGE + 1))
        else:
            values.append(evaluate(value))
    return values, periodic, False


def system_values(text: str, variables: list[str]) -> list[dict[str, Value]]:
    """Read a system answer ``"x = 2, y = 1 or x = -2, y = -1"`` into dicts."""
    if text.strip().lower() in _NO_SOLUTION:
        return []
    out = []
    for alternative in re.split(r"\s+or\s+", text.strip()):
        if "any number" in alternative:
            raise Unreadable("a dependent system's parametrized answer")
        pairs = dict(_split_assignments(alternative))
        if sorted(pairs) != sorted(variables):
            raise Unreadable(f"solution names {sorted(pairs)}, expected {sorted(variables)}")
        out.append({name: evaluate(value) for name, value in pairs.items()})
    return out


# ---------------------------------------------------------------- verdicts


def _is_real(value: Value) -> bool:
    if isinstance(value, mpmath.mpc):
        return bool(abs(value.imag) <= 1e-12 * max(1, abs(value.real)))
    return True


def _residual_ok(residual: str | None, names: dict[str, Value]) -> bool:
    if residual is None:
        return True
    try:
        value = evaluate(residual, names)
    except (ZeroDivisionError, ValueError):
        return False
    return bool(abs(value) <= 1e-8)


def _match_sets(got: list[float], want: list[float], tol: float) -> str | None:
    """None when *got* and *want* are the same set within *tol*, else the difference."""
    missing = [w for w in want if not any(abs(g - w) <= tol * max(1, abs(w)) for g in got)]
    extra = [g for g in got if not any(abs(g - w) <= tol * max(1, abs(w)) for w in want)]
    if not missing and not extra:
        return None
    shown_missing = ", ".join(f"{v:.10g}" for v in missing[:5])
    shown_extra = ", ".join(f"{v:.10g}" for v in extra[:5])
    return f"missing [{shown_missing}] extra [{shown_extra}]"


def _check_roots(text: str, ref: dict[str, Any]) -> tuple[bool, str]:
    var = ref["var"]
    values, periodic, identity = equation_values(text, var)
    if identity or ref.get("identity"):
        return identity == bool(ref.get("identity")), "identity" if identity else "not identity"
    lo, hi = ref["window"]
    inside: list[float] = []
    for value in values:
        if not _residual_ok(ref.get("residual"), {var: value}):
            return False, f"{mpmath.nstr(value, 12)} does not satisfy the equation"
        if _is_real(value):
            real = float(mpmath.re(value))
            if lo <= real <= hi and not any(abs(real - r) <= 1e-9 * max(1, abs(r))
                                            for r in inside):
                inside.append(real)
    difference = _match_sets(inside, ref["roots"], 1e-7)
    if difference is not None:
        return False, f"real roots in [{lo:.6g}, {hi:.6g}]: {difference}"
    if periodic != bool(ref.get("periodic")):
        return False, "periodic family expected" if ref.get("periodic") else "spurious family"
    return True, f"{len(inside)} real roots in the window"


def _check_tuples(text: str, ref: dict[str, Any]) -> tuple[bool, str]:
    variables = ref["vars"]
    found = system_values(text, variables)
    real = []
    for solution in found:
        for residual in ref.get("residuals", []):
            if not _residual_ok(residual, solution):
                return False, f"{solution} does not satisfy {residual}"
        if all(_is_real(v) for v in solution.values()):
            real.append(tuple(float(mpmath.re(solution[v])) for v in variables))
    want = [tuple(s) for s in ref["solutions"]]
    missing = [w for w in want if not any(_same_tuple(g, w) for g in real)]
    extra = [g for g in real if not any(_same_tuple(g, w) for w in want)]
    if missing or extra:
        return False, f"missing {missing[:3]} extra {extra[:3]}"
    return True, f"{len(real)} real solutions"


def _same_tuple(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(p - q) <= 1e-7 * max(1, abs(q)) for p, q in zip(a, b, strict=True))


def _check_number(text: str, ref: dict[str, Any]) -> tuple[bool, str]:
    got = evaluate_answer(text)
    want = complex(ref["value"], ref.get("imag", 0.0)) if ref.get("imag") else ref["value"]
    ok = close(got, want, ref.get("rel", REL_TOL), ref.get("abs", ABS_TOL))
    return ok, f"got {mpmath.nstr(got, 15) if not isinstance(got, tuple) else got}, " \
               f"want {want!r}"


def _check_vector(text: str, ref: dict[str, Any]) -> tuple[bool, str]:
    got = evaluate_answer(text)
    want = ref["values"]
    if not isinstance(got, tuple) or len(got) != len(want):
        return False, f"got {text!r}, want a {len(want)}-tuple"
    ok = all(close(g, w) for g, w in zip(got, want, strict=True))
    return ok, f"got {tuple(mpmath.nstr(g, 12) for g in got)}, want {tuple(want)}"


def _check_function(text: str, ref: dict[str, Any]) -> tuple[bool, str]:
    for point, want in zip(ref["points"], ref["values"], strict=True):
        try:
            got = evaluate_answer(text, point)
        except (ZeroDivisionError, ValueError):
            return False, f"undefined at {point}"
        if not close(got, want, ref.get("rel", 1e-7), ref.get("abs", 1e-9)):
            return False, f"at {point}: got {mpmath.nstr(got, 12)}, want {want:.12g}"
    return True, f"agrees at {len(ref['points'])} points"


_CONSTANT = re.compile(r"\s*\+\s*C\s*$")


def _check_antiderivative(text: str, ref: dict[str, Any]) -> tuple[bool, str]:
    if not _CONSTANT.search(text):
        return False, "no '+ C' on an indefinite integral"
    body = _CONSTANT.sub("", text)
    var = ref["var"]
    for a, b, want in ref["intervals"]:
        try:
            got = evaluate(body, {var: b}) - evaluate(body, {var: a})
        except (ZeroDivisionError, ValueError):
            return False, f"undefined on [{a}, {b}]"
        if not close(got, want, 1e-7, 1e-9):
            return False, f"F({b}) - F({a}) = {mpmath.nstr(got, 12)}, want {want:.12g}"
    return True, f"F(b) - F(a) agrees on {len(ref['intervals'])} intervals"


CHECKERS: dict[str, Callable[[str, dict[str, Any]], tuple[bool, str]]] = {
    "number": _check_number,
    "vector": _check_vector,
    "function": _check_function,
    "antiderivative": _check_antiderivative,
    "roots": _check_roots,
    "tuples": _check_tuples,
}


def judge(text: str, reference: dict[str, Any]) -> tuple[str, str]:
    """Judge answer *text* against *reference*.

    Returns:
        (verdict, detail): verdict ``"correct"``, ``"wrong"`` or
        ``"unjudged"`` (the checker cannot read the answer).
    """
    try:
        ok, detail = CHECKERS[reference["type"]](text, reference)
    except Unreadable as exc:
        return "unjudged", str(exc)
    except (ZeroDivisionError, ValueError, TypeError, OverflowError) as exc:
        return "wrong", f"cannot evaluate: {type(exc).__name__}: {exc}"
    return ("correct" if ok else "wrong"), detail


def finite_numbers(obj: Any) -> bool:
    """True when every number inside *obj* (nested lists/dicts) is a finite float."""
    if isinstance(obj, bool):
        return True
    if isinstance(obj, int | float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(finite_numbers(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return all(finite_numbers(v) for v in obj)
    return isinstance(obj, str)


def function(text: str, var: str) -> Callable[[Value], Value]:
    """A callable ``t -> value of text at var = t``, at the caller's mpmath precision."""
    tree = parse(text)

    def call(t: Value) -> Value:
        return _Evaluator({var: t}, text.strip())(tree)

    return call
