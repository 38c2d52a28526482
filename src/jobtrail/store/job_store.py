"""JobStore: job records in the main DB (`job:<id>`, `jobs`, `jobs:<status>`).

Invariant: every write is one atomic Lua step that changes the hash, the
indexes and the events stream together, checked against models.TRANSITIONS;
a refused change writes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import redis

from jobtrail.clock import now_s
from jobtrail.connections import REDIS_ERRORS, wait_for_replicas, wrap_redis_error
from jobtrail.errors import (
    AttemptsExhaustedError,
    ConcurrentUpdateError,
    InvalidTransitionError,
    JobLeftBatchError,
    JobNotFoundError,
    JobPurgedError,
    JobtrailError,
    MalformedRecordError,
    RedisCommandError,
    RedisUnavailableError,
)
from jobtrail.keys import KeySpace
from jobtrail.models import (
    LATENCY_BOUNDS_S,
    RECREATED_REASON,
    TRANSITION_EVENTS,
    EventType,
    Job,
    JobStatus,
    allowed_sources,
)
from jobtrail.store.codec import decode_job, dump_result
from jobtrail.store.node_stats import NODE_STATS_TTL_S, NodeCount
from jobtrail.store.scripts import load_script

__all__ = [
    "STATS_MINUTE_TTL_S",
    "JobStore",
    "PendingFinish",
    "StartTicket",
    "completion_fields",
    "failure_fields",
    "give_up_reason",
    "new_job_id",
]

#: Per-minute statistics are kept 8 days (the dashboard shows up to 7).
STATS_MINUTE_TTL_S = 8 * 86_400
LATENCY_BOUNDS_CSV = ",".join(repr(b) for b in LATENCY_BOUNDS_S)

logger = logging.getLogger(__name__)


#: Outcomes whose processing time the latency histogram counts (a cancel is no solve).
_TIMED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})


def new_job_id() -> str:
    """Return a fresh job id (a UUID4 string, also used as the Celery task id)."""
    return str(uuid.uuid4())


def _pairs(mapping: Mapping[str, str]) -> list[str]:
    return [item for pair in mapping.items() for item in pair]


def give_up_reason(attempts: int, last_loss: str = "") -> str:
    """The `error` of a job failed after *attempts* deliveries each lost their worker
    ("gave up after 3 attempts: the worker was lost each time"; one: "1 attempt"),
    naming the last loss's cause when its worker recorded one (JobStore.note_lost):
    "... each time (pool process exited by signal 9 (SIGKILL))"."""
    reason = ("gave up after 1 attempt: the worker was lost" if attempts == 1
              else f"gave up after {attempts} attempts: the worker was lost each time")
    return f"{reason} ({last_loss})" if last_loss else reason


def completion_fields(result: dict[str, Any], kind: str = "") -> dict[str, str]:
    """Return the hash fields a completed job gets: result (JSON), finished_at, kind."""
    fields = {"result": dump_result(result), "finished_at": repr(now_s()), "error": ""}
    if kind:
        fields["kind"] = kind
    return fields


def failure_fields(reason: str, kind: str = "") -> dict[str, str]:
    """Return the hash fields a failed job gets: error, finished_at, kind."""
    fields = {"error": reason, "finished_at": repr(now_s())}
    if kind:
        fields["kind"] = kind
    return fields


@dataclass(slots=True)
class StartTicket:
    """A start sent by JobStore.send_start() whose reply is still on *conn*.

    *keys* and *args* are the start's script call, kept so that it can be
    sent again (a server that lost its scripts); *started* is the start's
    outcome once read_start() read it.
    """

    job_id: str
    token: str
    conn: Any
    keys: list[str]
    args: list[str]
    started: Job | JobtrailError | None = None
    #: For tickets that share *conn* (a batch's chain, JobStore.send_finish *then_start*):
    #: one box, [how many of them have not read their replies yet]; the connection goes
    #: back to the pool when the last one has. None: *conn* is this ticket's alone.
    share: list[int] | None = None


@dataclass(slots=True)
class PendingFinish:
    """A finish sent by JobStore.send_finish() whose replies are still on its ticket's
    connection; *keys* and *args* are the finish's script call (sent again after a
    NOSCRIPT), *to* its target status."""

    ticket: StartTicket
    to: JobStatus
    keys: list[str]
    args: list[str]
    #: The start sent in the same write (send_finish *then_start*), else None.
    next_ticket: StartTicket | None = None


def _entries(ids: Sequence[str], rows: list[dict[str, str]]) -> list[tuple[str, Job | None]]:
    """Decode the records of a listing: (id, Job), or (id, None) for an index entry whose
    record is gone; malformed records are left out (and logged)."""
    entries: list[tuple[str, Job | None]] = []
    for job_id, fields in zip(ids, rows, strict=True):
        if not fields:
            entries.append((job_id, None))
            continue
        try:
            entries.append((job_id, decode_job(fields)))
        except MalformedRecordError as exc:
            logger.warning("malformed record left out of a listing job_id=%s (%s)", job_id,
                           exc.reason)
    return entries


def _readable(entries: list[tuple[str, Job | None]]) -> list[Job]:
    return [job for _, job in entries if job is not None]


class JobStore:
    """Job records in the main DB.

    Args:
        client: redis-py client of the main DB (decode_responses=True).
        keys: Key builder (carries the key prefix).
        events_max_len: Approximate cap of each job's events stream; 0 = none.
    """

    def __init__(self, client: redis.Redis, keys: KeySpace, *, events_max_len: int = 1000) -> None:
        self.client = client
        self.keys = keys
        self.events_max_len = events_max_len
        self._create = load_script(client, "create")
        self._transition = load_script(client, "transition")
        self._note_lost = load_script(client, "note_lost")
        self._loaded: set[str] = set()  # shas this process made sure the server has

    # -- writes -------------------------------------------------------------------------

    def _new_job(self, problem: str, job_id: str | None, kind: str, batch: str = "") -> Job:
        return Job(id=job_id or new_job_id(), problem=problem, status=JobStatus.PENDING,
                   created_at=now_s(), kind=kind, batch=batch)

    def _create_args(self, job: Job) -> tuple[list[str], list[str]]:
        k = self.keys
        keys = [k.job(job.id), k.jobs(), k.jobs_by_status(JobStatus.PENDING), k.events(job.id),
                k.stats(), k.stats_minute(int(job.created_at // 60)), k.events_feed()]
        args = [job.id, repr(job.created_at), str(self.events_max_len), job.problem, job.kind,
                str(STATS_MINUTE_TTL_S), job.batch]
        return keys, args

    def create(self, problem: str, *, job_id: str | None = None, kind: str = "",
               unless_purged: bool = False) -> Job:
        """Create a pending job record with its index entries and `created` event.

        Args:
            problem: The problem text, stored as given.
            job_id: The id to use (the Celery task id); None mints a UUID4.
            kind: The problem kind if already known, else "".
            unless_purged: Refuse (JobPurgedError) when the job's tombstone is there, in
                the same atomic step: for a worker writing the record of a message
                published outside jobtrail, which may be a purged job's late duplicate.

        Returns:
            The Job as written (version 0, attempts 0).

        Raises:
            ConcurrentUpdateError: A job with *job_id* already exists.
            JobPurgedError: *unless_purged*, and the job was purged (nothing written).
            RedisUnavailableError: The main DB could not be reached.
        """
        job = self._new_job(problem, job_id, kind)
        keys, args = self._create_args(job)
        if unless_purged:
            keys.append(self.keys.tombstone(job.id))
        created = int(self._run(self._create, keys, args))
        if created < 0:
            raise JobPurgedError(job.id)
        if not created:
            raise ConcurrentUpdateError(job.id, 0)
        return job

    def recreate(self, job_id: str, problem: str, *, worker: str, batch: str = "",
                 created_at: float | None = None) -> Literal["created", "exists", "purged"]:
        """Write again the pending record of *job_id* whose create was lost, from its message.

        For a worker whose delivery found no record (a Sentinel failover with
        MAIN_MIN_REPLICAS=0 discarded the create step while the message
        survived): one atomic step (create.lua) that writes the record, index
        entries and a `created` event with `recreated` (RECREATED_REASON) and
        `worker` fields, only if neither the record nor a tombstone exists,
        so a purged job is never resurrected and of two workers racing
        exactly one creates.

        Args:
            job_id: The job (the task id of its message, or one of a batch's).
            problem: The problem text the message carries.
            worker: The worker's name, recorded in the event.
            batch: The batch message carrying the job ("" for its own message).
            created_at: The record's created_at, epoch seconds: the delivery's start
                (the message does not carry the lost one; no start or finish of the
                delivery may precede it); None means now. The event is dated now.

        Returns:
            "created"; "exists" (the record is there: written meanwhile, or by
            another worker); "purged" (its tombstone is there). Nothing written
            but for "created".

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        now = now_s()
        job = replace(self._new_job(problem, job_id, "", batch),
                      created_at=now if created_at is None else created_at)
        keys, args = self._create_args(job)
        reply = int(self._run(self._create, [*keys, self.keys.tombstone(job_id)],
                              [*args, RECREATED_REASON, worker, repr(now)]))
        return "created" if reply == 1 else ("purged" if reply < 0 else "exists")

    def send_create(self, problem: str) -> tuple[Job, Any]:
        """Send the creation of a pending job without waiting for the reply.

        For JobService.submit: the record's round trip then overlaps the
        publish of its task. Read the outcome with confirm_create(); until
        then the record may not exist yet (a worker that gets the task first
        waits for it: see start()).

        Returns:
            (the Job as it will be written, a handle for confirm_create()).

        Raises:
            RedisUnavailableError: The main DB could not be reached (nothing sent).
        """
        job = self._new_job(problem, None, "")
        keys, args = self._create_args(job)
        return job, (self._send_script(self._create, keys, args), keys, args)

    def confirm_create(self, job: Job, pending: Any) -> None:
        """Read the reply of send_create().

        A server that lost its scripts (NOSCRIPT: nothing was written) gets the
        creation again, the ordinary way.

        Raises:
            ConcurrentUpdateError: The id existed already (nothing written).
            RedisUnavailableError, RedisCommandError: The record was not written.
        """
        conn, keys, args = pending
        try:
            created = self._read_reply(conn)
        except RedisCommandError as exc:
            if not isinstance(exc.__cause__, redis.exceptions.NoScriptError):
                raise
            self._loaded.discard(self._create.sha)
            created = self._run(self._create, keys, args)
        if not created:
            raise ConcurrentUpdateError(job.id, 0)

    def _send_script(self, script: Any, keys: list[str], args: list[str]) -> Any:
        """Write EVALSHA of *script* on a connection of its own; return the connection."""
        if script.sha not in self._loaded:  # EVALSHA alone cannot load it: do so once
            try:
                self.client.script_load(script.script)
            except REDIS_ERRORS as exc:
                raise wrap_redis_error("main DB", exc) from exc
            self._loaded.add(script.sha)
        pool = self.client.connection_pool
        try:
            conn: Any = pool.get_connection()
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        try:
            conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except REDIS_ERRORS as exc:
            conn.disconnect()
            pool.release(conn)
            raise wrap_redis_error("main DB", exc) from exc
        return conn

    def _read_reply(self, conn: Any) -> Any:
        """Read one reply from a connection of _send_script() and give it back to the pool."""
        try:
            reply = conn.read_response()
            wait_for_replicas(self.client, conn)  # MAIN_MIN_REPLICAS: on the connection that wrote
            return reply
        except REDIS_ERRORS as exc:
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()
            raise wrap_redis_error("main DB", exc) from exc
        finally:
            self.client.connection_pool.release(conn)

    def create_many(self, problems: Sequence[str], *,
                    batches: Sequence[str] | None = None) -> list[Job]:
        """Create one pending job per problem in a single pipelined round trip.

        Args:
            problems: The problem texts.
            batches: For each problem, the Celery task id of the batch message
                that will carry it (written in the same create step as the
                record, field `batch`), or "" for none; None means none for all.

        Returns:
            The jobs, in the order of *problems*.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        jobs = self.new_jobs(problems, batches=batches)
        self.write_jobs(jobs)
        return jobs

    def new_jobs(self, problems: Sequence[str], *,
                 batches: Sequence[str] | None = None) -> list[Job]:
        """The pending jobs create_many would write (fresh ids, now as created_at); nothing
        is written. *batches* as for create_many.

        Raises:
            ValueError: *batches* does not give one batch id per problem.
        """
        batch_ids = list(batches) if batches is not None else [""] * len(problems)
        if len(batch_ids) != len(problems):
            raise ValueError("create_many: one batch id per problem")
        return [self._new_job(p, None, "", b) for p, b in zip(problems, batch_ids, strict=True)]

    def write_jobs(self, jobs: Sequence[Job]) -> None:
        """Write the records of *jobs* (from new_jobs) in one pipelined round trip.

        A create that the server answers NOSCRIPT (it lost its scripts after redis-py's
        pipeline loaded them: SCRIPT FLUSH, a restart or a failover) wrote nothing and
        is sent once more as EVAL with the script's text, which no flush can refuse;
        each create is one script call, so the others of the pipeline are written once.

        Raises:
            RedisUnavailableError: The main DB could not be reached; the records
                may or may not have been written (a lost reply).
            RedisCommandError: A create was refused; the others may have been written.
        """
        try:
            with self.client.pipeline(transaction=False) as pipe:
                calls = [self._create_args(job) for job in jobs]
                for keys, args in calls:
                    self._create(keys=keys, args=args, client=pipe)
                replies = pipe.execute(raise_on_error=False)
            lost = [call for call, r in zip(calls, replies, strict=True)
                    if isinstance(r, redis.exceptions.NoScriptError)]
            refused = [r for r in replies if isinstance(r, Exception)
                       and not isinstance(r, redis.exceptions.NoScriptError)]
            if refused:
                raise refused[0]
            if lost:
                self._loaded.discard(self._create.sha)  # as confirm_create: lost, load again
                with self.client.pipeline(transaction=False) as pipe:
                    for keys, args in lost:
                        pipe.eval(str(self._create.script), len(keys), *keys, *args)
                    pipe.execute()
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        try:
            return script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    def transition(
        self,
        job_id: str,
        to: JobStatus,
        *,
        fields: Mapping[str, str] | None = None,
        event: EventType | None = None,
        event_fields: Mapping[str, str] | None = None,
        expected_version: int | None = None,
        run: str | None = None,
        count_attempt: bool = False,
        max_attempts: int = 0,
        now: float | None = None,
    ) -> Job:
        """Move a job to *to* in one atomic step, or change nothing.

        The hash fields, the `jobs:<status>` entries and an event (type
        *event*, default the target status) are written together.

        Args:
            job_id: The job.
            to: Target status; the job's current status must be an allowed source.
            fields: Extra hash fields to set (strings), e.g. worker, result.
            event: Event type to append; defaults to the event named like *to*.
            event_fields: Extra event fields (strings).
            expected_version: Refuse unless the record's version equals this.
            run: Refuse unless the record's `run` (the token its delivery's start
                wrote) is this; a no-op when that run already reached *to*.
            count_attempt: Add 1 to `attempts`.
            max_attempts: With *count_attempt*, refuse when `attempts` is
                already this many or more; 0 means no limit.
            now: Time of the change, epoch seconds; defaults to clock.now_s().

        Returns:
            The Job after the change.

        Raises:
            JobNotFoundError: No such job.
            InvalidTransitionError: The lifecycle does not allow it from the current status.
            ConcurrentUpdateError: *expected_version* or *run* did not match.
            AttemptsExhaustedError: The job was already started *max_attempts* times.
            RedisUnavailableError: The main DB could not be reached.
        """
        expect = ("" if expected_version is None else f"v:{expected_version}"
                  ) if run is None else f"r:{run}"
        keys, args = self._transition_args(
            job_id, to, fields=fields, event=event, event_fields=event_fields, expect=expect,
            count_attempt=count_attempt, max_attempts=max_attempts, now=now)
        return self._decode_reply(job_id, to, self._run(self._transition, keys, args))

    def _transition_args(self, job_id: str, to: JobStatus, *,
                         fields: Mapping[str, str] | None, event: EventType | None,
                         event_fields: Mapping[str, str] | None, expect: str,
                         count_attempt: bool, max_attempts: int, now: float | None,
                         node: NodeCount | None = None, also_from: JobStatus | None = None,
                         ) -> tuple[list[str], list[str]]:
        at = now_s() if now is None else now
        k = self.keys
        sources = sorted(allowed_sources(to) | ({also_from} if also_from else set()))
        counted = node is not None and to in _TIMED
        keys = [k.job(job_id), k.events(job_id), k.jobs_by_status(to), k.stats(),
                k.stats_minute(int(at // 60)), k.events_feed(),
                k.node_stats(node.node) if node is not None and counted else "",
                *(k.jobs_by_status(s) for s in sources)]
        extra = dict(fields or {})
        ev = event or TRANSITION_EVENTS[to]
        args = [
            job_id, to.value, ",".join(sources), repr(at), expect,
            str(max_attempts) if count_attempt else "", str(self.events_max_len), ev.value,
            LATENCY_BOUNDS_CSV if to in _TIMED else "", str(STATS_MINUTE_TTL_S),
            str(NODE_STATS_TTL_S) if counted else "", node.kind if node else "",
            node.reason if node else "",
            str(len(extra)), *_pairs(extra), *_pairs(event_fields or {}),
        ]
        return keys, args

    @staticmethod
    def _decode_reply(job_id: str, to: JobStatus, reply: Any) -> Job:
        outcome = reply[0]
        if outcome == "missing":
            raise JobNotFoundError(job_id)
        if outcome == "invalid":
            raise InvalidTransitionError(job_id, str(reply[1]), to.value,
                                         allowed=sorted(s.value for s in allowed_sources(to)))
        if outcome == "conflict":
            raise ConcurrentUpdateError(job_id, int(reply[1] or 0))
        if outcome == "exhausted":
            raise AttemptsExhaustedError(job_id, int(reply[1]))
        if outcome == "moved":
            raise JobLeftBatchError(job_id, str(reply[1]))
        flat = reply[1]  # "ok", or "same": this run's own step, applied already
        job = decode_job(dict(zip(flat[::2], flat[1::2], strict=True)))
        if job.id != job_id:  # a reply read out of step (a connection shared by a chain)
            raise RedisUnavailableError("main DB", f"the reply read for job {job_id} was "
                                        f"job {job.id}'s: the connection is out of step")
        logger.debug("job transitioned job_id=%s to=%s version=%s", job_id, to.value, job.version)
        return job

    # -- a delivery's run: start, solve, finish in about one round trip -------------

    def send_start(self, job_id: str, *, worker: str, max_attempts: int = 0,
                   token: str | None = None, started_at: float | None = None,
                   batch: str = "") -> StartTicket:
        """Send the start of one delivery's run without waiting for the reply.

        The start is applied by Redis as soon as it arrives (the job reads
        `processing` while the caller solves); its reply is read by finish()
        (or read_start()), so a job costs the worker about one round trip.

        The start carries the run token *token* (one per broker delivery) and
        is idempotent for it: sent again after a connection error, it changes
        nothing if it was applied already. A job found `processing` under
        another token was left by a lost worker: the same atomic step records
        `redelivered` and starts it again (attempts + 1). A job found
        completed or failed is refused (a duplicate delivery).

        Args:
            job_id: The job.
            worker: The worker's name, stored in `worker` and the event.
            max_attempts: Refuse (AttemptsExhaustedError) a start past this
                many attempts; 0 means no limit.
            token: The delivery's run token; None mints one.
            started_at: When the delivery started, epoch seconds (stored as
                `started_at`); None means now.
            batch: For a batch message's delivery, its task id: the start is
                refused (JobLeftBatchError) when the record no longer names it
                (`jobtrail requeue` sent the job alone since); "" for none.

        Raises:
            RedisUnavailableError: The main DB could not be reached (nothing sent).
        """
        token, keys, args = self._start_args(job_id, worker=worker, max_attempts=max_attempts,
                                             token=token, started_at=started_at, batch=batch)
        return StartTicket(job_id, token, self._send_script(self._transition, keys, args),
                           keys, args)

    def _start_args(self, job_id: str, *, worker: str, max_attempts: int = 0,
                    token: str | None = None, started_at: float | None = None,
                    batch: str = "") -> tuple[str, list[str], list[str]]:
        """(token, keys, args) of send_start()'s script call."""
        token = token or uuid.uuid4().hex
        at = now_s() if started_at is None else started_at
        keys, args = self._transition_args(
            job_id, JobStatus.PROCESSING, event=None, event_fields={"worker": worker},
            fields={"worker": worker, "started_at": repr(at), "run": token},
            expect=f"s:{token}|{batch}" if batch else f"s:{token}", count_attempt=True,
            max_attempts=max_attempts, now=None)
        return token, keys, args

    def read_start(self, ticket: StartTicket, *, resend: bool = True) -> Job | JobtrailError:
        """Read the reply of a send_start() (for a caller that needs the record first).

        Returns:
            The Job after the start (send its finish() next), or the error that
            refused it (JobNotFoundError, InvalidTransitionError,
            AttemptsExhaustedError; the connection is then given back).

        A server that lost its scripts (NOSCRIPT: nothing was written) gets the
        start again, once, with the script loaded first.

        Raises:
            RedisUnavailableError: The connection failed; send the start again.
            RedisCommandError: Redis refused the script.
        """
        conn = ticket.conn
        try:
            reply = conn.read_response()
        except REDIS_ERRORS as exc:
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()
            self._give_back(ticket)
            if isinstance(exc, redis.exceptions.NoScriptError) and resend:
                self._loaded.discard(self._transition.sha)
                ticket.conn, ticket.share = self._send_script(
                    self._transition, ticket.keys, ticket.args), None
                return self.read_start(ticket, resend=False)
            raise wrap_redis_error("main DB", exc) from exc
        ticket.started = self._outcome(ticket.job_id, JobStatus.PROCESSING, reply)
        if not isinstance(ticket.started, Job):  # refused: no finish follows
            self._give_back(ticket)
        return ticket.started

    def _give_back(self, ticket: StartTicket) -> None:
        """Give the ticket's connection back to the pool, once every ticket sharing it
        (StartTicket.share) has read its replies."""
        share = ticket.share
        if share is not None:
            share[0] -= 1
            if share[0] > 0:
                return
        self.client.connection_pool.release(ticket.conn)

    def _outcome(self, job_id: str, to: JobStatus, reply: Any) -> Job | JobtrailError:
        """The step's outcome: the Job, or the error that refused it. A reply read out of
        step is raised (RedisUnavailableError: the caller sends the step again)."""
        try:
            return self._decode_reply(job_id, to, reply)
        except RedisUnavailableError:
            raise
        except JobtrailError as exc:
            return exc

    def finish(self, ticket: StartTicket, to: JobStatus, *, fields: Mapping[str, str],
               event_fields: Mapping[str, str] | None = None, node: NodeCount | None = None,
               ) -> tuple[Job | JobtrailError, Job | JobtrailError]:
        """Send the outcome of a send_start() run, then read the replies.

        The outcome is written only while the record still carries this run's
        token (never over a later delivery's start), and is idempotent for it:
        sent again after a connection error, it changes nothing if it was
        applied already. A server that lost its scripts (NOSCRIPT: nothing was
        written) gets both steps again. With *node*, a completed or failed job
        is counted in that worker node's statistics in the same atomic step
        (store.node_stats; once, however often the finish is sent).

        The same as read_finish(send_finish(...)).

        Returns:
            (start outcome, finish outcome): each the Job after the change, or
            the error that refused it (InvalidTransitionError, ConcurrentUpdateError
            when the run token no longer matches, AttemptsExhaustedError...).
            A refused start always comes with a refused finish.

        Raises:
            RedisUnavailableError: The connection failed; whether either step
                was applied is unknown: send both again with the same token.
            RedisCommandError: Redis refused the script (out of memory...).
        """
        return self.read_finish(self.send_finish(ticket, to, fields=fields,
                                                 event_fields=event_fields, node=node))

    def send_finish(self, ticket: StartTicket, to: JobStatus, *, fields: Mapping[str, str],
                    event_fields: Mapping[str, str] | None = None,
                    node: NodeCount | None = None,
                    then_start: Mapping[str, Any] | None = None) -> PendingFinish:
        """Send the outcome of a send_start() run on the ticket's connection, unread.

        Redis applies it as soon as it arrives (see finish()); the replies of
        the start and of the finish stay on the connection, which stays out of
        the pool, until read_finish() reads them. A batch sends one job's
        finish and solves the next job meanwhile (worker.batch, group commit).

        With *then_start* (send_start()'s keyword arguments: the next job of a
        batch), that job's start goes in the same write, on the same connection
        (one send for both; its ticket is the handle's `next_ticket`): the
        tickets sharing a connection must read their replies in the order they
        were sent (a batch reads its jobs' finishes in order). Not with a replica
        WAIT (MAIN_MIN_REPLICAS: it follows each finish on its connection); the
        start then goes on a connection of its own.

        Returns:
            The handle for read_finish().

        Raises:
            RedisUnavailableError: The finish could not be sent (the connection is
                dropped and given back; or it was dropped already, the start's reply
                unread, by a ticket sharing it whose read failed: nothing is sent on a
                new one); whether the start was applied is unknown: send both again
                with the same token; a *then_start* is not sent.
        """
        keys, args = self._transition_args(
            ticket.job_id, to, fields=fields, event=None, event_fields=event_fields,
            expect=f"r:{ticket.token}", count_attempt=False, max_attempts=0, now=None,
            node=node)
        durability = getattr(self.client, "durability", None)
        if then_start is None or (durability is not None and durability.min_replicas > 0):
            self._send_finish(ticket, keys, args)
            nxt = None if then_start is None else self.send_start(**then_start)
            return PendingFinish(ticket, to, keys, args, nxt)
        token, start_keys, start_args = self._start_args(**then_start)
        self._send_finish(ticket, keys, args, then=(start_keys, start_args))
        share = ticket.share if ticket.share is not None else [1]
        share[0] += 1
        ticket.share = share
        nxt = StartTicket(str(then_start["job_id"]), token, ticket.conn, start_keys, start_args,
                          share=share)
        return PendingFinish(ticket, to, keys, args, nxt)

    def read_finish(self, pending: PendingFinish,
                    ) -> tuple[Job | JobtrailError, Job | JobtrailError]:
        """Read the replies of a send_finish() (the start's, if unread, and the finish's),
        then the replica WAIT (MAIN_MIN_REPLICAS); the connection goes back to the pool.

        Returns and raises as finish().
        """
        ticket = pending.ticket
        try:
            replies = self._read_finish(ticket)
        except redis.exceptions.NoScriptError:
            self._loaded.discard(self._transition.sha)  # nothing was written: load, resend
            ticket.conn, ticket.started, ticket.share = self._send_script(
                self._transition, ticket.keys, ticket.args), None, None
            self._send_finish(ticket, pending.keys, pending.args)
            try:
                replies = self._read_finish(ticket)
            except redis.ResponseError as exc:
                raise wrap_redis_error("main DB", exc) from exc
        except redis.ResponseError as exc:
            raise wrap_redis_error("main DB", exc) from exc
        started = ticket.started if ticket.started is not None else \
            self._outcome(ticket.job_id, JobStatus.PROCESSING, replies[0])
        return started, self._outcome(ticket.job_id, pending.to, replies[-1])

    def _send_finish(self, ticket: StartTicket, keys: list[str], args: list[str], *,
                     then: tuple[list[str], list[str]] | None = None) -> None:
        """Send the finish on the ticket's connection, with the script call *then* (keys,
        args: the next start) in the same write (on failure: dropped, given back)."""
        conn = ticket.conn
        if ticket.started is None and conn._sock is None:
            # dropped since the start was sent (a ticket sharing it failed a read): its reply
            # went with the socket, and redis-py would connect anew for this send, whose
            # replies this ticket would then read as its start's and its finish's (another
            # job's record taken for this job's outcome)
            self._give_back(ticket)
            raise wrap_redis_error("main DB", redis.ConnectionError(
                "the connection of the start was lost before its reply was read"))
        sha = self._transition.sha
        commands = [("EVALSHA", sha, len(keys), *keys, *args)]
        if then is not None:
            commands.append(("EVALSHA", sha, len(then[0]), *then[0], *then[1]))
        try:
            # no health-check PING here: with the start's reply still unread it would read
            # that reply as a bad PONG and drop a live connection (socket_timeout bounds
            # the reads instead)
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except REDIS_ERRORS as exc:
            conn.disconnect()
            self._give_back(ticket)
            raise wrap_redis_error("main DB", exc) from exc

    def _read_finish(self, ticket: StartTicket) -> list[Any]:
        """Read the outstanding replies on the ticket's connection and give it back."""
        conn = ticket.conn
        replies: list[Any] = []
        try:
            for _ in range(1 if ticket.started is not None else 2):
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
            wait_for_replicas(self.client, conn)  # MAIN_MIN_REPLICAS: on the connection that wrote
        except REDIS_ERRORS as exc:
            conn.disconnect()
            raise wrap_redis_error("main DB", exc) from exc
        finally:
            self._give_back(ticket)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies

    def start(self, job_id: str, *, worker: str, max_attempts: int = 0,
              token: str | None = None) -> Job | None:
        """Mark a delivered job processing, handling redeliveries; None if it must not run.

        One atomic step (see send_start()): pending -> processing, attempts + 1;
        a job left `processing` by another run gets a `redelivered` event and
        starts again; a job already started by run *token* is returned as it
        is. A job found completed or failed is left unchanged (a duplicate
        delivery). With *max_attempts* > 0, a job already started that many
        times is failed ("gave up after N attempts") instead.

        Returns:
            The Job after the change, or None when the delivery must not run.

        Raises:
            JobNotFoundError: No such job.
            RedisUnavailableError: The main DB could not be reached.
        """
        fields = {"worker": worker, "started_at": repr(now_s()),
                  "run": token or uuid.uuid4().hex}
        keys, args = self._transition_args(
            job_id, JobStatus.PROCESSING, event=None, event_fields={"worker": worker},
            fields=fields, expect=f"s:{fields['run']}", count_attempt=True,
            max_attempts=max_attempts, now=None)
        outcome = self._outcome(job_id, JobStatus.PROCESSING,
                                self._run(self._transition, keys, args))
        if isinstance(outcome, Job):
            return outcome
        if isinstance(outcome, AttemptsExhaustedError):
            self.give_up(job_id, outcome.attempts)
            return None
        if isinstance(outcome, InvalidTransitionError):
            return None  # completed or failed: a duplicate delivery changes nothing
        raise outcome

    def leave_batch(self, job: Job, *, reason: str, dead_worker: str = "") -> Job:
        """Take *job* out of the batch message it rides: its record no longer names the
        batch, so that message's delivery leaves it (send_start's *batch*); `jobtrail
        requeue` then sends it alone. Its batch-mates are not touched.

        A pending job stays pending (re-entering `jobs:pending` now); a processing one
        (its worker gone) goes back to pending. Either way in one atomic step
        (transition.lua; pending -> pending is allowed for this step only), with a
        `redelivered` event (fields reason, dead_worker, left_batch), and only while
        the record's version is *job*'s.

        Returns:
            The Job after the change (batch "").

        Raises:
            JobNotFoundError, InvalidTransitionError (finished), ConcurrentUpdateError
            (the record changed since *job* was read), RedisUnavailableError.
        """
        keys, args = self._transition_args(
            job.id, JobStatus.PENDING, fields={"batch": ""}, event=EventType.REDELIVERED,
            event_fields={"reason": reason, "dead_worker": dead_worker, "left_batch": job.batch},
            expect=f"v:{job.version}", count_attempt=False, max_attempts=0, now=None,
            also_from=JobStatus.PENDING)
        return self._decode_reply(job.id, JobStatus.PENDING,
                                  self._run(self._transition, keys, args))

    def give_up(self, job_id: str, attempts: int) -> str:
        """Fail a job whose every one of *attempts* starts lost its worker, naming the
        last loss's cause when one was recorded (note_lost; give_up_reason).

        Idempotent: a job already finished is left as it is.

        Returns:
            The reason written (or that would have been, for a finished job).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            last_loss = str(self.client.hget(self.keys.job(job_id), "lost") or "")
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        reason = give_up_reason(attempts, last_loss)
        try:
            self.fail(job_id, reason)
        except (InvalidTransitionError, JobNotFoundError) as exc:
            logger.info("job not given up job_id=%s reason=%s", job_id, exc)
        return reason

    def note_lost(self, job_id: str, cause: str, *, run: str) -> int | None:
        """Record *cause* (why delivery *run*'s worker process was lost, in words) on the
        job, only while the job is processing under run token *run*: the next start's
        `redelivered` event takes it as its reason and clears it (transition.lua), and a
        give-up names it (give_up). One atomic step (lua/note_lost.lua).

        Returns:
            The job's attempts when written; None when the job is missing, not
            processing or another delivery's (nothing written).

        Raises:
            RedisUnavailableError: The main DB could not be reached (nothing written).
        """
        written, attempts = self._run(self._note_lost, [self.keys.job(job_id)], [run, cause])
        return int(attempts or 0) if int(written) else None

    def complete(self, job_id: str, result: dict[str, Any], *, kind: str = "",
                 expected_version: int | None = None) -> Job:
        """Mark a processing job completed with its *result* (text, latex, steps).

        Args:
            job_id: The job.
            result: {"text", "latex", "steps", "kind"}.
            kind: The problem kind, when known.
            expected_version: The version start() returned; a record changed
                since (another delivery took the job over) is not written.

        Raises:
            JobNotFoundError, InvalidTransitionError, ConcurrentUpdateError,
            RedisUnavailableError.
        """
        return self.transition(job_id, JobStatus.COMPLETED,
                               fields=completion_fields(result, kind),
                               expected_version=expected_version)

    def fail(self, job_id: str, reason: str, *, kind: str = "",
             expected_version: int | None = None, run: str | None = None) -> Job:
        """Mark a pending or processing job failed with a reason a person reads.

        With *run*, only while the job is still that delivery's (see transition).

        Raises:
            JobNotFoundError, InvalidTransitionError, ConcurrentUpdateError,
            RedisUnavailableError.
        """
        return self.transition(job_id, JobStatus.FAILED, fields=failure_fields(reason, kind),
                               event_fields={"error": reason},
                               expected_version=expected_version, run=run)

    def note_skipped(self, job_id: str, *, worker: str, reason: str) -> None:
        """Append a `skipped` event: a worker received the job's message and did not run it.

        The record is left as it is (a cancelled job stays cancelled); the
        event goes to the job's stream and the events feed.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        self._note(job_id, EventType.SKIPPED, {"worker": worker, "error": reason})

    def note_redelivered(self, job_id: str, *, reason: str, dead_worker: str) -> None:
        """Append a `redelivered` event to a pending job: the batch message it waited in
        goes back to the queue (its worker is gone); the record is left as it is.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        self._note(job_id, EventType.REDELIVERED, {"reason": reason, "dead_worker": dead_worker})

    def _note(self, job_id: str, kind: EventType, fields: Mapping[str, str]) -> None:
        event: dict[Any, Any] = {"type": kind.value, "at": repr(now_s()), **fields}
        maxlen = self.events_max_len or None
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.xadd(self.keys.events(job_id), event, maxlen=maxlen, approximate=True)
                pipe.xadd(self.keys.events_feed(), {"job_id": job_id, **event},
                          maxlen=maxlen * 100 if maxlen else None, approximate=True)
                pipe.execute()
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    # -- reads --------------------------------------------------------------------------

    def read_fields(self, job_ids: Sequence[str], fields: Sequence[str],
                    ) -> list[list[str | None]]:
        """Return *fields* of each job's hash (None where absent), in one round trip.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hmget(self.keys.job(job_id), list(fields))
                return cast(list[list[str | None]], pipe.execute())
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc

    def find(self, job_id: str) -> Job | None:
        """Return the job, or None when `job:<id>` does not exist.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            fields = cast(dict[str, str], self.client.hgetall(self.keys.job(job_id)))
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        if not fields:
            return None
        try:
            return decode_job(fields)
        except MalformedRecordError as exc:  # name the key that was read, not its `id` field
            raise MalformedRecordError(job_id, exc.reason) from exc

    def get(self, job_id: str) -> Job:
        """Return the job.

        Raises:
            JobNotFoundError: No `job:<id>` hash.
            RedisUnavailableError: The main DB could not be reached.
        """
        job = self.find(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def list_jobs(self, *, status: JobStatus | None = None, limit: int = 20) -> list[Job]:
        """Return up to *limit* jobs, newest first, optionally of one status.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        return _readable(self.list_entries(status=status, limit=limit))

    def list_entries(self, *, status: JobStatus | None = None, limit: int = 20,
                     ) -> list[tuple[str, Job | None]]:
        """Return up to *limit* index entries, newest first: (id, Job), or (id, None) when
        the entry's record is gone (an orphan; trace says what became of it).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        index = self.keys.jobs() if status is None else self.keys.jobs_by_status(status)
        try:
            ids = cast(list[str], self.client.zrevrange(index, 0, max(limit, 1) - 1))
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hgetall(self.keys.job(job_id))
                rows = cast(list[dict[str, str]], pipe.execute())
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        return _entries(ids, rows)

    def page_jobs(self, *, status: JobStatus | None = None, limit: int = 50,
                  after: tuple[float, str] | None = None,
                  ) -> tuple[list[Job], tuple[float, str] | None]:
        """Return up to *limit* jobs newest first, and the position to continue from.

        As page_entries(), without the entries whose record is gone.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        entries, position = self.page_entries(status=status, limit=limit, after=after)
        return _readable(entries), position

    def page_entries(self, *, status: JobStatus | None = None, limit: int = 50,
                     after: tuple[float, str] | None = None,
                     ) -> tuple[list[tuple[str, Job | None]], tuple[float, str] | None]:
        """Return up to *limit* index entries newest first, and the position to continue from.

        An entry is (id, Job), or (id, None) when its record is gone.

        Pages are keyed on (score, id) of the last job returned, not on an
        offset, so jobs added meanwhile (newer scores) never shift later pages.
        The score is created_at for all jobs, or the time the job entered
        *status* when filtering by status.

        Args:
            status: Only jobs with this status (the `jobs:<status>` index).
            limit: Page size, 1 or more.
            after: The (score, id) returned with the previous page, or None.

        Returns:
            (entries, next position or None when this was the last page).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        index = self.keys.jobs() if status is None else self.keys.jobs_by_status(status)
        try:
            if after is None:
                rows = cast(list[tuple[str, float]], self.client.zrevrangebyscore(
                    index, "+inf", "-inf", start=0, num=limit + 1, withscores=True))
            else:
                score, last_id = after
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.zrangebyscore(index, score, score, withscores=True)
                    pipe.zrevrangebyscore(index, f"({score!r}", "-inf", start=0,
                                          num=limit + 1, withscores=True)
                    ties, older = pipe.execute()
                # equal scores come in reverse lexical order: continue below last_id
                same = sorted(((m, s) for m, s in ties if m < last_id), reverse=True)
                rows = [*same, *older]
            rows = rows[:limit + 1]
            with self.client.pipeline(transaction=False) as pipe:
                for job_id, _ in rows[:limit]:
                    pipe.hgetall(self.keys.job(job_id))
                records = cast(list[dict[str, str]], pipe.execute())
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        entries = _entries([str(m) for m, _ in rows[:limit]], records)
        more = len(rows) > limit
        return entries, ((float(rows[limit - 1][1]), str(rows[limit - 1][0])) if more else None)

    def count_by_status(self) -> dict[JobStatus, int]:
        """Return the size of each `jobs:<status>` index.

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for status in JobStatus:
                    pipe.zcard(self.keys.jobs_by_status(status))
                counts = pipe.execute()
        except REDIS_ERRORS as exc:
            raise wrap_redis_error("main DB", exc) from exc
        return dict(zip(JobStatus, (int(c) for c in counts), strict=True))

    def iter_ids_by_status(self, status: JobStatus, *, batch_size: int = 500,
                           ) -> Iterator[list[tuple[str, float]]]:
        """Yield (job id, score) batches of `jobs:<status>`, oldest first.

        The score is the time the job entered *status*, epoch seconds; memory
        is O(batch_size).

        Raises:
            RedisUnavailableError: The main DB could not be reached.
        """
        index = self.keys.jobs_by_status(status)
        start = 0
        while True:
            try:
                batch = cast(list[tuple[str, float]], self.client.zrange(
                    index, start, start + batch_size - 1, withscores=True))
            except REDIS_ERRORS as exc:
                raise wrap_redis_error("main DB", exc) from exc
            if not batch:
                return
            yield [(str(m), float(s)) for m, s in batch]
            start += len(batch)
