"""The feedback buttons under a Telegram alert, and what a press says. Pure: no I/O.

    Ливия 0.82 …the alert text…
    [ ✓ relevant ] [ ✗ not relevant ]        one row per matched topic ("Ливия: ✓ relevant" when several)
    [ 🔇 mute story ]

After a press the recorded verdict is marked ("● ✗ not relevant"); pressing the other button changes it.
`callback_data` (Bot API InlineKeyboardButton: 1-64 bytes) names the alert, the topic by its position among
the alert's stored matches, and the verdict: "l<alert>:<position>:<y|n>", or "m<alert>" to mute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..models import Alert
from .untrusted import one_line, shorten

CALLBACK_MAX = 64  # bytes, https://core.telegram.org/bots/api#inlinekeyboardbutton
NAME_MAX = 24  # a topic name on a button: phones cut longer ones anyway
MARK = "● "
RELEVANT, NOT_RELEVANT, MUTE, MUTED = "✓ relevant", "✗ not relevant", "🔇 mute story", "🔇 story muted"

_DATA = re.compile(r"^(?:l(\d{1,19}):(\d{1,4}):([yn])|m(\d{1,19}))$")


@dataclass(frozen=True)
class Press:
    """What a button asks for: a verdict on one topic of an alert, or muting the alert's story."""

    alert_id: int
    mute: bool = False
    position: int = 0  # index into Alert.matches
    relevant: bool = False


def label_data(alert_id: int, position: int, relevant: bool) -> str:
    return f"l{alert_id}:{position}:{'y' if relevant else 'n'}"


def mute_data(alert_id: int) -> str:
    return f"m{alert_id}"


def parse(data: object) -> Press | None:
    """The press a button's callback_data encodes, or None for anything this monitor never sent."""
    m = _DATA.match(data) if isinstance(data, str) else None
    if m is None:
        return None
    if m.group(4) is not None:
        return Press(int(m.group(4)), mute=True)
    return Press(int(m.group(1)), position=int(m.group(2)), relevant=m.group(3) == "y")


def positions(alert: Alert) -> list[int]:
    """Which of the alert's matches get buttons: the matched ones (all, if none is flagged matched)."""
    hits = [i for i, m in enumerate(alert.matches) if m.matched]
    return hits or list(range(len(alert.matches)))


def keyboard(alert: Alert, topics: Mapping[str, str]) -> dict[str, Any]:
    """The reply_markup of an alert, showing the verdicts already recorded for its item and its story's mute."""
    verdicts = {label.topic: label.relevant for label in alert.labels}
    shown = positions(alert)
    rows: list[list[dict[str, str]]] = []
    for i in shown:
        topic = alert.matches[i].topic
        prefix = f"{shorten(one_line(topics.get(topic, topic)), NAME_MAX)}: " if len(shown) > 1 else ""
        verdict = verdicts.get(topic)
        rows.append(
            [
                _button(prefix + _marked(RELEVANT, verdict is True), label_data(alert.id, i, True)),
                _button(prefix + _marked(NOT_RELEVANT, verdict is False), label_data(alert.id, i, False)),
            ]
        )
    rows.append([_button(MUTED if alert.muted else MUTE, mute_data(alert.id))])
    return {"inline_keyboard": rows}


def _marked(text: str, chosen: bool) -> str:
    return MARK + text if chosen else text


def _button(text: str, data: str) -> dict[str, str]:
    assert len(data.encode()) <= CALLBACK_MAX, data  # ids of 19 digits still fit
    return {"text": text, "callback_data": data}
