"""Benchmark: jobtrail's solver against plain SymPy on the solver corpus, judged by mpmath.

Run: .venv/bin/python bench/bench_solver.py [--timeout-s 20] [--kind integral] [--json]

Every problem of bench/solver_corpus.jsonl (made by bench/make_solver_corpus.py)
goes through ``jobtrail.solver.solve`` and through the plain-SymPy baseline of
bench/sympy_baseline.py, in the same run, each in its own worker process under
a per-problem time limit (the worker is killed and restarted past it) and a
memory cap (``jobtrail.solver.limits.set_memory_limit``). SymPy's cache is
cleared before every timed solve, so neither solver profits from the order of
the problems. Each answer text is judged against the reference by
bench/solver_check.py (mpmath only):

* correct: completed and right;
* silently wrong: completed and wrong, not flagged (also when its
  verification says ``verified``);
* failed cleanly: a ``ProblemError`` (or ``BaselineError``/SymPy exception for
  the baseline), a timeout, or a wrong answer flagged ``contradicted`` or
  ``unverified`` by the solver's own verification;
* crashed: an exception that is not a ``ProblemError`` (jobtrail only);
* unjudged: the checker cannot read the answer text (listed).

Verification cost: when ``jobtrail.solver.solve`` takes a ``verify`` keyword,
each problem is solved a second time with ``verify=False`` and the median of
the per-problem ratios (with / without - 1) is reported; otherwise ``n/a``.
Targets (issue 11): 0 silently wrong; jobtrail correct on >= 95% of the
problems the baseline gets right, and on more problems overall; verification
at most +30% of the median solve time.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.common import percentile, write_report  # noqa: E402
from bench.solver_check import judge  # noqa: E402

CORPUS = ROOT / "bench" / "solver_corpus.jsonl"
SOLVERS = ("jobtrail", "sympy")
FLAGGED = {"contradicted", "unverified"}


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The corpus's problems, one JSON object a line."""
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


# ---------------------------------------------------------------- worker side


def _verification(answer: Any) -> dict[str, Any] | None:
    found = getattr(answer, "verification", None)
    if found is None:
        return None
    keys = ("status", "method", "detail", "max_error", "elapsed_s")
    if isinstance(found, dict):
        return {k: found.get(k) for k in keys}
    return {k: getattr(found, k, None) for k in keys}


def _jobtrail(text: str, memory_bytes: int, verify: bool) -> dict[str, Any]:
    from jobtrail.errors import ProblemError
    from jobtrail.solver import solve
    from jobtrail.solver.limits import memory_guard

    mode = verify_switch()
    kwargs = {"verify": False} if mode == "keyword" and not verify else {}
    start = time.perf_counter()
    try:
        with memory_guard(memory_bytes), _verification_stubbed(mode == "stub" and not verify):
            answer = solve(text, **kwargs)
    except ProblemError as exc:
        return {"outcome": "failed", "error": f"{type(exc).__name__}: {exc}",
                "elapsed_s": time.perf_counter() - start}
    except Exception as exc:  # a bug in jobtrail: reported as crashed
        return {"outcome": "crashed", "error": f"{type(exc).__name__}: {exc}",
                "elapsed_s": time.perf_counter() - start}
    return {"outcome": "answered", "text": answer.text, "answer_kind": answer.kind,
            "verification": _verification(answer), "elapsed_s": time.perf_counter() - start}


@contextmanager
def _verification_stubbed(active: bool) -> Iterator[None]:
    """Replace ``jobtrail.solver.verify.run`` (wherever imported) by a no-op, for timing."""
    if not active:
        yield
        return
    import jobtrail.solver.verify as verify
    from jobtrail.solver.answer import Verification

    real = verify.run

    def stub(check: Any, *args: Any, **kwargs: Any) -> tuple[Any, None]:
        return Verification("unverified", "off", "benchmark: verification stubbed"), None

    patched = [m for name, m in list(sys.modules.items())
               if name.startswith("jobtrail.solver") and getattr(m, "run", None) is real]
    for module in patched:
        module.run = stub  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.run = real  # type: ignore[attr-defined]


def _baseline(text: str, kind: str) -> dict[str, Any]:
    from bench.sympy_baseline import solve

    start = time.perf_counter()
    try:
        answer = solve(text, kind)
    except MemoryError:
        return {"outcome": "failed", "error": "MemoryError",
                "elapsed_s": time.perf_counter() - start}
    except Exception as exc:  # BaselineError, or SymPy's own exception: a clean failure
        return {"outcome": "failed", "error": f"{type(exc).__name__}: {str(exc)[:200]}",
                "elapsed_s": time.perf_counter() - start}
    return {"outcome": "answered", "text": answer, "verification": None,
            "elapsed_s": time.perf_counter() - start}


@functools.cache
def verify_switch() -> str | None:
    """How verification can be turned off for timing, or None where it cannot.

    ``"keyword"``: ``jobtrail.solver.solve`` takes ``verify=False``;
    ``"stub"``: there is a ``jobtrail.solver.verify.run`` that every check
    goes through, replaced by a no-op for the unverified solve; None: no
    verification, or no way to turn it off (the cost is reported n/a).
    """
    import importlib.util

    from jobtrail.solver import solve

    if "verify" in inspect.signature(solve).parameters:
        return "keyword"
    if importlib.util.find_spec("jobtrail.solver.verify") is not None:
        import jobtrail.solver.verify as verify

        if callable(getattr(verify, "run", None)):
            return "stub"
    return None


def _serve(conn: Connection, solver: str, memory_bytes: int) -> None:
    import sympy  # type: ignore[import-untyped]

    import jobtrail.solver  # noqa: F401  (imported before the memory cap)
    from jobtrail.solver.limits import set_memory_limit

    set_memory_limit(memory_bytes)
    switch = verify_switch()
    while True:
        request = conn.recv()
        if request is None:
            return
        text, kind, verify = request
        sympy.core.cache.clear_cache()
        if solver == "sympy":
            conn.send(_baseline(text, kind))
        else:
            conn.send(_jobtrail(text, memory_bytes, verify or switch is None))


# ---------------------------------------------------------------- parent side


class Worker:
    """One solver's worker process, restarted after a timeout."""

    def __init__(self, solver: str, memory_bytes: int) -> None:
        self.solver, self.memory_bytes = solver, memory_bytes
        self.process: Any = None
        self.conn: Connection | None = None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, self.solver,
                                                            self.memory_bytes), daemon=True)
        self.process.start()
        self.conn = parent
        parent.send(("1 + 1", "arithmetic", True))  # imports happen outside any time limit
        if not parent.poll(300):
            raise RuntimeError(f"{self.solver} worker did not start")
        parent.recv()

    def ask(self, text: str, kind: str, timeout_s: float, verify: bool = True) -> dict[str, Any]:
        if self.process is None or not self.process.is_alive():
            self._start()
        assert self.conn is not None
        self.conn.send((text, kind, verify))
        if self.conn.poll(timeout_s):
            try:
                return dict(self.conn.recv())
            except EOFError:
                self.stop()
                return {"outcome": "failed", "error": "worker died", "elapsed_s": None}
        self.stop()
        return {"outcome": "timeout", "error": f"no answer in {timeout_s:g} s",
                "elapsed_s": None}

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
        self.process, self.conn = None, None


def categorize(result: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Add ``verdict`` (correct, silently_wrong, failed, crashed, unjudged) and ``detail``."""
    outcome = result["outcome"]
    if outcome in ("failed", "timeout"):
        return {**result, "verdict": "failed", "detail": result["error"]}
    if outcome == "crashed":
        return {**result, "verdict": "crashed", "detail": result["error"]}
    verdict, detail = judge(result["text"], reference)
    status = (result.get("verification") or {}).get("status")
    if verdict == "wrong":
        verdict = "failed" if status in FLAGGED else "silently_wrong"
        detail = f"{detail} (verification: {status or 'none'})"
    return {**result, "verdict": verdict, "detail": detail}


def run(problems: list[dict[str, Any]], timeout_s: float, memory_bytes: int,
        progress: bool) -> tuple[list[dict[str, Any]], str | None]:
    """Solve every problem with both solvers; return the rows and how verify was switched off."""
    workers = {name: Worker(name, memory_bytes) for name in SOLVERS}
    switch = verify_switch()
    rows = []
    try:
        for index, problem in enumerate(problems, 1):
            row: dict[str, Any] = {"id": problem["id"], "kind": problem["kind"],
                                   "text": problem["text"], "source": problem["source"]}
            for name, worker in workers.items():
                answer = worker.ask(problem["text"], problem["kind"], timeout_s)
                row[name] = categorize(answer, problem["reference"])
            if switch:
                bare = workers["jobtrail"].ask(problem["text"], problem["kind"], timeout_s,
                                               verify=False)
                row["jobtrail_unverified_s"] = bare.get("elapsed_s")
            rows.append(row)
            if progress:
                marks = " ".join(f"{n}={row[n]['verdict']}" for n in SOLVERS)
                print(f"[{index}/{len(problems)}] {problem['id']} {marks}", file=sys.stderr,
                      flush=True)
    finally:
        for worker in workers.values():
            worker.stop()
    return rows, switch


def summarize(rows: list[dict[str, Any]], switch: str | None) -> dict[str, Any]:
    """Counts, times, ratios and the silently-wrong lists of both solvers."""
    report: dict[str, Any] = {"problems": len(rows), "solvers": {}}
    for name in SOLVERS:
        verdicts: dict[str, int] = {v: 0 for v in ("correct", "silently_wrong", "failed",
                                                   "crashed", "unjudged")}
        statuses: dict[str, int] = {}
        for row in rows:
            verdicts[row[name]["verdict"]] += 1
            status = (row[name].get("verification") or {}).get("status")
            if status:
                statuses[status] = statuses.get(status, 0) + 1
        times = sorted(r[name]["elapsed_s"] for r in rows if r[name]["elapsed_s"] is not None)
        report["solvers"][name] = {
            **verdicts,
            "timeouts": sum(r[name]["outcome"] == "timeout" for r in rows),
            "silently_wrong_verified": sum(
                r[name]["verdict"] == "silently_wrong"
                and (r[name].get("verification") or {}).get("status") == "verified"
                for r in rows),
            "flagged_wrong": sum(r[name]["verdict"] == "failed" and r[name]["outcome"]
                                 == "answered" for r in rows),
            "verification_status": statuses,
            "median_ms": statistics.median(times) * 1000 if times else None,
            "p99_ms": percentile(times, 0.99) * 1000 if times else None,
            "by_kind": _by_kind(rows, name),
            "silently_wrong_list": [
                {"id": r["id"], "text": r["text"], "answer": r[name].get("text"),
                 "detail": r[name]["detail"], "source": r["source"]}
                for r in rows if r[name]["verdict"] == "silently_wrong"],
            "unjudged_list": [{"id": r["id"], "answer": r[name].get("text"),
                               "detail": r[name]["detail"]}
                              for r in rows if r[name]["verdict"] == "unjudged"],
            "crashed_list": [{"id": r["id"], "detail": r[name]["detail"]}
                             for r in rows if r[name]["verdict"] == "crashed"],
        }
    report["ratios"] = _ratios(rows, report, switch)
    return report


def _by_kind(rows: list[dict[str, Any]], name: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = out.setdefault(row["kind"], {})
        counts[row[name]["verdict"]] = counts.get(row[name]["verdict"], 0) + 1
    return out


def _ratios(rows: list[dict[str, Any]], report: dict[str, Any],
            switch: str | None) -> dict[str, Any]:
    jt, sp = report["solvers"]["jobtrail"], report["solvers"]["sympy"]
    base_right = [r for r in rows if r["sympy"]["verdict"] == "correct"]
    kept = sum(r["jobtrail"]["verdict"] == "correct" for r in base_right)
    overhead = None
    if switch:
        ratios = [r["jobtrail"]["elapsed_s"] / r["jobtrail_unverified_s"] - 1 for r in rows
                  if r["jobtrail"]["elapsed_s"] and r.get("jobtrail_unverified_s")]
        overhead = statistics.median(ratios) if ratios else None
    checks = [(r["jobtrail"]["verification"]["elapsed_s"], r["jobtrail"]["elapsed_s"])
              for r in rows if (r["jobtrail"].get("verification") or {}).get("elapsed_s")]
    shares = [c / (t - c) for c, t in checks if t > c]
    return {
        "verification_check_median": statistics.median(shares) if shares else None,
        "verification_check_total": (sum(c for c, _ in checks)
                                     / sum(t - c for c, t in checks) if checks else None),
        "correct_jobtrail_over_sympy": jt["correct"] / sp["correct"] if sp["correct"] else None,
        "jobtrail_correct_on_sympy_correct": kept / len(base_right) if base_right else None,
        "sympy_correct_count": len(base_right),
        "median_time_jobtrail_over_sympy": (jt["median_ms"] / sp["median_ms"]
                                            if jt["median_ms"] and sp["median_ms"] else None),
        "verification_overhead_median": overhead,
        "verification_switched_off_by": switch,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(report: dict[str, Any]) -> None:
    """The human-readable summary: counts, times, ratios, silently-wrong lists."""
    print(f"\nsolver corpus: {report['problems']} problems, workers' PYTHONHASHSEED="
          f"{report.get('hash_seed')}\n")
    header = ("solver", "correct", "silently wrong", "failed cleanly", "crashed", "unjudged",
              "timeouts", "median ms", "p99 ms")
    print(" | ".join(header))
    for name in SOLVERS:
        s = report["solvers"][name]
        print(" | ".join([name, str(s["correct"]), str(s["silently_wrong"]), str(s["failed"]),
                          str(s["crashed"]), str(s["unjudged"]), str(s["timeouts"]),
                          _fmt(s["median_ms"], ".1f"), _fmt(s["p99_ms"], ".0f")]))
    print("\nby kind (correct / silently wrong / failed), jobtrail vs sympy:")
    for kind in sorted(report["solvers"]["jobtrail"]["by_kind"]):
        cells = []
        for name in SOLVERS:
            k = report["solvers"][name]["by_kind"].get(kind, {})
            cells.append(f"{k.get('correct', 0)}/{k.get('silently_wrong', 0)}/"
                         f"{k.get('failed', 0)}")
        print(f"  {kind:10s} {cells[0]:>10s}   {cells[1]:>10s}")
    r = report["ratios"]
    print(f"\ncorrect, jobtrail / sympy: {_fmt(r['correct_jobtrail_over_sympy'], '.2f')}x "
          f"(target > 1)")
    print(f"jobtrail correct on the {r['sympy_correct_count']} problems sympy gets right: "
          f"{_fmt(r['jobtrail_correct_on_sympy_correct'], '.1%')} (target >= 95%)")
    print(f"median time, jobtrail / sympy: {_fmt(r['median_time_jobtrail_over_sympy'], '.2f')}x")
    overhead = r["verification_overhead_median"]
    how = {"keyword": "solve(verify=False)", "stub": "jobtrail.solver.verify.run stubbed"}
    print("verification cost, median per problem: "
          + ("n/a (no verification, or no way to turn it off)" if overhead is None
             else f"{overhead:+.1%} (target <= +30%; without it: "
                  f"{how[r['verification_switched_off_by']]})"))
    if r["verification_check_median"] is not None:
        print(f"verification's own time (Answer.verification.elapsed_s) over the rest of the "
              f"solve: median {r['verification_check_median']:+.1%}, total "
              f"{r['verification_check_total']:+.1%}")
    jt = report["solvers"]["jobtrail"]
    print(f"jobtrail verification states: "
          f"{jt['verification_status'] or 'none (no verification attribute)'}; wrong answers "
          f"flagged: {jt['flagged_wrong']}, wrong answers marked verified: "
          f"{jt['silently_wrong_verified']}")
    for name in SOLVERS:
        wrong = report["solvers"][name]["silently_wrong_list"]
        print(f"\n{name}: {len(wrong)} silently wrong")
        for w in wrong:
            print(f"  {w['id']} [{w['source']}] {w['text']!r} -> {w['answer']!r}: {w['detail']}")
        for u in report["solvers"][name]["unjudged_list"]:
            print(f"  unjudged {u['id']}: {u['answer']!r} ({u['detail']})")
        for c in report["solvers"][name]["crashed_list"]:
            print(f"  crashed {c['id']}: {c['detail']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--timeout-s", type=float, default=20.0,
                        help="per-problem time limit of each solver, in seconds")
    parser.add_argument("--memory-bytes", type=int, default=1 << 30,
                        help="address space each worker may add for solving")
    parser.add_argument("--kind", help="only the problems of this kind")
    parser.add_argument("--limit", type=int, help="only the first N problems")
    parser.add_argument("--hash-seed", type=int, default=None,
                        help="PYTHONHASHSEED of the worker processes (default: a random one, "
                             "reported; some SymPy results depend on it)")
    parser.add_argument("--json", action="store_true", help="print the JSON report only")
    parser.add_argument("--quiet", action="store_true", help="no per-problem progress")
    args = parser.parse_args()
    problems = load_corpus(args.corpus)
    if args.kind:
        problems = [p for p in problems if p["kind"] == args.kind]
    problems = problems[: args.limit] if args.limit else problems
    seed = args.hash_seed if args.hash_seed is not None else random.randrange(2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)  # spawned workers start with this environment
    started = time.perf_counter()
    rows, switch = run(problems, args.timeout_s, args.memory_bytes, not args.quiet)
    report = summarize(rows, switch)
    report.update({"hash_seed": seed, "timeout_s": args.timeout_s,
                   "wall_s": time.perf_counter() - started, "rows": rows})
    if args.json:
        write_report("bench_solver", report)
        return
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_solver.json").write_text(json.dumps(report, indent=2))
    print_table(report)


if __name__ == "__main__":
    main()
