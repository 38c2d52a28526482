"""The solver benchmark's corpus is well-formed, and its mpmath checker judges answers right.

The benchmark (bench/bench_solver.py) is not part of the test suite; its
verdicts rest on bench/solver_check.py, so the checker is tested here on
answers known to be right and answers known to be wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.solver_check import evaluate, finite_numbers, judge  # noqa: E402

KINDS = {"arithmetic", "simplify", "equation", "system", "derivative", "integral", "limit",
         "geometry"}


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    with open(ROOT / "bench" / "solver_corpus.jsonl", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def by_text(corpus: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["text"]: p["reference"] for p in corpus}


def test_corpus_is_well_formed(corpus: list[dict[str, Any]]) -> None:
    # Then: enough problems of every kind, unique ids, finite numeric references
    assert len(corpus) >= 300
    assert {p["kind"] for p in corpus} == KINDS
    assert len({p["id"] for p in corpus}) == len(corpus)
    for problem in corpus:
        assert set(problem) == {"id", "kind", "text", "reference", "source"}, problem["id"]
        assert problem["text"].strip(), problem["id"]
        assert finite_numbers(problem["reference"]), problem["id"]
        numbers = json.dumps(problem["reference"])
        assert any(ch.isdigit() for ch in numbers), problem["id"]
    sourced = [p for p in corpus if p["source"].startswith("sympy/")]
    assert len(sourced) >= 25
    assert all("#" in p["source"] for p in sourced)


def test_corpus_integral_includes_definite_and_indefinite(corpus: list[dict[str, Any]]) -> None:
    types = {p["reference"]["type"] for p in corpus if p["kind"] == "integral"}
    assert types == {"number", "antiderivative"}


@pytest.mark.parametrize(
    ("text", "right", "wrong"),
    [
        ("1/3 + 1/6", "1/2", "1/3"),
        ("e^(i pi)", "-1", "1"),
        # cancellation: the true value is about -7.5e-13, so 0 is wrong
        ("exp(pi sqrt(163)) - 262537412640768744", "-262537412640768744 + exp(sqrt(163)*pi)",
         "0"),
        ("sqrt(2) + 1 - 1/(sqrt(2) - 1)", "0", "1.0e-20"),
        ("find the derivative of sin 2x", "2*cos(2*x)", "sin(2)"),
        ("second derivative of x^4", "12*x**2", "4*x**3"),
        ("differentiate x^2 y with respect to y", "x**2", "2*x*y"),
        ("integrate x e^x dx", "(x - 1)*exp(x) + C", "x*exp(x) + C"),
        ("integrate 1/x dx", "log(x) + C", "log(x)"),
        ("integrate abs(cos(x)) from -pi/2 to 0", "1", "-1"),
        ("integrate abs(sin(x) cos(x)) from 0 to 2pi", "2", "1"),
        ("integrate 1.5e-3 from 0 to 2", "0.00300000000000000", "-6 + 3*E"),
        ("lim x->0 sin 2x / x", "2", "sin(2)"),
        ("solve sin(x) = 0", "x = 2*pi*n, x = 2*pi*n + pi (n an integer)",
         "x = 2*pi*n (n an integer)"),
        ("solve sin(x) = 0", "x = pi*n (n an integer)", "x = 0, x = pi"),
        ("solve sin(4x) + sin(3x) = 0", "x = 2*pi*n/7, x = 2*pi*n + pi (n an integer)",
         "x = 2*pi*n/7 (n an integer)"),
        ("solve x^2 - 5x + 6 = 0", "x = 2, x = 3", "x = 2"),
        ("x^2 = -1", "x = -I, x = I", "x = -1, x = 1"),
        ("x^2 = -1", "no real solution", "x = 1 + I"),
        ("solve sin(x) = 2", "no real solution", "x = 2*pi*n + asin(2) (n an integer)"),
        ("solve x = 1.5e-3", "x = 0.0015", "x = -3 + 3*E/2"),
        ("x^2 + y^2 = 5, x - y + 1 = 0", "x = -2, y = -1 or x = 1, y = 2", "x = 1, y = 2"),
        ("x + y = 1, x + y = 2", "no solution", "x = 1, y = 0"),
        ("midpoint of (1, 2) and (3, 4)", "(2, 3)", "(3, 2)"),
        ("area of a triangle with sides 3, 4, 5", "6", "12"),
        ("simplify (x^2 - 1)/(x - 1)", "x + 1", "x - 1"),
    ],
)
def test_checker_tells_right_from_wrong(by_text: dict[str, Any], text: str, right: str,
                                        wrong: str) -> None:
    reference = by_text[text]
    assert judge(right, reference)[0] == "correct", judge(right, reference)
    assert judge(wrong, reference)[0] == "wrong", judge(wrong, reference)


# What jobtrail (SymPy's solveset) answers today for sin(4x) + sin(3x) = 0: the
# families 2*pi*n/7 written with CRootOf, and the family pi + 2*pi*n missing.
_SIN4_SIN3 = ", ".join(
    ["x = 2*pi*n"]
    + [f"x = 2*pi*n + 2*atan(CRootOf(x**6 - 21*x**4 + 35*x**2 - 7, {k}))" for k in (3, 4, 5)]
    + [f"x = 2*pi*n + 2*atan(CRootOf(x**6 - 21*x**4 + 35*x**2 - 7, {k})) + 2*pi"
       for k in (0, 1, 2)]
)


def test_checker_finds_the_missing_solution_family(by_text: dict[str, Any]) -> None:
    reference = by_text["solve sin(4x) + sin(3x) = 0"]
    verdict, detail = judge(f"{_SIN4_SIN3} (n an integer)", reference)
    assert verdict == "wrong"
    assert "missing [-9.424777961, -3.141592654, 3.141592654, 9.424777961]" in detail
    complete = f"{_SIN4_SIN3}, x = 2*pi*n + pi (n an integer)"
    assert judge(complete, reference)[0] == "correct"


def test_checker_reads_a_labelled_numeric_value(by_text: dict[str, Any]) -> None:
    reference = by_text["integrate abs(sin(x) cos(x)) from 0 to 2pi"]
    assert judge("2.000000000000 (numeric quadrature)", reference)[0] == "correct"
    assert judge("≈ 1.0000000000 (numeric)", reference)[0] == "wrong"


def test_checker_says_unjudged_for_what_it_cannot_read(by_text: dict[str, Any]) -> None:
    reference = by_text["solve x^2 - 5x + 6 = 0"]
    assert judge("x = hyper((1,), (2,), 1)", reference)[0] == "unjudged"
    assert judge("__import__('os')", by_text["1/3 + 1/6"])[0] == "unjudged"


def test_evaluator_reads_sympy_text_exactly() -> None:
    assert evaluate("Piecewise((1, x < 0), (x**2, True))", {"x": 3}) == 9
    assert evaluate("0.1000000000000000000000000001") != evaluate("0.1")
    assert abs(evaluate("sqrt(3)*I/2 - 1/2") ** 3 - 1) < 1e-40


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("integrate x^2 from 0 to 1", "integral", "1/3"),
        ("integrate cos(x) dx", "integral", "sin(x) + C"),
        ("lim x->0 sin(x)/x", "limit", "1"),
        ("solve x^2 - 5x + 6 = 0", "equation", "x = 2, x = 3"),
        ("d²/dx² sin(x)", "derivative", "-sin(x)"),
        ("midpoint of (1, 2) and (3, 4)", "geometry", "(2, 3)"),
        ("10!", "arithmetic", "3628800"),
    ],
)
def test_baseline_front_end_reads_textbook_phrasings(text: str, kind: str, expected: str,
                                                     by_text: dict[str, Any]) -> None:
    from bench.sympy_baseline import solve as baseline

    answer = baseline(text, kind)
    assert answer == expected
    if text in by_text:
        assert judge(answer, by_text[text])[0] == "correct"


def test_baseline_fails_cleanly_on_what_it_cannot_read() -> None:
    from bench.sympy_baseline import BaselineError
    from bench.sympy_baseline import solve as baseline

    with pytest.raises(BaselineError):
        baseline("what is the rate of change of x^2", "derivative")
