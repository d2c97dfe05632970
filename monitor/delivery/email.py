"""Email channel: multipart (text + HTML) messages over smtplib, one connection reused for a batch.

The connection opens on the first send and is reused while sends keep coming (a delivery pass, a
burst); one idle for a minute is replaced, and close() ends it. A reused connection the server has
dropped meanwhile is reopened once. SMTP reply codes decide
retries (RFC 5321 §4.2.1): 5yz is a permanent failure, 4yz and network errors are transient.

Server replies go into errors (stored on the outbox row, shown by `monitor alerts`, printed by
`notify-test`) only through monitor.redact.scrub: some servers quote the client's `AUTH PLAIN <base64>`
line in their 535 reply, and that base64 holds the user name and the password.

Header injection: every header value built from feed text goes through one_line(), which turns CR, LF
and every other line break into spaces; email.policy would refuse a header with a line break anyway.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from ..config import EmailChannel
from ..errors import NotifyError
from ..models import Alert
from ..ports import Clock, SystemClock
from ..redact import remember_secrets, scrub
from . import message
from .untrusted import clean, one_line, shorten

IDLE_CLOSE = 60.0  # seconds a kept connection may sit unused before the next send opens a fresh one


class EmailNotifier:
    """Sends alerts from `channel.from_` to every address in `channel.to`."""

    def __init__(
        self,
        name: str,
        channel: EmailChannel,
        *,
        topics: Mapping[str, str] | None = None,
        tz: tzinfo = UTC,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self.topics: Mapping[str, str] = topics or {}
        self.tz = tz
        self.last_answer = ""
        self._context = ssl_context
        self._clock = clock or SystemClock()
        self._local_hostname = local_hostname
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0
        self._domain = parseaddr(channel.from_)[1].rpartition("@")[2] or "localhost"
        if channel.password:
            remember_secrets([channel.password])  # in every form a server may echo it (redact.encoded_forms)

    # -- Notifier --------------------------------------------------------------------------------

    def send(self, alert: Alert) -> str | None:
        subject = message.render_subject(alert, topics=self.topics)
        text = message.render_text(alert, topics=self.topics, tz=self.tz)
        body = message.render_html(alert, topics=self.topics, tz=self.tz)
        self._send(self._message(subject, text, body, f"alert-{alert.id}"))
        return None

    def edit(self, ref: str, alert: Alert) -> None:
        """Sent mail cannot change; story updates show in `monitor alerts` instead."""

    def send_digest(self, alerts: Sequence[Alert], title: str) -> None:
        text = message.render_digest_text(alerts, title, topics=self.topics, tz=self.tz)
        body = message.render_digest_html(alerts, title, topics=self.topics, tz=self.tz)
        self._send(self._message(message.render_digest_subject(alerts, title), text, body, "digest"))

    def send_text(self, text: str) -> str | None:
        cleaned = clean(text)
        first = one_line(cleaned.split("\n", 1)[0])
        msg = self._message(shorten(first, 120) or "topic-monitor", cleaned, None, "notice")
        self._send(msg)
        return str(msg["Message-ID"])

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    # -- internals -------------------------------------------------------------------------------

    def _message(self, subject: str, text: str, body: str | None, kind: str) -> EmailMessage:
        msg = EmailMessage(policy=policy.SMTP)
        msg["Subject"] = one_line(subject)  # non-ASCII is RFC 2047-encoded by the policy
        msg["From"] = self.channel.from_
        msg["To"] = ", ".join(self.channel.to)
        msg["Date"] = format_datetime(self._clock.now())
        msg["Message-ID"] = make_msgid(idstring=kind, domain=self._domain)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer it
        msg.set_content(text)
        if body is not None:
            msg.add_alternative(body, subtype="html")
        return msg

    def _open(self) -> smtplib.SMTP:
        c = self.channel
        where = f"{self.name}: smtp {c.host}:{c.port}"
        context = self._context or ssl.create_default_context(cafile=c.ca_file)
        try:
            if c.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout, context=context, local_hostname=self._local_hostname
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout, local_hostname=self._local_hostname)
        except (smtplib.SMTPException, OSError) as exc:
            # refused, name not resolved, no route, connect timeout: the server, not this message
            raise _error(f"{where}: cannot connect", exc, unreachable=isinstance(exc, OSError)) from exc
        try:
            smtp.ehlo()
            if c.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if c.username:
                smtp.login(c.username, c.password or "")
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise _error(f"{where}: cannot start a session", exc) from exc
        return smtp

    def _send(self, msg: EmailMessage) -> None:
        where = f"{self.name}: smtp {self.channel.host}:{self.channel.port}"
        if self._smtp is not None and time.monotonic() - self._last_used > IDLE_CLOSE:
            self.close()  # servers drop idle sessions (RFC 5321 §4.5.3.2.7: 5 min); don't write into one
        for attempt in (1, 2):
            reused = self._smtp is not None
            smtp = self._smtp or self._open()
            self._smtp = smtp
            try:
                refused = smtp.send_message(msg, from_addr=parseaddr(self.channel.from_)[1], to_addrs=self.channel.to)
            except smtplib.SMTPServerDisconnected as exc:
                self._smtp = None
                smtp.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: reconnect once
                raise _error(f"{where}: disconnected while sending", exc) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self.close()
                raise _error(f"{where}: sending failed", exc) from exc
            except ValueError as exc:  # email.policy refused a header: our bug, retrying cannot help
                raise NotifyError(f"{where}: invalid message: {exc}", permanent=True) from exc
            self._last_used = time.monotonic()
            accepted = [to for to in self.channel.to if to not in refused]
            self.last_answer = f"accepted for {', '.join(accepted)}" + (
                f"; refused {', '.join(f'{to} ({code})' for to, (code, _) in refused.items())}" if refused else ""
            )
            return


def _error(where: str, exc: BaseException, *, unreachable: bool = False) -> NotifyError:
    """An SMTP failure as NotifyError: 5yz replies are permanent (RFC 5321 §4.2.1), the rest transient.
    Every server text in it is scrubbed of credentials."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return NotifyError(f"{where}: authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=True)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        shown = ", ".join(f"{to}: {code} {_text(msg)}" for to, (code, msg) in exc.recipients.items())
        return NotifyError(f"{where}: every recipient refused ({shown})", permanent=all(c >= 500 for c in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        return NotifyError(f"{where}: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=exc.smtp_code >= 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return NotifyError(f"{where}: {exc} (check `security`)", permanent=True)
    return NotifyError(f"{where}: {scrub(str(exc)) or type(exc).__name__}", unreachable=unreachable)


def _text(value: bytes | str) -> str:
    """A server reply as text, scrubbed (redact.scrub: AUTH lines, the password in any encoding)."""
    return scrub(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
