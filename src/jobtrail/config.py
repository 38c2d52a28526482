"""jobtrail's settings: one pydantic-settings class, read from JOBTRAIL_* and an env file.

Invariant: this is the only module that reads ``os.environ``. Everything else
receives a Settings (or the clients built from it) as an argument.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, urlsplit

from dotenv import dotenv_values  # pydantic-settings' own dotenv reader
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobtrail.errors import ConfigError

__all__ = [
    "BATCH_MARGIN_S",
    "ENV_FILE_VAR",
    "POLICY_NAME_PATTERN",
    "SOLVER_MAX_PROBLEM_CHARS",
    "PolicySettings",
    "Settings",
    "child_environ",
    "default_state_dir",
    "get_settings",
    "load_settings",
    "normalize_sentinel_url",
    "settings_environ",
]

ENV_FILE_VAR = "JOBTRAIL_ENV_FILE"
_PREFIX = "JOBTRAIL_"
#: JOBTRAIL_* variables that are not settings (JOBTRAIL_TEST_* belong to the test suite).
_NOT_SETTINGS = frozenset({ENV_FILE_VAR})
#: Names of retention policies: lowercase letters, digits, `-` and `_`.
POLICY_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
#: Longest problem text the solver accepts, in characters. It lives here, not in
#: the solver, so that submit (CLI, API, JobService) can check it at the door
#: without importing SymPy; the solver keeps its own guard on the same number.
SOLVER_MAX_PROBLEM_CHARS = 2000
#: Heartbeat intervals without a heartbeat after which a worker is gone; a heartbeat
#: hash lives as long (its TTL), so the rule and the key's expiry agree.
GONE_AFTER_HEARTBEATS = 3
#: Seconds a batch message's Celery time limit adds to jobs x the hard time limit.
BATCH_MARGIN_S = 5.0


def default_state_dir() -> Path:
    """Return `$XDG_STATE_HOME/jobtrail`, or `~/.local/state/jobtrail`."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "jobtrail"


class PolicySettings(BaseModel):
    """One named retention policy as declared in `JOBTRAIL_RETENTION_POLICIES` (JSON).

    Only terminal statuses can be named: pending and processing jobs are
    never purged, however old (they are reported as stuck instead).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    status: list[Literal["completed", "failed", "cancelled"]] = Field(
        min_length=1, description="Statuses the policy purges: completed, failed, cancelled.")
    older_than_s: float = Field(
        ge=0, description="Minimum age, seconds since the job finished (finished_at).")
    keep_last: int = Field(
        0, ge=0, description="Keep this many of the newest finished jobs, whatever their age.")
    max_per_run: int | None = Field(
        None, gt=0, description="Purge at most this many jobs per run; None means no cap.")


class Settings(BaseSettings):
    """Every jobtrail setting; environment variables are `JOBTRAIL_<FIELD>`.

    A Redis URL left unset means "the embedded server": jobtrail starts its
    own redis-server under `state_dir` and uses DBs 10 (main), 11 (broker)
    and 12 (results) of it.
    """

    model_config = SettingsConfigDict(
        env_prefix=_PREFIX, extra="forbid", frozen=True, validate_default=True,
        allow_inf_nan=False,
    )

    main_url: str | None = Field(
        None, description="Redis URL of the main DB (job records); unset: embedded server DB 10."
    )
    broker_url: str | None = Field(
        None, description="Redis URL of Celery's broker DB; unset: embedded server DB 11."
    )
    results_url: str | None = Field(
        None, description="Redis URL of Celery's result backend DB; unset: embedded server DB 12."
    )
    # -- high availability: Redis Sentinel, replication, embedded mode ---------------------
    sentinel_master_name: str | None = Field(
        None, description="Name of the master Sentinel monitors (`sentinel monitor <name> ...`) "
        "for every sentinel:// URL; required when one is used."
    )
    main_sentinel_master_name: str | None = Field(
        None, description="Master name of the main DB, when it differs from "
        "sentinel_master_name."
    )
    broker_sentinel_master_name: str | None = Field(
        None, description="Master name of the broker DB, when it differs from "
        "sentinel_master_name."
    )
    results_sentinel_master_name: str | None = Field(
        None, description="Master name of the result backend DB, when it differs from "
        "sentinel_master_name."
    )
    sentinel_password: SecretStr | None = Field(
        None, description="Password of the Sentinel processes themselves (`requirepass` of "
        "sentinel.conf); the master's password goes in the URL."
    )
    sentinel_tls: bool = Field(
        False, description="Talk TLS to the Sentinels and to the masters they name."
    )
    sentinel_tls_ca_file: str | None = Field(
        None, description="CA bundle that signs the Sentinels' and masters' certificates "
        "(with sentinel_tls); unset: the system's."
    )
    redis_failover_retry_s: float = Field(
        10.0, description="Seconds a main-DB command that found its master gone or read-only "
        "(a failover) keeps reconnecting, through Sentinel, and retrying."
    )
    main_min_replicas: int = Field(
        0, description="Replicas that must hold a job's creation, outcome, purge or restore "
        "(Redis WAIT) before it is acknowledged; 0: the master's reply suffices."
    )
    main_min_replicas_timeout_s: float = Field(
        1.0, description="Seconds a write waits for main_min_replicas replicas before it "
        "fails (ReplicationError)."
    )
    embedded: Literal["auto", "never"] = Field(
        "auto", description="auto: with no Redis URL set, start the embedded server for all "
        "three DBs; never: refuse to (production hosts)."
    )
    recover_dead_workers: bool = Field(
        True, description="Live workers hand a dead worker's unacknowledged jobs back to the "
        "queue once its heartbeat has been gone three intervals."
    )
    key_prefix: str = Field("", description="Prefix of every jobtrail key in the main DB.")
    queue: str = Field("jobtrail", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$",
                       description="Name of the Celery queue solve tasks go to.")
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Directory of the embedded Redis data, the archive and logs.",
    )
    result_expires_s: int = Field(
        86_400,
        description="TTL of celery-task-meta-<id> in seconds; 0 or 'never' keeps results forever.",
    )
    task_sent_event: bool = Field(
        True,
        description="Send Celery's task-sent event with each task (Flower, `celery events`); "
                    "false saves its PUBLISH (written without waiting for the reply), the record's "
                    "`created` event stays.",
    )
    worker_task_events: bool = Field(
        True,
        description="Workers send Celery's task events (task-received/started/succeeded/"
                    "failed; Flower, `celery events`); false sends none, as a bare Celery "
                    "worker without -E. Job records and their events do not depend on them.",
    )
    visibility_timeout_s: int = Field(
        3_600,
        description="Seconds before the broker redelivers an unacknowledged task (kombu).",
    )
    solver_time_limit_s: float = Field(
        10.0, description="Soft time limit of one solve, seconds: the job fails 'timed out'."
    )
    solver_hard_time_limit_s: float = Field(
        15.0,
        description="Hard time limit, seconds: the pool process is killed and replaced.",
    )
    solver_memory_limit_bytes: int = Field(
        512 * 1024 * 1024,
        description="Address space a pool process may add while solving, bytes.",
    )
    max_problem_chars: int = Field(
        SOLVER_MAX_PROBLEM_CHARS, ge=1, le=SOLVER_MAX_PROBLEM_CHARS,
        description="Longest problem text submit accepts, characters (checked before any "
        "write); at most the solver's own limit.",
    )
    max_attempts: int = Field(
        3, description="Deliveries of one job before it is failed as 'worker lost' each time."
    )
    batch_max_jobs: int = Field(
        32, ge=1,
        description="Jobs submitted together (submit_many, POST /jobs with problems, "
        "`jobtrail submit --file`) travel up to this many to one Celery message "
        "(jobtrail.solve_batch); 1 sends one message per job, as single submissions are.",
    )
    # -- riding out Redis faults (issue 12) --
    redis_retry_s: float = Field(
        30.0, gt=0, allow_inf_nan=False,
        description="Seconds a worker keeps retrying a main-DB write of a job's start or "
        "outcome before it hands the task back to the broker (requeue); long enough to "
        "ride out a Redis restart.",
    )
    events_max_len: int = Field(
        1_000, description="Cap of each job's lifecycle events stream (approximate MAXLEN)."
    )
    heartbeat_interval_s: float = Field(
        10.0, description="Seconds between worker heartbeats; a worker silent for 3 of them "
        "is gone."
    )
    # -- connections: how soon a dead or half-open Redis peer is noticed -------------------
    # Applied to every client jobtrail and Celery open (main DB, broker transport, result
    # backend). A peer that never answers and never resets (a NAT or firewall that forgot
    # the flow) is noticed by the socket timeout on a command waiting for its reply, by
    # kombu's BRPOP health check on the consumer's connection, and on idle connections by
    # TCP keepalive; the worker's consumer then reconnects (within about 25 s with these
    # defaults: brpop_timeout 1 s + up to twice the health check interval).
    redis_socket_timeout_s: float = Field(
        3.0, description="Seconds a Redis command may wait for its reply before the "
        "connection is dropped as dead and the command fails (every client); keep it well "
        "below solver_time_limit_s, which a stalled write in a solve also counts against."
    )
    redis_connect_timeout_s: float = Field(
        5.0, description="Seconds a new Redis connection may take to be established."
    )
    redis_health_check_interval_s: int = Field(
        10, description="Seconds between checks of idle and long-lived Redis connections: "
        "redis-py PINGs a connection idle this long before using it, and kombu drops the "
        "consumer's BRPOP connection once its reply is this much overdue."
    )
    redis_keepalive_idle_s: int = Field(
        30, description="TCP keepalive: seconds a connection is idle before the first probe."
    )
    redis_keepalive_interval_s: int = Field(
        10, description="TCP keepalive: seconds between unanswered probes."
    )
    redis_keepalive_count: int = Field(
        3, description="TCP keepalive: unanswered probes after which the kernel drops the "
        "connection."
    )
    worker_stuck_after_s: float = Field(
        30.0, description="A worker whose consumer has not polled the broker for this many "
        "seconds is shown stuck, even though its heartbeat thread still beats."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by the API's purge and restore endpoints; "
        "unset: those endpoints are disabled (403)."
    )
    worker_metrics_port: int = Field(
        0, description="TCP port where `jobtrail worker` serves Prometheus metrics; 0: none."
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Address `jobtrail worker` serves its metrics on "
        "(0.0.0.0 or :: for every interface, e.g. in a container)."
    )
    worker_concurrency: int = Field(
        0, description="Pool processes of `jobtrail worker`; 0 means one per CPU."
    )
    archive_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the purge archive (sqlite:/// or postgresql://); "
        "unset: the SQLite file archive.db in state_dir.",
    )
    archive_table_prefix: str = Field(
        "jobtrail_", pattern=r"^[a-z_][a-z0-9_]{0,30}$",
        description="Prefix of the archive's table names (archived_jobs, retention_runs).",
    )
    tombstone_ttl_s: int = Field(
        2_592_000,
        gt=0,
        description="TTL of tombstone:<id> and of a purged job's events stream, seconds "
        "(default 30 days).",
    )
    purge_batch_size: int = Field(
        1_000, gt=0, le=100_000,
        description="Jobs read, archived and deleted per batch; purge memory is O(batch).",
    )
    retention_policies: dict[str, PolicySettings] = Field(
        default_factory=dict,
        description="Named retention policies, JSON: {name: {status: [...], older_than_s, "
        "keep_last, max_per_run}}.",
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        # a relative JOBTRAIL_STATE_DIR means the same directory to every child process
        # (redis-server, workers), whatever directory each runs in
        return value.expanduser().absolute()

    @field_validator("result_expires_s", mode="before")
    @classmethod
    def _never_means_zero(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"never", "none", "forever"}:
            return 0
        return value

    @field_validator(
        "result_expires_s", "visibility_timeout_s", "solver_memory_limit_bytes", "events_max_len",
        "worker_concurrency", "worker_metrics_port", "main_min_replicas",
    )
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 or more")
        return value

    @field_validator("solver_time_limit_s", "solver_hard_time_limit_s", "max_attempts",
                     "heartbeat_interval_s", "redis_socket_timeout_s", "redis_connect_timeout_s",
                     "redis_health_check_interval_s", "redis_keepalive_idle_s",
                     "redis_keepalive_interval_s", "redis_keepalive_count",
                     "worker_stuck_after_s", "redis_failover_retry_s",
                     "main_min_replicas_timeout_s")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    @field_validator("retention_policies", mode="before")
    @classmethod
    def _policies_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at {exc.pos})") from exc
        return value

    @field_validator("retention_policies")
    @classmethod
    def _policy_names(cls, value: dict[str, PolicySettings]) -> dict[str, PolicySettings]:
        for name in value:
            if not POLICY_NAME_PATTERN.match(name):
                raise ValueError(f"policy name {name!r} must match {POLICY_NAME_PATTERN.pattern}")
        return value

    @field_validator("archive_url")
    @classmethod
    def _archive_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("api_token", "sentinel_password", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None  # an empty token must never open the endpoints
        return value

    @field_validator("main_url", "broker_url", "results_url")
    @classmethod
    def _redis_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if value.startswith("sentinel://"):
            return normalize_sentinel_url(value)
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss://, unix:// or sentinel:// URL")
        parts = _url_parts(value)
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("has no host")
        db = parts.path.lstrip("/")
        if db and not db.isdigit() and parts.scheme != "unix":
            raise ValueError(f"database {db!r} is not a number")
        _check_url_query(parts, celery_reads_it=info.field_name != "main_url")
        return value

    @model_validator(mode="after")
    def _sentinel_has_master_name(self) -> Settings:
        for role in ("main", "broker", "results"):
            url = getattr(self, f"{role}_url")
            if url and url.startswith("sentinel://") and self.master_name(role) is None:
                raise ValueError(
                    f"JOBTRAIL_{role.upper()}_URL is a sentinel:// URL but no master name is "
                    "set: set JOBTRAIL_SENTINEL_MASTER_NAME (or "
                    f"JOBTRAIL_{role.upper()}_SENTINEL_MASTER_NAME)")
        return self

    @model_validator(mode="after")
    def _limits_below_visibility_timeout(self) -> Settings:
        if self.solver_hard_time_limit_s < self.solver_time_limit_s:
            raise ValueError(
                f"solver_hard_time_limit_s ({self.solver_hard_time_limit_s:g}) must not be below "
                f"solver_time_limit_s ({self.solver_time_limit_s:g})"
            )
        if self.solver_hard_time_limit_s >= self.visibility_timeout_s:
            raise ValueError(
                f"solver_hard_time_limit_s ({self.solver_hard_time_limit_s:g}) must be below "
                f"visibility_timeout_s ({self.visibility_timeout_s}), or the broker redelivers "
                "jobs that are still running"
            )
        return self

    @property
    def gone_after_s(self) -> float:
        """Seconds without a heartbeat after which a worker is gone: GONE_AFTER_HEARTBEATS
        heartbeat intervals (the heartbeat hash's TTL)."""
        return GONE_AFTER_HEARTBEATS * self.heartbeat_interval_s

    @property
    def uses_embedded(self) -> bool:
        """True when at least one Redis URL is left to the embedded server."""
        return None in (self.main_url, self.broker_url, self.results_url)

    @property
    def missing_urls(self) -> list[str]:
        """The `JOBTRAIL_*_URL` variables left unset, in main, broker, results order."""
        return [f"{_PREFIX}{role.upper()}_URL" for role in ("main", "broker", "results")
                if getattr(self, f"{role}_url") is None]

    def master_name(self, role: str) -> str | None:
        """Return the Sentinel master name of DB *role* (main, broker or results)."""
        own: str | None = getattr(self, f"{role}_sentinel_master_name")
        return own or self.sentinel_master_name

    @property
    def archive_path(self) -> Path:
        """Default SQLite archive file under the state directory."""
        return self.state_dir / "archive.db"

    @property
    def effective_archive_url(self) -> str:
        """The archive's SQLAlchemy URL: `archive_url`, else `sqlite:///<state_dir>/archive.db`."""
        return self.archive_url or f"sqlite:///{self.archive_path}"

    @property
    def log_dir(self) -> Path:
        """Directory of jobtrail's log files."""
        return self.state_dir / "logs"

    def batch_jobs(self) -> int:
        """Jobs per batch message: batch_max_jobs, fewer if a whole batch's hard time limit
        (jobs x solver_hard_time_limit_s + BATCH_MARGIN_S) would reach the visibility
        timeout (the broker would then deliver a running batch a second time); at least 1."""
        fit = int((self.visibility_timeout_s - BATCH_MARGIN_S) // self.solver_hard_time_limit_s)
        return max(1, min(self.batch_max_jobs, fit))

    def require_urls(self) -> tuple[str, str, str]:
        """Return (main, broker, results) URLs.

        Raises:
            ConfigError: A URL is unset (the embedded server was not resolved).
        """
        if self.main_url is None or self.broker_url is None or self.results_url is None:
            raise ConfigError("Redis URLs are not resolved; start the embedded server first")
        return self.main_url, self.broker_url, self.results_url


#: The certificate checks a rediss:// URL's `ssl_cert_reqs` may ask for: the words redis-py,
#: kombu and Celery's backend all read (redis-py refuses `CERT_REQUIRED`; kombu reads an
#: unknown word as no check at all).
SSL_CERT_REQS = ("required", "optional", "none")
#: The TLS files a rediss:// URL may name (redis-py, kombu and Celery read all three).
SSL_FILE_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
#: What a unix:// URL of the broker or result backend may carry: kombu and Celery get it
#: as `redis+socket://` (worker.celery_urls), which carries nothing else.
UNIX_CELERY_PARAMS = ("db", "username", "password")


def _check_url_query(parts: SplitResult, *, celery_reads_it: bool) -> None:
    """Refuse query parameters of a Redis URL that would connect otherwise than they say.

    Args:
        parts: The split URL (redis://, rediss:// or unix://).
        celery_reads_it: The URL is the broker's or the result backend's.

    Raises:
        ValueError: A parameter named twice, a unix:// `db` that is not a number,
            an `ssl_*` parameter on a URL that is not rediss://, an
            `ssl_cert_reqs` not in SSL_CERT_REQS, a TLS file that does not exist,
            or (broker, results) a unix:// parameter other than UNIX_CELERY_PARAMS.
    """
    pairs = parse_qsl(parts.query)
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        # redis-py reads the first value, kombu and this check the last
        raise ValueError(f"names {repeated[0]} more than once")
    query = dict(pairs)
    if parts.scheme == "unix" and not query.get("db", "0").isdigit():
        raise ValueError(f"database {query['db']!r} is not a number")
    tls = sorted(key for key in query if key.startswith("ssl_"))
    if tls and parts.scheme != "rediss":
        raise ValueError(f"{tls[0]} is a TLS parameter: use a rediss:// URL")
    reqs = query.get("ssl_cert_reqs")
    if reqs is not None and reqs not in SSL_CERT_REQS:
        raise ValueError(f"ssl_cert_reqs={reqs!r} is not one of {', '.join(SSL_CERT_REQS)}")
    for key in SSL_FILE_PARAMS:
        if key in query and not Path(query[key]).expanduser().is_file():
            raise ValueError(f"{key}: no file {query[key]!r}")
    if parts.scheme == "unix" and celery_reads_it:
        other = sorted(set(query) - set(UNIX_CELERY_PARAMS))
        if other:
            raise ValueError(f"a unix:// URL of the broker or result backend takes only "
                             f"{', '.join(UNIX_CELERY_PARAMS)} (not {other[0]})")


def _url_parts(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from exc
    return parts


def normalize_sentinel_url(url: str) -> str:
    """Return a `sentinel://h:p;sentinel://h:p/DB` URL with its DB and password on every part.

    Celery's own form names the DB (and the master's password) once, but kombu
    and Celery's result backend read them from the first part only; written on
    every part, each library connects to the same DB.

    Raises:
        ValueError: A part is not `sentinel://[:password@]host:port[/db]`, or
            two parts name different DBs or passwords.
    """
    chunks = [c.strip() for c in url.split(";") if c.strip()]
    hosts: list[str] = []
    dbs: set[str] = set()
    passwords: set[str] = set()
    users: set[str] = set()
    for chunk in chunks:
        if not chunk.startswith("sentinel://"):
            raise ValueError(f"part {chunk!r} of a Sentinel URL must start with sentinel://")
        parts = _url_parts(chunk)
        if not parts.hostname:
            raise ValueError(f"part {chunk!r} has no host")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(f"database {db!r} is not a number")
        if db:
            dbs.add(db)
        if parts.password:
            passwords.add(parts.password)
            users.add(parts.username or "")
        hosts.append(parts.netloc.rsplit("@", 1)[-1])
    if len(dbs) > 1:
        raise ValueError(f"names several databases ({', '.join(sorted(dbs))})")
    if len(passwords) > 1:
        raise ValueError("names several passwords")
    auth = f"{users.pop()}:{passwords.pop()}@" if passwords else ""
    suffix = f"/{dbs.pop()}" if dbs else "/0"
    return ";".join(f"sentinel://{auth}{host}{suffix}" for host in hosts)


def _read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file into {KEY: value}, refusing keys jobtrail does not know."""
    if not path.is_file():
        raise ConfigError(f"env file {path} does not exist", setting=ENV_FILE_VAR)
    known = {f"{_PREFIX}{name}".upper() for name in Settings.model_fields}
    values: dict[str, str] = {}
    try:
        entries = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"env file {path} cannot be read: {exc}", setting=ENV_FILE_VAR
                          ) from exc
    for key, value in entries.items():
        upper = key.upper()
        if upper not in known:
            raise ConfigError(f"unknown setting {key} in env file {path}", setting=key)
        if value is not None:
            values[upper[len(_PREFIX):].lower()] = value
    return values


def load_settings(env_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from the environment, an optional env file and overrides.

    Precedence, highest first: *overrides*, `JOBTRAIL_*` environment variables,
    the env file (*env_file*, else `$JOBTRAIL_ENV_FILE`), defaults.

    Raises:
        ConfigError: A value is malformed or inconsistent, or the env file or
            the environment has a JOBTRAIL_ key that is not a setting (a typo
            would otherwise be silently ignored); the message names it.
    """
    path = env_file or os.environ.get(ENV_FILE_VAR)
    file_values = _read_env_file(Path(path)) if path else {}
    env_values: dict[str, str] = {}
    for key, value in os.environ.items():
        if not key.upper().startswith(_PREFIX) or key.upper() in _NOT_SETTINGS or \
                key.upper().startswith(f"{_PREFIX}TEST_"):
            continue
        name = key[len(_PREFIX):].lower()
        if name not in Settings.model_fields:
            raise ConfigError(f"unknown setting {key} in the environment", setting=key)
        env_values[name] = value
    values: dict[str, Any] = {**file_values, **env_values, **overrides}
    try:
        # model_validate skips BaseSettings.__init__, so values come only from `values`
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = describe_error(err)
        if not err["loc"]:
            raise ConfigError(f"invalid settings: {msg}") from exc
        where = f"{_PREFIX}{str(err['loc'][0]).upper()}"
        inner = ".".join(str(p) for p in err["loc"][1:])  # e.g. a policy's field
        detail = f"{inner}: {msg}" if inner else msg
        raise ConfigError(f"invalid setting {where}: {detail}", setting=where) from exc


_BOUNDS = {"greater_than_equal": ("ge", "must be at least"), "greater_than": ("gt", "must be over"),
           "less_than_equal": ("le", "must be at most"), "less_than": ("lt", "must be below")}
_KINDS = {"int_parsing": "a whole number", "int_from_float": "a whole number",
          "float_parsing": "a number", "bool_parsing": "true or false",
          "json_invalid": "valid JSON", "dict_type": "a JSON object", "list_type": "a JSON list"}


def describe_error(err: Mapping[str, Any]) -> str:
    """One pydantic error in a user's words: "'bogus' is not one of auto, never", "must be at
    least 1", "'x' is not a whole number"; a validator's own ValueError text as it is.

    *err* is one item of ValidationError.errors(); an unknown type falls back to its msg.
    """
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"{value!r} is not one of {', '.join(choices)}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"{words} {ctx[key]:g}" if isinstance(ctx.get(key), float) else \
            f"{words} {ctx.get(key)}"
    if kind in _KINDS:
        return f"{value!r} is not {_KINDS[kind]}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return str(err["msg"]).removeprefix("Value error, ")


def settings_environ(settings: Settings) -> dict[str, str]:
    """Return the `JOBTRAIL_*` variables that load_settings() reads back as *settings*.

    Secrets are written in clear (the variables go to a child process, never to a file).
    """
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"{_PREFIX}{name.upper()}"] = text
    for name in ("api_token", "sentinel_password"):
        secret: SecretStr | None = getattr(settings, name)
        if secret is not None:
            env[f"{_PREFIX}{name.upper()}"] = secret.get_secret_value()
    return env


def child_environ(settings: Settings) -> dict[str, str]:
    """Return this process's environment with every `JOBTRAIL_*` variable replaced by *settings*.

    A child started with it (a worker the reproduction harness spawns) runs on
    exactly *settings*, whatever the parent's shell exported.
    """
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_PREFIX)}
    env.update(settings_environ(settings))
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's Settings, built once by load_settings()."""
    return load_settings()
