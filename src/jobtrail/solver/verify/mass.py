"""Locate the mass of an integrand by interval bisection, and bound the integral rigorously.

A quadrature sees an integrand only at its nodes: a peak narrower than their
spacing (exp(-10^6 (x - 1/3)^2) on [0, 1], exp(-(x - 100)^2) on the real
line) is missed, and the quadrature "converges" on a value that is wrong by
all of the peak's mass. Here the interval is bisected where interval
arithmetic (``bounds.py``) says the integrand may hold more than its samples
show, until every piece is either *resolved* (its rigorous bounds are close
to the range of its samples: no hidden peak) or *negligible* (its rigorous
bound times its width is below ``NEGLIGIBLE`` of the mass found); the
quadrature then runs over the resolved pieces, each a few times the width
of the features it holds.

Invariant: pure; each piece's bounds are rigorous (see ``bounds.py``), so the
enclosure ``sum(width * bounds)`` over a partition of a finite interval
contains the integral, whatever the quadrature does. Every loop checks the
``Budget``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath  # type: ignore[import-untyped]  # mpmath ships no py.typed
import sympy  # type: ignore[import-untyped]  # sympy 1.14 ships no py.typed

from jobtrail.solver.verify.bounds import IV_PREC, Bounds, PieceIntegral, iv_precision
from jobtrail.solver.verify.numeric import Budget, call, real_roots

__all__ = ["MAX_INTERVALS", "MAX_PIECES", "NEGLIGIBLE", "Located", "breaks", "locate",
           "refine"]

MAX_PIECES = 4000
"""Pieces bisected at most by one ``locate`` (or ``refine``) call."""

NEGLIGIBLE = mpmath.mpf(10) ** -24
"""A piece whose rigorous |integral| bound is below this fraction of the mass found is left out."""

_KINKS = (sympy.Abs, sympy.sign, sympy.Heaviside, sympy.floor, sympy.ceiling)
_SAMPLES = (0.0213, 0.1527, 0.4971, 0.8459, 0.9788)  # fractions of a piece; irrational-ish
_OUTWARD = 128  # doublings out from a finite end toward an infinite one: up to 2^128 away
_GROUP = 8  # a quadrature interval spans at most this many times its narrowest piece

MAX_INTERVALS = 64
"""Quadrature intervals at most over the located pieces (coarser groups past it)."""


def breaks(expr: sympy.Expr, variable: sympy.Symbol, low: float, high: float,
            budget: Budget) -> list[float]:
    """Points in (low, high) where *expr* is not smooth: kinks, jumps, poles, roots of 0.

    Args:
        expr: The integrand, a function of *variable* alone.
        variable: Its variable.
        low: Left end of the window searched (float).
        high: Right end (float).
        budget: Time allowance.

    Returns:
        The points, ascending (float accuracy).

    Raises:
        OutOfTimeError: The budget ran out.
    """
    pieces: list[sympy.Expr] = []
    for atom in expr.atoms(*_KINKS, sympy.Max, sympy.Min, sympy.Piecewise):
        if isinstance(atom, (sympy.Max, sympy.Min)):
            pieces += [a - b for a in atom.args for b in atom.args if a != b]
        elif isinstance(atom, sympy.Piecewise):
            for _, cond in atom.args:
                pieces += [r.lhs - r.rhs for r in cond.atoms(sympy.core.relational.Relational)]
        else:
            pieces.append(atom.args[0])
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Pow) and (sub.exp.is_negative or (
                sub.exp.is_Rational and not sub.exp.is_Integer)):
            pieces.append(sub.base)  # a pole, or a root's kink: sqrt(x^2) = |x|
        elif isinstance(sub, (sympy.tan, sympy.sec, sympy.cot, sympy.csc, sympy.log)):
            pieces.append(sub.args[0] if not isinstance(sub, (sympy.tan, sympy.sec))
                          else sympy.cos(sub.args[0]))
    points: set[float] = set()
    for piece in pieces:
        if piece.free_symbols == {variable}:
            points.update(r for r in real_roots(piece, variable, (low, high), budget, 801)
                          if low < r < high)
    return sorted(points)


@dataclass(slots=True)
class _Piece:
    lo: Any
    hi: Any
    bounds: tuple[Any, Any] | None  # rigorous (low, high) of f on [lo, hi]; None: unbounded
    samples: tuple[Any, ...] | None  # f at _SAMPLES (30 digits); None if undefined at one
    seconded: bool = False  # its parent was resolved too (a sample on a spike is not enough)

    @property
    def width(self) -> Any:
        return self.hi - self.lo

    def weight(self) -> Any:
        """Rigorous bound of |integral over the piece| (inf when unbounded or infinite)."""
        if self.bounds is None or not mpmath.isfinite(self.width):
            return mpmath.inf
        return self.width * max(abs(self.bounds[0]), abs(self.bounds[1]))

    def spread(self) -> Any:
        """Width of the piece's enclosure of the integral (inf when unbounded or infinite)."""
        if self.bounds is None or not mpmath.isfinite(self.width):
            return mpmath.inf
        return self.width * (self.bounds[1] - self.bounds[0])

    def resolved(self) -> bool:
        """True if the rigorous bounds stay within the samples' range widened by
        that range plus a quarter of their size: no peak or dip hides between them."""
        if self.bounds is None or self.samples is None or not mpmath.isfinite(self.width):
            return False
        low, high = min(self.samples), max(self.samples)
        slack = (high - low) + max(abs(low), abs(high)) / 4
        return bool(self.bounds[0] >= low - slack and self.bounds[1] <= high + slack)

    def sampled_mass(self) -> Any:
        return self.width * max(abs(s) for s in self.samples) if self.samples else 0


@dataclass(frozen=True, slots=True)
class Located:
    """Where an integrand's mass lies on an interval.

    Attributes:
        runs: Quadrature node lists, ascending, one per run of kept pieces
            (the pieces between runs were negligible).
        skipped: Rigorous bound of |integral| over the pieces left out.
        enclosure: Rigorous ``(low, high)`` of the whole integral; None when
            the interval is infinite or the integrand unbounded on a piece.
        complete: True if every piece ended resolved or negligible (neither
            the piece limit, the narrowest width nor an unbounded piece stopped it).
        pieces: How many pieces the interval ended in.
        partition: Every final piece as ``(lo, hi, low, high)``; low/high None if unbounded.
        fixed: The given ends and non-smooth points, kept as quadrature nodes.
    """

    runs: tuple[tuple[Any, ...], ...]
    skipped: Any
    enclosure: tuple[Any, Any] | None
    complete: bool
    pieces: int
    partition: tuple[tuple[Any, Any, Any, Any], ...]
    fixed: tuple[Any, ...]


def _measure(bounds: Bounds, f: Callable[..., Any], lo: Any, hi: Any,
             sample: bool = True, seconded: bool = False) -> _Piece:
    box = bounds(lo, hi) if mpmath.isfinite(hi - lo) else None
    samples: list[Any] = []
    if sample and mpmath.isfinite(hi - lo):
        with mpmath.workdps(30):
            for fraction in _SAMPLES:
                value = call(f, lo + (hi - lo) * mpmath.mpf(fraction))
                if value is None or isinstance(value, mpmath.mpc):
                    break
                samples.append(value)
    defined = tuple(samples) if len(samples) == len(_SAMPLES) else None
    return _Piece(lo, hi, box, defined, seconded)


def _initial(ends: Sequence[Any]) -> list[tuple[Any, Any]]:
    """The first pieces: between the given ends, and doubling out toward an infinite end."""
    spans: list[tuple[Any, Any]] = []
    for u, v in itertools.pairwise(ends):
        if mpmath.isfinite(u) and mpmath.isfinite(v):
            spans.append((u, v))
            continue
        if not mpmath.isfinite(u) and not mpmath.isfinite(v):
            spans += _initial([u, mpmath.mpf(0), v])
            continue
        anchor, sign = (u, 1) if mpmath.isfinite(u) else (v, -1)
        steps = [anchor] + [anchor + sign * mpmath.mpf(2) ** k for k in range(_OUTWARD + 1)]
        steps.append(sign * mpmath.inf)
        ordered = steps if sign > 0 else steps[::-1]
        spans += list(itertools.pairwise(ordered))
    return spans


def locate(bounds: Bounds, f: Callable[..., Any], ends: Sequence[Any], budget: Budget,
           max_pieces: int = MAX_PIECES) -> Located:
    """Bisect [ends[0], ends[-1]] until every piece is resolved or negligible.

    Pieces are taken largest rigorous |integral| bound first; a piece is
    kept when it and its parent are both resolved (a sample that happens to
    land on a narrow spike resolves one piece, not both halves of it),
    others are halved. The search stops when the largest bound left is
    below ``NEGLIGIBLE`` times the mass of the kept pieces (those left are
    then skipped), after *max_pieces* halvings, or when *budget* is spent
    (it never raises: what is left is then integrated, unbounded).

    Args:
        bounds: Rigorous bounds of the integrand (``bounds.interval_fn``).
        f: The integrand as an mpmath callable of one variable.
        ends: Ascending mpmath reals: the interval's ends with every
            non-smooth point between them; the first may be ``-inf``, the
            last ``+inf``.
        budget: Time allowance.
        max_pieces: Halvings allowed.

    Returns:
        The ``Located`` pieces: quadrature runs, skipped bound, enclosure.
    """
    heap: list[tuple[Any, int, _Piece]] = []
    kept: list[_Piece] = []
    counter = itertools.count()
    complete = True
    for lo, hi in _initial(ends):
        piece = _measure(bounds, f, lo, hi)
        if not mpmath.isfinite(piece.width):
            kept.append(piece)  # an infinite tail: integrated, never bounded
            complete = False
            continue
        heapq.heappush(heap, (-piece.weight(), next(counter), piece))
    mass = mpmath.mpf(0)
    for _ in range(max_pieces):
        if not heap:
            break
        if budget.expired():
            complete = False
            break
        negative, _, piece = heap[0]
        if mass > 0 and -negative <= NEGLIGIBLE * mass:
            break
        heapq.heappop(heap)
        resolved = piece.resolved()
        if resolved and piece.seconded:
            kept.append(piece)
            mass += piece.sampled_mass()
            continue
        middle = _middle(piece.lo, piece.hi)
        if piece.width <= mpmath.mpf(2) ** -80 * max(
                1, abs(piece.lo), abs(piece.hi)):
            kept.append(piece)  # as narrow as it gets: a singular point, or noise
            complete = complete and resolved
            continue
        for lo, hi in ((piece.lo, middle), (middle, piece.hi)):
            child = _measure(bounds, f, lo, hi, seconded=resolved)
            heapq.heappush(heap, (-child.weight(), next(counter), child))
    else:
        complete = False
    left = [piece for _, _, piece in heap]
    if left and not (mass > 0 and -heap[0][0] <= NEGLIGIBLE * mass):
        kept += left  # stopped by the piece limit: what is left is integrated too
        complete, left = False, []
    return _result(kept, left, complete, ends)


def _middle(lo: Any, hi: Any) -> Any:
    """The exact midpoint of two mpmath reals (one more bit than the finer of them)."""
    return mpmath.ldexp(mpmath.fadd(lo, hi, exact=True), -1)


def _result(kept: list[_Piece], left: list[_Piece], complete: bool, fixed: Sequence[Any],
            enclosures: Sequence[tuple[Any, Any] | None] | None = None) -> Located:
    """A ``Located`` from the final pieces; *enclosures*, one a piece of *kept* (in order),
    replace the first-order ``width * bounds`` when given."""
    skipped = mpmath.fsum(piece.weight() for piece in left)
    everything = sorted(kept + left, key=lambda p: p.lo)
    if enclosures is None:
        enclosures = [_first_order(p) for p in everything]
    else:
        enclosures = [e for _, e in sorted(zip((p.lo for p in kept), enclosures,
                                               strict=True), key=lambda pair: pair[0])]
    enclosure = _sum(enclosures)
    runs = _runs(sorted(kept, key=lambda p: p.lo), set(fixed))
    partition = tuple((p.lo, p.hi, *(p.bounds or (None, None))) for p in everything)
    return Located(runs, skipped, enclosure, complete and enclosure is not None,
                   len(everything), partition, tuple(fixed))


def _first_order(piece: _Piece) -> tuple[Any, Any] | None:
    """Rigorous (low, high) of the integral over *piece*: width times its bounds."""
    if piece.bounds is None or not mpmath.isfinite(piece.width):
        return None
    iv = mpmath.iv
    with iv_precision():
        low, high = ((iv.mpf(piece.hi) - iv.mpf(piece.lo)) * iv.mpf(piece.bounds))._mpi_
    with mpmath.workprec(IV_PREC):  # exactly: 53 bits would round them to nearest
        return mpmath.mpf(low), mpmath.mpf(high)


def _sum(enclosures: Sequence[tuple[Any, Any] | None]) -> tuple[Any, Any] | None:
    """The rigorous sum of *enclosures* (outward rounded), None if one is missing."""
    iv = mpmath.iv
    with iv_precision():
        total = iv.mpf(0)
        for box in enclosures:
            if box is None:
                return None
            total += iv.mpf(box)
        low, high = total._mpi_
    with mpmath.workprec(IV_PREC):  # exactly: 53 bits would round them to nearest
        return mpmath.mpf(low), mpmath.mpf(high)


def _runs(kept: Sequence[_Piece], fixed: set[Any]) -> tuple[tuple[Any, ...], ...]:
    """Node lists over consecutive kept pieces, grouped up to _GROUP times the narrowest;
    a *fixed* point (an end, a kink, a pole) stays a node."""
    runs: list[tuple[Any, ...]] = []
    nodes: list[Any] = []
    narrowest = mpmath.inf
    for piece in kept:
        if nodes and piece.lo != nodes[-1]:
            runs.append(tuple(nodes))
            nodes = []
        if not nodes:
            nodes, narrowest = [piece.lo, piece.hi], piece.width
            continue
        narrowest = min(narrowest, piece.width)
        if mpmath.isfinite(piece.hi) and piece.lo not in fixed and (
                piece.hi - nodes[-2] <= _GROUP * narrowest):
            nodes[-1] = piece.hi  # widen the last quadrature interval
        else:
            nodes.append(piece.hi)
            narrowest = piece.width
    if nodes:
        runs.append(tuple(nodes))
    while sum(len(run) - 1 for run in runs) > MAX_INTERVALS:
        thinner = [_thin(run, fixed) for run in runs]
        if thinner == runs:
            break
        runs = thinner
    return tuple(runs)


def _thin(run: tuple[Any, ...], fixed: set[Any]) -> tuple[Any, ...]:
    """*run* without every second inner node that is not *fixed* (halves its intervals)."""
    kept, drop = [run[0]], False
    for node in run[1:-1]:
        if node in fixed or not drop:
            kept.append(node)
        drop = not drop and node not in fixed
    return (*kept, run[-1])


def refine(integral: PieceIntegral, located: Located, width: Any, budget: Budget,
           max_pieces: int = MAX_PIECES) -> Located:
    """Halve the pieces of *located*, widest rigorous enclosure first, to *width* in all.

    Each piece's enclosure is ``integral(lo, hi)`` (first order intersected
    with Simpson's rule and its remainder, ``bounds.PieceIntegral``). Used
    to decide between two values (an enclosure narrower than their distance
    holds at most one of them) and to certify the digits of a value.

    Args:
        integral: Rigorous bounds of the integral over one piece.
        located: A ``locate`` result over a finite interval.
        width: Target width of the whole enclosure (absolute).
        budget: Time allowance (spent, it stops the halving; it never raises).
        max_pieces: Halvings allowed.

    Returns:
        A ``Located`` over the refined partition (every piece kept, none
        skipped) whose enclosure is the sum of the pieces' enclosures.
    """
    heap: list[tuple[Any, int, _Piece, tuple[Any, Any] | None]] = []
    counter = itertools.count()
    total = mpmath.mpf(0)

    def push(piece: _Piece) -> None:
        nonlocal total
        box = integral(piece.lo, piece.hi)
        spread = mpmath.inf if box is None else box[1] - box[0]
        total += spread
        heapq.heappush(heap, (-spread, next(counter), piece, box))

    for lo, hi, low, high in located.partition:
        push(_Piece(lo, hi, None if low is None else (low, high), None))
    for _ in range(max_pieces):
        if total <= width or not mpmath.isfinite(total) or budget.expired():
            break
        negative, _, piece, _ = heapq.heappop(heap)
        total += negative
        middle = _middle(piece.lo, piece.hi)
        for lo, hi in ((piece.lo, middle), (middle, piece.hi)):
            push(_Piece(lo, hi, None, None))
    pieces = [entry[2] for entry in heap]
    return _result(pieces, [], located.complete, located.fixed, [entry[3] for entry in heap])
