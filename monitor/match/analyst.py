"""The analyst `monitor eval --feedback` simulates: labels from the gold for alerts and offered near misses."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from datetime import time as dtime
from typing import Any

from ..delivery.nearmiss import Held, due_day, offer_day, place
from ..models import Item, Label, Match
from .classify import NEAR_MISSES_PER_TOPIC_DAY, TopicModel
from .corpus import corpus_item


@dataclass(frozen=True)
class _Waiting:
    """A near miss the simulated daemon keeps for its day's offer."""

    held: Held
    topic: str
    day: date
    item: Item
    relevant: bool


class SimulatedAnalyst:
    """The analyst of `monitor eval --feedback`: labels alerts and offered near misses from the gold, K per topic.

    Each alert for a topic reveals the item's gold label for it with probability `rate`, at once (its buttons).
    Near misses go the daemon's way: kept per topic and offer day by delivery.nearmiss.place (the best
    `per_topic_day` scores; the corpus has no stories, so each item is its own), offered once a day at
    `offer_at` in `tz` (settings.near_misses, settings.timezone; None: offering off), and their labels revealed,
    with probability `rate`, only once the stream's item time passes that offer (`offer_due`). A topic stops at
    `k` labels. Near misses are offered for labelling, never counted as alerts.
    """

    def __init__(
        self,
        topic_ids: Sequence[str],
        k: int,
        rate: float,
        seed: int,
        *,
        offer_at: dtime | None = dtime(17),
        tz: tzinfo = UTC,
        per_topic_day: int = NEAR_MISSES_PER_TOPIC_DAY,
        routed: Callable[[str], bool] = lambda topic: True,
    ) -> None:
        self.k, self.rate = k, rate
        self.offer_at, self.tz, self.per_topic_day, self.routed = offer_at, tz, per_topic_day, routed
        self._rng = random.Random(seed)
        self._order = {t: i for i, t in enumerate(topic_ids)}
        self.labels: list[tuple[Label, Item]] = []
        self.from_alerts = dict.fromkeys(topic_ids, 0)
        self.from_near_misses = dict.fromkeys(topic_ids, 0)
        self.offered = dict.fromkeys(topic_ids, 0)
        self._waiting: dict[tuple[str, date], list[_Waiting]] = {}
        self._ids = 0
        self.clock: datetime | None = None  # the latest item time seen: the stream's "now"

    def _full(self, topic: str) -> bool:
        return self.from_alerts[topic] + self.from_near_misses[topic] >= self.k

    def _give(self, topic: str, item: Item, relevant: bool, near: bool) -> bool:
        if self._rng.random() >= self.rate:
            return False
        self.labels.append((Label(item.uid, topic, relevant, "eval", at=item.published), item))
        (self.from_near_misses if near else self.from_alerts)[topic] += 1
        return True

    def tick(self, record: dict[str, Any]) -> int:
        """Move the stream's clock to `record`'s time (never back) and reveal the labels of the near misses whose
        offer time has come by then; returns how many labels that gave."""
        published = corpus_item(record).published
        self.clock = published if self.clock is None else max(self.clock, published)
        if self.offer_at is None or not self._waiting:
            return 0
        due = due_day(self.clock, self.offer_at, self.tz)
        ready = [w for key, held in self._waiting.items() if key[1] <= due for w in held]
        if not ready:
            return 0
        self._waiting = {key: held for key, held in self._waiting.items() if key[1] > due}
        ready.sort(key=lambda w: (w.day, self._order[w.topic], -w.held.score, w.held.id))  # as plan_offers shows them
        given = 0
        for w in ready:
            if self._full(w.topic):
                continue
            self.offered[w.topic] += 1
            given += self._give(w.topic, w.item, w.relevant, near=True)
        return given

    def react(self, record: dict[str, Any], matches: Sequence[Match]) -> int:
        """The labels one decided item's alerts bring at once (appended to `labels`; returns how many); its near
        misses are kept for their day's offer (`tick`)."""
        gold = set(record.get("topics") or ())
        item = corpus_item(record)
        now = self.clock or item.published
        given = 0
        for m in matches:
            if m.matched and not self._full(m.topic):
                given += self._give(m.topic, item, m.topic in gold, near=False)
        if self.offer_at is None:
            return given
        day = offer_day(now, self.offer_at, self.tz)
        for m in matches:
            # decide._near_misses' filter: below the line, not vetoed, a topic the item (its own story) did not
            # alert, routed to a channel
            if m.matched or m.vetoed_by is not None or not TopicModel.is_near_miss(m) or not self.routed(m.topic):
                continue
            held = self._waiting.setdefault((m.topic, day), [])
            lowest_first = sorted((w.held for w in held), key=lambda h: (h.score, h.id))
            keep, drop = place(m.score, None, lowest_first, self.per_topic_day)
            held[:] = [w for w in held if w.held.id not in drop]
            if keep:
                self._ids += 1
                held.append(_Waiting(Held(self._ids, m.score, True), m.topic, day, item, m.topic in gold))
        return given
