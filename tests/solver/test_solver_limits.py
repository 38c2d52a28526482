"""Memory limit: RLIMIT_AS in a child process, MemoryError -> SolverMemoryLimitError."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jobtrail.errors import SolverMemoryLimitError
from jobtrail.solver.limits import current_virtual_size_bytes, memory_guard, set_memory_limit


def test_memory_guard_converts_memory_error() -> None:
    with pytest.raises(SolverMemoryLimitError) as caught:
        with memory_guard(256 * 1024 * 1024):
            raise MemoryError
    assert caught.value.limit_bytes == 256 * 1024 * 1024
    assert "memory limit exceeded (256 MiB)" in str(caught.value)


def test_memory_guard_leaves_other_outcomes_alone() -> None:
    with memory_guard(1024):
        value = 1 + 1
    assert value == 2
    with pytest.raises(KeyError):
        with memory_guard(1024):
            raise KeyError("x")


def test_set_memory_limit_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        set_memory_limit(0)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or current_virtual_size_bytes() is None,
    reason="RLIMIT_AS relative to /proc/self/statm is Linux-only",
)
def test_set_memory_limit_caps_a_child_process() -> None:
    # Given a child process that caps itself at +200 MiB after importing the solver
    script = textwrap.dedent(
        """
        import resource
        from jobtrail.errors import SolverMemoryLimitError
        from jobtrail.solver import solve
        from jobtrail.solver.limits import memory_guard, set_memory_limit

        set_memory_limit(200 * 1024 * 1024)
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        assert soft != resource.RLIM_INFINITY
        assert solve("2 + 2").text == "4"
        try:
            with memory_guard(200 * 1024 * 1024):
                block = bytearray(2 * 1024 * 1024 * 1024)
        except SolverMemoryLimitError as exc:
            print("limited", exc.limit_bytes)
        else:
            print("not limited", len(block))
        """
    )
    # When it allocates 2 GiB
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    # Then the allocation fails as SolverMemoryLimitError, and the solver still worked
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"limited {200 * 1024 * 1024}"
