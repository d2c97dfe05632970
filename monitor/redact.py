"""Secrets out of logs, errors and output: the one scrubber.

Secrets come from the environment into the config (Telegram bot tokens, SMTP passwords) and must never be
shown. `scrub` removes every value registered with `remember_secrets` and anything shaped like a secret:
a Bot API token (`bot<digits>:<token>`, which is in every Bot API URL and so in requests' exception
messages and urllib3's request log), a password in a URL (`scheme://user:password@host`) and
`password=`/`token=` pairs. `SecretFilter` applies it to log records; the log handler has one, and the
Telegram channel puts one on urllib3's logger, which writes request URLs whatever handler is listening.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

from .config import Config, EmailChannel, TelegramChannel

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
    """Add literal secret values (bot tokens, SMTP passwords) that `scrub` removes wherever they appear."""
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


_FILTER = SecretFilter()


def filter_logger(name: str) -> None:
    """Scrub every record logged to `name` before any handler sees it (idempotent)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
