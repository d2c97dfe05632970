"""Story grouping on a part of the hand-written stream set (tests/data/story_stream.jsonl), and B-cubed."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from monitor.models import Item
from monitor.stories import evidence as rule
from monitor.stories import group as group_module
from monitor.stories.evidence import item_features, outlet_of, pair_evidence
from monitor.stories.features import DocumentFrequencies
from monitor.stories.group import StoryGrouper
from monitor.stories.metrics import bcubed

STREAM = Path(__file__).parent / "data" / "story_stream.jsonl"

# Same actor, same day or a day apart, other event; and the split cases: a Kremlin readout worded
# "Минские соглашения" / "Донбасс" in one outlet and "Минские договоренности" in another, a launch in other words.
PART = (
    "kndr-1", "kndr-2", "putin-macron", "mfa-moldova", "mfa-libya", "weather-minsk", "weather-grodno",
    "drones-belgorod", "drones-kursk", "en-kndr-launch", "en-nato-spending", "en-nato-aircraft",
)  # fmt: skip


ALL = ("*",)


def stream(stories: tuple[str, ...] = PART) -> list[tuple[Item, str]]:
    """The set's items of these gold stories (ALL: every one) in time order, with their gold story."""
    out = []
    for i, line in enumerate(STREAM.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        if stories != ALL and row["story"] not in stories:
            continue
        link = f"https://{row['outlet']}/news/{i}"
        when = datetime.fromisoformat(row["time"])
        out.append((Item(feed=row["outlet"], key=link, title=row["title"], link=link, published=when,
                         content=row["text"]), row["story"]))  # fmt: skip
    return sorted(out, key=lambda pair: pair[0].published)


def background() -> DocumentFrequencies:
    """Document frequencies of the whole set: the context a daemon's window gives (IDF over a dozen items is noise)."""
    return DocumentFrequencies.of(item_features(item) for item, _ in stream(ALL))


def grouped(pairs: list[tuple[Item, str]]) -> tuple[dict[str, str], dict[str, str]]:
    grouper = StoryGrouper(background=background())
    predicted = {item.uid: grouper.assign(item).story_id for item, _ in pairs}
    return {item.uid: story for item, story in pairs}, predicted


def test_the_stream_set_is_large_enough_and_varied() -> None:
    rows = [json.loads(line) for line in STREAM.read_text(encoding="utf-8").splitlines()]
    sizes: dict[str, int] = {}
    for row in rows:
        sizes[row["story"]] = sizes.get(row["story"], 0) + 1
    assert sum(2 <= n <= 5 for n in sizes.values()) >= 30
    for row in rows:  # one event, several outlets
        same = [r for r in rows if r["story"] == row["story"]]
        assert len({r["outlet"] for r in same}) == len(same) or row["story"].startswith("weather")


def test_no_two_events_of_one_actor_share_a_story() -> None:
    gold, predicted = grouped(stream())
    for uid, story in predicted.items():
        together = {gold[other] for other, s in predicted.items() if s == story}
        assert together == {gold[uid]}, together


@pytest.mark.parametrize("story", ["putin-macron", "kndr-1", "en-kndr-launch", "mfa-moldova", "en-nato-spending"])
def test_reports_of_one_event_in_other_words_form_one_story(story: str) -> None:
    gold, predicted = grouped(stream())
    assert len({predicted[uid] for uid, g in gold.items() if g == story}) == 1


def test_bcubed_on_the_part() -> None:
    precision, recall = bcubed(*grouped(stream()))
    assert precision == 1.0 and recall >= 0.85


def test_bcubed_counts_per_item() -> None:
    gold = {"a": "x", "b": "x", "c": "y", "d": "y"}
    assert bcubed(gold, gold) == (1.0, 1.0)
    assert bcubed(gold, {"a": "1", "b": "2", "c": "3", "d": "4"}) == (1.0, 0.5)
    assert bcubed(gold, {"a": "1", "b": "1", "c": "1", "d": "1"}) == (0.5, 1.0)
    assert bcubed({}, {}) == (0.0, 0.0)


def test_one_outlets_template_items_are_told_apart_by_their_names() -> None:
    (minsk, _), (grodno, _) = stream(("weather-minsk", "weather-grodno"))
    evidence = pair_evidence(item_features(minsk), item_features(grodno), outlets=(outlet_of(minsk), outlet_of(grodno)))
    assert evidence.same_outlet and evidence.entities_min < 1.0
    assert not rule.decide(evidence)[0]


def test_a_day_between_reports_weighs_against_joining() -> None:
    (a, _), (b, _) = stream(("kndr-1",))[:2]
    fa, fb = item_features(a), item_features(b)
    now = pair_evidence(fa, fb, outlets=("x", "y"), times=(0.0, 0.0))
    later = pair_evidence(fa, fb, outlets=("x", "y"), times=(0.0, 86400.0))
    assert later.logit == pytest.approx(now.logit - rule.GAP_PENALTY)


def test_a_capped_postings_scan_still_finds_the_recent_rewrite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_module, "POSTING_SCAN", 2)
    pairs = stream(("putin-macron", "mfa-moldova", "mfa-libya", "kndr-1"))
    gold, predicted = grouped(pairs)
    assert bcubed(gold, predicted)[0] == 1.0
    assert len({predicted[uid] for uid, g in gold.items() if g == "putin-macron"}) == 1
