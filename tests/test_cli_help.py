"""`--help` shows each command's text as written: no words lost to Rich markup, no line broken
where the source wrapped it."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("command, shown", [
    (["attack", "eval"], '"clean_interval": [lo, hi]'),            # JSON, not a Rich tag
    (["devices"], "A rig's [hardware].device is matched"),         # a TOML section
    (["dut", "check"], "rig TOML file with [dut] transport"),
    (["session", "inject"], "with [suspenders] ambient_max_dba"),
])
def test_brackets_in_help_are_shown(cli, command, shown):
    res = cli([*command, "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert shown in " ".join(res.output.split()), res.output


def test_a_paragraph_is_one_line_in_a_terminal_wide_enough(cli):
    res = cli(["study", "paper", "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert "a crash, the end of a working day) resumes where it stopped" in res.output
