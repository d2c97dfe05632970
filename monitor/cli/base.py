"""What the commands share: the config, the application or the store alone, exit codes, table output."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from .. import config as cfg

if TYPE_CHECKING:
    from ..app import App
    from ..store import SqlStore

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def load_config(args: argparse.Namespace) -> cfg.Config:
    return cfg.load(args.config)


def open_app(config: cfg.Config) -> App:
    """Everything, topic model included: for the commands that poll, match or send."""
    from ..app import open_app  # heavy: the stemmers, scikit-learn to fit (here: a command exits soon; app.load_model)

    return open_app(config)


def open_store(config: cfg.Config) -> SqlStore:
    """The store alone, for the commands that only read it: no topic model, no story window, no channels."""
    from ..store import SqlStore  # heavy: SQLAlchemy (~0.2 s) that --version, --help and validate do without

    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlStore(config.database_url)


def when(value: datetime | None, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
