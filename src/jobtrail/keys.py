"""Every Redis key jobtrail reads or writes, built in one place.

Invariant: no other module spells a key; tests build keys through KeySpace.

| key | type | holds |
| --- | --- | --- |
| `job:<id>` | hash | id, problem, kind, status, created_at, started_at, finished_at, |
| | | worker, attempts, result (JSON), error, version |
| `jobs` | sorted set | id scored by created_at (epoch seconds) |
| `jobs:<status>` | sorted set | id scored by the time it entered that status |
| `job:<id>:events` | stream | lifecycle events: created, started, redelivered, completed, ... |
| `tombstone:<id>` | hash, TTL | purged_at, policy, archive reference |
| `worker:<name>` | hash, TTL | a live worker's heartbeat: name, pid, started_at, last_seen, jobs |
| `workers` | sorted set | worker names scored by their last heartbeat (epoch seconds) |
| `stats` | hash | lifetime counts per event type; processing latency histogram |
| `stats:m:<minute>` | hash, TTL | the same for one minute (epoch seconds // 60) |
| `events` | stream | feed of recent lifecycle events of all jobs (job_id + event); a purge |
| | | writes one entry per chunk of jobs (job_id of the first, count, last_job_id) |

Foreign keys (Celery and kombu, in the broker and results DBs):
`celery-task-meta-<id>` (result backend), `<queue>` list, `unacked`,
`unacked_index`, `_kombu.binding.*` (broker).

The reproduction harness's memory-pressure fill writes `repro:filler:<n>`
strings, only into a spare DB of its private server.

Redis's own names (Pub/Sub channels of keyspace notifications):
`__keyevent@<db>__:<event>` carries the key name of each `<event>` in DB `<db>`.
"""

from __future__ import annotations

import re
from enum import StrEnum

from jobtrail.models import JobStatus

__all__ = [
    "CELERY_RESULT_PREFIX",
    "JOB_ID_PATTERN",
    "KeyKind",
    "KeySpace",
    "celery_result_key",
    "glob_escape",
    "id_prefix_pattern",
    "keyevent_event",
    "keyevent_pattern",
    "repro_filler_key",
]

CELERY_RESULT_PREFIX = "celery-task-meta-"
KOMBU_UNACKED = "unacked"
KOMBU_UNACKED_INDEX = "unacked_index"
#: Job ids are Celery task ids: we mint UUID4s, but accept any id Celery would
#: (letters, digits, `-`, `_`, `.`), up to 128 characters, so no id can smuggle
#: a `:` into a key.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class KeyKind(StrEnum):
    """The label classify_key() gives a key."""

    JOB = "job"
    WORKER = "worker"
    STATS = "stats"
    WORKER_INDEX = "worker_index"
    JOB_INDEX = "job_index"
    STATUS_INDEX = "status_index"
    EVENTS = "events"
    TOMBSTONE = "tombstone"
    CELERY_RESULT = "celery_result"
    KOMBU_BINDING = "kombu_binding"
    KOMBU_UNACKED = "kombu_unacked"
    KOMBU_UNACKED_INDEX = "kombu_unacked_index"
    QUEUE = "queue"
    OTHER = "other"


def celery_result_key(job_id: str) -> str:
    """Return Celery's result backend key for *job_id* (`celery-task-meta-<id>`)."""
    return f"{CELERY_RESULT_PREFIX}{job_id}"


def repro_filler_key(n: int) -> str:
    """Return the *n*-th filler key of the reproduction's memory-pressure fill."""
    return f"repro:filler:{n}"


def keyevent_pattern(db: int) -> str:
    """Return the PSUBSCRIBE pattern of every key-event notification of DB *db*.

    Source: https://redis.io/docs/latest/develop/use/keyspace-notifications/
    ("__keyevent@<db>__:<event>" channels carry the key name as the message).
    """
    return f"__keyevent@{db}__:*"


def keyevent_event(channel: str) -> str | None:
    """Return the event name of a `__keyevent@<db>__:<event>` channel, else None.

    Source: https://redis.io/docs/latest/develop/use/keyspace-notifications/
    """
    if not channel.startswith("__keyevent@"):
        return None
    _, sep, event = channel.partition("__:")
    return event if sep else None


def glob_escape(text: str) -> str:
    """Return *text* as a literal in a Redis MATCH glob (`*`, `?`, `[`, `]`, `\\` escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def id_prefix_pattern(id_prefix: str) -> str:
    """Return the ZSCAN MATCH pattern of the `jobs` index members (ids) starting *id_prefix*."""
    return f"{glob_escape(id_prefix)}*"


class KeySpace:
    """Builds jobtrail's keys under an optional prefix (e.g. ``"app1:"``)."""

    def __init__(self, prefix: str = "", queue: str = "jobtrail") -> None:
        self.prefix = prefix
        self.queue_name = queue

    def job(self, job_id: str) -> str:
        """Return `job:<id>`."""
        return f"{self.prefix}job:{job_id}"

    def jobs(self) -> str:
        """Return the `jobs` index (all jobs by created_at)."""
        return f"{self.prefix}jobs"

    def jobs_by_status(self, status: JobStatus | str) -> str:
        """Return the `jobs:<status>` index."""
        return f"{self.prefix}jobs:{JobStatus(status).value}"

    def events(self, job_id: str) -> str:
        """Return the job's lifecycle events stream `job:<id>:events`."""
        return f"{self.prefix}job:{job_id}:events"

    def tombstone(self, job_id: str) -> str:
        """Return `tombstone:<id>`."""
        return f"{self.prefix}tombstone:{job_id}"

    def stats(self) -> str:
        """Return the lifetime `stats` hash (counters and latency histogram)."""
        return f"{self.prefix}stats"

    def stats_minute(self, minute: int) -> str:
        """Return `stats:m:<minute>`, the counters of one minute (epoch seconds // 60)."""
        return f"{self.prefix}stats:m:{minute}"

    def node_stats(self, name: str) -> str:
        """Return `stats:node:<name>`, the counters of one worker node's own jobs."""
        return f"{self.prefix}stats:node:{name}"

    def events_feed(self) -> str:
        """Return the `events` feed stream of recent events of all jobs."""
        return f"{self.prefix}events"

    def worker(self, name: str) -> str:
        """Return the heartbeat hash `worker:<name>` of a worker node."""
        return f"{self.prefix}worker:{name}"

    def workers(self) -> str:
        """Return the `workers` index (node names by last heartbeat)."""
        return f"{self.prefix}workers"

    def recovery_lock(self) -> str:
        """Return `recovery:<queue>` (broker DB): held by the one worker sweeping dead ones."""
        return f"{self.prefix}recovery:{self.queue_name}"

    def tombstone_pattern(self, id_prefix: str = "") -> str:
        """Return the SCAN MATCH pattern of every `tombstone:<id>` (ids starting *id_prefix*)."""
        return f"{glob_escape(self.prefix)}tombstone:{glob_escape(id_prefix)}*"

    def tombstone_id(self, key: str) -> str:
        """Return the job id of a `tombstone:<id>` key."""
        return key[len(self.tombstone("")):]

    def celery_result(self, job_id: str) -> str:
        """Return `celery-task-meta-<id>` (results DB; Celery's name, not prefixed)."""
        return celery_result_key(job_id)

    def queue(self) -> str:
        """Return the broker's queue list key (kombu names it after the queue)."""
        return self.queue_name

    @staticmethod
    def unacked() -> str:
        """Return kombu's `unacked` hash (delivery tag -> message being worked on)."""
        return KOMBU_UNACKED

    @staticmethod
    def unacked_index() -> str:
        """Return kombu's `unacked_index` sorted set (delivery tag -> delivery time)."""
        return KOMBU_UNACKED_INDEX

    def job_id_of(self, key: str) -> str | None:
        """Return the id of a `job:<id>` record key, or None for any other key."""
        head = f"{self.prefix}job:"
        if not key.startswith(head) or key.endswith(":events"):
            return None
        job_id = key[len(head):]
        return job_id if JOB_ID_PATTERN.match(job_id) else None

    def classify_key(self, key: str) -> KeyKind:
        """Label *key* with the role it plays for jobtrail, Celery or kombu."""
        if key.startswith(CELERY_RESULT_PREFIX):
            return KeyKind.CELERY_RESULT
        if key.startswith("_kombu.binding"):
            return KeyKind.KOMBU_BINDING
        foreign = {KOMBU_UNACKED: KeyKind.KOMBU_UNACKED,
                   KOMBU_UNACKED_INDEX: KeyKind.KOMBU_UNACKED_INDEX,
                   self.queue_name: KeyKind.QUEUE}
        if key in foreign:
            return foreign[key]
        if not key.startswith(self.prefix):
            return KeyKind.OTHER
        return _classify_own(key[len(self.prefix):])


_OWN_EXACT = {"jobs": KeyKind.JOB_INDEX, "workers": KeyKind.WORKER_INDEX,
              "stats": KeyKind.STATS, "events": KeyKind.STATS,
              **{f"jobs:{s.value}": KeyKind.STATUS_INDEX for s in JobStatus}}
_OWN_PREFIXES = (("stats:m:", KeyKind.STATS), ("stats:node:", KeyKind.STATS),
                 ("worker:", KeyKind.WORKER),
                 ("tombstone:", KeyKind.TOMBSTONE))


def _classify_own(rest: str) -> KeyKind:
    """Label a key of jobtrail's own, *rest* being the key without the prefix."""
    if rest in _OWN_EXACT:
        return _OWN_EXACT[rest]
    for prefix, kind in _OWN_PREFIXES:
        if rest.startswith(prefix):
            return kind
    if rest.startswith("job:"):
        return KeyKind.EVENTS if rest.endswith(":events") else KeyKind.JOB
    return KeyKind.OTHER
