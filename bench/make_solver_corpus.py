"""Write bench/solver_corpus.jsonl: the solver benchmark's problems with mpmath references.

Run: .venv/bin/python bench/make_solver_corpus.py [--out bench/solver_corpus.jsonl]

Every reference is computed here with mpmath, never with SymPy's solvers:

* arithmetic, geometry: the expected expression evaluated at 50 digits;
* simplify: the *input* expression evaluated at sample points (the answer
  must be equal to it there);
* derivative: ``mpmath.diff`` of the input function at sample points;
* definite integral: ``mpmath.quad``, split where the integrand is not smooth;
* indefinite integral: ``mpmath.quad`` of the integrand over a few intervals,
  so an answer F is judged by F(b) - F(a) (any constant is fine);
* limit: a hand-derived closed form, checked here against the function
  evaluated at 60 digits close to the point, from each side asked;
* equation: the real roots in a window, from closed forms (families expanded)
  cross-checked by a sign-change scan of the equation refined with
  ``mpmath.findroot``; every root found by the scan must be listed;
* system: hand-derived solutions, each substituted back at 50 digits.

Any failed cross-check stops the script (AssertionError), so the data cannot
silently disagree with its own derivation. Problems taken from SymPy bug
reports name the issue in ``source``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import mpmath

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.solver_check import evaluate, finite_numbers, function  # noqa: E402

mpmath.mp.dps = 30
PROBLEMS: list[dict[str, Any]] = []
POINTS = [0.3, 0.7, 1.3, 2.1, 2.9]
INTERVALS = [(0.3, 0.7), (0.3, 1.3), (0.5, 2.5)]


def gh(number: int) -> str:
    return f"sympy/sympy#{number}"


def _add(kind: str, text: str, reference: dict[str, Any], source: str | None) -> None:
    PROBLEMS.append({"id": f"{kind[:4]}-{sum(p['kind'] == kind for p in PROBLEMS) + 1:03d}",
                     "kind": kind, "text": text, "reference": reference,
                     "source": source or "hand"})


def _number(expr: str) -> dict[str, Any]:
    value = mpmath.mpmathify(evaluate(expr))
    ref: dict[str, Any] = {"type": "number", "expr": expr, "value": float(mpmath.re(value))}
    if abs(mpmath.im(value)) > 1e-30:
        ref["imag"] = float(mpmath.im(value))
    if abs(value) < 1e-6:  # a tiny or zero true value: judge it absolutely, tightly
        ref["abs"] = 1e-25 if value == 0 else float(abs(value)) * 1e-6
    return ref


def arith(text: str, expr: str, source: str | None = None) -> None:
    _add("arithmetic", text, _number(expr), source)


def geo(text: str, expr: str, source: str | None = None) -> None:
    value = evaluate(expr)
    if isinstance(value, tuple):
        _add("geometry", text, {"type": "vector", "expr": expr,
                                "values": [float(v) for v in value]}, source)
    else:
        _add("geometry", text, _number(expr), source)


def _samples(f: str, var: str, points: list[float], order: int = 0) -> list[float]:
    g = function(f, var)
    out = []
    for p in points:
        value = mpmath.diff(g, mpmath.mpf(p), order) if order else g(mpmath.mpf(p))
        assert abs(mpmath.im(value)) < 1e-20, (f, p, value)
        out.append(float(mpmath.re(value)))
    return out


def simp(text: str, f: str, points: list[float] | None = None, var: str = "x") -> None:
    pts = points or POINTS
    _add("simplify", text, {"type": "function", "expr": f,
                            "points": [{var: p} for p in pts],
                            "values": _samples(f, var, pts)}, None)


def deriv(text: str, f: str, order: int = 1, var: str = "x",
          points: list[float] | None = None, fixed: dict[str, float] | None = None,
          source: str | None = None) -> None:
    pts = points or POINTS
    g = f
    for name, value in (fixed or {}).items():
        g = g.replace(name, f"({value})")
    _add("derivative", text, {"type": "function", "of": f, "order": order,
                              "points": [{var: p, **(fixed or {})} for p in pts],
                              "values": _samples(g, var, pts, order)}, source)


def defint(text: str, f: str, a: str, b: str, splits: tuple[str, ...] = (),
           var: str = "x", source: str | None = None, rel: float | None = None) -> None:
    g = function(f, var)
    nodes = [mpmath.mpmathify(evaluate(v)) for v in (a, *splits, b)]
    value, error = mpmath.quad(g, nodes, maxdegree=10, error=True)
    assert error <= 1e-15 * max(1, abs(value)), (text, value, error)
    ref = _number(mpmath.nstr(value, 25))
    ref.update({"integrand": f, "bounds": [a, b]})
    if rel is not None:
        ref["rel"] = rel
    _add("integral", text, ref, source)


def indef(text: str, f: str, intervals: list[tuple[float, float]] | None = None,
          var: str = "x", source: str | None = None) -> None:
    g = function(f, var)
    out = []
    for a, b in intervals or INTERVALS:
        # the integrand must be bounded on [a, b], or F(b) - F(a) means nothing
        assert max(abs(g(mpmath.mpf(a) + (b - a) * k / 400)) for k in range(401)) < 1e4, (
            text, a, b)
        value = mpmath.quad(g, [a, b])
        assert abs(mpmath.im(value)) < 1e-20, (text, a, b)
        out.append([a, b, float(mpmath.re(value))])
    _add("integral", text, {"type": "antiderivative", "var": var, "integrand": f,
                            "intervals": out}, source)


def lim(text: str, value: str, f: str, point: str, side: str = "+-", var: str = "x",
        source: str | None = None) -> None:
    want = mpmath.mpmathify(evaluate(value))
    with mpmath.workdps(60):
        g = function(f, var)
        at = mpmath.mpmathify(evaluate(point))
        steps = [mpmath.mpf(10) ** -k for k in (12, 16)]
        probes = []
        if mpmath.isinf(at):
            probes = [(1 if at > 0 else -1) * mpmath.mpf(10) ** k for k in (14, 18)]
        else:
            for s in ("+", "-"):
                if s in side:
                    probes += [at + (h if s == "+" else -h) for h in steps]
        for p in probes:
            got = g(p)
            assert abs(got - want) <= 1e-5 * max(1, abs(want)), (text, p, got, want)
    ref = _number(value)
    ref.update({"function": f, "point": point, "side": side})
    _add("limit", text, ref, source)


def _scan_roots(g: Any, lo: float, hi: float, grid: int) -> list[mpmath.mpf]:
    found = []
    xs = [lo + (hi - lo) * i / grid for i in range(grid + 1)]
    previous = None
    for a, b in zip(xs, xs[1:], strict=False):
        try:
            fa = previous if previous is not None else mpmath.re(g(mpmath.mpf(a)))
            fb = mpmath.re(g(mpmath.mpf(b)))
        except (ZeroDivisionError, ValueError):
            previous = None
            continue
        previous = fb
        if fa == 0:
            found.append(mpmath.mpf(a))
        elif fa * fb < 0:
            try:
                r = mpmath.findroot(lambda t: mpmath.re(g(t)), (a, b), solver="anderson")
                for _ in range(6):  # polish with Newton steps to the working precision
                    r -= g(r) / mpmath.diff(g, r)
            except (ValueError, ZeroDivisionError):
                continue
            if a <= r <= b and abs(g(r)) < 1e-15:  # a sign change at a pole is no root
                found.append(r)
    return found


def _expand(roots: list[str], lo: float, hi: float) -> list[mpmath.mpf]:
    out: list[mpmath.mpf] = []
    for root in roots:
        values = ([evaluate(root, {"n": k}) for k in range(-200, 201)] if "n" in root
                  else [evaluate(root)])
        out += [mpmath.re(v) for v in values
                if abs(mpmath.im(mpmath.mpmathify(v))) < 1e-25 and lo <= mpmath.re(v) <= hi]
    unique: list[mpmath.mpf] = []
    for v in sorted(out):
        if not unique or abs(v - unique[-1]) > 1e-12:
            unique.append(v)
    return unique


def eq(text: str, residual: str, roots: list[str], window: tuple[float, float] = (-10, 10),
       periodic: bool = False, var: str = "x", source: str | None = None,
       grid: int = 4000) -> None:
    lo, hi = window
    g = function(residual, var)
    closed = _expand(roots, lo, hi)
    for r in closed:
        assert abs(g(r)) < 1e-20, (text, r, g(r))
        assert min(r - lo, hi - r) > 1e-3, (text, "root too close to the window's edge", r)
    for r in _scan_roots(g, lo, hi, grid):
        assert any(abs(r - c) < 1e-9 for c in closed), (text, "scan found unlisted root", r)
    _add("equation", text, {"type": "roots", "var": var, "window": [lo, hi],
                            "roots": [float(r) for r in closed], "periodic": periodic,
                            "residual": residual, "closed_forms": roots}, source)


def system(text: str, variables: list[str], residuals: list[str],
           solutions: list[list[str]], source: str | None = None) -> None:
    numeric = []
    for solution in solutions:
        values = {v: evaluate(s) for v, s in zip(variables, solution, strict=True)}
        for residual in residuals:
            assert abs(evaluate(residual, values)) < 1e-30, (text, solution, residual)
        numeric.append([float(values[v]) for v in variables])
    _add("system", text, {"type": "tuples", "vars": variables, "residuals": residuals,
                          "solutions": numeric, "closed_forms": solutions}, source)


from bench.solver_problems import define  # noqa: E402  (the problem list, below this API)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "solver_corpus.jsonl"))
    args = parser.parse_args()
    define(sys.modules[__name__])
    for problem in PROBLEMS:
        assert finite_numbers(problem["reference"]), problem
    texts = [p["text"] for p in PROBLEMS]
    assert len(set(texts)) == len(texts), "duplicate problem text"
    with open(args.out, "w", encoding="utf-8") as out:
        for problem in PROBLEMS:
            out.write(json.dumps(problem, ensure_ascii=False) + "\n")
    kinds: dict[str, int] = {}
    for p in PROBLEMS:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    sourced = sum(p["source"] != "hand" for p in PROBLEMS)
    print(f"wrote {len(PROBLEMS)} problems to {args.out}: {kinds}; {sourced} from bug reports")


if __name__ == "__main__":
    main()
