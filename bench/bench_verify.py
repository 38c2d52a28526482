"""Cost of answer verification: solve ~50 typical problems, time the check apart.

Run: ``.venv/bin/python bench/bench_verify.py`` (each problem solved once in
a fresh process state, as a worker meets it; SymPy's cache would flatter
repeated solves). Prints the median solve time without and with
verification (``Answer.verification.elapsed_s`` is the check's own time),
the median per-problem ratio and the total ratio; the target is at most 30 %.
"""

from __future__ import annotations

import statistics
import time

from jobtrail.errors import ProblemError
from jobtrail.solver import solve

PROBLEMS: tuple[str, ...] = (
    '2^10 / 4',
    'evaluate sqrt(8) + sqrt(18)',
    'what is 3/4 + 5/6',
    'sin(pi/6) + cos(pi/3)',
    'exp(pi*sqrt(163)) - 640320^3 - 744',
    'log(8)/log(2)',
    '10!',
    'simplify (x^2 - 1)/(x - 1)',
    'expand (x + 2)^3',
    'factor x^2 - 5x + 6',
    'simplify sin(x)^2 + cos(x)^2',
    'simplify (x^3 - 8)/(x - 2)',
    'factor x^4 - 16',
    'solve x^2 - 5x + 6 = 0',
    'solve 2x + 3 = 11',
    'solve x^2 = -1',
    'solve x^3 - 6x^2 + 11x - 6 = 0',
    'solve (x - 1)/(x + 2) = 3',
    'solve sin(x) = 1/2',
    'solve cos(x) = 0',
    'solve tan(x) = 1',
    'solve exp(x) = 5',
    'solve log(x) = 2',
    'solve sqrt(x + 3) = x - 3',
    'solve x^4 - 5x^2 + 4 = 0',
    'solve 2x + y = 5, x - y = 1',
    'solve x + y + z = 6, x - y = 0, 2x + z = 7',
    'solve x + y = 2, 2x + 2y = 4',
    'solve x^2 + y^2 = 25, x + y = 7',
    'derivative of x^3 sin(x)',
    'd/dx exp(2x) cos(x)',
    'differentiate ln(x^2 + 1)',
    'second derivative of x^5',
    'd/dx sqrt(x) / (1 + x)',
    'derivative of tan(x)',
    'integrate x e^x dx',
    'integrate sin(x)^2 dx',
    'integrate 1/(1 + x^2) dx',
    'integrate x^2 from 0 to 3',
    'integral of sin(x) from 0 to pi',
    'integrate exp(-x) from 0 to oo',
    'integrate 1/x^2 from 1 to oo',
    'integrate ln(x) dx',
    'integrate abs(x) from -1 to 2',
    'integrate x*cos(x) dx',
    'lim x->0 sin(x)/x',
    'limit of (1 + 1/n)^n as n -> infinity',
    'lim x->0+ 1/x',
    'lim x->2 (x^2 - 4)/(x - 2)',
    'lim x->oo (3x^2 + 1)/(x^2 - 5)',
    'lim x->0 (1 - cos(x))/x^2',
    'limit of x*sin(1/x) as x -> 0',
    'lim x->0 1/x',
)


def main() -> None:
    """Solve each problem once and print the verification overhead."""
    solve("integrate x from 0 to 1")  # import and warm-up
    solve_s: list[float] = []
    check_s: list[float] = []
    for problem in PROBLEMS:
        started = time.perf_counter()
        try:
            answer = solve(problem)
        except ProblemError:
            continue
        total = time.perf_counter() - started
        solve_s.append(total - answer.verification.elapsed_s)
        check_s.append(answer.verification.elapsed_s)
    with_s = [a + b for a, b in zip(solve_s, check_s, strict=True)]
    ratios = [b / a for a, b in zip(solve_s, check_s, strict=True)]
    print(f"problems: {len(solve_s)}")
    print(f"median solve without verification: {statistics.median(solve_s) * 1e3:.2f} ms")
    print(f"median solve with verification:    {statistics.median(with_s) * 1e3:.2f} ms "
          f"(+{100 * (statistics.median(with_s) / statistics.median(solve_s) - 1):.1f} %)")
    print(f"median per-problem verification / solve: {100 * statistics.median(ratios):.1f} %")
    print(f"total verification / total solve: {100 * sum(check_s) / sum(solve_s):.1f} %")


if __name__ == "__main__":
    main()
