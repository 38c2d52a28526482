"""Client: jobtrail from Python code: submit, wait for the answer, read, trace, cancel.

A facade over the services (jobs, trace) for programs, the way the CLI is
one for people. It raises the errors the CLI reports (jobtrail.errors), plus
JobFailed and WaitTimeoutError from a wait.

Invariant: importing this module connects to nothing; a Client opens its
Redis connections (and the embedded server, when no URL is set) when
created, and closes them with close() or its `with` block.

    from jobtrail import Client

    with Client.from_settings() as client:
        job = client.submit("Solve x^2 - 5x + 6 = 0")
        print(job.wait(timeout=30)["text"])   # x = 2, x = 3
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jobtrail.config import Settings, load_settings
from jobtrail.connections import open_clients, wait_until_ready
from jobtrail.embedded import resolve_settings
from jobtrail.errors import JobCancelledError, JobFailed, WaitTimeoutError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import Job, JobStatus
from jobtrail.store import JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.trace import TraceResult, TraceSources, trace_job
from jobtrail.trace.gather import archive_lookup
from jobtrail.worker.app import create_celery_app

__all__ = ["DEFAULT_WAIT_S", "Client", "JobHandle", "answer_of"]

#: How long JobHandle.wait() and Client.wait() wait by default (seconds).
DEFAULT_WAIT_S = 60.0


def answer_of(job: Job) -> dict[str, Any]:
    """Return the answer payload of a finished job, as Celery's result holds it.

    Shape: {"kind": str, "text": str, "latex": str, "steps": [str, ...]}.

    Raises:
        JobCancelledError: The job was cancelled; ``reason`` says how.
        JobFailed: The job failed; ``reason`` is its error.
    """
    if job.status is JobStatus.CANCELLED:
        raise JobCancelledError(job.id, job.error)
    if job.status is JobStatus.FAILED or job.result is None:
        raise JobFailed(job.id, job.error or f"no answer ({job.status.value})",
                        status=job.status.value)
    return dict(job.result)


@dataclass(frozen=True, slots=True)
class JobHandle:
    """A submitted job: its id, and the client to ask about it."""

    id: str
    client: Client

    def get(self) -> Job:
        """Return the job's record as it is now (see Client.get)."""
        return self.client.get(self.id)

    @property
    def status(self) -> JobStatus:
        """The job's status now."""
        return self.get().status

    def wait(self, timeout: float = DEFAULT_WAIT_S) -> dict[str, Any]:
        """Wait until the job finishes and return its answer payload (see Client.wait)."""
        return self.client.wait(self.id, timeout=timeout)

    def trace(self) -> TraceResult:
        """Return the job's fate with its evidence (see Client.trace)."""
        return self.client.trace(self.id)

    def cancel(self, *, terminate: bool = False) -> Job:
        """Cancel the job (see Client.cancel)."""
        return self.client.cancel(self.id, terminate=terminate)


class Client:
    """Submits problems to jobtrail and reads their jobs back.

    Args:
        settings: The settings to use (URLs unset: the embedded server, which
            is started if needed). None reads them as the CLI does: the
            environment (JOBTRAIL_*) and the .env file.

    Raises:
        ConfigError: A setting is invalid.
        EmbeddedRedisError: The embedded server cannot start.
        RedisUnavailableError: The main DB does not answer within 3 s.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        resolved = resolve_settings(settings if settings is not None else load_settings())
        self.settings = resolved
        self._clients = open_clients(resolved)
        try:
            wait_until_ready(self._clients.main, self._clients.main_url, timeout_s=3)
        except BaseException:
            self._clients.close()
            raise
        self.keys = KeySpace(resolved.key_prefix, queue=resolved.queue)
        self.store = JobStore(self._clients.main, self.keys,
                              events_max_len=resolved.events_max_len)
        self.celery = create_celery_app(resolved)
        self.jobs = JobService(self.store, self.celery)
        self._archive: ArchiveStore | None = None

    @classmethod
    def from_settings(cls, env_file: str | Path | None = None) -> Client:
        """Return a Client on the settings of the environment (and *env_file*, a dotenv file).

        Raises:
            ConfigError, EmbeddedRedisError, RedisUnavailableError: as Client().
        """
        return cls(load_settings(env_file))

    def submit(self, problem: str) -> JobHandle:
        """Submit one problem; return its pending job.

        Raises:
            ProblemTooLargeError, ProblemParseError: The text is refused; nothing written.
            RedisUnavailableError: The main DB or the broker is down.
        """
        return JobHandle(self.jobs.submit(problem).id, self)

    def submit_many(self, problems: Sequence[str]) -> list[JobHandle]:
        """Submit several problems (all or none refused for their text); return their jobs.

        Raises:
            ProblemTooLargeError, ProblemParseError: A text is refused; nothing written.
            PartialSubmitError: Redis failed partway: ``accepted`` (ids that will run),
                ``failed`` (ids marked failed), ``uncertain`` (ids that may be pending without a
                message) and ``unsubmitted`` (how many never written);
                ``handles(exc.accepted)`` gives handles of the accepted ones.
            RedisUnavailableError: The main DB or the broker is down; nothing accepted.
        """
        return [JobHandle(job.id, self) for job in self.jobs.submit_many(list(problems))]

    def handles(self, job_ids: Sequence[str]) -> list[JobHandle]:
        """Handles of jobs by id (e.g. a PartialSubmitError's ``accepted``); nothing is read."""
        return [JobHandle(job_id, self) for job_id in job_ids]

    def get(self, job_id: str) -> Job:
        """Return the job's record.

        Raises:
            JobNotFoundError: No such job (client.trace(job_id) tells what became of it).
            RedisUnavailableError: The main DB is down.
        """
        return self.store.get(job_id)

    def wait(self, job_id: str, *, timeout: float = DEFAULT_WAIT_S) -> dict[str, Any]:
        """Wait up to *timeout* seconds for the job to finish; return its answer payload.

        Returns:
            {"kind": str, "text": str, "latex": str, "steps": [str, ...]}, the
            same dict `AsyncResult(job_id).get()` returns.

        Raises:
            JobFailed: The job failed; ``reason`` is its error.
            JobCancelledError: The job was cancelled (a JobFailed).
            WaitTimeoutError: Not finished within *timeout*; the job goes on.
            JobNotFoundError: No such job.
            RedisUnavailableError: The main DB is down.
        """
        job = self.jobs.wait(job_id, timeout)
        if job.status in (JobStatus.PENDING, JobStatus.PROCESSING):
            raise WaitTimeoutError(job_id, timeout)
        return answer_of(job)

    def trace(self, job_id: str) -> TraceResult:
        """Return the fate of *job_id* with the evidence of every store (as `jobtrail trace`).

        Raises:
            RedisUnavailableError: A Redis DB is down.
            ArchiveError: The archive cannot be read.
        """
        s = self.settings
        sources = TraceSources(main=self._clients.main, broker=self._clients.broker,
                               results=self._clients.results, keys=self.keys,
                               visibility_timeout_s=s.visibility_timeout_s,
                               result_expires_s=s.result_expires_s,
                               gone_after_s=s.gone_after_s,
                               find_archived=archive_lookup(self._open_archive))
        return trace_job(sources, job_id)

    def cancel(self, job_id: str, *, terminate: bool = False) -> Job:
        """Cancel a pending job, or with *terminate* a processing one (its task is killed).

        Raises:
            NotCancellableError: The job is finished, processing without
                *terminate*, or processing in a batch message (its pool process
                runs the whole batch); nothing changed.
            JobNotFoundError: No such job.
            RedisUnavailableError: The main DB or the broker is down.
        """
        return self.jobs.cancel(job_id, terminate=terminate)

    def _open_archive(self) -> ArchiveStore:
        if self._archive is None:
            self._archive = ArchiveStore(self.settings.effective_archive_url,
                                         table_prefix=self.settings.archive_table_prefix)
            self._archive.ensure_schema()
        return self._archive

    def close(self) -> None:
        """Close the Redis connections, the archive and the Celery app's pools."""
        self._clients.close()
        if self._archive is not None:
            self._archive.close()
        self.celery.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
