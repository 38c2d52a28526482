"""Independent verification of every answer, by mpmath numerics, before a job completes.

Arithmetic with a rational answer is checked exactly instead, from the text
itself read by Python's ``ast`` over ``fractions.Fraction`` (``exact.py``).

Invariant: a check never uses the SymPy call that produced the answer (see
``numeric.py``); it runs within ``VERIFY_BUDGET_S`` seconds; any failure of
the check itself (an mpmath error, the budget spent, RecursionError) gives
``unverified`` with the reason, never an exception. A ``contradicted``
answer is never returned as such: ``settle()`` replaces it by the labelled
numeric value when the problem asked for a value and the value is
trustworthy, else raises ``AnswerContradictedError``.

Public API (what a kind solver calls):
    ``run(check, *args) -> (Verification, numeric | None)`` runs one check
    from ``equations``/``values`` under a fresh ``Budget``;
    ``settle(answer, verification, numeric) -> Answer`` attaches the
    verification or handles a contradiction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from jobtrail.clock import monotonic_s
from jobtrail.errors import AnswerContradictedError
from jobtrail.solver.answer import Answer, Verification
from jobtrail.solver.verify.approach import check_limit
from jobtrail.solver.verify.definite import check_definite_integral
from jobtrail.solver.verify.equations import check_equation, check_system
from jobtrail.solver.verify.evaluate import Unsupported
from jobtrail.solver.verify.numeric import Budget, OutOfTimeError
from jobtrail.solver.verify.values import (
    check_antiderivative,
    check_arithmetic,
    check_derivative,
    check_simplify,
)

__all__ = [
    "VERIFY_BUDGET_S",
    "check_antiderivative",
    "check_arithmetic",
    "check_definite_integral",
    "check_derivative",
    "check_equation",
    "check_limit",
    "check_simplify",
    "check_system",
    "run",
    "settle",
]

logger = logging.getLogger(__name__)

VERIFY_BUDGET_S = 2.0
"""Wall-clock allowance of one verification, seconds; past it the answer is unverified."""

_NUMERIC_NOTE = "(numeric; the symbolic result disagreed)"
# Exceptions from these top-level packages mean "the check could not run".
_OWN_PACKAGES = frozenset({"builtins", "sympy", "mpmath", "jobtrail"})


def run(check: Callable[..., Any], *args: Any, budget_s: float = VERIFY_BUDGET_S,
        **options: Any) -> tuple[Verification, str | None]:
    """Run *check* (a ``check_*`` function) with *args* and a fresh budget.

    Args:
        check: One of the ``check_*`` functions; its last positional parameter is the
            budget.
        *args: Its other arguments.
        budget_s: Time allowance, seconds.
        **options: Its keyword arguments (``divisors`` of ``check_equation``).

    Returns:
        ``(verification, numeric)``: *numeric* is the trustworthy numeric
        value as text, only for a contradicted value problem.
    """
    budget = Budget(budget_s)
    started_s = monotonic_s()
    name = check.__name__.removeprefix("check_")
    try:
        outcome = check(*args, budget, **options)
        verification, numeric = (outcome, None) if isinstance(outcome, Verification) else outcome
    except MemoryError:
        raise
    except OutOfTimeError as exc:
        verification, numeric = Verification("unverified", name, str(exc)), None
    except Unsupported as exc:
        verification, numeric = Verification(
            "unverified", name, f"no numeric counterpart for {exc} in the answer"), None
    except Exception as exc:  # the check itself failed: say so, never crash the solve
        if type(exc).__module__.partition(".")[0] not in _OWN_PACKAGES:
            raise  # the host's (e.g. Celery's SoftTimeLimitExceeded): not ours to absorb
        logger.info("verification failed check=%s error=%s: %s", check.__name__,
                    type(exc).__name__, exc)
        verification, numeric = Verification(
            "unverified", name, f"the check could not run ({type(exc).__name__})"), None
    return replace(verification, elapsed_s=monotonic_s() - started_s), numeric


def settle(answer: Answer, verification: Verification, numeric: str | None = None) -> Answer:
    """Attach *verification* to *answer*, or deal with a contradiction.

    Args:
        answer: The solver's answer.
        verification: Its verification.
        numeric: The trustworthy numeric value (text) when the problem asked
            for a value, else None.

    Returns:
        The answer with its verification; for a contradicted value problem
        with a trustworthy *numeric*, an answer ``"≈ <numeric> (numeric; the
        symbolic result disagreed)"`` whose verification says why.

    Raises:
        AnswerContradictedError: Contradicted and no trustworthy numeric
            value: the message gives both values.
    """
    if verification.status != "contradicted":
        return replace(answer, verification=verification)
    if numeric is None:
        raise AnswerContradictedError(
            f"the answer failed its independent check: {verification.detail}",
            kind=answer.kind, symbolic=answer.text, numeric=numeric or "")
    text = f"≈ {numeric} {_NUMERIC_NOTE}"
    latex = f"\\approx {numeric} \\quad \\text{{{_NUMERIC_NOTE}}}"
    steps = (*answer.steps, f"check: {verification.detail}", text)
    return Answer(answer.kind, text, latex, steps, verification)
