"""Logging setup: readable lines by default, JSON lines with `--log-format json`, secrets scrubbed from both.

The scrubbing filter sits on the handler, so it sees every record that is written, including records that
propagate from third-party loggers (urllib3 logs request lines such as ``POST /bot123:AA.../sendMessage``)
and rendered tracebacks (a requests exception's message carries the full URL).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from ..config import Config, EmailChannel, TelegramChannel

REDACTED = "[REDACTED]"

# Telegram Bot API URLs put the token in the path: https://api.telegram.org/bot<id>:<secret>/sendMessage
_BOT_TOKEN = re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{10,}")
# userinfo in URLs: scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)", re.IGNORECASE)
# password=..., token: ..., "secret": "..." in messages, query strings and reprs
_KEY_VALUE = re.compile(
    r"(?P<pre>\b(?:password|passwd|token|bot_token|secret|api_key|apikey)\b['\"]?\s*[=:]\s*['\"]?)"
    r"(?P<value>[^\s&'\",;)}]+)",
    re.IGNORECASE,
)

_known_lock = threading.Lock()
_known: frozenset[str] = frozenset()


def remember_secrets(values: Iterable[str]) -> None:
    """Add literal secret values (bot tokens, SMTP passwords) that every SecretFilter also removes."""
    global _known
    with _known_lock:
        _known = _known | {v for v in values if v and len(v) >= 4}


def secrets_of(config: Config) -> set[str]:
    """The secret values in a config: Telegram bot tokens and SMTP passwords."""
    out: set[str] = set()
    for channel in config.channels.values():
        if isinstance(channel, TelegramChannel):
            out.add(channel.bot_token)
        elif isinstance(channel, EmailChannel) and channel.password:
            out.add(channel.password)
    return out


def scrub(text: str) -> str:
    """Remove every known secret value and every secret-looking pattern from a string."""
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    text = _BOT_TOKEN.sub("bot" + REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: m.group("pre") + REDACTED, text)
    return _KEY_VALUE.sub(lambda m: m.group("pre") + REDACTED, text)


class SecretFilter(logging.Filter):
    """Renders each record's message and traceback, then scrubs them; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep what we can
            message = f"{record.msg} {record.args!r}"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


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
    # APScheduler logs "Running job" per poll at INFO, and "skipped: maximum number of running instances"
    # at WARNING each time the 2-second delivery tick finds a long delivery pass (Telegram pacing) running.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
    return handler
