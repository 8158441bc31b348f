"""`stresswatch run`'s options as a person and our systemd unit use them: --quiet (what the unit
passes) is a documented option that wins over --readings, not a leftover."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from stresswatch.arguments import parser as _parser
from stresswatch.run import shows_readings

ROOT = Path(__file__).resolve().parents[2]


def run_options() -> set[str]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {
        o
        for a in sub.choices["run"]._actions
        for o in a.option_strings
        if o.startswith("--") and o != "--help"
    }


def test_every_option_of_run_is_in_the_readmes_row_for_run():
    row = next(
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `stresswatch run")
    )
    assert run_options() == {"--readings", "--quiet"}
    assert all(f"`{option}`" in row for option in run_options()), row


def test_the_units_command_line_parses_and_shows_no_reading():
    unit = (ROOT / "deploy" / "stresswatch.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    args = _parser().parse_args(shlex.split(exec_start)[1:])
    assert args.quiet and not shows_readings(args)


def test_readings_are_shown_only_with_readings_and_without_quiet():
    def shown(*argv: str) -> bool:
        return shows_readings(_parser().parse_args(["run", *argv]))

    assert (shown(), shown("--readings"), shown("--quiet"), shown("--readings", "--quiet")) == (
        False,
        True,
        False,
        False,
    )
