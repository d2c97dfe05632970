"""Dead-feed decisions and the `monitor status` report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from monitor import config as cfg
from monitor.models import FeedState, Item
from monitor.service.health import (
    DeadFeedWatch,
    Transition,
    dead_feed_transitions,
    dead_reason,
    format_status,
    notice,
    usual_gap,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
H = 3600.0
START = NOW - timedelta(days=3)


def failing(hours: float, **kw: object) -> FeedState:
    return FeedState(
        name="lenta",
        url="https://lenta.ru/rss",
        status="error",
        error_count=9,
        last_error="HTTP 503 while fetching https://lenta.ru/rss",
        last_success=NOW - timedelta(hours=hours),
        last_error_at=NOW,
        **kw,  # type: ignore[arg-type]
    )


def test_failing_longer_than_dead_after_is_dead() -> None:
    assert dead_reason(failing(11), NOW, 12 * H, since=START) is None
    reason = dead_reason(failing(13), NOW, 12 * H, since=START)
    assert reason is not None and "failing for 13.0h" in reason and "HTTP 503" in reason


def test_a_feed_that_never_succeeded_counts_from_since() -> None:
    never = replace(failing(0), last_success=None)
    assert dead_reason(never, NOW, 12 * H, since=NOW - timedelta(hours=1)) is None
    assert dead_reason(never, NOW, 12 * H, since=NOW - timedelta(hours=13)) is not None


def test_silent_far_longer_than_usual_is_dead() -> None:
    quiet = FeedState(
        name="tass",
        url="https://tass.ru/rss",
        status="not_modified",
        last_success=NOW,
        last_new_item=NOW - timedelta(hours=30),
    )
    assert dead_reason(quiet, NOW, 12 * H, since=START, usual_gap=4 * H) is None  # 30 h < 10 x 4 h
    reason = dead_reason(quiet, NOW, 12 * H, since=START, usual_gap=2 * H)
    assert reason is not None and "no new items for 30.0h" in reason and "2.0h" in reason
    # a busy feed silent for 2 h is not dead before dead_after
    busy = replace(quiet, last_new_item=NOW - timedelta(hours=2))
    assert dead_reason(busy, NOW, 12 * H, since=START, usual_gap=60) is None
    assert dead_reason(quiet, NOW, 12 * H, since=START, usual_gap=None) is None  # rate unknown


def test_transitions_once_each_way() -> None:
    dead = failing(13)
    assert dead_feed_transitions([dead], NOW, 12 * H, since=START) == [
        Transition("lenta", "dead", dead_reason(dead, NOW, 12 * H, since=START) or "")
    ]
    reported = replace(dead, dead_reported=True)
    assert dead_feed_transitions([reported], NOW, 12 * H, since=START) == []
    back = replace(reported, status="ok", last_success=NOW, error_count=0)
    assert dead_feed_transitions([back], NOW, 12 * H, since=START) == [
        Transition("lenta", "recovered", "polls succeed again")
    ]
    assert dead_feed_transitions([replace(back, dead_reported=False)], NOW, 12 * H, since=START) == []
    # still failing but not yet for long (e.g. dead_after was raised): no recovery claimed
    assert dead_feed_transitions([replace(failing(1), dead_reported=True)], NOW, 12 * H, since=START) == []


def test_usual_gap() -> None:
    assert usual_gap(3, 30 * 86400) is None
    assert usual_gap(300, 30 * 86400) == 8640


def test_notice_text() -> None:
    assert notice(Transition("lenta", "dead", "failing for 13h"), "https://lenta.ru/rss") == (
        "⚠️ feed lenta (https://lenta.ru/rss) looks dead: failing for 13h"
    )
    assert notice(Transition("lenta", "recovered", "polls succeed again")).startswith("✅ feed lenta recovered")


@dataclass
class StatusStore:
    states: list[FeedState]
    items: list[Item] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def feeds(self) -> list[FeedState]:
        return self.states

    def item_counts(self, since: datetime) -> dict[str, int]:
        return dict(Counter(i.feed for i in self.items if (i.first_seen or i.published) >= since))

    def count_items(self, feed: str | None = None) -> int:
        return self.counts.get(feed or "", 0)

    def match_counts(self, since: datetime) -> dict[str, int]:
        return {"strategic-stability": 4}

    def label_counts(self) -> dict[str, tuple[int, int]]:
        return {"strategic-stability": (3, 5)}

    def near_miss_counts(self) -> dict[str, tuple[int, int]]:
        return {"strategic-stability": (6, 2)}

    def outbox_counts(self) -> dict[str, int]:
        return {"pending": 2, "sent": 40, "failed": 1}


class HealthStore(StatusStore):
    def get_feed(self, name: str) -> FeedState | None:
        return next((s for s in self.states if s.name == name), None)

    def put_feed(self, state: FeedState) -> None:
        self.states = [state if s.name == state.name else s for s in self.states]


def test_the_health_job_stores_the_flag_and_reports_each_way_once() -> None:
    store = HealthStore([failing(13), replace(failing(1), name="tass", url="https://tass.ru/rss")])
    watch = DeadFeedWatch(since=START)
    urls = {"lenta": "https://lenta.ru/rss"}  # tass is not polled by this daemon: left alone
    settings = cfg.Settings(dead_feed_after=12 * H)
    [text] = watch.check(store, urls, settings, NOW)  # type: ignore[arg-type]
    assert text.startswith("⚠️ feed lenta (https://lenta.ru/rss) looks dead: failing for 13.0h")
    assert store.states[0].dead_reported and watch.dead == 1
    store.states[0] = failing(13)  # a poll wrote its state back without the flag: no second notice
    assert watch.check(store, urls, settings, NOW) == []  # type: ignore[arg-type]
    store.states[0] = replace(failing(0), status="ok", error_count=0)
    [back] = watch.check(store, urls, settings, NOW)  # type: ignore[arg-type]
    assert back.startswith("✅ feed lenta (https://lenta.ru/rss) recovered") and watch.dead == 0
    assert not store.states[0].dead_reported and not store.states[1].dead_reported


@dataclass
class Source:
    config: cfg.Config
    store: StatusStore


def test_format_status() -> None:
    config = cfg.loads(
        """
feeds:
  - {name: lenta, url: "https://lenta.ru/rss"}
  - {name: tass, url: "https://tass.ru/rss", interval: 5m}
  - {name: old, url: "https://old.example/rss", enabled: false}
topics:
  - {id: strategic-stability, name: Strategic stability, keywords: [СНВ]}
  - {id: sanctions, name: Sanctions, keywords: [санкции]}
""",
        env={},
    )
    item = Item(feed="tass", key="1", title="t", link=None, published=NOW, first_seen=NOW - timedelta(hours=1))
    stale = Item(feed="tass", key="2", title="t", link=None, published=NOW, first_seen=NOW - timedelta(days=2))
    tass = FeedState(
        name="tass",
        url="https://tass.ru/rss",
        status="ok",
        last_success=NOW - timedelta(minutes=3),
        next_poll=NOW + timedelta(minutes=2),
    )
    store = StatusStore([failing(13, next_poll=NOW - timedelta(minutes=15)), tass], items=[item, item, stale])
    text = format_status(Source(config, store), NOW)  # type: ignore[arg-type]
    lines = text.splitlines()
    lenta = next(line for line in lines if line.strip().startswith("lenta"))
    assert "DEAD" in lenta and "13.0h ago" in lenta
    assert "overdue 15m" in lenta and "15m ago" not in lenta  # a poll time that passed is not "next poll … ago"
    tass_line = next(line for line in lines if line.strip().startswith("tass "))
    assert "ok" in tass_line and "3m ago" in tass_line and "in 2m" in tass_line and tass_line.endswith("2")
    assert "disabled" in next(line for line in lines if line.strip().startswith("old"))
    assert "feed errors:" in text and "HTTP 503" in text
    assert next(line for line in lines if "strategic-stability" in line).endswith("6 offered, 2 labelled  3 ✓ 5 ✗  4")
    assert next(line for line in lines if line.strip().startswith("sanctions")).split()[-2:] == ["-", "0"]
    assert "outbox: 2 pending, 1 failed, 40 sent" in text
