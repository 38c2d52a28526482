"""What Celery is given for each URL form (worker.celery_urls), and the URL query
parameters settings refuse (config._check_url_query). The real servers behind these forms
are in tests/faults/test_tls_and_socket.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtrail.config import load_settings
from jobtrail.errors import ConfigError
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
