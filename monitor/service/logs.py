"""Logging setup: readable lines by default, JSON lines with `--log-format json`, secrets scrubbed from both.

The scrubbing filter (monitor.redact) sits on the handler, so it sees every record that is written,
including records that propagate from third-party loggers (urllib3 logs request lines such as
``POST /bot123:AA.../sendMessage``) and rendered tracebacks (a requests exception's message carries the URL).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from ..redact import SecretFilter


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and exc when there is a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(fmt: str = "text", level: str | int = "INFO", *, stream: IO[str] | None = None) -> logging.Handler:
    """Configure the root logger with one scrubbed handler (to stderr, which journald captures)."""
    if fmt not in ("text", "json"):
        raise ValueError(f'expected log format "text" or "json", got "{fmt}"')
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(SecretFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # urllib3 at DEBUG writes one line per request; keep it at INFO unless asked for.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
    # APScheduler logs "Running job" and "Job ... executed" per poll at INFO: left out. "Run time of job ...
    # was missed" (WARNING) is kept, and counted too (service.scheduler). The scheduler's own warnings are
    # "skipped: maximum number of running instances", which the 2-second delivery tick hits during every
    # long paced delivery pass: counted as topic_monitor_jobs_skipped_total{job}, not logged.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("apscheduler.scheduler").setLevel(max(logging.ERROR, root.level))
    # pymorphy3 logs two INFO lines on every start (which dictionary it loaded, and where): shown at DEBUG only.
    logging.getLogger("pymorphy3").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    return handler


def current_logging() -> tuple[str, int]:
    """The root logger's format ("text" or "json") and level, for a child process to log as this one does."""
    root = logging.getLogger()
    json_lines = any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers)
    return ("json" if json_lines else "text"), root.level
