"""EmailNotifier against a real SMTP server (aiosmtpd) with STARTTLS / implicit TLS and AUTH required."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from monitor.cli import main
from monitor.cli.views import format_alerts
from monitor.config import Config, EmailChannel
from monitor.delivery.email import EmailNotifier
from monitor.delivery.outbox import Deliverer
from monitor.errors import NotifyError
from monitor.models import Alert, Item, Match
from monitor.store.sql import SqlStore
from tests.fakes import T0, FakeClock
from tests.smtpserver import SmtpServer, smtp_server


def alert(title: str = "Россия и США обсудят стратегическую стабильность", alert_id: int = 1) -> Alert:
    item = Item(
        feed="РИА Новости",
        key=f"k{alert_id}",
        title=title,
        link="https://ria.ru/20261125/dsnv.html",
        published=T0,
        summary="Москва готова обсуждать вопросы стратегической стабильности и продление ДСНВ.",
    )
    match = Match("strategic", 0.82, 0.5, True, terms=("стратегическ* стабильност*",), keyword_hits=("ДСНВ",))
    return Alert(id=alert_id, item=item, matches=(match,), created=T0)


def channel(server: SmtpServer, **overrides: object) -> EmailChannel:
    data: dict[str, object] = {
        "type": "email",
        "host": server.host,
        "port": server.port,
        "security": "starttls",
        "username": server.user,
        "password": server.password,
        "from": "Monitor <monitor@example.org>",
        "to": ["analyst@example.org", "desk@example.org"],
        "timeout": 5,
    }
    data.update(overrides)
    return EmailChannel.model_validate(data)


def notifier(server: SmtpServer, **overrides: object) -> EmailNotifier:
    return EmailNotifier(
        "mail",
        channel(server, **overrides),
        topics={"strategic": "Стратегическая стабильность"},
        tz=ZoneInfo("Europe/Moscow"),
        ssl_context=server.client_context(),
        clock=FakeClock(),
        local_hostname="localhost",
    )


@pytest.fixture
def starttls(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path, security="starttls") as server:
        yield server


def parts(msg: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}


def test_starttls_auth_multipart_headers(starttls: SmtpServer) -> None:
    mail = notifier(starttls)
    assert mail.send(alert()) is None
    mail.close()
    [received] = starttls.messages
    assert received.login == "alerts"
    assert received.rcpt_tos == ["analyst@example.org", "desk@example.org"]
    assert received.mail_from == "monitor@example.org"
    msg = received.message
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "[Стратегическая стабильность] Россия и США обсудят стратегическую стабильность"
    assert b"=?utf-8?" in received.raw.split(b"\r\n\r\n")[0].lower()  # RFC 2047 encoded on the wire
    assert msg["Date"] == "Wed, 25 Nov 2026 09:00:00 +0000"
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Auto-Submitted"] == "auto-generated"
    body = parts(msg)
    assert "*стратегической стабильности*" in body["text/plain"]
    assert "25.11.2026 12:00 MSK" in body["text/plain"]
    assert '<a href="https://ria.ru/20261125/dsnv.html">' in body["text/html"]
    assert "<b>ДСНВ</b>" in body["text/html"]


def test_one_connection_for_a_batch(starttls: SmtpServer) -> None:
    mail = notifier(starttls)
    for i in range(3):
        mail.send(alert(alert_id=i))
    mail.send_digest([alert(alert_id=i) for i in range(3)], "Digest: 3 alerts")
    mail.close()
    assert len(starttls.messages) == 4
    assert len({m.peer for m in starttls.messages}) == 1
    digest = starttls.messages[-1].message
    assert digest["Subject"] == "Digest: 3 alerts"
    assert "Стратегическая стабильность (3)" in parts(digest)["text/plain"]


@pytest.mark.parametrize(
    "title",
    [
        "Hello\r\nBcc: victim@evil.example\r\nX-Injected: yes",
        "Hello\nSubject: spoof",
        "Hello\u2028X-Injected: yes\x85X-Also: 1",
        "Hello\r\n\r\n<html>body injection</html>",
    ],
)
def test_header_injection_from_a_title(starttls: SmtpServer, title: str) -> None:
    mail = notifier(starttls)
    mail.send(alert(title))
    mail.close()
    [received] = starttls.messages
    msg = received.message
    assert received.rcpt_tos == ["analyst@example.org", "desk@example.org"]
    assert msg["Bcc"] is None and msg["X-Injected"] is None and msg["X-Also"] is None
    assert len(msg.get_all("Subject") or []) == 1
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert msg.get_content_type() == "multipart/alternative"


def test_hostile_text(starttls: SmtpServer) -> None:
    title = "<script>alert(1)</script> שלום עולם 🚀 \x00\x1b[31m" + "Ж" * 10_000
    mail = notifier(starttls)
    mail.send(alert(title))
    mail.close()
    msg = starttls.messages[0].message
    html_part = parts(msg)["text/html"]
    assert "<script>" not in html_part and "&lt;script&gt;" in html_part
    assert "\x1b" not in parts(msg)["text/plain"] and "\x00" not in msg["Subject"]
    assert len(msg["Subject"]) <= 160


def test_wrong_password_is_permanent(starttls: SmtpServer) -> None:
    mail = notifier(starttls, password="wrong")
    with pytest.raises(NotifyError) as info:
        mail.send(alert())
    assert info.value.permanent
    assert "authentication failed" in str(info.value)
    assert "wrong" not in str(info.value)
    assert starttls.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, security="ssl") as server:
        mail = notifier(server, security="ssl")
        mail.send_text("topic-monitor: test\nsecond line")
        mail.close()
        [received] = server.messages
        assert received.login == "alerts"
        assert received.message["Subject"] == "topic-monitor: test"


def test_untrusted_certificate_is_a_retryable_error(starttls: SmtpServer) -> None:
    mail = EmailNotifier("mail", channel(starttls), local_hostname="localhost")  # default CA store
    with pytest.raises(NotifyError) as info:
        mail.send(alert())
    assert not info.value.permanent


def test_server_down_is_retryable(starttls: SmtpServer) -> None:
    mail = notifier(starttls, port=1)
    with pytest.raises(NotifyError) as info:
        mail.send(alert())
    assert not info.value.permanent
    assert "cannot connect" in str(info.value)


def test_reconnects_when_the_kept_connection_was_dropped(starttls: SmtpServer) -> None:
    mail = notifier(starttls)
    mail.send(alert(alert_id=1))
    assert mail._smtp is not None
    mail._smtp.sock.close()  # type: ignore[union-attr]  # the server (or a NAT) dropped the idle connection
    mail.send(alert(alert_id=2))
    mail.close()
    assert len(starttls.messages) == 2


# --- a server that echoes the credentials (issue 12, item 6) ---------------------------------------------


ECHO_PASSWORD = "Tr0ub4dor&3-horse"


def credential_forms(user: str, password: str) -> list[str]:
    """What a careless server may quote back: the password, AUTH PLAIN's and AUTH LOGIN's base64."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return [password, plain, base64.b64encode(password.encode()).decode(), quote(password, safe="")]


@pytest.mark.parametrize("echo", ["PLAIN", "LOGIN", "clear"])
def test_a_535_that_quotes_the_credentials_is_scrubbed_before_it_is_stored(tmp_path: Path, echo: str) -> None:
    with smtp_server(tmp_path, password=ECHO_PASSWORD, echo_auth=echo) as server:
        mail = notifier(server)
        with pytest.raises(NotifyError) as info:
            mail.send(alert())
        # ...and through the outbox into the database, where `monitor alerts` reads it
        db = SqlStore(f"sqlite:///{tmp_path / 'monitor.db'}")
        config = Config.model_validate({"channels": {"mail": channel(server).model_dump(by_alias=True)}})
        db.add_items([alert().item], T0)
        db.record_alert(alert().item, list(alert().matches), ["mail"], T0)
        Deliverer(db, {"mail": mail}, config, FakeClock()).deliver_due()
        shown = format_alerts(db.alerts_since(T0 - timedelta(days=1)))
        db.close()
    error = str(info.value)
    assert info.value.permanent and "535" in error and "authentication failed" in error
    assert "mail: FAILED" in shown and "535" in shown
    for form in credential_forms(server.user, ECHO_PASSWORD):
        assert form not in error and form not in shown and form not in mail.last_answer
    if echo != "clear":
        assert "AUTH " + echo + " [REDACTED]" in error


def test_notify_test_prints_the_scrubbed_reply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server(tmp_path, password=ECHO_PASSWORD, echo_auth="PLAIN") as server:
        path = tmp_path / "config.yaml"
        path.write_text(
            f"""\
settings: {{data_dir: {tmp_path / "data"}}}
channels:
  mail: {{type: email, host: 127.0.0.1, port: {server.port}, security: starttls, ca_file: "{server.cert}",
          username: {server.user}, password: "${{SMTP_PASSWORD}}", from: m@example.org, to: [a@example.org]}}
""",
            encoding="utf-8",
        )
        monkeypatch.setenv("SMTP_PASSWORD", ECHO_PASSWORD)
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level  # main() sets up logging for a whole process
        try:
            status = main(["notify-test", "mail", "--config", str(path)])
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
    out = capsys.readouterr()
    assert status == 1 and "535" in out.err and "AUTH PLAIN [REDACTED]" in out.err
    for form in credential_forms(server.user, ECHO_PASSWORD):
        assert form not in out.out + out.err
