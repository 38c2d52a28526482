"""jobtrail: math-problem jobs on Celery + Redis in which no job vanishes unexplained.

Importing this package connects to nothing, builds no Celery app and
configures no logging: `Client` (jobtrail.client, which imports Celery and
the stores) and the errors are loaded on first access. It imports nothing at
all itself (not even `typing`, 15 ms): `python -m jobtrail` and the console
script load it before their Ctrl-C handling exists (jobtrail.__main__).

    from jobtrail import Client, JobFailed
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (type checkers: True)
if TYPE_CHECKING:
    from typing import Any

    from jobtrail.client import Client
    from jobtrail.errors import JobFailed, JobtrailError

__version__ = "0.1.0"
__all__ = ["Client", "JobFailed", "JobtrailError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from jobtrail.client import Client  # noqa: PLC0415 - loaded on first access

        return Client
    if name in ("JobFailed", "JobtrailError"):
        from jobtrail import errors  # noqa: PLC0415 - loaded on first access

        return getattr(errors, name)
    raise AttributeError(f"module 'jobtrail' has no attribute {name!r}")
