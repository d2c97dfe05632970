"""The configured channels as Notifiers: one per channel, built from the config."""

from __future__ import annotations

from ..config import Config, ConsoleChannel, EmailChannel, TelegramChannel
from ..ports import Notifier
from .console import ConsoleNotifier
from .email import EmailNotifier
from .message import HIGH_MARK
from .telegram import TelegramNotifier


def build_notifiers(config: Config) -> dict[str, Notifier]:
    """One notifier per configured channel, keyed by channel name; close() each when done."""
    # issue 14: a priority: high topic is marked wherever its name shows (alerts, digests, buttons)
    topics = {t.id: (HIGH_MARK if t.priority == "high" else "") + t.name for t in config.topics}
    tz = config.settings.tz
    notifiers: dict[str, Notifier] = {}
    for name, channel in config.channels.items():
        if isinstance(channel, TelegramChannel):
            notifiers[name] = TelegramNotifier(name, channel, topics=topics, tz=tz)
        elif isinstance(channel, EmailChannel):
            notifiers[name] = EmailNotifier(name, channel, topics=topics, tz=tz)
        elif isinstance(channel, ConsoleChannel):
            notifiers[name] = ConsoleNotifier(name, topics=topics, tz=tz)
    return notifiers
