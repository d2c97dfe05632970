"""The configured channels as Notifiers: one per channel, built from the config."""

from __future__ import annotations

from ..config import Config, ConsoleChannel, EmailChannel, TelegramChannel
from ..ports import Notifier
from .console import ConsoleNotifier
from .email import EmailNotifier
from .telegram import TelegramNotifier


def build_notifiers(config: Config) -> dict[str, Notifier]:
    """One notifier per configured channel, keyed by channel name; close() each when done."""
    topics = {t.id: t.name for t in config.topics}
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
