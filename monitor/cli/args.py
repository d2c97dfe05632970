"""Argument parsing that answers in one line: the parser class, the global options, the value types.

argparse's own errors print the whole usage block and a message; a bad value from a `type=` function that
raises ValueError becomes "invalid <function name> value". Here every mistake is one line naming the option
and what was expected, exit status 2, and the global options (--config, --log-level, --log-format) are
accepted before or after the command (`monitor --config x.yaml validate`, `monitor validate --log-level DEBUG`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn

from .. import config as cfg

EXIT_USAGE = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `monitor alerts: argument --since: expected …`."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def add_globals(parser: argparse.ArgumentParser, *, on_command: bool) -> None:
    """--config, --log-level, --log-format. On a command's parser they default to SUPPRESS, so that an option
    given before the command is not overwritten by the command parser's default (argparse copies every
    attribute of the sub-namespace back)."""
    unset = argparse.SUPPRESS if on_command else None
    parser.add_argument(
        "--config", default=unset, metavar="PATH",
        help=f"config file (default: ${cfg.CONFIG_ENV}, ./config.yaml, then the config directory: `monitor init`)",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", type=log_level, default=unset, metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (default: INFO for `run`, ERROR for the others)",
    )  # fmt: skip
    parser.add_argument(
        "--log-format", choices=["text", "json"], default=argparse.SUPPRESS if on_command else "text",
        help="log as text or JSON lines (default text)",
    )  # fmt: skip


def log_level(value: str) -> str:
    """A logging level name, any case."""
    if value.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return value.upper()


def duration(value: str) -> float:
    """A duration as config.yaml writes it (30s, 5m, 6h, 1d), in seconds."""
    try:
        seconds = cfg.parse_duration(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 6h or 1d, got {value!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above zero, got {value!r}")
    return seconds


def seconds(value: str) -> float:
    """A number of seconds, zero or more."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected zero or more seconds, got {value!r}")
    return number


def fraction(value: str) -> float:
    """A number from 0 to 1."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}") from None
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}")
    return number


def count(value: str) -> int:
    """A whole number, zero or more."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more, got {value!r}")
    return number


def existing_file(value: str) -> str:
    """A file that exists and is a file (its reading errors are the command's)."""
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: is a directory, expected a file")
    return value


def writable_file(value: str) -> str:
    """A file to write: its directory must exist, and it must not be a directory itself."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: is a directory, expected a file to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: no directory {parent} to write it in")
    return value


def http_url(value: str) -> str:
    """An http(s) URL with a host."""
    if not re.match(r"^https?://[^\s/]+", value, re.IGNORECASE):
        raise argparse.ArgumentTypeError(f"expected an http(s) URL like https://example.org/page, got {value!r}")
    return value
