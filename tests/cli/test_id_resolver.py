"""One id rule for every command that takes a job id: the same messages and exit codes.

Too short a text (no job has it as its id) and an ambiguous prefix are usage errors
(exit 2, one line); a text no job's id is or begins with is not found (exit 3, with
trace's verdict and where to look). Subprocesses of the real CLI on real Redis.
"""

from __future__ import annotations

import pytest

from jobtrail.config import Settings
from jobtrail.store import JobStore
from tests.cli.test_cli import run
from tests.helpers.cli_commands import command_tree

pytestmark = [pytest.mark.slow]

A = "abcdef01-0000-4000-8000-000000000001"
B = "abcdef01-0000-4000-8000-000000000002"

#: Every command that takes job ids, as typed before the ids.
ID_COMMANDS = [("status",), ("trace",), ("cancel",), ("requeue",), ("restore",),
               ("retention", "restore")]


def test_the_list_names_every_command_taking_a_job_id() -> None:
    # Given every command, those with a job id argument are the ones the tests below run
    taking_ids = {path for path, command in command_tree()
                  if any(p.param_type_name == "argument" and p.name in ("job_id", "job_ids")
                         for p in command.params)}
    assert taking_ids == set(ID_COMMANDS)


#: (text typed, exit status, the end of the stderr line) when jobs A and B exist.
CASES = {
    "too short": ("abcdef0", 2, "no job has the id 'abcdef0', and an id prefix needs at least 8 "
                  "characters"),
    "ambiguous": ("abcdef01", 2, f"id prefix abcdef01 matches several jobs ({A}, {B}); give "
                  "more characters"),
    "not found": ("00000000", 3, "job 00000000 not found: unknown: no store has ever seen this "
                  "id (trace looked in the main DB, the broker, the results and the archive "
                  "of purged jobs)"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ID_COMMANDS, ids=" ".join)
def test_every_id_command_resolves_by_one_rule(settings: Settings, store: JobStore,
                                               command: tuple[str, ...], case: str) -> None:
    # Given two pending jobs sharing their first 8 characters
    store.create("x = 1", job_id=A)
    store.create("x = 2", job_id=B)
    text, code, ending = CASES[case]
    # When the command is given a too-short, an ambiguous or an unknown prefix
    result = run(settings, *command, text)
    # Then it exits as the rule says, with its one line (trace's report is its own stdout)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert [store.get(j).status.value for j in (A, B)] == ["pending", "pending"]
    if command == ("trace",) and case == "not found":
        assert "unknown: no store has ever seen this id" in result.stdout
        return
    [line] = result.stderr.splitlines()
    assert line.endswith(ending), line
    if code == 2:
        assert line.startswith("error: Invalid value for JOB_ID"), line
