"""One truth for every view: an index entry whose record is gone is shown, flagged, not hidden."""

from __future__ import annotations

import json

import redis

from jobtrail.api.app import create_app
from jobtrail.config import Settings
from jobtrail.keys import KeySpace
from jobtrail.store import JobStore
from tests.cli.test_cli import run
from tests.helpers.api_server import client, serve_in_thread


def test_list_and_the_api_show_an_orphan_index_entry(
        settings: Settings, store: JobStore, main_db: redis.Redis, keys: KeySpace) -> None:
    # Given two jobs, one of whose records was deleted behind jobtrail's back
    kept, orphan = store.create("x = 1"), store.create("x = 2")
    main_db.delete(keys.job(orphan.id))
    assert main_db.zscore(keys.jobs(), orphan.id) is not None

    # Then list --json has a row for it, flagged, with trace's verdict
    listed = run(settings, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {kept.id, orphan.id}
    traced = json.loads(run(settings, "trace", orphan.id, "--json").stdout)
    assert rows[orphan.id] == {"id": orphan.id, "record_missing": True,
                               "fate": traced["fate"], "verdict": traced["verdict"]}
    assert rows[kept.id]["status"] == "pending" and "record_missing" not in rows[kept.id]
    # and the table says so on the orphan's row
    table = run(settings, "list", env={"COLUMNS": "200"}).stdout
    [line] = [x for x in table.splitlines() if orphan.id in x]
    assert "record missing" in line and traced["verdict"][:40] in line

    # and GET /jobs answers the same row in its place
    with serve_in_thread(create_app(settings)) as base, client(base) as http:
        page = http.get("/jobs").json()
    assert [j["id"] for j in page["jobs"]] == [orphan.id, kept.id]
    assert page["jobs"][0] == rows[orphan.id]
