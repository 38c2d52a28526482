"""Pure-maths solver: problem text in, ``Answer`` out; SymPy only, no I/O.

Invariant: ``solve()`` never evaluates the text as Python (it is tokenized
against an allow-list and parsed by ``parse.py``) and raises nothing but
``ProblemError`` subclasses for any input string, with two deliberate
exceptions that are not about the input: ``MemoryError`` passes through so
``limits.memory_guard`` can report it as ``SolverMemoryLimitError``, and
exceptions raised into the solver by its host (e.g. Celery's
``SoftTimeLimitExceeded``, from outside SymPy and the standard library)
pass through so the worker can handle its own time limits.

Decisions:
    * ``1/0`` (and ``log(0)``, any undefined constant) raises
      ``UnsupportedProblemError("'1/0' is undefined (division by zero)")``.
    * A triangle failing the triangle inequality raises
      ``UnsupportedProblemError`` naming the failed inequality.
    * Periodic solution sets are given in general form, ``x = 2*pi*n,
      x = 2*pi*n + pi (n an integer)``, with the principal solutions in
      [0, 2*pi) as a step.
    * Polynomial and rational equations are solved over the complex numbers,
      others over the reals.
    * SymPy's numeric evaluation of functions is made precision-checked on
      import (``sympy_evalf.install``), so ``acos(7823207/7823209)`` is never
      0 and an answer does not depend on the process's hash seed.
    * When the parser read the text other than literally (a function without
      parentheses, scientific notation, letters split into a product, ...,
      see docs/problems.md), the answer's first step says so:
      ``"read as sin(2*x)"``, one line per expression.
"""

from __future__ import annotations

from jobtrail.errors import (
    ProblemError,
    ProblemParseError,
    ProblemTooLargeError,
    UnsupportedProblemError,
)
from jobtrail.solver.answer import KINDS, Answer
from jobtrail.solver.kinds import SOLVERS, detect_kind
from jobtrail.solver.parse import collect_readings
from jobtrail.solver.render import with_readings
from jobtrail.solver.sympy_evalf import install as _install_precise_evalf
from jobtrail.solver.text import MAX_PROBLEM_CHARS, normalize, rewritten_characters

__all__ = ["KINDS", "MAX_PROBLEM_CHARS", "Answer", "classify", "solve"]

# Before any SymPy object is built: SymPy's fallback evalf of functions loses
# the precision it claims, which makes facts like is_zero hash-seed dependent.
_install_precise_evalf()

# Exceptions from these top-level packages mean "SymPy could not do it".
_SOLVER_PACKAGES = frozenset({"builtins", "sympy", "mpmath"})


def _check_text(problem: object) -> str:
    if not isinstance(problem, str):
        raise ProblemParseError(f"problem must be text, not {type(problem).__name__}")
    return normalize(problem)


def classify(problem: str) -> str:
    """Return the kind of *problem* without solving it.

    Args:
        problem: Untrusted problem text.

    Returns:
        One of ``KINDS``: ``"arithmetic"``, ``"simplify"``, ``"equation"``,
        ``"system"``, ``"derivative"``, ``"integral"``, ``"limit"`` or
        ``"geometry"``.

    Raises:
        ProblemParseError: The text is empty ("empty problem") or unreadable
            ("could not parse near '...'").
        ProblemTooLargeError: The text is longer than ``MAX_PROBLEM_CHARS``
            or holds a literal over 1000 digits.
    """
    return detect_kind(_check_text(problem))


def _is_solver_failure(exc: Exception) -> bool:
    if isinstance(exc, MemoryError):
        return False
    return type(exc).__module__.partition(".")[0] in _SOLVER_PACKAGES


def solve(problem: str) -> Answer:
    """Solve *problem* exactly with SymPy.

    Args:
        problem: Untrusted problem text, at most ``MAX_PROBLEM_CHARS``
            characters, e.g. ``"solve x^2 - 5x + 6 = 0"``.

    Returns:
        Answer with ``kind``, plain ``text`` (e.g. ``"x = 2, x = 3"``),
        ``latex`` and short ``steps``, the first of them ``"read as ..."``
        when the text was not read literally.

    Raises:
        ProblemParseError: Empty or unreadable text, or a character, word or
            construct outside the allow-list.
        ProblemTooLargeError: Text longer than ``MAX_PROBLEM_CHARS``, a number,
            power tower, factorial or exponent beyond the size limits
            ("number too large: ..."), or nesting too deep.
        UnsupportedProblemError: Readable but not answerable: undefined
            (``1/0``), no closed form, impossible triangle, or SymPy failed.
    """
    text = _check_text(problem)
    kind = "problem"
    try:
        kind = detect_kind(text)
        with collect_readings(rewritten=bool(rewritten_characters(problem))) as readings:
            answer = SOLVERS[kind](text)
        return with_readings(answer, readings)
    except ProblemError:
        raise
    except RecursionError as exc:
        raise ProblemTooLargeError("expression too deeply nested to solve", what="nesting") from exc
    except Exception as exc:
        if not _is_solver_failure(exc):
            raise
        raise UnsupportedProblemError(
            f"could not solve this {kind} problem ({type(exc).__name__})", kind=kind
        ) from exc
