"""serve_in_thread: a real uvicorn server on a free port, for API and browser tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from jobtrail.embedded import free_port


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run *app* on 127.0.0.1:<free port> until the block ends; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def client(base: str) -> httpx.Client:
    """Return an httpx client for *base*."""
    return httpx.Client(base_url=base, timeout=10)
