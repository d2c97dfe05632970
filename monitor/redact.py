"""Secrets out of logs, errors and output: the one scrubber.

Secrets come from the environment into the config (Telegram bot tokens, SMTP passwords) and must never be
shown. `scrub` removes every value registered with `remember_secrets`, in every form a server may echo it
back (as is, percent-encoded, and base64 at any offset, which covers SMTP AUTH PLAIN (NUL user NUL password),
AUTH LOGIN's base64 password line and HTTP Basic `user:password`), and anything shaped like a secret: the
argument of an SMTP `AUTH <mechanism>` line (some servers quote the client's command in their 535 reply), a
Bot API token (`bot<digits>:<token>`, which is in every Bot API URL and so in requests' exception messages
and urllib3's request log), a password in a URL (`scheme://user:password@host`) and `password=`/`token=`
pairs. `SecretFilter` applies it to log records; the log handler has one, and the Telegram channel puts one
on urllib3's logger, which writes request URLs whatever handler is listening. Server replies are scrubbed
where they enter (the channels) and again where errors are stored (the outbox) and printed (the CLI).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote

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

# An SMTP AUTH command quoted back: "AUTH PLAIN AGFsZXJ0cwBzM2NyZXQ=" (RFC 4954 §4: the initial response)
# (case-sensitive: smtplib sends it upper case, and "auth token ..." in ordinary text stays as it is)
_AUTH_LINE = re.compile(r"(?P<pre>\bAUTH[ \t]+[A-Z0-9_-]+[ \t]+)[^\s'\"]+")
MIN_SECRET = 4  # shorter values are not remembered: replacing them would mangle ordinary text
MIN_ENCODED = 6  # nor base64 fragments shorter than this (too likely to occur by chance)

_known_lock = threading.Lock()
_known: tuple[str, ...] = ()  # every form of every secret, longest first


def encoded_forms(secret: str) -> set[str]:
    """The secret as is, percent-encoded, and the part of its base64 that every base64 text containing it
    holds, whatever the bytes before and after it (one fragment per offset of the secret modulo 3).

    base64 turns each 3 bytes into 4 characters, so a secret inside a longer encoded string (AUTH PLAIN's
    NUL user NUL password) starts at one of three offsets in its group. At offset k the first characters mix
    bits of the unknown bytes before it (2 characters for k=1, 3 for k=2), and the last group mixes bits of
    the bytes after it (1 or 2 characters, plus padding): what is left in between is the same in every
    encoding of every text that contains the secret at that offset."""
    forms = {secret, quote(secret, safe="")}
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        end = len(encoded) - {0: 0, 1: 3, 2: 2}[(offset + len(raw)) % 3]
        core = encoded[{0: 0, 1: 2, 2: 3}[offset] : end]
        if len(core) >= MIN_ENCODED:
            forms.add(core)
    return {form for form in forms if len(form) >= MIN_SECRET}


def remember_secrets(values: Iterable[str]) -> None:
    """Add secret values (bot tokens, SMTP passwords) that `scrub` removes wherever, however encoded, they appear."""
    global _known
    with _known_lock:
        forms = set(_known)
        for value in values:
            if value and len(value) >= MIN_SECRET:
                forms |= encoded_forms(value)
        _known = tuple(sorted(forms, key=len, reverse=True))


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
    for value in _known:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _AUTH_LINE.sub(lambda m: m.group("pre") + REDACTED, text)
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
