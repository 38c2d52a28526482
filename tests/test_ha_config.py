"""Sentinel URLs, master names and embedded mode all or nothing (settings, CLI exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobtrail.config import load_settings
from jobtrail.connections import mask_url, parse_sentinel_url
from jobtrail.errors import ConfigError
from jobtrail.worker.app import create_celery_app


def test_celerys_sentinel_form_is_accepted_with_its_db_on_every_part(tmp_path: Path) -> None:
    settings = load_settings(
        main_url="sentinel://:pw@10.0.0.1:26379;sentinel://10.0.0.2:26380/10",
        broker_url="sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26380/11",
        results_url="sentinel://10.0.0.1:26379/12", sentinel_master_name="jobs",
        results_sentinel_master_name="results", sentinel_password="spw", state_dir=tmp_path)

    # kombu and Celery's backend read the DB (and password) from the first part only
    assert settings.main_url == ("sentinel://:pw@10.0.0.1:26379/10;"
                                 "sentinel://:pw@10.0.0.2:26380/10")
    target = parse_sentinel_url(settings.main_url or "")
    assert target.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    assert (target.db, target.password) == (10, "pw")
    assert mask_url(settings.main_url or "") == ("sentinel://:***@10.0.0.1:26379/10;"
                                                 "sentinel://:***@10.0.0.2:26380/10")
    conf = create_celery_app(settings).conf
    transport = conf.broker_transport_options
    assert transport["master_name"] == "jobs"
    assert transport["sentinel_kwargs"]["password"] == "spw"
    assert conf.result_backend_transport_options["master_name"] == "results"
    assert not uses_tls(conf)


def uses_tls(conf: object) -> bool:
    return bool(getattr(conf, "broker_use_ssl", None))


def test_sentinel_tls_reaches_celery_and_the_sentinels(tmp_path: Path) -> None:
    settings = load_settings(
        main_url="sentinel://h:26379/10", broker_url="sentinel://h:26379/11",
        results_url="sentinel://h:26379/12", sentinel_master_name="m", sentinel_tls=True,
        sentinel_tls_ca_file="/etc/ca.pem", state_dir=tmp_path)
    conf = create_celery_app(settings).conf
    assert conf.broker_use_ssl == {"ssl_cert_reqs": "required", "ssl_ca_certs": "/etc/ca.pem"}
    assert conf.redis_backend_use_ssl == conf.broker_use_ssl
    assert conf.broker_transport_options["sentinel_kwargs"]["ssl"] is True


@pytest.mark.parametrize(("overrides", "message"), [
    ({"main_url": "sentinel://h:26379/10"},
     "JOBTRAIL_MAIN_URL is a sentinel:// URL but no master name is set"),
    ({"main_url": "sentinel://h:26379/10;sentinel://h:26380/11", "sentinel_master_name": "m"},
     "names several databases (10, 11)"),
    ({"main_url": "sentinel://h:26379;redis://h:6379", "sentinel_master_name": "m"},
     "must start with sentinel://"),
    ({"main_url": "http://h"}, "must be a redis://, rediss://, unix:// or sentinel:// URL"),
    ({"main_min_replicas": "-1"}, "must be 0 or more"),
    ({"embedded": "sometimes"}, "JOBTRAIL_EMBEDDED"),
])
def test_bad_ha_settings_are_refused_naming_the_setting(overrides: dict[str, str],
                                                        message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert message in str(caught.value)


def _jobtrail(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": "/usr/bin:/bin", "JOBTRAIL_STATE_DIR": str(tmp_path / "state"), **env}
    return subprocess.run([sys.executable, "-m", "jobtrail", *args], env=full,
                          capture_output=True, text=True, timeout=60, check=False)


def test_an_unset_url_beside_set_ones_is_refused_naming_it(tmp_path: Path) -> None:
    result = _jobtrail(tmp_path, {"JOBTRAIL_MAIN_URL": "redis://127.0.0.1:1/10"},
                       "list")
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        "error: JOBTRAIL_BROKER_URL, JOBTRAIL_RESULTS_URL are unset while the other Redis "
        "URLs are set: set every URL, or none to use the embedded server"], result.stderr
    assert not (tmp_path / "state" / "redis").exists()  # no private server was started


def test_embedded_never_refuses_to_start_one(tmp_path: Path) -> None:
    for args in (("list",), ("server", "start")):
        result = _jobtrail(tmp_path, {"JOBTRAIL_EMBEDDED": "never"}, *args)
        assert result.returncode == 2, result
        assert "JOBTRAIL_EMBEDDED=never: no embedded Redis is started" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "state" / "redis" / "server.json").exists()
