"""The pipeline's pure decisions: what an item leads to (decide), a new feed's backlog, a feed's next state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from monitor import config as cfg
from monitor.decide import decide, is_backfill, next_feed_state, topic_gain
from monitor.errors import FetchError
from monitor.models import AlertIntent, FeedState, FetchResult, Item, ItemIntent, Match, Story
from monitor.stories.group import StoryDecision

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
LATER = T0 + timedelta(minutes=5)

CONFIG = cfg.Config.model_validate(
    {
        "settings": {"timezone": "Europe/Moscow"},
        "channels": {"tg": {"type": "console"}, "mail": {"type": "console", "mode": "digest", "at": "18:00"}},
        "topics": [
            {"id": "libya", "name": "Ливия", "notify": ["tg"]},
            {"id": "france", "name": "Франция"},  # every channel
        ],
        "feeds": [{"name": "Interfax", "url": "https://interfax.example/rss"}],
    }
)
FIRST = Item(feed="Interfax", key="1", title="Путин и Макрон о Ливии", link=None, published=T0)
SECOND = Item(feed="TASS", key="2", title="Кремль: Путин и Макрон о Ливии", link=None, published=LATER)
LIBYA = Match("libya", 0.9, 0.5, True)
FRANCE = Match("france", 0.7, 0.5, True)
STORY = Story("s1", FIRST.uid, T0, T0, items=(FIRST.uid,), sources=("Interfax",), topics=("libya",))
NEW = StoryDecision("s1", True, "new", 0.0, None)
JOINED = StoryDecision("s1", False, "same-event", 0.6, FIRST.uid)
DIGEST = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 18:00 in Moscow: the mail channel's digest

# name: (item, matched, story as stored, placement, keywords of decide) ->
#       (alert topics and channels or None, edit channels or None, story topics, story items)
CASES: dict[str, tuple[Any, ...]] = {
    "first item alerts": (
        FIRST, [LIBYA], None, NEW, {},
        (("libya",), ("tg",)), None, ("libya",), (FIRST.uid,),
    ),
    "first item, two topics: one alert for both": (
        FIRST, [LIBYA, FRANCE], None, NEW, {},
        (("libya", "france"), ("tg", "mail")), None, ("libya", "france"), (FIRST.uid,),
    ),
    "later item of the story edits the alert": (
        SECOND, [LIBYA], STORY, JOINED, {},
        None, ("tg",), ("libya",), (FIRST.uid, SECOND.uid),
    ),
    "later item matching nothing still adds its source": (
        SECOND, [], STORY, JOINED, {},
        None, ("tg",), ("libya",), (FIRST.uid, SECOND.uid),
    ),
    "a new topic on a later item alerts for that topic only": (
        SECOND, [LIBYA, FRANCE], STORY, JOINED, {},
        (("france",), ("tg", "mail")), None, ("libya", "france"), (FIRST.uid, SECOND.uid),
    ),
    "an updated item (same id, new text) is silent": (
        FIRST, [LIBYA], STORY, JOINED, {"update": True},
        None, None, ("libya",), (FIRST.uid,),
    ),
    "an updated item alerts for a new topic only": (
        FIRST, [LIBYA, FRANCE], STORY, JOINED, {"update": True},
        (("france",), ("tg", "mail")), None, ("libya", "france"), (FIRST.uid,),
    ),
    "backfill: topics count as told, silently": (
        FIRST, [LIBYA], None, NEW, {"alert": False},
        None, None, ("libya",), (FIRST.uid,),
    ),
    "backfill: a later item edits nothing": (
        SECOND, [LIBYA, FRANCE], STORY, JOINED, {"alert": False},
        None, None, ("libya", "france"), (FIRST.uid, SECOND.uid),
    ),
    "muted story: no alert for a new topic, which still counts as told": (
        SECOND, [LIBYA, FRANCE], replace(STORY, muted=True), JOINED, {},
        None, None, ("libya", "france"), (FIRST.uid, SECOND.uid),
    ),
    "muted story: no edit": (
        SECOND, [LIBYA], replace(STORY, muted=True), JOINED, {},
        None, None, ("libya",), (FIRST.uid, SECOND.uid),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_decide(case: str) -> None:
    item, matched, story, placement, flags, alert, edit, topics, items = CASES[case]
    intent = decide(item, matched, story, placement, CONFIG, LATER, **flags)
    assert isinstance(intent, ItemIntent) and intent.item == item and intent.now == LATER
    if alert is None:
        assert intent.alert is None
    else:
        assert intent.alert is not None
        assert (tuple(m.topic for m in intent.alert.matches), intent.alert.channels) == alert
    assert intent.edit == edit
    assert (intent.story.id, intent.story.topics, intent.story.items) == ("s1", topics, items)


def test_a_new_story_starts_with_the_item_and_a_stored_one_keeps_its_history() -> None:
    first = decide(FIRST, [LIBYA], None, NEW, CONFIG, T0)
    # the story as saved, with the time of its first alert: a later item of the same poll decides on it
    assert first.story == Story("s1", FIRST.uid, T0, T0, (FIRST.uid,), ("Interfax",), ("libya",), first_alert_at=T0)
    later = decide(SECOND, [], first.story, JOINED, CONFIG, LATER)
    grown = replace(first.story, items=(FIRST.uid, SECOND.uid), sources=("Interfax", "TASS"), last_seen=LATER)
    assert later.story == grown
    again = decide(SECOND, [], later.story, JOINED, CONFIG, LATER + timedelta(hours=1), update=True)
    assert again.story == later.story  # an item the story holds is not added twice


def test_alerts_carry_the_channels_first_attempt_times() -> None:
    intent = decide(FIRST, [FRANCE], None, NEW, CONFIG, T0)
    assert intent.alert == AlertIntent((FRANCE,), ("tg", "mail"), {"mail": DIGEST})  # instant tg: no hold


def test_decide_reads_only_its_arguments() -> None:
    story = replace(STORY, topics=())
    decision = decide(SECOND, [LIBYA], story, JOINED, CONFIG, LATER)
    assert decision == decide(SECOND, [LIBYA], story, JOINED, CONFIG, LATER)
    assert story.topics == ()  # frozen: the decision returns a new story


NEAR_FRANCE = Match("france", 0.45, 0.5, False)
NEAR_LIBYA = Match("libya", 0.45, 0.5, False)
QUIET_CONFIG = CONFIG.model_copy(update={"settings": CONFIG.settings.model_copy(update={"near_misses": "off"})})
NOWHERE = CONFIG.model_copy(update={"topics": [CONFIG.topics[0], CONFIG.topics[1].model_copy(update={"notify": []})]})

# name: (item, matched, near misses the model saw, story as stored, keywords of decide, config) -> topics offered
NEAR_CASES: dict[str, tuple[Any, ...]] = {
    "a first item just below the line is offered": (FIRST, [], [NEAR_FRANCE], None, {}, CONFIG, ("france",)),
    "beside an alert for another topic": (FIRST, [LIBYA], [NEAR_FRANCE], None, {}, CONFIG, ("france",)),
    "a later item of the story too": (SECOND, [], [NEAR_FRANCE], STORY, {}, CONFIG, ("france",)),
    "an updated item too (the store keys near misses by item and topic)": (
        FIRST, [], [NEAR_FRANCE], STORY, {"update": True}, CONFIG, ("france",)),
    "not for a topic the story was alerted for": (SECOND, [], [NEAR_LIBYA], STORY, {}, CONFIG, None),
    "not in a muted story": (SECOND, [], [NEAR_FRANCE], replace(STORY, muted=True), {}, CONFIG, None),
    "not in backfill": (FIRST, [], [NEAR_FRANCE], None, {"alert": False}, CONFIG, None),
    "not when vetoed": (FIRST, [], [replace(NEAR_FRANCE, vetoed_by="футбол")], None, {}, CONFIG, None),
    "not when matched": (FIRST, [], [replace(NEAR_FRANCE, matched=True)], None, {}, CONFIG, None),
    "not for a topic routed to no channel": (FIRST, [], [NEAR_FRANCE], None, {}, NOWHERE, None),
    "not when near_misses is off": (FIRST, [], [NEAR_FRANCE], None, {}, QUIET_CONFIG, None),
}  # fmt: skip


@pytest.mark.parametrize("case", NEAR_CASES)
def test_decide_near_misses(case: str) -> None:
    item, matched, near, story, flags, config, offered = NEAR_CASES[case]
    placement = NEW if story is None else JOINED
    intent = decide(item, matched, story, placement, config, LATER, near=near, near_per_day=3, **flags)
    if offered is None:
        assert intent.near is None
    else:
        assert intent.near is not None
        assert tuple(m.topic for m in intent.near.matches) == offered and intent.near.per_topic_day == 3
    assert (intent.alert is not None) == bool(matched) and "france" not in intent.story.topics


def test_a_near_miss_waits_for_the_next_offer_in_local_time() -> None:
    # The config's timezone is Europe/Moscow and its near_misses the default, 17:00.
    before = decide(FIRST, [], None, NEW, CONFIG, datetime(2026, 11, 25, 13, 59, tzinfo=UTC),
                    near=[NEAR_FRANCE], near_per_day=3)  # fmt: skip
    after = decide(FIRST, [], None, NEW, CONFIG, datetime(2026, 11, 25, 14, 0, tzinfo=UTC),
                   near=[NEAR_FRANCE], near_per_day=3)  # fmt: skip
    assert before.near is not None and before.near.day == date(2026, 11, 25)  # 16:59 in Moscow: today's message
    assert after.near is not None and after.near.day == date(2026, 11, 26)  # 17:00: tomorrow's


@pytest.mark.parametrize(
    ("state", "published", "expected"),
    [
        (None, T0 - timedelta(days=2), True),  # a new feed's backlog
        (FeedState("Interfax", "u", status="error"), T0 - timedelta(days=2), True),  # never polled successfully
        (None, T0 - timedelta(hours=1), False),  # recent enough to alert
        (FeedState("Interfax", "u", last_success=T0 - timedelta(hours=3)), T0 - timedelta(days=2), False),
    ],
)
def test_is_backfill(state: FeedState | None, published: datetime, expected: bool) -> None:
    item = replace(FIRST, published=published)
    assert is_backfill(item, state, T0, backfill=86400.0) is expected


FEED = CONFIG.feeds[0]
BEFORE = FeedState("Interfax", "https://interfax.example/rss", etag='"a"', last_modified="Mon", items_total=10)


def test_next_feed_state_after_a_good_poll() -> None:
    result = FetchResult("https://interfax.example/rss", 200, b"", etag='"b"', permanent_redirect="https://new.example")
    state = next_feed_state(FEED, CONFIG.settings, BEFORE, T0, "ok", total=12, result=result, new_count=2)
    assert (state.status, state.error_count, state.items_total) == ("ok", 0, 12)
    assert (state.etag, state.last_modified, state.redirected_to) == ('"b"', "Mon", "https://new.example")
    assert state.last_fetch == state.last_success == state.last_new_item == T0
    assert state.next_poll is not None and state.next_poll > T0


def test_next_feed_state_after_a_304_keeps_the_validators_and_the_last_new_item() -> None:
    result = FetchResult("https://interfax.example/rss", 304, None)
    state = next_feed_state(FEED, CONFIG.settings, BEFORE, T0, "not_modified", total=10, result=result)
    assert (state.etag, state.last_modified, state.last_new_item, state.last_success) == ('"a"', "Mon", None, T0)


def test_next_feed_state_after_errors_backs_off() -> None:
    error = FetchError("HTTP 503")
    first = next_feed_state(FEED, CONFIG.settings, BEFORE, T0, "error", total=10, error=error)
    second = next_feed_state(FEED, CONFIG.settings, first, T0, "error", total=10, error=error)
    assert (first.error_count, second.error_count) == (1, 2)
    assert (second.last_error, second.last_error_at, second.last_success, second.etag) == ("HTTP 503", T0, None, '"a"')
    assert first.next_poll is not None and second.next_poll is not None and second.next_poll > first.next_poll
    recovered = next_feed_state(FEED, CONFIG.settings, second, T0, "ok", total=10, result=FetchResult("u", 200, b""))
    assert recovered.error_count == 0 and recovered.last_error == "HTTP 503"  # the last error stays on record


def test_next_feed_state_honours_retry_after() -> None:
    error = FetchError("HTTP 429", retry_after=7200.0)
    state = next_feed_state(FEED, CONFIG.settings, BEFORE, T0, "error", total=10, error=error)
    assert state.next_poll is not None and state.next_poll >= T0 + timedelta(hours=2)


# --- issue 14 §2: a story that gains a topic ------------------------------------------------------------------


def test_a_topic_gained_within_the_hour_edits_the_first_message() -> None:
    at = STORY.first_seen
    story = replace(STORY, first_alert_at=at)
    intent = decide(SECOND, [LIBYA, FRANCE], story, JOINED, CONFIG, at + timedelta(minutes=20))
    assert intent.alert is not None and [m.topic for m in intent.alert.matches] == ["france"]
    # recorded (matches, labels, `monitor alerts`), sent as its own message only where the first alert never went
    assert intent.alert.channels == tuple(c for c in CONFIG.channels_for(["france"]) if c not in ("tg",))
    assert intent.edit is not None and "tg" in intent.edit
    assert intent.story.topics == ("libya", "france")


def test_a_topic_gained_after_the_hour_is_a_new_alert() -> None:
    at = STORY.first_seen
    story = replace(STORY, first_alert_at=at)
    intent = decide(SECOND, [LIBYA, FRANCE], story, JOINED, CONFIG, at + timedelta(minutes=61))
    assert intent.alert is not None and intent.alert.channels == tuple(CONFIG.channels_for(["france"]))
    assert intent.edit is None


def test_topic_gain() -> None:
    t = STORY.first_seen
    assert topic_gain((), t, t) == "first"
    assert topic_gain(("libya",), t, t + timedelta(minutes=59)) == "edit"
    assert topic_gain(("libya",), t, t + timedelta(hours=1)) == "continues"
