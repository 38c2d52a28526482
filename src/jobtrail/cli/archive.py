"""`jobtrail archive upgrade|revision`: the archive's versioned schema (store.archive_schema)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobtrail.cli.output import out, print_json
from jobtrail.cli.retention import archive_store
from jobtrail.store.archive_schema import HEAD_REVISION

__all__ = ["app"]

app = typer.Typer(help="The SQL archive's schema: see its revision, upgrade it.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command()
def upgrade(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Bring the archive's schema to this jobtrail's revision, every row converted."""
    archive = archive_store(ctx)
    before, after = archive.upgrade()
    if json_out:
        print_json({"archive": archive.location, "from": before, "to": after})
    elif before == after:
        out.print(f"archive {archive.location} is at revision {after}: nothing to do",
                  markup=False, highlight=False)
    else:
        out.print(f"archive {archive.location} upgraded from revision {before or 'none'} "
                  f"to {after}", markup=False, highlight=False)


@app.command()
def revision(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Print the archive's schema revision and the one this jobtrail needs."""
    archive = archive_store(ctx)
    current = archive.schema_revision()
    if json_out:
        print_json({"archive": archive.location, "revision": current, "head": HEAD_REVISION})
        return
    state = "current" if current == HEAD_REVISION else (
        "new (created on first use)" if current is None else "behind: run `jobtrail archive "
        "upgrade`")
    out.print(f"archive {archive.location}: revision {current or 'none'}, this jobtrail "
              f"needs {HEAD_REVISION} ({state})", markup=False, highlight=False)
