"""A system whose solutions SymPy gives as sets of values (nonlinsolve's ImageSets) fails
cleanly saying so. Before: render.sort_key called as_real_imag on the ImageSet, and the
AttributeError was reported as SymPy's ("could not solve this system problem (AttributeError)")."""

from __future__ import annotations

import pytest

from jobtrail.errors import UnsupportedProblemError
from jobtrail.solver import solve


@pytest.mark.parametrize("problem", ["solve sin(x) = y, y = 2", "solve exp(x) = y, y = -1"])
def test_a_system_solved_by_families_of_values_fails_saying_so(problem: str) -> None:
    with pytest.raises(UnsupportedProblemError) as caught:
        solve(problem)
    assert "cannot solve this system in closed form: a variable's solutions form a set" in \
        str(caught.value), caught.value
    assert "AttributeError" not in str(caught.value)


def test_a_system_with_finite_solutions_still_solves() -> None:
    assert solve("solve x^2 = y, y = 4").text == "x = -2, y = 4 or x = 2, y = 4"
