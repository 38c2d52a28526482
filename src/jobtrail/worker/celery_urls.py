"""What Celery's broker (kombu) and result backend are given for jobtrail's Redis URLs.

jobtrail takes every DB's URL in redis-py's forms (`redis://`, `rediss://`,
`unix:///path?db=N`) or Celery's `sentinel://`. Two of them do not reach
Celery as they are:

- `unix://` is no scheme of kombu's or Celery's ("No such transport: unix").
  kombu names a socket `redis+socket:///path` and takes its DB from the
  `virtual_host` query parameter (and its password only from the URL's user
  part); the broker's URL gets jobtrail's transport alias for the `redis+`
  prefix, so that a socket broker runs jobtrail's transport
  (worker.transport) and not kombu's stock one.
- `rediss://` needs its certificate check said: kombu falls back to no check
  at all ("defaulting to insecure SSL behaviour"), and Celery's backend
  refuses the URL ("A rediss:// URL must have parameter ssl_cert_reqs"). Both
  get `ssl_cert_reqs=required`, as redis-py does for the main DB, unless the
  URL's own `ssl_cert_reqs` (`required`, `optional` or `none`), `ssl_ca_certs`,
  `ssl_certfile` or `ssl_keyfile` say otherwise (config.py checks them).

Source: kombu.connection.Connection.__init__ (the `+` prefix) and
kombu.transport.redis.Channel._connparams (`socket://`, `virtual_host`);
celery.backends.redis.RedisBackend._params_from_url; kombu.utils.url.parse_url
(`ssl_*` query parameters); redis-py `redis.from_url`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from jobtrail.config import Settings
from jobtrail.connections import sentinel_tls_kwargs

__all__ = ["KOMBU_TRANSPORT_ALIAS", "broker_url_for_kombu", "results_url_for_celery",
           "tls_options"]

#: The name kombu.transport.TRANSPORT_ALIASES gives jobtrail's transport
#: (worker.transport registers it): the prefix of a socket broker's URL.
KOMBU_TRANSPORT_ALIAS = "jobtrail"


def _socket_url(url: str, prefix: str) -> str:
    """Return `<prefix>+socket://[user:password@]/path[?virtual_host=N]` for a unix:// *url*."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    # urlsplit leaves the user part percent-encoded; parse_qsl decodes the query
    username = unquote(parts.username or "") or query.pop("username", "")
    password = unquote(parts.password or "") or query.pop("password", "")
    userinfo = ""
    if username or password:
        userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    db = query.pop("db", None)
    tail = f"?{urlencode({'virtual_host': db})}" if db else ""
    return f"{prefix}+socket://{userinfo}{parts.path}{tail}"


def broker_url_for_kombu(url: str) -> str:
    """Return the broker URL Celery is given for jobtrail's broker *url*.

    Args:
        url: The broker's URL as Settings holds it (checked there).

    Returns:
        *url* itself, or for `unix:///path?db=N` the form kombu parses,
        `jobtrail+socket:///path?virtual_host=N` (jobtrail's transport).
    """
    if urlsplit(url).scheme == "unix":
        return _socket_url(url, KOMBU_TRANSPORT_ALIAS)
    return url


def results_url_for_celery(url: str) -> str:
    """Return the result backend URL Celery is given for jobtrail's results *url*.

    Args:
        url: The result backend's URL as Settings holds it (checked there).

    Returns:
        *url* itself, or for `unix:///path?db=N` Celery's
        `redis+socket:///path?virtual_host=N`.
    """
    if urlsplit(url).scheme == "unix":
        return _socket_url(url, "redis")
    return url


def tls_options(settings: Settings) -> dict[str, Any]:
    """Return Celery's `broker_use_ssl` and `redis_backend_use_ssl` for TLS URLs.

    A `rediss://` URL gets `{"ssl_cert_reqs": "required"}` (its own `ssl_*`
    query parameters take precedence, in kombu and in Celery's backend); a
    `sentinel://` URL with `sentinel_tls` the same, plus `sentinel_tls_ca_file`
    as `ssl_ca_certs`. Other URLs get nothing.

    Args:
        settings: Settings with resolved URLs.

    Returns:
        A dict of zero to two Celery settings.
    """
    options: dict[str, Any] = {}
    for url, name in ((settings.broker_url, "broker_use_ssl"),
                      (settings.results_url, "redis_backend_use_ssl")):
        scheme = urlsplit(url or "").scheme
        if scheme == "rediss":
            options[name] = {"ssl_cert_reqs": "required"}
        elif scheme == "sentinel" and settings.sentinel_tls:
            # the Sentinels' own TLS keywords, but `ssl`: Celery picks the TLS class itself
            options[name] = {key: value for key, value in sentinel_tls_kwargs(settings).items()
                             if key != "ssl"}
    return options
