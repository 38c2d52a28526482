"""The `jobtrail` command tree, every command registered (as --help registers them)."""

from __future__ import annotations

from typing import Any

import typer

from jobtrail.cli.main import app, load_commands


def command_tree(group: Any = None, path: tuple[str, ...] = (),
                 ) -> list[tuple[tuple[str, ...], Any]]:
    """Return (name path, command) of every command and group under *group* (default: the
    whole CLI), groups before their commands; commands are Typer's own click objects."""
    if group is None:
        load_commands(["--help"])
        group = typer.main.get_command(app)
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, command in group.commands.items():
        found.append(((*path, name), command))
        if hasattr(command, "commands"):
            found += command_tree(command, (*path, name))
    return found
