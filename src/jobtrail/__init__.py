"""jobtrail: math-problem jobs on Celery + Redis in which no job vanishes unexplained.

Importing this package connects to nothing, builds no Celery app and
configures no logging.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
