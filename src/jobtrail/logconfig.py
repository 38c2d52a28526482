"""log_config(verbose, json): the logging dictConfig of jobtrail's entry points.

Invariant: only cli/main.py and worker/app.py (through Celery's setup_logging
signal) apply it; library modules only call logging.getLogger(__name__).

One output per fact: a record logged with ``extra=REPORTED`` states a fact its
caller also returns (a dead worker's job taken back, in RecoveryReport). A
worker's log keeps it (its only channel); the CLI's console leaves it out
(``echo_reported=False``), since the command prints its report, unless -v.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["REPORTED", "ReportedFilter", "log_config"]

#: `extra=` of a record whose fact the caller also returns in what it reports.
REPORTED: dict[str, object] = {"reported": True}

_TEXT = "%(asctime)s %(levelname)s %(name)s %(processName)s: %(message)s"
_JSON = ('{"at": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", '
         '"process": "%(processName)s", "message": "%(message)s"}')


class ReportedFilter(logging.Filter):
    """Leave out the records logged with ``extra=REPORTED`` (their fact is printed anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for a REPORTED record, True for any other."""
        return not getattr(record, "reported", False)


def log_config(verbose: bool = False, json: bool = False, level: str | None = None, *,
               echo_reported: bool = True) -> dict[str, Any]:
    """Return a dictConfig: stderr, text or one-line JSON.

    Args:
        verbose: DEBUG for jobtrail and INFO for celery.
        json: One JSON object a line instead of text.
        level: jobtrail's level name when not *verbose* (default INFO).
        echo_reported: Also write the records logged with ``extra=REPORTED``
            (False: the CLI, whose commands print those facts; *verbose* writes them).
    """
    level = "DEBUG" if verbose else (level or "INFO")
    stderr: dict[str, Any] = {"class": "logging.StreamHandler", "formatter": "default",
                              "stream": "ext://sys.stderr"}
    filters: dict[str, Any] = {}
    if not (echo_reported or verbose):
        filters["not_reported"] = {"()": ReportedFilter}
        stderr["filters"] = ["not_reported"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": _JSON if json else _TEXT}},
        "filters": filters,
        "handlers": {"stderr": stderr},
        "loggers": {
            "jobtrail": {"level": level, "handlers": ["stderr"], "propagate": False},
            "celery": {"level": "INFO" if verbose else "WARNING", "handlers": ["stderr"],
                       "propagate": False},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }
