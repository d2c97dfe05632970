"""Near misses: items just below a topic's line, offered to the analyst once a day for a label. Pure: no I/O.

Alerts alone only ever show the model its false alarms; a verdict on an item just below the line shows it what it
missed too. So, once a day at `settings.near_misses` (local time), each channel gets one short message, and only
when there is something to offer::

    Just below the line · 25.11.2026
    Not alerts: a verdict on these teaches the topic both ways.

    Ливия
    1. Хафтар объявил о наступлении на Триполи — ТАСС · 0.41 (line 0.50)
    [ 1 ✓ relevant ] [ 1 ✗ not relevant ]       (Telegram: a row of buttons per item)

Console and e-mail show each item's id instead ("n12"), which `monitor label n12 yes` takes.

    offer_day(now, at, tz)          the day whose message a near miss found now waits for: today before the
                                    offer time, tomorrow from it on; the cap per topic counts per that day
    due_day(now, at, tz)            the latest day whose offer time has come
    place(score, story, day, cap)   whether a new near miss is kept, and which kept ones it takes the place of
                                    (the store's rule; `monitor eval --feedback` applies the same one)
    plan_offers(waiting, stories)   per channel and day, the near misses to show (topic order, best first) and
                                    those to drop: their story was muted, or alerted the topic, meanwhile
    render_text / render_telegram / keyboard
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import Any

from ..config import Config
from ..models import NearMiss, NearMissOffer, Story
from .buttons import CALLBACK_MAX, MARK, NOT_RELEVANT, RELEVANT
from .markup import BOLD, ITALIC, Line, Run, split_html
from .untrusted import one_line, safe_link, shorten

TITLE = "Just below the line"
SUBTITLE = "Not alerts: a verdict on these teaches the topic both ways."
# Bot API: a keyboard of up to 100 buttons; two per item, and a message that stays short to read.
ITEMS_PER_MESSAGE = 15
TITLE_MAX = 150
LABEL_SOURCE = "near-miss"  # Label.source of a verdict given on a near miss, by button or by `monitor label n12`

# callback_data "n<near miss id>:<y|n>": the alert buttons use "l" and "m" (buttons.py).
_DATA = re.compile(r"^n(\d{1,19}):([yn])$")
_ID = re.compile(r"^n(\d{1,19})$")


def offer_day(now: datetime, at: dtime, tz: tzinfo) -> date:
    """The day of the offer that a near miss found at `now` goes into."""
    local = now.astimezone(tz)
    return local.date() if local.time().replace(tzinfo=None) < at else local.date() + timedelta(days=1)


def due_day(now: datetime, at: dtime, tz: tzinfo) -> date:
    """The latest day whose offer time has come by `now`: near misses of that day and before are offered."""
    local = now.astimezone(tz)
    return local.date() if local.time().replace(tzinfo=None) >= at else local.date() - timedelta(days=1)


@dataclass(frozen=True)
class Held:
    """A near miss already kept for a topic, as `place` weighs it."""

    id: int
    score: float
    waiting: bool  # still waiting for its message: a better one may take its place


def place(
    score: float, same_story: Held | None, same_day: Sequence[Held], per_topic_day: int
) -> tuple[bool, tuple[int, ...]]:
    """(keep the new near miss?, ids of the kept ones to drop) for a near miss scoring `score` for a topic.

    `same_story` is the story's near miss for the topic, if it has one; `same_day` the topic's near misses of the
    offer day, lowest score first (then id). One per story and topic, at most `per_topic_day` per topic and day;
    within those caps the best score stays: the new one takes the place of the story's, or of the day's lowest
    waiting one, only if it scores higher and that one still waits. The story's is dropped even when the day
    then turns the new one away (as the store always did: a better copy of the story came, and the day is full)."""
    drop: tuple[int, ...] = ()
    day = list(same_day)
    if same_story is not None:
        if not _replaceable(same_story, score):
            return False, ()
        drop = (same_story.id,)
        day = [h for h in day if h.id != same_story.id]
    if len(day) >= per_topic_day:
        lowest = next((h for h in day if h.waiting), None)
        if lowest is None or not _replaceable(lowest, score):
            return False, drop
        drop = (*drop, lowest.id)
    return True, drop


def _replaceable(held: Held, score: float) -> bool:
    return held.waiting and held.score < score


@dataclass(frozen=True)
class OfferPlan:
    """What one offering run writes (in one transaction): the messages, and which near misses they took."""

    offers: tuple[tuple[str, date, tuple[int, ...]], ...]  # (channel, day, near miss ids in the order shown)
    offered: tuple[int, ...]
    dropped: tuple[int, ...]


def plan_offers(waiting: Sequence[NearMiss], stories: Mapping[str, Story], config: Config) -> OfferPlan:
    """The messages for near misses whose day has come: per channel that serves the topic and per day, topics in
    config order, the best-scoring first, at most ITEMS_PER_MESSAGE to a message.

    Dropped: the topic is gone from the config or routed nowhere, the item was labelled for the topic meanwhile,
    or its story was muted or has since alerted the topic (the alert carries its own buttons)."""
    order = {t.id: i for i, t in enumerate(config.topics)}
    keep: list[NearMiss] = []
    dropped: list[int] = []
    for near in waiting:
        story = stories.get(near.story_id) if near.story_id else None
        told = story is not None and (story.muted or near.topic in story.topics)
        if near.topic not in order or told or near.verdict is not None or not config.channels_for([near.topic]):
            dropped.append(near.id)
        else:
            keep.append(near)
    keep.sort(key=lambda n: (n.day, order[n.topic], -n.score, n.id))
    groups: dict[tuple[str, date], list[int]] = {}
    for near in keep:
        for channel in config.channels_for([near.topic]):
            groups.setdefault((channel, near.day), []).append(near.id)
    offers = tuple(
        (channel, day, tuple(ids[i : i + ITEMS_PER_MESSAGE]))
        for (channel, day), ids in groups.items()
        for i in range(0, len(ids), ITEMS_PER_MESSAGE)
    )
    return OfferPlan(offers, tuple(n.id for n in keep), tuple(dropped))


# --- what the analyst sees ------------------------------------------------------------------------


def by_topic(offer: NearMissOffer, topics: Mapping[str, str]) -> list[tuple[str, list[tuple[int, NearMiss]]]]:
    """(topic display name, [(number shown, near miss)]) in the offer's order; numbers count from 1."""
    groups: dict[str, list[tuple[int, NearMiss]]] = {}
    for number, near in enumerate(offer.near_misses, 1):
        groups.setdefault(near.topic, []).append((number, near))
    return [(one_line(topics.get(topic, topic)), shown) for topic, shown in groups.items()]


def _heading(offer: NearMissOffer) -> str:
    return f"{TITLE} · {offer.day:%d.%m.%Y}"


def _what(near: NearMiss) -> tuple[str, str]:
    """(title, " — source · score (line threshold)")."""
    title = shorten(one_line(near.item.title), TITLE_MAX) or "(untitled)"
    return title, f" — {shorten(one_line(near.item.feed), 80)} · {near.score:.2f} (line {near.threshold:.2f})"


def render_text(offer: NearMissOffer, topics: Mapping[str, str]) -> str:
    """Plain text (console, e-mail): each item with the id `monitor label` takes."""
    lines = [_heading(offer), f"{SUBTITLE} Label one: monitor label n<id> yes|no"]
    for name, shown in by_topic(offer, topics):
        lines += ["", name]
        for _, near in shown:
            title, rest = _what(near)
            verdict = "" if near.verdict is None else f"  [marked {'relevant' if near.verdict else 'not relevant'}]"
            lines.append(f"  n{near.id}  {title}{rest}{verdict}")
            link = safe_link(near.item.link)
            if link:
                lines.append(f"  {' ' * len(f'n{near.id}')}  {link}")
    return "\n".join(lines)


def render_telegram(offer: NearMissOffer, topics: Mapping[str, str]) -> list[str]:
    """Telegram HTML chunks; items are numbered as their buttons are."""
    lines: list[Line] = [(Run(_heading(offer), (BOLD,)),), (Run(SUBTITLE, (ITALIC,)),)]
    for name, shown in by_topic(offer, topics):
        lines += [(Run(""),), (Run(name, (BOLD,)),)]
        for number, near in shown:
            title, rest = _what(near)
            link = safe_link(near.item.link)
            lines.append((Run(f"{number}. "), Run(title, (("a", link),) if link else ()), Run(rest)))
    return split_html(lines)


def keyboard(offer: NearMissOffer) -> dict[str, Any]:
    """Per item a row "1 ✓ relevant" / "1 ✗ not relevant", the recorded verdict marked."""
    rows = []
    for number, near in enumerate(offer.near_misses, 1):
        rows.append(
            [
                _button(f"{number} {MARK if near.verdict is True else ''}{RELEVANT}", press_data(near.id, True)),
                _button(f"{number} {MARK if near.verdict is False else ''}{NOT_RELEVANT}", press_data(near.id, False)),
            ]
        )
    return {"inline_keyboard": rows}


def _button(text: str, data: str) -> dict[str, str]:
    assert len(data.encode()) <= CALLBACK_MAX, data
    return {"text": text, "callback_data": data}


# --- ids and presses ----------------------------------------------------------------------------------


def press_data(near_miss_id: int, relevant: bool) -> str:
    return f"n{near_miss_id}:{'y' if relevant else 'n'}"


def parse_press(data: object) -> tuple[int, bool] | None:
    """(near miss id, relevant) from a button's callback_data, or None for any other button."""
    m = _DATA.match(data) if isinstance(data, str) else None
    return None if m is None else (int(m.group(1)), m.group(2) == "y")


def parse_id(word: str) -> int | None:
    """The near miss id in "n12" (as console and e-mail show it), else None."""
    m = _ID.match(word.strip().lower())
    return None if m is None else int(m.group(1))
