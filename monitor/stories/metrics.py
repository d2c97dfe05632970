"""Story figures for `monitor eval`, when corpus items carry a gold "story" field. Pure bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..models import Item, Match
from .group import StoryGrouper


class StoryMetrics:
    """Story figures for `monitor eval` when corpus items carry a gold "story" field.

    - alerts_sent: first alert per (predicted story, topic): what the daemon would send.
    - repeated_alerts: sent alerts whose item's gold story had already been alerted for that topic.
    - wrong_merges: predicted stories holding items of more than one gold story (items without gold ignored).
    - split_gold_stories: gold stories spread over more than one predicted story (the cause of repeats).
    """

    def __init__(self) -> None:
        self._items = 0
        self._with_gold = 0
        self._alerted_predicted: set[tuple[str, str]] = set()
        self._alerted_gold: set[tuple[str, str]] = set()
        self._alerts = 0
        self._repeats = 0
        self._gold_of_predicted: dict[str, set[str]] = {}
        self._predicted_of_gold: dict[str, set[str]] = {}
        self._predicted: set[str] = set()

    def observe(
        self, item_id: str, gold_story: str | None, predicted_story: str, matched_topics: Sequence[str]
    ) -> None:
        """Record one item in stream order."""
        self._items += 1
        self._predicted.add(predicted_story)
        if gold_story is not None:
            self._with_gold += 1
            self._gold_of_predicted.setdefault(predicted_story, set()).add(gold_story)
            self._predicted_of_gold.setdefault(gold_story, set()).add(predicted_story)
        for topic in dict.fromkeys(matched_topics):
            if (predicted_story, topic) in self._alerted_predicted:
                continue  # folded into the story's existing alert
            self._alerted_predicted.add((predicted_story, topic))
            self._alerts += 1
            if gold_story is None:
                continue
            if (gold_story, topic) in self._alerted_gold:
                self._repeats += 1
            else:
                self._alerted_gold.add((gold_story, topic))

    def summary(self) -> dict[str, int]:
        """The figures, as plain ints."""
        return {
            "items": self._items,
            "items_with_gold_story": self._with_gold,
            "alerts_sent": self._alerts,
            "repeated_alerts": self._repeats,
            "predicted_stories": len(self._predicted),
            "gold_stories": len(self._predicted_of_gold),
            "wrong_merges": sum(1 for golds in self._gold_of_predicted.values() if len(golds) > 1),
            "split_gold_stories": sum(1 for preds in self._predicted_of_gold.values() if len(preds) > 1),
        }


class StoryReplay:
    """Feeds `monitor eval`'s replay through a StoryGrouper and StoryMetrics (run_eval's `on_item` hook).

    Corpus items become Items of the feed named by their `source`; items without a date are spaced a
    minute apart in file order, so the grouper's time window still means something.
    """

    def __init__(self, window_seconds: float) -> None:
        self.grouper = StoryGrouper(window_seconds=window_seconds)
        self.metrics = StoryMetrics()
        self.gold_seen = False
        self._n = 0

    def __call__(self, raw: dict[str, Any], matches: Sequence[Match]) -> None:
        self._n += 1
        published = _parse_time(raw.get("published")) or _EPOCH + timedelta(minutes=self._n)
        item = Item(
            feed=str(raw.get("source") or "corpus"),
            key=str(raw["id"]),
            title=str(raw.get("title") or ""),
            link=None,
            published=published,
            summary=str(raw.get("text") or ""),
            lang=str(raw.get("lang") or ""),
        )
        decision = self.grouper.assign(item)
        gold = raw.get("story")
        self.gold_seen = self.gold_seen or gold is not None
        matched = [m.topic for m in matches if m.matched]
        self.metrics.observe(item.key, None if gold is None else str(gold), decision.story_id, matched)


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def bcubed(gold: Mapping[str, str], predicted: Mapping[str, str]) -> tuple[float, float]:
    """B-cubed (precision, recall) of a clustering over the items both maps hold (Bagga & Baldwin, 1998).

    Per item: precision is the share of its predicted cluster that shares its gold cluster, recall the share of its
    gold cluster that shares its predicted cluster; both averaged over items. Singletons count, so a grouper that
    merges nothing still scores full precision and a recall below 1 wherever gold clusters have several items.
    """
    uids = [uid for uid in gold if uid in predicted]
    if not uids:
        return 0.0, 0.0
    by_gold: dict[str, set[str]] = {}
    by_pred: dict[str, set[str]] = {}
    for uid in uids:
        by_gold.setdefault(gold[uid], set()).add(uid)
        by_pred.setdefault(predicted[uid], set()).add(uid)
    precision = recall = 0.0
    for uid in uids:
        g, p = by_gold[gold[uid]], by_pred[predicted[uid]]
        shared = len(g & p)
        precision += shared / len(p)
        recall += shared / len(g)
    return precision / len(uids), recall / len(uids)
