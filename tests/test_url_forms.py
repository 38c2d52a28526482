"""What Celery is given for each URL form (worker.celery_urls), and the URL query
parameters settings refuse (config._check_url_query). The real servers behind these forms
are in tests/faults/test_tls_and_socket.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from jobtrail.config import load_settings
from jobtrail.connections import mask_url
from jobtrail.doctor.deployment import db_number
from jobtrail.doctor.timeouts import check_connections
from jobtrail.errors import ConfigError
from jobtrail.monitor.snapshot import _url_of
from jobtrail.worker.app import create_celery_app
from jobtrail.worker.celery_urls import broker_url_for_kombu, results_url_for_celery
from jobtrail.worker.transport import TRANSPORT


@pytest.mark.parametrize(("url", "broker", "results"), [
    ("unix:///run/redis.sock?db=11", "jobtrail+socket:///run/redis.sock?virtual_host=11",
     "redis+socket:///run/redis.sock?virtual_host=11"),
    # a password in the user part or the query ends in the user part, quoted once
    ("unix://:p%40ss%2F@/run/redis.sock?db=3", "jobtrail+socket://:p%40ss%2F@/run/redis.sock"
     "?virtual_host=3", "redis+socket://:p%40ss%2F@/run/redis.sock?virtual_host=3"),
    ("unix:///run/redis.sock?db=3&password=p@ss/&username=u",
     "jobtrail+socket://u:p%40ss%2F@/run/redis.sock?virtual_host=3",
     "redis+socket://u:p%40ss%2F@/run/redis.sock?virtual_host=3"),
    ("unix:///run/redis.sock", "jobtrail+socket:///run/redis.sock",
     "redis+socket:///run/redis.sock"),
    ("rediss://:pw@h:6380/11", "rediss://:pw@h:6380/11", "rediss://:pw@h:6380/11"),
    ("redis://h:6379/11", "redis://h:6379/11", "redis://h:6379/11"),
])
def test_each_url_form_reaches_kombu_and_celery_in_a_form_they_parse(
        url: str, broker: str, results: str) -> None:
    assert broker_url_for_kombu(url) == broker
    assert results_url_for_celery(url) == results


def test_rediss_urls_run_jobtrails_transport_with_the_certificate_checked(
        tmp_path: Path) -> None:
    settings = load_settings(main_url="redis://h/10", broker_url="rediss://h:6380/11",
                             results_url="rediss://h:6380/12", state_dir=tmp_path)
    conf = create_celery_app(settings).conf
    assert conf.broker_transport == TRANSPORT
    assert conf.broker_use_ssl == {"ssl_cert_reqs": "required"}
    assert conf.redis_backend_use_ssl == {"ssl_cert_reqs": "required"}


def test_only_the_tls_urls_get_tls(tmp_path: Path) -> None:
    settings = load_settings(main_url="redis://h/10", broker_url="redis://h/11",
                             results_url="rediss://h:6380/12", state_dir=tmp_path)
    conf = create_celery_app(settings).conf
    assert not conf.broker_use_ssl  # Celery's default, False
    assert conf.redis_backend_use_ssl == {"ssl_cert_reqs": "required"}


@pytest.mark.parametrize(("overrides", "message"), [
    # redis-py refuses CERT_REQUIRED, kombu reads a word it does not know as no check
    ({"broker_url": "rediss://h/11?ssl_cert_reqs=CERT_REQUIRED"},
     "ssl_cert_reqs='CERT_REQUIRED' is not one of required, optional, none"),
    ({"results_url": "rediss://h/12?ssl_cert_reqs=yes"}, "ssl_cert_reqs='yes'"),
    ({"main_url": "redis://h/10?ssl_ca_certs=/etc/ca.pem"},
     "ssl_ca_certs is a TLS parameter: use a rediss:// URL"),
    ({"broker_url": "rediss://h/11?ssl_ca_certs=/no/such/ca.pem"},
     "ssl_ca_certs: no file '/no/such/ca.pem'"),
    ({"broker_url": "unix:///run/redis.sock?db=11&socket_timeout=3"},
     "takes only db, username, password (not socket_timeout)"),
])
def test_url_parameters_that_would_connect_otherwise_are_refused_naming_the_setting(
        overrides: dict[str, str], message: str, tmp_path: Path) -> None:
    urls = {"main_url": "redis://h/10", "broker_url": "redis://h/11",
            "results_url": "redis://h/12", **overrides}
    with pytest.raises(ConfigError) as caught:
        load_settings(**urls, state_dir=tmp_path)
    name = next(iter(overrides)).upper()
    assert message in str(caught.value) and name in str(caught.value).upper(), caught.value


def test_a_ca_file_that_exists_and_main_db_socket_parameters_are_accepted(
        tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(main_url="unix:///run/redis.sock?db=10&socket_timeout=3",
                             broker_url=f"rediss://h/11?ssl_ca_certs={ca}&ssl_cert_reqs=none",
                             results_url="rediss://h/12", state_dir=tmp_path)
    assert settings.broker_url == f"rediss://h/11?ssl_ca_certs={ca}&ssl_cert_reqs=none"


# -- found by review (each failed before its fix) -------------------------------------------


def test_mask_url_hides_a_password_given_in_the_query() -> None:
    # docs/operations.md offers `?password=` for a socket URL; errors print mask_url(url)
    masked = mask_url("unix:///run/redis.sock?db=11&password=s3cret")
    assert "s3cret" not in masked, masked


def test_a_unix_db_that_is_not_a_number_is_refused_by_settings(tmp_path: Path) -> None:
    # today: accepted, then every command dies with a ValueError traceback from redis-py
    with pytest.raises(ConfigError):
        load_settings(main_url="redis://h/10", broker_url="unix:///run/redis.sock?db=abc",
                      results_url="redis://h/12", state_dir=tmp_path)


def test_a_repeated_db_names_one_db_for_kombu_and_redis_py(tmp_path: Path) -> None:
    url = "unix:///run/redis.sock?db=11&db=12"
    try:
        load_settings(main_url="redis://h/10", broker_url=url, results_url="redis://h/12",
                      state_dir=tmp_path)
    except ConfigError:
        return  # refusing it is fine too
    kombu_db = parse_qs(urlsplit(broker_url_for_kombu(url)).query)["virtual_host"][0]
    redis_py_db = parse_qs(urlsplit(url).query)["db"][0]  # redis.from_url reads the first
    assert kombu_db == redis_py_db


def test_a_repeated_ssl_cert_reqs_is_refused(tmp_path: Path) -> None:
    # config checks the last value (dict(parse_qsl)); redis-py reads the first: no check at all
    with pytest.raises(ConfigError):
        load_settings(main_url="rediss://h/10?ssl_cert_reqs=none&ssl_cert_reqs=required",
                      broker_url="redis://h/11", results_url="redis://h/12",
                      state_dir=tmp_path)


def test_doctor_does_not_ask_a_unix_socket_broker_for_tcp_keepalive(tmp_path: Path) -> None:
    settings = load_settings(main_url="redis://h/10", broker_url="unix:///run/r.sock?db=11",
                             results_url="redis://h/12", state_dir=tmp_path)
    conf = create_celery_app(settings).conf
    broker = [f for f in check_connections(settings, conf) if f.check == "connections:broker"]
    assert all(f.severity.name == "OK" for f in broker), broker


def test_a_socket_db_and_a_tls_db_are_labelled_as_they_are() -> None:
    assert db_number("unix:///run/a b/redis.sock?db=11") == "11"
    assert _url_of(redis.Redis.from_url("rediss://:pw@h:6380/3")) == "rediss://:***@h:6380/3"
