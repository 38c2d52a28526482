"""/docs works offline: Swagger UI's scripts and styles come from the package, not a CDN."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.store import JobStore
from tests.api.test_dashboard_browser import CHROMIUM, _chromium
from tests.helpers.api_server import client, serve_in_thread


def test_docs_load_every_asset_from_the_server(settings: Settings, store: JobStore) -> None:
    with serve_in_thread(create_app(settings)) as base, client(base) as http:
        page = http.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assets = {u: http.get(u) for u in urls}
        redirect = http.get("/docs/oauth2-redirect")
    assert len(urls) >= 3 and all(u.startswith("/static/swagger-ui/") for u in urls), urls
    assert "cdn" not in page.text and "https://" not in page.text
    assert all(r.status_code == 200 for r in assets.values()), assets
    bundle = next(r for u, r in assets.items() if u.endswith("swagger-ui-bundle.js"))
    assert "javascript" in bundle.headers["content-type"] and len(bundle.content) > 1_000_000
    assert redirect.status_code == 200 and "oauth2" in redirect.text


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                    reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_docs_render_in_a_browser_without_the_internet(settings: Settings, store: JobStore,
                                                       tmp_path: Path) -> None:
    assert CHROMIUM, "CI must have Chromium"
    with serve_in_thread(create_app(settings)) as base:
        # every host but loopback goes through a proxy that does not exist: offline
        dom = _chromium(f"{base}/docs", tmp_path / "profile", "--dump-dom",
                        "--proxy-server=http://127.0.0.1:9")
    # Swagger UI ran: it drew the API's operations from /openapi.json
    assert 'class="swagger-ui' in dom.stdout, dom.stderr[-2000:]
    assert "/jobs/{job_id}/trace" in dom.stdout, dom.stdout[-2000:]
