"""Console channel, the default: one readable plain-text block per alert on stdout."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from typing import TextIO

from ..errors import NotifyError
from ..models import Alert
from . import message
from .untrusted import clean

RULE = "─" * 72


class ConsoleNotifier:
    """Writes alerts to a text stream (stdout unless given); control characters never reach the terminal."""

    def __init__(
        self,
        name: str = "console",
        stream: TextIO | None = None,
        *,
        topics: Mapping[str, str] | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        self.name = name
        self.topics: Mapping[str, str] = topics or {}
        self.tz = tz
        self.last_answer = ""
        self._stream = stream

    def send(self, alert: Alert) -> str | None:
        self._write(message.render_text(alert, topics=self.topics, tz=self.tz))
        return None

    def edit(self, ref: str, alert: Alert) -> None:
        """A printed block cannot change: a story update is one short line (its other sources, a gained topic)."""
        self._write_line(message.render_update_text(alert, topics=self.topics))

    def send_digest(self, alerts: Sequence[Alert], title: str) -> None:
        self._write(message.render_digest_text(alerts, title, topics=self.topics, tz=self.tz))

    def send_text(self, text: str) -> str | None:
        self._write(clean(text))
        return None

    def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""

    def _write(self, block: str) -> None:
        self._write_line(f"{RULE}\n{block}")

    def _write_line(self, text: str) -> None:
        # Resolved at each write, not at construction, so a redirected sys.stdout is honoured.
        stream = self._stream or sys.stdout
        try:
            stream.write(f"{text}\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # broken pipe, closed stream
            raise NotifyError(f"{self.name}: cannot write to the console: {exc}") from exc
