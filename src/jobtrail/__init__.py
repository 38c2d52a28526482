"""jobtrail: math-problem jobs on Celery + Redis in which no job vanishes unexplained.

Importing this package connects to nothing, builds no Celery app and
configures no logging: `Client` (jobtrail.client, which imports Celery and
the stores) is loaded on first access.

    from jobtrail import Client, JobFailed
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jobtrail.errors import JobFailed, JobtrailError

if TYPE_CHECKING:
    from jobtrail.client import Client

__version__ = "0.1.0"
__all__ = ["Client", "JobFailed", "JobtrailError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        return importlib.import_module("jobtrail.client").Client
    raise AttributeError(f"module 'jobtrail' has no attribute {name!r}")
