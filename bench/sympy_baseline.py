"""The plain-SymPy baseline of bench/bench_solver.py: a small front-end, then SymPy's solvers.

The text is read with ``parse_expr`` (standard transformations, implicit
multiplication and application, ``^`` as power), never ``sympify`` of the raw
text, after a minimal character map (× ÷ − ² ³ π √ →). The baseline is told
the problem's kind (jobtrail has to detect it), then extracts the expression,
variable and bounds with a few regular expressions and calls ``simplify``/
``expand``/``factor``, ``solveset`` over the reals, ``solve`` for systems,
``diff``, ``integrate``, ``limit`` or ``sympy.geometry``. What it cannot read
or SymPy cannot do raises ``BaselineError`` (a clean failure). Answers are
printed in jobtrail's text forms so that one checker judges both.
"""

from __future__ import annotations

import re
from typing import Any

import sympy  # type: ignore[import-untyped]
from sympy.parsing.sympy_parser import (  # type: ignore[import-untyped]
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

TRANSFORMATIONS = standard_transformations + (implicit_multiplication_application, convert_xor)
LOCALS: dict[str, Any] = {"e": sympy.E, "E": sympy.E, "ln": sympy.log, "pi": sympy.pi,
                          "infinity": sympy.oo, "inf": sympy.oo, "oo": sympy.oo, "i": sympy.I,
                          "abs": sympy.Abs, "arcsin": sympy.asin, "arccos": sympy.acos,
                          "arctan": sympy.atan}
CHARACTERS = {"×": "*", "÷": "/", "−": "-", "²": "**2", "³": "**3", "π": "pi",
              "√": "sqrt ", "→": "->", "·": "*", "∫": "integrate "}
_FILLER = re.compile(r"^(?:(?:please|find|compute|calculate|evaluate|determine|work out|what is|"
                     r"the value of|the|value of)\s+)+", re.I)


class BaselineError(Exception):
    """The baseline cannot read the text or SymPy cannot answer (a clean failure)."""


def expr(text: str) -> Any:
    """Parse one expression with ``parse_expr``; raise ``BaselineError`` when unreadable."""
    try:
        return parse_expr(text.strip(), local_dict=dict(LOCALS), transformations=TRANSFORMATIONS)
    except Exception as exc:  # parse_expr raises SyntaxError, TokenError, TypeError, ...
        raise BaselineError(f"parse_expr cannot read {text.strip()[:40]!r}: "
                            f"{type(exc).__name__}") from exc


def _clean(text: str) -> str:
    for char, replacement in CHARACTERS.items():
        text = text.replace(char, replacement)
    text = _FILLER.sub("", text.strip())
    return re.sub(r"[\s.?]+$", "", text).strip()


def _variable(e: Any, named: str | None = None) -> Any:
    if named:
        return sympy.Symbol(named)
    symbols = sorted(e.free_symbols, key=str)
    for s in symbols:
        if s.name == "x":
            return s
    return symbols[0] if symbols else sympy.Symbol("x")


def arithmetic(body: str) -> str:
    value = expr(body)
    if value.free_symbols:
        raise BaselineError("arithmetic with a variable")
    return str(value)


def simplify(body: str) -> str:
    m = re.match(r"^(simplify|expand|factori[sz]e|factor)\s+(.*)$", body, re.I)
    verb, rest = (m.group(1).lower(), m.group(2)) if m else ("simplify", body)
    function = {"expand": sympy.expand, "factor": sympy.factor, "factorise": sympy.factor,
                "factorize": sympy.factor}.get(verb, sympy.simplify)
    return str(function(expr(rest)))


def _roots_text(var: Any, solution: Any) -> str:
    if isinstance(solution, sympy.FiniteSet):
        return ", ".join(f"{var} = {v}" for v in solution) if solution else "no real solution"
    if solution is sympy.S.EmptySet:
        return "no real solution"
    if solution == sympy.S.Reals:
        return f"all {var}"
    parts = list(solution.args) if isinstance(solution, sympy.Union) else [solution]
    n = sympy.Symbol("n")
    out = []
    for part in parts:
        if isinstance(part, sympy.FiniteSet):
            out += [f"{var} = {v}" for v in part]
        elif isinstance(part, sympy.ImageSet) and part.base_sets == (sympy.S.Integers,):
            lamda = part.lamda
            out.append(f"{var} = {lamda.expr.subs(lamda.variables[0], n)}")
        else:
            raise BaselineError(f"solveset returned {type(part).__name__}")
    return ", ".join(out) + " (n an integer)"


def equation(body: str) -> str:
    body = re.sub(r"^solve\s+", "", body, flags=re.I)
    named = None
    m = re.search(r"\s+for\s+([a-z])$", body)
    if m:
        named, body = m.group(1), body[: m.start()]
    sides = body.split("=")
    if len(sides) > 2:
        raise BaselineError("more than one '='")
    e = expr(sides[0]) - (expr(sides[1]) if len(sides) == 2 else 0)
    var = _variable(e, named)
    return _roots_text(var, sympy.solveset(e, var, sympy.S.Reals))


def system(body: str) -> str:
    body = re.sub(r"^solve\s+(?:the\s+system\s+)?", "", body, flags=re.I)
    parts = [p for p in re.split(r"[,;]|\s+and\s+", body) if p.strip()]
    equations = []
    for part in parts:
        lhs, sep, rhs = part.partition("=")
        if not sep:
            raise BaselineError(f"not an equation: {part[:30]!r}")
        equations.append(expr(lhs) - expr(rhs))
    symbols = sorted(set().union(*(e.free_symbols for e in equations)), key=str)
    solutions = sympy.solve(equations, symbols, dict=True)
    if not solutions:
        return "no solution"
    out = []
    for solution in solutions:
        if set(solution) != set(symbols):
            raise BaselineError("a dependent system")
        out.append(", ".join(f"{s} = {solution[s]}" for s in symbols))
    return " or ".join(out)


_ORDERS = {"second": 2, "third": 3, "twice": 2}


def derivative(body: str) -> str:
    order, named = 1, None
    m = re.match(r"^d(?:\*\*|\^)?(\d)?\s*/\s*d([a-z])(?:(?:\*\*|\^)\d)?\s+(.*)$", body)
    if m:
        order, named, body = int(m.group(1) or 1), m.group(2), m.group(3)
    else:
        m = re.match(r"^(?:(second|third)\s+)?derivative\s+of\s+(.*)$", body, re.I)
        if m:
            order, body = _ORDERS.get((m.group(1) or "").lower(), 1), m.group(2)
        else:
            m = re.match(r"^differentiate\s+(.*?)(?:\s+with\s+respect\s+to\s+([a-z]))?"
                         r"(\s+twice)?$", body, re.I)
            if not m:
                raise BaselineError("not a derivative phrasing the baseline reads")
            body, named, order = m.group(1), m.group(2), 2 if m.group(3) else 1
    body = re.sub(r"^[a-z]\s*\(\s*[a-z]\s*\)\s*=\s*", "", body)
    e = expr(body)
    return str(sympy.diff(e, _variable(e, named), order))


def integral(body: str) -> str:
    m = re.match(r"^(?:the\s+)?(?:integrate|integral\s+of|antiderivative\s+of)\s*(.*)$",
                 body, re.I)
    if not m:
        raise BaselineError("not an integral phrasing the baseline reads")
    body, bounds, named = m.group(1), None, None
    b = re.search(r"\s+(?:from|between)\s+(.+?)\s+(?:to|and)\s+(.+)$", body)
    if b:
        bounds, body = (expr(b.group(1)), expr(b.group(2))), body[: b.start()]
    d = re.search(r"\s*\bd([a-z])$", body)
    if d:
        named, body = d.group(1), body[: d.start()]
    e = expr(body)
    var = _variable(e, named)
    if bounds is None:
        result = sympy.integrate(e, var)
        if result.has(sympy.Integral):
            raise BaselineError("integrate returned an Integral")
        return f"{result} + C"
    result = sympy.integrate(e, (var, *bounds))
    if result.has(sympy.Integral) or result.has(sympy.nan) or result.has(sympy.zoo):
        raise BaselineError("integrate returned no value")
    return str(result)


def limit(body: str) -> str:
    side = None
    m = re.match(r"^lim(?:it)?\s+(?:of\s+)?([a-z])\s*->\s*(\S+)\s+(.*)$", body, re.I)
    if m:
        name, point, function = m.group(1), m.group(2), m.group(3)
    else:
        m = re.match(r"^(?:the\s+)?limit\s+of\s+(.+?)\s+as\s+([a-z])\s+(?:->|approaches|tends\s+to|"
                     r"goes\s+to)\s+(.+?)(?:\s+from\s+the\s+(right|left))?$", body, re.I)
        if not m:
            raise BaselineError("not a limit phrasing the baseline reads")
        function, name, point = m.group(1), m.group(2), m.group(3)
        side = {"right": "+", "left": "-"}.get((m.group(4) or "").lower())
    if len(point) > 1 and point[-1] in "+-":
        point, side = point[:-1], point[-1]
    e, at = expr(function), expr(point)
    var = sympy.Symbol(name)
    direction = side or ("+" if at in (sympy.oo, -sympy.oo) else "+-")
    result = sympy.limit(e, var, at, direction)
    if result.has(sympy.Limit):
        raise BaselineError("limit returned a Limit")
    if isinstance(result, sympy.AccumBounds) or result in (sympy.zoo, sympy.nan):
        return "does not exist"
    return str(result)


def _points(body: str) -> list[Any]:
    return [sympy.Point(*[expr(v) for v in p.split(",")])
            for p in re.findall(r"\(([^()]*)\)", body)]


def geometry(body: str) -> str:
    lowered = body.lower()
    if "triangle" in lowered:
        m = re.search(r"sides?\s+(.+?),\s*(.+?),?\s+(?:and\s+)?([^\s,]+)$",
                      re.sub(r"\s*\bcm\b", "", body))
        if not m:
            raise BaselineError("no sides the baseline reads")
        t = sympy.Triangle(sss=tuple(expr(m.group(k)) for k in (1, 2, 3)))
        if "perimeter" in lowered:
            return str(sympy.nsimplify(t.perimeter))
        return str(abs(t.area))
    points = _points(body)
    if len(points) != 2:
        raise BaselineError("two points expected")
    if "distance" in lowered:
        return str(points[0].distance(points[1]))
    if "midpoint" in lowered:
        mid = points[0].midpoint(points[1])
        return "(" + ", ".join(str(c) for c in mid.args) + ")"
    return str(sympy.Line(points[0], points[1]).slope)


KINDS = {"arithmetic": arithmetic, "simplify": simplify, "equation": equation,
         "system": system, "derivative": derivative, "integral": integral, "limit": limit,
         "geometry": geometry}


def solve(text: str, kind: str) -> str:
    """Answer *text* of *kind* with plain SymPy; raise ``BaselineError`` when it cannot."""
    return KINDS[kind](_clean(text))
