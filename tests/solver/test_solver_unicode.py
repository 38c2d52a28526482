"""Unicode forms people paste mean what they look like."""

from __future__ import annotations

import pytest

from jobtrail.solver import solve

UNICODE = [
    ("solve x² − 5x + 6 = 0", "x = 2, x = 3"),  # superscript two, U+2212 minus
    ("solve x² – 5x + 6 = 0", "x = 2, x = 3"),  # en dash as minus
    ("2 × 3", "6"),
    ("2 · 3 + 1", "7"),
    ("12 ÷ 4", "3"),
    ("√16", "4"),
    ("2√9", "6"),
    ("∫ sin(x) dx from 0 to π", "2"),
    ("lim x→∞ 1/x", "0"),
    ("lim x→0⁺ 1/x", "oo"),
    ("lim x→−∞ eˣ", "0"),
    ("d/dx x³", "3*x**2"),
    ("2⁻¹", "1/2"),
    ("cos(π)", "-1"),
    ("ｘ＋１ = ３", "x = 2"),  # fullwidth forms folded by NFKC
    ("Prove that a triangle with sides 3, 4 and 5 is right‐angled", None),
]


@pytest.mark.parametrize(("problem", "expected"), UNICODE)
def test_unicode_forms(problem: str, expected: str | None) -> None:
    answer = solve(problem)
    if expected is None:
        assert answer.text.startswith("right-angled")
    else:
        assert answer.text == expected


def test_superscript_power_of_variable() -> None:
    assert solve("expand (x + 1)²").text == "x**2 + 2*x + 1"
