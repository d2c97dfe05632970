"""Secrets never reach the logs, in either format, whichever logger or traceback carries them."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from monitor import config as cfg
from monitor.redact import REDACTED, remember_secrets, scrub, secrets_of
from monitor.service.logs import setup_logging

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
PASSWORD = "s3cr3t-Pa55word!"


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    handler = setup_logging("text", "DEBUG", stream=stream)
    yield stream, handler
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_bot_token_in_a_requests_error_url_is_scrubbed(capture: tuple[io.StringIO, logging.Handler]) -> None:
    stream, _ = capture
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    try:
        raise requests.ConnectionError(
            f"HTTPSConnectionPool(host='api.telegram.org', port=443): Max retries "
            f"exceeded with url: /bot{TOKEN}/sendMessage"
        )
    except requests.ConnectionError:
        logging.getLogger("monitor.delivery.telegram").exception("sending to %s failed", url)
    logging.getLogger("urllib3.connectionpool").debug(
        'https://api.telegram.org:443 "POST /bot%s/sendMessage" 200', TOKEN
    )
    out = stream.getvalue()
    assert TOKEN not in out
    assert TOKEN.split(":")[1] not in out
    assert "ConnectionError" in out and f"bot{REDACTED}/sendMessage" in out


def test_known_secret_values_are_scrubbed_anywhere(capture: tuple[io.StringIO, logging.Handler]) -> None:
    stream, _ = capture
    remember_secrets([PASSWORD])
    log = logging.getLogger("monitor.delivery.email")
    log.warning("SMTP login failed for user analyst with %s", PASSWORD)
    log.error("bad creds %r", {"password": PASSWORD})
    log.info("dsn postgresql://monitor:%s@db/monitor", "hunter2")
    log.info("query ?token=abcdef123456&x=1 and password: letmein")
    out = stream.getvalue()
    for secret in (PASSWORD, "hunter2", "abcdef123456", "letmein"):
        assert secret not in out
    assert "postgresql://monitor:[REDACTED]@db/monitor" in out


def test_json_lines_are_scrubbed_too() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("json", "INFO", stream=stream)
        try:
            raise ValueError(f"while posting to https://api.telegram.org/bot{TOKEN}/sendMessage")
        except ValueError:
            logging.getLogger("monitor.delivery.outbox").exception("delivery %d failed", 7)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    record = json.loads(stream.getvalue().splitlines()[0])
    assert record["level"] == "ERROR" and record["logger"] == "monitor.delivery.outbox"
    assert record["msg"] == "delivery 7 failed"
    assert "ValueError" in record["exc"] and TOKEN not in stream.getvalue()


@pytest.mark.parametrize("user", ["a", "ab", "abc", "alerts", "analyst@example.org"])
def test_a_remembered_secret_is_scrubbed_in_every_encoding_a_server_echoes(user: str) -> None:
    password = "Kx9-plaintext!pw"
    remember_secrets([password])
    echoes = {
        "plain": password,
        "percent-encoded": quote(password, safe=""),
        "AUTH LOGIN password line": base64.b64encode(password.encode()).decode(),
        "AUTH PLAIN": base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
        "AUTH PLAIN with authzid": base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode(),
        "HTTP Basic": base64.b64encode(f"{user}:{password}".encode()).decode(),
    }
    for form, echoed in echoes.items():
        out = scrub(f"535 5.7.8 Error: authentication failed: {echoed} (client sent it)")
        assert echoed not in out and REDACTED in out, form
        assert out.startswith("535 5.7.8 Error: authentication failed: ") and out.endswith(" (client sent it)")


def test_an_auth_line_is_scrubbed_whatever_it_carries() -> None:
    assert scrub("535 5.7.8 AUTH PLAIN AHVzZXIAcGFzcw== rejected") == f"535 5.7.8 AUTH PLAIN {REDACTED} rejected"
    assert scrub("535 failed for AUTH LOGIN dXNlcg==") == f"535 failed for AUTH LOGIN {REDACTED}"
    assert scrub("the auth token expired in 3 days") == "the auth token expired in 3 days"


def test_secrets_of_config() -> None:
    config = cfg.loads(
        """
channels:
  tg: {type: telegram, bot_token: "${TELEGRAM_TOKEN}", chat_id: 1}
  mail: {type: email, host: localhost, from: a@b.c, to: [d@e.f], username: u, password: "${SMTP_PASSWORD}"}
""",
        env={"TELEGRAM_TOKEN": TOKEN, "SMTP_PASSWORD": PASSWORD},
    )
    assert secrets_of(config) == {TOKEN, PASSWORD}
    assert TOKEN not in repr(config)  # repr=False on the fields


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "feed lenta: 3 new items, tokens: 1200, https://lenta.ru/rss/news"
    assert scrub(text) == text


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json"):
        setup_logging("xml")


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_pymorphy3s_start_up_lines_show_at_debug_only(level: str, shown: bool) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("pymorphy3").level)
    try:
        setup_logging("text", level, stream=stream)
        logging.getLogger("pymorphy3.opencorpora_dict.wrapper").info("Loading dictionaries from /x")
        logging.getLogger("pymorphy3.opencorpora_dict.wrapper").warning("a real problem")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("pymorphy3").setLevel(saved[2])
    assert ("Loading dictionaries" in stream.getvalue()) is shown
    assert "a real problem" in stream.getvalue()
