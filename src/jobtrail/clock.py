"""The one place jobtrail reads the time, and its unit conversions.

Invariant: every timestamp jobtrail stores is epoch seconds as a float
(`*_at` fields); Redis millisecond values are converted only here.
"""

from __future__ import annotations

import time

__all__ = ["monotonic_s", "now_s", "to_ms", "to_s"]


def now_s() -> float:
    """Return the wall-clock time as epoch seconds (float)."""
    return time.time()


def monotonic_s() -> float:
    """Return a monotonic clock reading in seconds, for durations and deadlines."""
    return time.monotonic()


def to_ms(seconds: float) -> int:
    """Convert seconds to whole milliseconds (rounded to nearest)."""
    return int(round(seconds * 1000))


def to_s(milliseconds: int | float) -> float:
    """Convert milliseconds to seconds."""
    return float(milliseconds) / 1000.0
