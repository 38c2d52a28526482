"""log_config(verbose, json): the logging dictConfig of jobtrail's entry points.

Invariant: only cli/main.py and worker/app.py (through Celery's setup_logging
signal) apply it; library modules only call logging.getLogger(__name__).
"""

from __future__ import annotations

from typing import Any

__all__ = ["log_config"]

_TEXT = "%(asctime)s %(levelname)s %(name)s %(processName)s: %(message)s"
_JSON = ('{"at": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", '
         '"process": "%(processName)s", "message": "%(message)s"}')


def log_config(verbose: bool = False, json: bool = False, level: str | None = None,
               ) -> dict[str, Any]:
    """Return a dictConfig: stderr, text or one-line JSON.

    Args:
        verbose: DEBUG for jobtrail and INFO for celery.
        json: One JSON object a line instead of text.
        level: jobtrail's level name when not *verbose* (default INFO).
    """
    level = "DEBUG" if verbose else (level or "INFO")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": _JSON if json else _TEXT}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default",
                       "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "jobtrail": {"level": level, "handlers": ["stderr"], "propagate": False},
            "celery": {"level": "INFO" if verbose else "WARNING", "handlers": ["stderr"],
                       "propagate": False},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }
