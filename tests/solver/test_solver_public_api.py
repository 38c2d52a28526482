"""The solver's public API is exactly what other packages depend on."""

from __future__ import annotations

import dataclasses
import time

import pytest

import jobtrail.solver
from jobtrail.solver import KINDS, MAX_PROBLEM_CHARS, Answer, classify, solve
from jobtrail.solver.limits import memory_guard, set_memory_limit


def test_exports() -> None:
    assert set(jobtrail.solver.__all__) == {
        "Answer",
        "KINDS",
        "MAX_PROBLEM_CHARS",
        "classify",
        "solve",
    }
    assert callable(classify) and callable(solve)
    assert callable(set_memory_limit) and callable(memory_guard)
    assert MAX_PROBLEM_CHARS == 2000


def test_answer_is_a_frozen_slots_dataclass() -> None:
    answer = Answer(kind="arithmetic", text="4", latex="4", steps=("2 + 2 = 4",))
    assert [f.name for f in dataclasses.fields(Answer)] == [
        "kind", "text", "latex", "steps", "verification"]
    assert not hasattr(answer, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.text = "5"  # type: ignore[misc]


def test_kinds() -> None:
    assert KINDS == (
        "arithmetic",
        "simplify",
        "equation",
        "system",
        "derivative",
        "integral",
        "limit",
        "geometry",
    )


def test_every_answer_field_is_text() -> None:
    answer = solve("solve x^2 - 5x + 6 = 0")
    assert all(isinstance(v, str) for v in (answer.kind, answer.text, answer.latex))
    assert all(isinstance(step, str) for step in answer.steps)
    assert answer.steps


def test_typical_problems_solve_in_tens_of_ms() -> None:
    # Given SymPy warmed up
    problems = [
        "solve x^2 - 5x + 6 = 0",
        "2x + y = 5, x - y = 1",
        "Find the derivative of x^3 sin(x)",
        "Prove that a triangle with sides 3, 4 and 5 is right-angled",
        "evaluate 2^10 / 4",
    ]
    for problem in problems:
        solve(problem)
    # When each is solved again 5 times
    started = time.perf_counter()
    for _ in range(5):
        for problem in problems:
            solve(problem)
    mean_s = (time.perf_counter() - started) / (5 * len(problems))
    # Then the mean is well under 100 ms
    assert mean_s < 0.1
