"""What the CLI prints about delivery and the daemon: `monitor alerts`, `monitor notify-test`, the daemon line of
`monitor status` (only cli.py imports this)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..config import Config
from ..delivery.message import matched
from ..delivery.untrusted import one_line, shorten
from ..models import Alert, Delivery
from ..ports import Clock, Notifier, SystemClock


@runtime_checkable
class Answering(Protocol):
    """A notifier that keeps the server's last answer (Telegram)."""

    last_answer: str


def notify_test(notifier: Notifier, clock: Clock | None = None) -> str:
    """`monitor notify-test CHANNEL`: send a test message; what the server answered. Raises NotifyError."""
    now = (clock or SystemClock()).now()
    ref = notifier.send_text(
        f"topic-monitor: test message for channel {notifier.name!r} at {now:%Y-%m-%d %H:%M:%S} UTC.\n"
        "If you can read this, alerts will arrive here."
    )
    lines = [f"{notifier.name}: sent" + (f" (message {ref})" if ref else "")]
    if isinstance(notifier, Answering) and notifier.last_answer:
        lines.append(f"server answered: {notifier.last_answer}")
    return "\n".join(lines)


def format_alerts(
    rows: Sequence[tuple[Alert, Sequence[Delivery]]],
    config: Config | None = None,
    *,
    topics: Mapping[str, str] | None = None,
    tz: tzinfo | None = None,
) -> str:
    """`monitor alerts`: one block per alert, newest first, with each channel's delivery state.

    Topic names and the time zone come from `config` unless given."""
    if not rows:
        return "no alerts"
    names = topics if topics is not None else {t.id: t.name for t in config.topics} if config else {}
    tz = tz or (config.settings.tz if config else UTC)
    blocks = []
    for alert, deliveries in sorted(rows, key=lambda r: r[0].created, reverse=True):
        topic_text = ", ".join(f"{names.get(m.topic, m.topic)} {m.score:.2f}" for m in matched(alert))
        head = (
            f"#{alert.id} {alert.created.astimezone(tz):%Y-%m-%d %H:%M} [{topic_text}] "
            f"{shorten(one_line(alert.item.title), 100)} ({alert.item.feed})"
        )
        lines = [head]
        sources = list(dict.fromkeys(one_line(source) for source, _ in alert.also))
        if sources:  # the story's later reports: sent as edits of the message, shown here too
            lines.append(f"    also: {', '.join(sources)}")
        for d in sorted(deliveries, key=lambda d: (d.channel, d.id)):
            lines.append(f"    {d.channel}: {_state(d, tz)}")
        blocks.append("\n".join(lines))
    zone = config.settings.timezone if config else str(tz)
    return "\n".join([*blocks, f"(times in {zone})"])


def _state(d: Delivery, tz: tzinfo) -> str:
    tries = f", {d.attempts} attempt{'s' if d.attempts != 1 else ''}" if d.attempts else ""
    error = f": {shorten(one_line(d.last_error), 200)}" if d.last_error else ""
    if d.status == "sent":
        when = f" {d.sent_at.astimezone(tz):%Y-%m-%d %H:%M:%S}" if d.sent_at else ""
        return f"sent{when}" + (f" (message {d.message_ref})" if d.message_ref else "")
    if d.status == "failed":
        return f"FAILED{tries}{error}"
    when = f", next attempt {d.next_attempt.astimezone(tz):%Y-%m-%d %H:%M}" if d.next_attempt else ""
    return f"{d.status}{when}{tries}" + (f", last error{error}" if error else "")


def daemon_line(lock: Path, last_poll: datetime | None, tz: tzinfo, zone: str) -> str:
    """`monitor status`: whether a daemon delivers from this data directory (it holds `lock`), since when, and
    when a feed was last polled.

    The lock is probed with a shared flock, which fails while the daemon holds it exclusively; the pid in the
    file alone would outlive the daemon (it is not cleared at exit) and could name another process by now."""
    polled = f"; last poll {last_poll.astimezone(tz):%Y-%m-%d %H:%M:%S} ({zone})" if last_poll else "; never polled"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return f"daemon: not running (no daemon has run on {lock.parent}){polled}"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            since = datetime.fromtimestamp(os.fstat(fd).st_mtime, UTC).astimezone(tz)  # written when it took the lock
            return f"daemon: running, pid {pid}, since {since:%Y-%m-%d %H:%M:%S} ({zone}){polled}"
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return f"daemon: not running on {lock.parent}: nothing is polled until it starts{polled}"
