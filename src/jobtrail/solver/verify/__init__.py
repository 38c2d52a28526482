"""Independent verification of every answer, by mpmath numerics, before a job completes.

Arithmetic with a rational answer is checked exactly instead, from the text
itself read by Python's ``ast`` over ``fractions.Fraction`` (``exact.py``).

Invariant: a check never uses the SymPy call that produced the answer (see
``numeric.py``); it runs within ``VERIFY_BUDGET_S`` seconds; any failure of
the check itself (an mpmath error, the budget spent, RecursionError) gives
``unverified`` with the reason, never an exception. A ``contradicted``
answer is never returned as such: ``settle()`` replaces it by the labelled
numeric value when the problem asked for a value and the check's estimate
is robust, else raises ``AnswerContradictedError``.

Public API (what a kind solver calls):
    ``run(check, *args) -> (Verification, Estimate | None)`` runs one check
    from ``equations``/``values``/``definite`` under a fresh ``Budget``;
    ``settle(answer, verification, estimate) -> Answer`` attaches the
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
from jobtrail.solver.verify.numeric import Budget, Estimate, OutOfTimeError
from jobtrail.solver.verify.values import (
    check_antiderivative,
    check_arithmetic,
    check_derivative,
    check_simplify,
)

__all__ = [
    "VERIFY_BUDGET_S",
    "Estimate",
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
        **options: Any) -> tuple[Verification, Estimate | None]:
    """Run *check* (a ``check_*`` function) with *args* and a fresh budget.

    Args:
        check: One of the ``check_*`` functions; its last positional parameter is the
            budget.
        *args: Its other arguments.
        budget_s: Time allowance, seconds.
        **options: Its keyword arguments (``divisors`` of ``check_equation``).

    Returns:
        ``(verification, estimate)``: *estimate* is the check's own value,
        only for a contradicted value problem.
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


def settle(answer: Answer, verification: Verification,
           estimate: Estimate | None = None) -> Answer:
    """Attach *verification* to *answer*, or deal with a contradiction.

    A contradicted answer never completes as it is. It is replaced by the
    check's value only when that value is robust (``Estimate.robust``): the
    check proved the symbolic value wrong, and proved every digit of its own
    value, by means that cannot miss part of the problem. For a definite
    integral that is a rigorous interval-arithmetic enclosure of the
    integral over a partition of the whole (finite) interval which excludes
    the symbolic value and whose two ends round to the same decimal of at
    least ``located.MIN_DIGITS`` significant digits, the value given
    (``located.estimate``); a quadrature, however well it converged, never
    suffices, since its nodes can step over a narrow peak. For arithmetic it
    is the input's value settled at two precisions (``check_arithmetic``).
    Any other contradiction fails the job, and its message gives both
    values: a number that might be wrong is never given as the answer.

    Args:
        answer: The solver's answer.
        verification: Its verification.
        estimate: The check's own value when the problem asked for a value,
            else None.

    Returns:
        The answer with its verification; for a contradicted value problem
        with a robust *estimate*, an answer ``"≈ <estimate> (numeric; the
        symbolic result disagreed)"`` whose verification says why.

    Raises:
        AnswerContradictedError: Contradicted and no robust estimate: the
            message gives both values (and why the estimate is not given).
    """
    if verification.status != "contradicted":
        return replace(answer, verification=verification)
    if estimate is None or not estimate.robust:
        message = f"the answer failed its independent check: {verification.detail}"
        if estimate is not None:
            message += (f"; the numeric value ≈ {estimate.text} is not given instead: "
                        f"{estimate.basis}")
        raise AnswerContradictedError(message, kind=answer.kind, symbolic=answer.text,
                                      numeric=estimate.text if estimate else "")
    text = f"≈ {estimate.text} {_NUMERIC_NOTE}"
    latex = f"\\approx {estimate.text} \\quad \\text{{{_NUMERIC_NOTE}}}"
    steps = (*answer.steps, f"check: {verification.detail}", f"robust: {estimate.basis}", text)
    return Answer(answer.kind, text, latex, steps, verification)
