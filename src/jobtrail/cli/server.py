"""`jobtrail server start|stop|status`: the embedded redis-server."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from jobtrail.cli.context import settings_from
from jobtrail.cli.output import escape, exit_with, out, print_json
from jobtrail.embedded import (
    check_embedded_allowed,
    client_usage,
    data_dir_in_use,
    ensure_server,
    read_server_info,
    recent_restarts,
    redis_data_dir,
    stop_server,
)
from jobtrail.embedded.restarts import format_utc
from jobtrail.errors import EmbeddedRedisRefusedError

app = typer.Typer(help="Start, stop and inspect the embedded Redis server.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command()
def start(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Start the embedded Redis (or report the one already running).

    Exit 1 when it runs but refuses connections (maxclients, LOADING, password).
    """
    settings = settings_from(ctx)
    check_embedded_allowed(settings, explicit=True)
    info, started = ensure_server(redis_data_dir(settings), found_by="jobtrail server start")
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
    """Say whether the embedded Redis runs, where, and its clients against maxclients.

    Exit 1 when it does not run, or runs but refuses connections.
    """
    data_dir = redis_data_dir(settings_from(ctx))
    info = read_server_info(data_dir)
    data: dict[str, Any] = {
        "running": info is not None, "port": info.port if info else None,
        "pid": info.pid if info else None, "data_dir": str(data_dir),
        "answering": False, "connected_clients": None, "maxclients": None, "error": None}
    restarts = recent_restarts(data_dir)
    last = restarts[-1] if restarts else None
    data["last_unexpected_stop"] = dataclasses.asdict(last) if last else None
    if info is None and data_dir_in_use(data_dir):
        data["error"] = (f"the data directory {data_dir} is locked by a process that its "
                         "server.json does not name (a redis-server jobtrail did not record)")
    elif info is not None:
        try:
            usage = client_usage(info)
        except EmbeddedRedisRefusedError as exc:
            data["error"] = str(exc)
        else:
            data.update(answering=True, connected_clients=usage.connected_clients,
                        maxclients=usage.maxclients)
    if json_out:
        print_json(data)
        if not data["answering"]:
            raise typer.Exit(1)
        return
    if last is not None:
        out.print(f"last unexpected stop: pid {last.old_pid} found stopped at "
                  f"{format_utc(last.found_at)} by {last.found_by}, started again at "
                  f"{format_utc(last.restarted_at)} (pid {last.new_pid}); see jobtrail doctor")
    if data["error"]:
        exit_with(data["error"])
    elif info:
        limit = data["maxclients"] if data["maxclients"] is not None else "unknown"
        # one fact a line: the whole sentence was 141 columns with a long state dir
        out.print(f"embedded Redis running on 127.0.0.1:{info.port} (pid {info.pid})")
        out.print(f"  data in {escape(str(info.data_dir))}", soft_wrap=True)  # a path whole
        out.print(f"  clients {data['connected_clients']} of maxclients {limit}")
    else:
        out.print(f"embedded Redis not running (data dir {data_dir})")
    if not data["answering"]:
        raise typer.Exit(1)
