"""Every jobtrail exception crosses a process boundary intact (pool process -> parent)."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest
from celery.exceptions import Reject

from jobtrail import errors


def _classes() -> list[type[errors.JobtrailError]]:
    """Every exception class defined in jobtrail.errors, found by introspection."""
    found = [c for _, c in inspect.getmembers(errors, inspect.isclass)
             if issubclass(c, errors.JobtrailError) and c.__module__ == errors.__name__]
    assert len(found) >= 25  # the tree in the module docstring, and any class added later
    return found


def _sample_args(cls: type[Exception]) -> tuple[list[Any], dict[str, Any]]:
    """Arguments for *cls*'s constructor, built from its signature (every parameter set)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        value: Any = 7 if name.endswith(("_s", "_bytes", "attempts", "version", "position",
                                          "unsubmitted")) \
            else [f"{name}-1", f"{name}-2"] if name in ("accepted", "failed", "uncertain",
                                                         "allowed") \
            else f"{name}-value"
        if param.kind is param.KEYWORD_ONLY:
            kwargs[name] = value
        else:
            args.append(value)
    if not args and not kwargs:
        args = ["a message"]
    return args, kwargs


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_error_pickles_to_an_equal_exception(cls: type[errors.JobtrailError]) -> None:
    args, kwargs = _sample_args(cls)
    exc = cls(*args, **kwargs)

    back = pickle.loads(pickle.dumps(exc))

    assert type(back) is cls
    assert str(back) == str(exc) and back.args == exc.args
    assert vars(back) == vars(exc)
    for name in kwargs:
        assert getattr(back, name) == kwargs[name]


def test_redis_unavailable_inside_celery_reject_crosses_intact() -> None:
    # the exact object the issue saw kill a worker: Reject(RedisUnavailableError(...))
    reject = Reject(errors.RedisUnavailableError("main DB", "Connection refused"), requeue=True)

    back = pickle.loads(pickle.dumps(reject))

    assert isinstance(back.reason, errors.RedisUnavailableError)
    assert (back.reason.url, back.reason.reason, back.requeue) == (
        "main DB", "Connection refused", True)
    assert str(back.reason) == "Redis at main DB is unavailable: Connection refused"
