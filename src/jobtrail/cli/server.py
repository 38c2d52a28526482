"""`jobtrail server start|stop|status`: the embedded redis-server."""

from __future__ import annotations

from typing import Annotated

import typer

from jobtrail.cli.context import settings_from
from jobtrail.cli.output import out, print_json
from jobtrail.embedded import ensure_server, read_server_info, redis_data_dir, stop_server

app = typer.Typer(help="Start, stop and inspect the embedded Redis server.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command()
def start(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Start the embedded Redis (or report the one already running)."""
    data_dir = redis_data_dir(settings_from(ctx))
    info, started = ensure_server(data_dir)
    if json_out:
        print_json({"running": True, "started": started, "port": info.port, "pid": info.pid,
                    "data_dir": info.data_dir, "binary": info.binary})
        return
    verb = "started" if started else "already running"
    out.print(f"embedded Redis {verb} on 127.0.0.1:{info.port} (pid {info.pid}, "
              f"data in {info.data_dir})")


@app.command()
def stop(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Stop the embedded Redis (its AOF is flushed first)."""
    info = stop_server(redis_data_dir(settings_from(ctx)))
    if json_out:
        print_json({"stopped": info is not None, "pid": info.pid if info else None})
        return
    out.print("embedded Redis stopped" if info else "embedded Redis was not running")


@app.command()
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Say whether the embedded Redis runs, and where. Exit 1 when it does not."""
    data_dir = redis_data_dir(settings_from(ctx))
    info = read_server_info(data_dir)
    if json_out:
        print_json({"running": info is not None, "port": info.port if info else None,
                    "pid": info.pid if info else None, "data_dir": str(data_dir)})
    elif info:
        out.print(f"embedded Redis running on 127.0.0.1:{info.port} (pid {info.pid}, "
                  f"data in {info.data_dir})")
    else:
        out.print(f"embedded Redis not running (data dir {data_dir})")
    if info is None:
        raise typer.Exit(1)
