"""wait_until: poll a predicate with a deadline instead of sleeping blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout_s: float = 10.0,
               interval_s: float = 0.05, message: str = "condition") -> T:
    """Return the first truthy value of *predicate*; raise AssertionError after *timeout_s*."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {message}")
        time.sleep(interval_s)
