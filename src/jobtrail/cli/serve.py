"""`jobtrail serve`: the REST API, dashboard and /metrics (uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobtrail.cli.context import check_listen, runtime
from jobtrail.cli.output import err, exit_with
from jobtrail.errors import ConfigError

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the REST API (/docs), the dashboard (/) and Prometheus metrics (/metrics)."""
    # imported here, not at the top: FastAPI and uvicorn cost every other command ~1 s of
    # start-up on a small machine, and only `serve` needs them (not a cycle workaround)
    try:
        import uvicorn  # noqa: PLC0415

        from jobtrail.api.app import create_app  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(f"jobtrail serve needs the API extra ({exc.name} is not installed): "
                          "pip install 'jobtrail[api]'") from exc

    check_listen(host, port, "'--port'")
    rt = runtime(ctx)
    app = create_app(rt.settings)
    err.print(f"jobtrail API on http://{host}:{port}/ (docs at /docs, metrics at /metrics)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except SystemExit as exc:  # uvicorn's own 3 (startup failed) is not the unknown-job code
        if exc.code not in (None, 0):
            exit_with("the API did not start (uvicorn's error is above)", 1)
        raise
