"""Every command's --help reads its docstring as paragraphs: no line broken mid-sentence.

Typer keeps a docstring's hard wraps in every paragraph but the first; the help
must wrap only where the terminal ends. The real CLI, one subprocess a command.
"""

from __future__ import annotations

import inspect

import pytest

from tests.cli.test_cli import run
from tests.helpers.cli_commands import command_tree

pytestmark = [pytest.mark.slow]

WIDTH = 120
COMMANDS = [(path, command.help) for path, command in command_tree() if command.help]


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def _help_body(text: str) -> list[str]:
    """Return the prose lines of a --help screen: after the usage line, before the panels."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
    end = next((i for i, line in enumerate(lines) if line.lstrip().startswith("╭")),
               len(lines))
    return lines[start:end]


@pytest.mark.parametrize(("path", "docstring"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_wraps_only_at_the_terminals_edge(path: tuple[str, ...], docstring: str) -> None:
    # When a command's help is shown on a 120-column terminal
    shown = run(None, *path, "--help", env={"COLUMNS": str(WIDTH), "TERM": "dumb"})
    assert shown.returncode == 0, shown.stderr
    paragraphs = _paragraphs(_help_body(shown.stdout))
    # Then it shows the docstring's paragraphs, each word in its place
    expected = [" ".join(p.split()) for p in inspect.cleandoc(docstring).split("\n\n")]
    assert [" ".join(p) for p in paragraphs] == expected
    # and a line ends early only where the next word would not have fitted on it
    for paragraph in paragraphs:
        for line, after in zip(paragraph, paragraph[1:], strict=False):
            assert len(line) + 1 + len(after.split()[0]) > WIDTH - 4, (line, after)
