"""Every CLI command has help text and is documented in the README (sqlite-utils' test_docs idea)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from monitor.cli.commands import build_parser

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(commands()))
def test_command_has_help_and_is_in_the_readme(name: str) -> None:
    parser = commands()[name]
    assert parser.description, f"`monitor {name}` has no help text"
    assert f"`monitor {name}" in README, f"`monitor {name}` is not documented in README.md"
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"`monitor {name} {action.option_strings[0]}` has no help text"


def test_readme_has_exactly_two_setup_commands() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"```bash\n", setup)) == 2


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    test_command = re.findall(r"```bash\n(.*?)\n```", setup, re.S)[1].strip()
    assert test_command in ci
