"""Loads the Lua scripts of store/lua/ and registers them on a client.

Invariant: scripts are read once per process and run with EVALSHA (redis-py
falls back to EVAL after a server restart flushed the script cache).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

__all__ = ["load_script", "script_source"]


@cache
def script_source(name: str) -> str:
    """Return the text of `store/lua/<name>.lua`."""
    return resources.files("jobtrail.store").joinpath("lua", f"{name}.lua").read_text()


def load_script(client: redis.Redis, name: str) -> Script:
    """Return `store/lua/<name>.lua` registered on *client*."""
    return client.register_script(script_source(name))
