"""A job's own outcome stored in one round trip (worker.results), as Celery would store it."""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import states
from celery.app.task import Context
from celery.backends.redis import RedisBackend

from jobtrail.config import Settings
from jobtrail.errors import ProblemError
from jobtrail.worker.app import TASK_SOLVE, create_celery_app
from jobtrail.worker.results import OWNED_KEY, send_owned_results, store_owned_results
from tests.conftest import RESULTS_DB
from tests.helpers.tcp_proxy import TcpProxy


def _request(job_id: str, *, owned: bool) -> Context:
    request = Context(id=job_id, task=TASK_SOLVE, args=[job_id, "1 + 1"], kwargs={},
                      hostname="w1@host", retries=0, delivery_info={"routing_key": "jobtrail"})
    if owned:
        setattr(request, OWNED_KEY, True)
    return request


def _meta(results_db: redis.Redis, job_id: str) -> dict[str, object]:
    raw = results_db.get(f"celery-task-meta-{job_id}")
    assert raw is not None, job_id
    meta: dict[str, object] = json.loads(raw)
    return meta


def test_an_owned_outcome_is_stored_without_the_read_and_reads_the_same(
        settings: Settings, results_db: redis.Redis) -> None:
    # Given jobtrail's result backend (still Celery's Redis backend)
    backend = create_celery_app(settings).backend
    assert isinstance(backend, RedisBackend)
    payload = {"kind": "arithmetic", "text": "2"}

    # When one job's outcome is stored as its run's own, another's the ordinary way
    results_db.config_resetstat()
    backend.store_result("owned", payload, states.SUCCESS, request=_request("owned", owned=True))
    reads = results_db.info("commandstats").get("cmdstat_get", {}).get("calls", 0)
    backend.store_result("plain", payload, states.SUCCESS, request=_request("plain", owned=False))

    # Then the owned store read nothing first, and both metas say the same but for the id
    assert reads == 0
    owned, plain = _meta(results_db, "owned"), _meta(results_db, "plain")
    assert (owned.pop("task_id"), owned.pop("args")) == ("owned", ["owned", "1 + 1"])
    assert (plain.pop("task_id"), plain.pop("args")) == ("plain", ["plain", "1 + 1"])
    owned.pop("date_done"), plain.pop("date_done")
    assert owned == plain and owned["result"] == payload and owned["status"] == "SUCCESS"
    assert 0 < results_db.ttl("celery-task-meta-owned") <= settings.result_expires_s
    assert backend.get_task_meta("owned")["result"] == payload


def test_a_store_not_owned_keeps_celerys_guard_of_a_success(
        settings: Settings, results_db: redis.Redis) -> None:
    # Given a job whose SUCCESS is stored
    backend = create_celery_app(settings).backend
    backend.store_result("j", {"text": "2"}, states.SUCCESS, request=_request("j", owned=True))

    # When a store that is not the job's run's own (a late hard-limit failure) follows
    backend.store_result("j", {"exc_type": "TimeLimitExceeded", "exc_message": ["x"]},
                         states.FAILURE, request=_request("j", owned=False))

    # Then Celery's read kept the SUCCESS
    assert _meta(results_db, "j")["status"] == "SUCCESS"


def test_a_group_of_owned_outcomes_is_stored_in_one_round_trip_as_celery_stores_each(
        settings: Settings, results_db: redis.Redis) -> None:
    # Given jobtrail's result backend, a success and a failure that their runs own, and
    # one outcome that is not owned
    backend = create_celery_app(settings).backend
    payload = {"kind": "arithmetic", "text": "2"}
    failure = ProblemError("could not read the problem")
    results_db.config_resetstat()

    # When the three are stored as a batch's group commit stores them
    store_owned_results(backend, [
        ("ok", payload, states.SUCCESS, _request("ok", owned=True)),
        ("bad", failure, states.FAILURE, _request("bad", owned=True)),
        ("other", payload, states.SUCCESS, _request("other", owned=False)),
    ])

    # Then the owned two took one pipeline of SETEX + PUBLISH each and no read; the other
    # was read first, as Celery stores it
    stats = results_db.info("commandstats")
    assert stats["cmdstat_setex"]["calls"] == 3
    assert stats["cmdstat_publish"]["calls"] == 3
    assert stats["cmdstat_get"]["calls"] == 1
    # and each meta is the one Celery's own store_result writes
    for job_id, value, state in (("ok", payload, states.SUCCESS),
                                 ("bad", failure, states.FAILURE)):
        ours = _meta(results_db, job_id)
        backend.store_result(f"{job_id}-celery", value, state,
                             request=_request(f"{job_id}-celery", owned=False))
        celerys = _meta(results_db, f"{job_id}-celery")
        for meta in (ours, celerys):
            meta.pop("task_id"), meta.pop("args"), meta.pop("date_done")
        assert ours == celerys
        assert 0 < results_db.ttl(f"celery-task-meta-{job_id}") <= settings.result_expires_s
    assert backend.get_task_meta("ok")["result"] == payload
    assert backend.get_task_meta("bad")["status"] == "FAILURE"


def test_a_groups_results_whose_connection_is_lost_before_their_replies_are_written_again(
        redis_server: Any, settings: Settings, results_db: redis.Redis) -> None:
    # Given jobtrail's result backend through a proxy, its pooled connection black-holed
    # (the results DB never sees what is sent on it)
    proxy = TcpProxy("127.0.0.1", redis_server.port)
    try:
        backend = create_celery_app(settings.model_copy(
            update={"results_url": proxy.url(RESULTS_DB)})).backend
        backend.client.ping()
        assert proxy.black_hole() == 1
        payload = {"kind": "arithmetic", "text": "2"}

        # When a group's results are sent (replies unread, as a batch's group commit
        # sends them), and the connection is then closed before they are confirmed
        pending = send_owned_results(backend, [
            ("a", payload, states.SUCCESS, _request("a", owned=True)),
            ("b", payload, states.SUCCESS, _request("b", owned=True))])
        assert results_db.get("celery-task-meta-a") is None  # swallowed by the black hole
        assert proxy.close_black_holed() == 1
        pending.confirm()
    finally:
        proxy.close()

    # Then confirming wrote them again on a new connection, as Celery stores them
    assert _meta(results_db, "a")["result"] == payload
    assert _meta(results_db, "b")["status"] == "SUCCESS"
    assert 0 < results_db.ttl("celery-task-meta-b") <= settings.result_expires_s
