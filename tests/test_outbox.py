"""The outbox worker: what happens on each kind of failure, digests, quiet hours, edits; `monitor alerts`.

Most tests use a small in-memory Store and a recording Notifier; the Telegram ones go through the Bot API
stand-in, and one runs on the real SqlStore (SQLite).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.cli.views import format_alerts, notify_test
from monitor.config import Config
from monitor.delivery.channels import build_notifiers
from monitor.delivery.console import ConsoleNotifier
from monitor.delivery.outbox import Deliverer
from monitor.delivery.rules import hold_until
from monitor.delivery.telegram import TelegramNotifier
from monitor.errors import NotifyError, StoreError
from monitor.models import Alert, Delivery, Item, Match
from monitor.ports import Store
from tests.fakes import T0, FakeClock
from tests.storefixtures import Db, db_fixture  # noqa: F401
from tests.tgstub import TelegramStub

MSK = ZoneInfo("Europe/Moscow")
TOKEN = "123456:SECRET"


class FakeStore:
    """The outbox part of the Store protocol, in memory, with a log of every write."""

    def __init__(self) -> None:
        self.alerts: dict[int, Alert] = {}
        self.rows: dict[int, Delivery] = {}
        self.kinds: dict[int, str] = {}
        self.keys: set[tuple[Any, ...]] = set()
        self.log: list[tuple[Any, ...]] = []
        self.refuse_marks = 0  # the next mark_sent calls fail, as on a locked database or a full disk

    def record_alert(
        self,
        item: Item,
        matches: Sequence[Match],
        channels: Sequence[str],
        now: datetime,
        *,
        story_id: str | None = None,
        hold_until: dict[str, datetime] | None = None,
    ) -> Alert | None:
        key = (item.uid, tuple(sorted(m.topic for m in matches if m.matched)))
        if key in self.keys:
            return None
        self.keys.add(key)
        alert = Alert(len(self.alerts) + 1, item, tuple(matches), now, story_id)
        self.alerts[alert.id] = alert
        for channel in channels:
            self._row(alert.id, channel, "send", (hold_until or {}).get(channel, now))
        return alert

    def record_story_update(self, alert_id: int, item: Item, channels: Sequence[str], now: datetime) -> int:
        alert = self.alerts[alert_id]
        self.alerts[alert_id] = dataclasses.replace(alert, also=(*alert.also, (item.feed, item.link)))
        written = 0
        for channel in channels:
            if ("edit", alert_id, item.uid, channel) not in self.keys:
                self.keys.add(("edit", alert_id, item.uid, channel))
                self._row(alert_id, channel, "edit", now)
                written += 1
        return written

    def _row(self, alert_id: int, channel: str, kind: str, when: datetime) -> None:
        row_id = len(self.rows) + 1
        self.rows[row_id] = Delivery(row_id, alert_id, channel, "pending", next_attempt=when)
        self.kinds[row_id] = kind

    def get_alert(self, alert_id: int) -> Alert:
        return self.alerts[alert_id]

    def get_alerts(self, alert_ids: Sequence[int]) -> dict[int, Alert]:
        return {i: self.alerts[i] for i in alert_ids if i in self.alerts}

    def due_deliveries(self, now: datetime, limit: int = 100) -> list[tuple[Delivery, str]]:
        due = [r for r in self.rows.values() if r.status == "pending" and r.next_attempt and r.next_attempt <= now]
        due.sort(key=lambda r: (r.next_attempt or now, r.id))
        return [(r, self.kinds[r.id]) for r in due[:limit]]

    def message_ref(self, alert_id: int, channel: str) -> str | None:
        for row in self.rows.values():
            if row.alert_id == alert_id and row.channel == channel and self.kinds[row.id] == "send":
                return row.message_ref
        return None

    def _update(self, delivery_id: int, **values: Any) -> None:
        self.rows[delivery_id] = dataclasses.replace(self.rows[delivery_id], **values)

    def mark_sent(self, delivery_id: int, now: datetime, message_ref: str | None = None) -> None:
        if self.refuse_marks:
            self.refuse_marks -= 1
            raise StoreError(f"while marking sent delivery {delivery_id}: database is locked", reason="locked")
        self.log.append(("sent", delivery_id, now))
        row = self.rows[delivery_id]
        assert row.status == "pending", "marked sent twice"
        self._update(delivery_id, status="sent", attempts=row.attempts + 1, sent_at=now, message_ref=message_ref)

    def mark_retry(self, delivery_id: int, now: datetime, error: str, next_attempt: datetime) -> None:
        self.log.append(("retry", delivery_id, now, next_attempt))
        row = self.rows[delivery_id]
        self._update(delivery_id, attempts=row.attempts + 1, last_error=error, next_attempt=next_attempt)

    def defer(self, delivery_id: int, until: datetime) -> None:
        self.log.append(("defer", delivery_id, until))
        self._update(delivery_id, next_attempt=until)

    def mark_failed(self, delivery_id: int, now: datetime, error: str) -> None:
        self.log.append(("failed", delivery_id, now))
        row = self.rows[delivery_id]
        self._update(delivery_id, status="failed", attempts=row.attempts + 1, last_error=error)

    def alerts_since(self, since: datetime) -> list[tuple[Alert, list[Delivery]]]:
        return [
            (a, [r for r in self.rows.values() if r.alert_id == a.id and self.kinds[r.id] == "send"])
            for a in self.alerts.values()
            if a.created >= since
        ]

    def status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows.values():
            out[row.status] = out.get(row.status, 0) + 1
        return out


class Recorder:
    """A Notifier that records calls and fails as told."""

    def __init__(self, name: str, clock: FakeClock, store: FakeStore | None = None) -> None:
        self.name = name
        self.clock = clock
        self.store = store
        self.calls: list[tuple[Any, ...]] = []
        self.failures: list[NotifyError] = []
        self.last_answer = "ok"

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def send(self, alert: Alert) -> str | None:
        self._maybe_fail()
        if self.store is not None:  # what the store holds when the channel acknowledges
            self.calls.append(("send", alert.id, len(self.store.log)))
        else:
            self.calls.append(("send", alert.id))
        return f"m{alert.id}"

    def edit(self, ref: str, alert: Alert) -> None:
        self._maybe_fail()
        self.calls.append(("edit", ref, alert.also))

    def send_digest(self, alerts: Sequence[Alert], title: str) -> None:
        self._maybe_fail()
        self.calls.append(("digest", tuple(a.id for a in alerts), title))

    def send_text(self, text: str) -> str | None:
        self.calls.append(("text", text))
        return None

    def close(self) -> None:
        pass


def make_config(channels: dict[str, Any] | None = None, **settings: Any) -> Config:
    return Config.model_validate(
        {
            "settings": {"timezone": "Europe/Moscow", **settings},
            "channels": channels or {"tg": {"type": "console"}},
            "topics": [
                {"id": "strategic", "name": "Стратегическая стабильность"},
                {"id": "alarm", "name": "Тревога", "priority": "high"},
            ],
        }
    )


def item(n: int, feed: str = "ТАСС") -> Item:
    return Item(feed=feed, key=f"k{n}", title=f"Новость {n}", link=f"https://tass.ru/{n}", published=T0)


def enqueue(store: FakeStore, config: Config, n: int, now: datetime, topic: str = "strategic") -> Alert:
    matches = [Match(topic, 0.8, 0.5, True, terms=("стратегическ*",))]
    channels = config.channels_for([topic])
    alert = store.record_alert(item(n), matches, channels, now, hold_until=hold_until(config, [topic], channels, now))
    assert alert is not None
    return alert


def at(hh: int, mm: int = 0, day: int = 25) -> datetime:
    """A Moscow wall-clock time as UTC."""
    return datetime(2026, 11, day, hh, mm, tzinfo=MSK).astimezone(UTC)


# --- the worker with fakes -------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def test_sends_each_row_once_and_marks_it_right_after(clock: FakeClock, store: FakeStore) -> None:
    config = make_config({"a": {"type": "console"}, "b": {"type": "console"}})
    a, b = Recorder("a", clock, store), Recorder("b", clock, store)
    for n in range(3):
        enqueue(store, config, n, clock.now())
    assert store.record_alert(item(0), [Match("strategic", 0.9, 0.5, True)], ["a", "b"], T0) is None  # keyed
    report = Deliverer(store, {"a": a, "b": b}, config, clock).deliver_due()
    assert report.sent == 6 and store.status() == {"sent": 6}
    # Each send happened with every earlier send already marked: at most one message is ever in flight.
    assert sorted(c[2] for c in a.calls + b.calls) == [0, 1, 2, 3, 4, 5]
    assert Deliverer(store, {"a": a, "b": b}, config, clock).deliver_due().handled == 0


def test_a_full_pass_says_more_may_be_due(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    for n in range(3):
        enqueue(store, config, n, clock.now())
    deliverer = Deliverer(store, {"tg": tg}, config, clock)
    first = deliverer.deliver_due(max_rows=2)
    assert first.sent == 2 and first.full and first.more
    last = deliverer.deliver_due(max_rows=2)
    assert last.sent == 1 and not last.full and not last.more


def test_a_full_pass_that_only_deferred_says_no_more(clock: FakeClock, store: FakeStore) -> None:
    class Slow(Recorder):
        def ready_in(self) -> float:
            return 30.0  # a paced channel: every row is deferred

    config = make_config()
    for n in range(3):
        enqueue(store, config, n, clock.now())
    report = Deliverer(store, {"tg": Slow("tg", clock)}, config, clock).deliver_due(max_rows=2)
    assert report.full and report.deferred == 2 and not report.more


def test_permanent_failure_is_visible(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    tg.failures.append(NotifyError("tg: telegram sendMessage: 400 Bad Request: chat not found", permanent=True))
    enqueue(store, config, 1, clock.now())
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    assert report.failed == 1 and store.status() == {"failed": 1} and clock.sleeps == []
    shown = format_alerts(store.alerts_since(T0 - timedelta(days=1)), topics={"strategic": "Стратегия"}, tz=MSK)
    assert "#1 2026-11-25 12:00 [Стратегия 0.80] Новость 1 (ТАСС)" in shown
    with_config = format_alerts(store.alerts_since(T0 - timedelta(days=1)), config)
    assert "#1 2026-11-25 12:00 [Стратегическая стабильность 0.80] Новость 1 (ТАСС)" in with_config
    assert "tg: FAILED, 1 attempt: tg: telegram sendMessage: 400 Bad Request: chat not found" in shown


def test_a_failing_row_backs_off_alone_and_the_channel_keeps_sending(clock: FakeClock, store: FakeStore) -> None:
    # Issue 12, item 7: one 5xx used to hold the whole channel for that row's backoff.
    config = make_config()
    tg = Recorder("tg", clock)
    tg.failures.append(NotifyError("500 Internal Server Error"))
    for n in range(3):
        enqueue(store, config, n, clock.now())
    deliverer = Deliverer(store, {"tg": tg}, config, clock)
    first = deliverer.deliver_due()
    assert (first.retried, first.deferred, first.sent) == (1, 0, 2)
    assert [c[1] for c in tg.calls] == [2, 3]
    assert first.next_due == T0 + timedelta(seconds=5) and first.failures == {"tg": 1}
    assert deliverer.deliver_due().handled == 0  # nothing is due until the row's backoff ends
    clock.advance(5)
    assert deliverer.deliver_due().sent == 1
    assert [c[1] for c in tg.calls] == [2, 3, 1]


def test_a_storys_later_messages_wait_for_its_failing_one(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    tg.failures.append(NotifyError("502 Bad Gateway"))
    matches = [Match("strategic", 0.8, 0.5, True)]
    first = store.record_alert(item(1), matches, ["tg"], T0, story_id="s1")
    other = store.record_alert(item(2), matches, ["tg"], T0, story_id="s2")
    later = store.record_alert(item(3), [Match("alarm", 0.9, 0.5, True)], ["tg"], T0, story_id="s1")
    assert first and other and later
    deliverer = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep)
    report = deliverer.deliver_due()
    assert (report.retried, report.sent, report.deferred) == (1, 1, 1)
    assert tg.calls == [("send", other.id)]
    assert store.rows[3].next_attempt == T0 + timedelta(seconds=5)  # behind its story's failing row
    deliverer.deliver_until_idle(60)
    assert [c[1] for c in tg.calls] == [other.id, first.id, later.id]


def test_an_edit_never_precedes_its_message(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    tg.failures.append(NotifyError("500 Internal Server Error"))
    alert = enqueue(store, config, 1, clock.now())
    deliverer = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep)
    deliverer.deliver_due()  # the send fails and backs off
    store.record_story_update(alert.id, item(2, feed="РИА"), ["tg"], clock.now())
    deliverer.deliver_until_idle(60)
    # The edit queued before the message went out was dropped; the message shows the story as it is by then.
    assert [c[0] for c in tg.calls] == ["send"] and store.status() == {"sent": 2}


def test_429_and_a_run_of_unreachable_errors_pause_the_whole_channel(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    for n in range(6):
        enqueue(store, config, n, clock.now())
    deliverer = Deliverer(store, {"tg": tg}, config, clock)
    tg.failures.append(NotifyError("429 Too Many Requests", retry_after=30))
    report = deliverer.deliver_due()
    assert (report.retried, report.deferred, report.sent) == (1, 5, 0)  # about the channel: all wait
    assert {row.next_attempt for row in store.rows.values()} == {T0 + timedelta(seconds=30)}
    clock.advance(30)
    refused = NotifyError("tg: telegram sendMessage: network error: connection refused", unreachable=True)
    tg.failures.extend([refused] * 3)
    report = deliverer.deliver_due()
    # The first two refusals back off their own rows; the third in a row pauses the channel.
    assert (report.retried, report.deferred, report.sent) == (3, 3, 0)
    assert store.rows[6].next_attempt == T0 + timedelta(seconds=35)


def test_a_lost_sent_mark_is_retried_in_memory_not_resent(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    enqueue(store, config, 1, clock.now())
    store.refuse_marks = 1
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_due()
    assert report.sent == 1 and tg.calls == [("send", 1)] and clock.sleeps == [0.5]
    assert store.rows[1].status == "sent" and store.rows[1].message_ref == "m1"


def test_a_sent_mark_still_failing_waits_for_the_next_pass_before_any_send(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    for n in range(2):
        enqueue(store, config, n, clock.now())
    deliverer = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep)
    store.refuse_marks = 3
    with pytest.raises(StoreError):
        deliverer.deliver_due()  # sent, not marked: the pass stops rather than send more it cannot record
    assert tg.calls == [("send", 1)] and store.status() == {"pending": 2}
    with pytest.raises(StoreError):
        deliverer.deliver_due()  # the mark still fails: nothing is sent meanwhile
    assert tg.calls == [("send", 1)]
    clock.advance(60)
    reloaded = deliverer.renewed({"tg": tg}, config)  # a config reload keeps the marks
    assert reloaded.deliver_due().sent == 1
    assert tg.calls == [("send", 1), ("send", 2)]
    assert store.rows[1].status == "sent" and store.rows[1].message_ref == "m1"
    assert store.rows[1].sent_at == T0  # when it went out, not when the mark got through


def test_each_failed_attempt_is_logged_once_rate_limited_per_channel(
    clock: FakeClock, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 12, item 8: a delivery that timed out or was refused logged nothing.
    config = make_config({"a": {"type": "console"}, "b": {"type": "console"}})
    a, b = Recorder("a", clock), Recorder("b", clock)
    for n in range(8):
        enqueue(store, config, n, clock.now())
    a.failures.extend(NotifyError(f"a: no answer within 10s (call {n})") for n in range(8))
    b.failures.append(NotifyError("b: 403 Forbidden: bot was blocked by the user", permanent=True))
    deliverer = Deliverer(store, {"a": a, "b": b}, config, clock, monotonic=clock.monotonic)
    with caplog.at_level(logging.INFO, logger="monitor.delivery.outbox"):
        report = deliverer.deliver_due()
        assert report.failures == {"a": 8, "b": 1} and (report.retried, report.failed) == (8, 1)
        shown = [r.getMessage() for r in caplog.records]
        assert len(shown) == 6  # channel a: 5 lines in a minute, the rest counted; channel b: its own line
        assert shown[0] == "a: alert 1, attempt 1 failed, retry at 12:00:05 MSK: a: no answer within 10s (call 0)"
        assert "b: alert 1 failed for good (attempt 1): b: 403 Forbidden" in shown[1]
        caplog.clear()
        clock.advance(60)
        a.failures.append(NotifyError("a: network error: connection refused", unreachable=True))
        deliverer.deliver_due()
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("a: alert ") and line.endswith("(3 more failed attempts on a not logged)")


def test_gives_up_after_give_up_after(clock: FakeClock, store: FakeStore) -> None:
    config = make_config(give_up_after="1d")
    tg = Recorder("tg", clock)
    enqueue(store, config, 1, clock.now())
    deliverer = Deliverer(store, {"tg": tg}, config, clock)
    tg.failures.append(NotifyError("network error"))
    deliverer.deliver_due()
    clock.advance(86400 - 10)
    tg.failures.append(NotifyError("network error"))
    report = deliverer.deliver_due()
    assert report.retried == 1 and store.rows[1].next_attempt == T0 + timedelta(days=1)  # capped, not +10s
    clock.advance(10)
    tg.failures.append(NotifyError("network error"))
    report = deliverer.deliver_due()
    assert report.failed == 1 and store.rows[1].status == "failed"
    assert store.rows[1].last_error == "gave up after 1d of failures: network error"


def test_quiet_hours_at_delivery_time(clock: FakeClock, store: FakeStore) -> None:
    config = make_config({"tg": {"type": "console", "quiet_hours": "11:00-13:00"}})
    tg = Recorder("tg", clock)
    store.record_alert(item(1), [Match("strategic", 0.8, 0.5, True)], ["tg"], T0)  # due now (e.g. a retry)
    store.record_alert(item(2), [Match("alarm", 0.8, 0.5, True)], ["tg"], T0)
    report = Deliverer(store, {"tg": tg}, config, clock).deliver_due()
    assert (report.sent, report.deferred) == (1, 1)
    assert tg.calls == [("send", 2)]
    assert store.rows[1].next_attempt == at(13, 0)


def test_digest_sends_one_message_for_the_period(clock: FakeClock, store: FakeStore) -> None:
    config = make_config({"digest": {"type": "console", "mode": "digest", "every": "1h"}})
    tg = Recorder("digest", clock)
    deliverer = Deliverer(store, {"digest": tg}, config, clock)
    for n in range(3):
        enqueue(store, config, n, clock.now())
        clock.advance(600)
    assert deliverer.deliver_due().handled == 0  # held until 13:00 Moscow
    clock.t = at(13, 0)
    report = deliverer.deliver_due()
    assert report.sent == 3
    assert tg.calls == [("digest", (1, 2, 3), "Digest: 3 alerts until 25.11 13:00")]


def test_digest_failure_retries_the_whole_batch(clock: FakeClock, store: FakeStore) -> None:
    config = make_config({"digest": {"type": "console", "mode": "digest", "every": "1h"}})
    tg = Recorder("digest", clock)
    deliverer = Deliverer(store, {"digest": tg}, config, clock, sleep=clock.sleep)
    for n in range(2):
        enqueue(store, config, n, clock.now())
    clock.t = at(13, 0)
    tg.failures.append(NotifyError("429", retry_after=30))
    assert deliverer.deliver_until_idle(60).sent == 2
    assert [c[0] for c in tg.calls] == ["digest"] and clock.sleeps == [30]


def test_edits(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    tg = Recorder("tg", clock)
    deliverer = Deliverer(store, {"tg": tg}, config, clock)
    sent = enqueue(store, config, 1, clock.now())
    pending = enqueue(store, config, 2, clock.now() + timedelta(hours=1))
    store.rows[2] = dataclasses.replace(store.rows[2], next_attempt=T0 + timedelta(hours=1))
    deliverer.deliver_due()
    store.record_story_update(sent.id, item(10, feed="РИА"), ["tg"], clock.now())
    store.record_story_update(sent.id, item(11, feed="Интерфакс"), ["tg"], clock.now())
    store.record_story_update(pending.id, item(12, feed="РБК"), ["tg"], clock.now())
    report = deliverer.deliver_due()
    assert report.edited == 3
    # Two updates of one message: one edit showing both; the unsent alert needs none.
    assert tg.calls[1:] == [("edit", "m1", (("РИА", "https://tass.ru/10"), ("Интерфакс", "https://tass.ru/11")))]
    clock.advance(3600)
    deliverer.deliver_due()
    assert tg.calls[-1] == ("send", 2)


def test_unknown_channel_waits(clock: FakeClock, store: FakeStore) -> None:
    config = make_config()
    store.record_alert(item(1), [Match("strategic", 0.8, 0.5, True)], ["gone"], T0)
    report = Deliverer(store, {}, config, clock, sleep=clock.sleep).deliver_until_idle(10)
    assert report.deferred == 1 and store.rows[1].next_attempt == T0 + timedelta(hours=1)
    assert "gone: no such channel configured" in report.errors[0]


def test_long_pacing_wait_defers(clock: FakeClock, store: FakeStore) -> None:
    class Slow(Recorder):
        def ready_in(self) -> float:
            return 30.0

    config = make_config()
    enqueue(store, config, 1, clock.now())
    report = Deliverer(store, {"tg": Slow("tg", clock)}, config, clock).deliver_due()
    assert report.deferred == 1 and store.rows[1].next_attempt == T0 + timedelta(seconds=30)


# --- through the Bot API stand-in ------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    with TelegramStub(token=TOKEN) as server:
        yield server


def tg_setup(stub: TelegramStub, clock: FakeClock, **channel: Any) -> tuple[Config, TelegramNotifier]:
    fields = {"type": "telegram", "bot_token": TOKEN, "chat_id": "-100500", "api_url": stub.url, "timeout": 1}
    config = make_config({"tg": {**fields, **channel}})
    tg_channel = config.channels["tg"]
    assert tg_channel.type == "telegram"
    notifier = TelegramNotifier("tg", tg_channel, monotonic=clock.monotonic, sleep=clock.sleep)
    return config, notifier


def test_429_waits_retry_after_and_drops_nothing(stub: TelegramStub, clock: FakeClock, store: FakeStore) -> None:
    config, tg = tg_setup(stub, clock, pace=False)
    for n in range(5):
        enqueue(store, config, n, clock.now())
    stub.script("ok", "429:3")
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    assert (report.sent, report.retried, report.failed) == (5, 1, 0)
    texts = stub.texts()
    assert len(texts) == 5 and len(set(texts)) == 5
    [retry] = [entry for entry in store.log if entry[0] == "retry"]
    assert retry[3] - retry[2] == timedelta(seconds=3)
    sent_after = [entry[2] for entry in store.log if entry[0] == "sent" and entry[1] == retry[1]]
    assert sent_after[0] - retry[2] >= timedelta(seconds=3)
    assert clock.sleeps == [3.0]


def test_pacing_through_the_worker(stub: TelegramStub, clock: FakeClock, store: FakeStore) -> None:
    config, tg = tg_setup(stub, clock, pace=True, chat_id="4242")
    for n in range(3):
        enqueue(store, config, n, clock.now())
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    assert report.sent == 3 and clock.sleeps == [1.0, 1.0]


def test_500_then_success(stub: TelegramStub, clock: FakeClock, store: FakeStore) -> None:
    config, tg = tg_setup(stub, clock, pace=False)
    enqueue(store, config, 1, clock.now())
    stub.script("500", "500")
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    assert (report.sent, report.retried) == (1, 2)
    assert clock.sleeps == [5.0, 10.0]  # exponential backoff
    assert len(stub.texts()) == 1 and store.rows[1].attempts == 3


def test_400_fails_once_and_shows(stub: TelegramStub, clock: FakeClock, store: FakeStore) -> None:
    config, tg = tg_setup(stub, clock, pace=False)
    enqueue(store, config, 1, clock.now())
    stub.script("400")
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    assert report.failed == 1 and len(stub.calls("sendMessage")) == 1
    shown = format_alerts(store.alerts_since(T0))
    assert "tg: FAILED" in shown and "chat not found" in shown and TOKEN not in shown


def test_hang_times_out_then_retries(stub: TelegramStub, clock: FakeClock, store: FakeStore) -> None:
    config, tg = tg_setup(stub, clock, pace=False)
    enqueue(store, config, 1, clock.now())
    stub.script("hang:3")
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    stub.release()
    assert (report.sent, report.retried) == (1, 1)
    assert "no answer within 1s" in (store.rows[1].last_error or "")
    assert len(stub.texts()) == 1


def test_a_refused_connection_three_times_pauses_the_channel(clock: FakeClock, store: FakeStore) -> None:
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        fields = {"type": "telegram", "bot_token": TOKEN, "chat_id": "-100500", "pace": False, "timeout": 1,
                  "api_url": f"http://127.0.0.1:{closed.getsockname()[1]}"}  # fmt: skip
        config = make_config({"tg": fields})
        tg_channel = config.channels["tg"]
        assert tg_channel.type == "telegram"
        tg = TelegramNotifier("tg", tg_channel, monotonic=clock.monotonic, sleep=clock.sleep)
        for n in range(5):
            enqueue(store, config, n, clock.now())
        report = Deliverer(store, {"tg": tg}, config, clock).deliver_due()
    assert (report.retried, report.deferred) == (3, 2)
    assert store.rows[5].next_attempt == T0 + timedelta(seconds=5)  # the channel's pause, not a row's backoff
    assert "network error" in (store.rows[1].last_error or "") and TOKEN not in (store.rows[1].last_error or "")


def test_retry_beyond_the_deadline_stays_queued(stub: TelegramStub, clock: FakeClock, store: FakeStore) -> None:
    config, tg = tg_setup(stub, clock, pace=False)
    enqueue(store, config, 1, clock.now())
    stub.script("429:120")
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    assert (report.sent, report.retried) == (0, 1)
    assert report.next_due == T0 + timedelta(seconds=120)
    assert clock.sleeps == [] and store.rows[1].status == "pending"


def test_story_edit_through_telegram(stub: TelegramStub, clock: FakeClock, store: FakeStore) -> None:
    config, tg = tg_setup(stub, clock, pace=False)
    alert = enqueue(store, config, 1, clock.now())
    deliverer = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep)
    deliverer.deliver_due()
    store.record_story_update(alert.id, item(2, feed="РИА Новости"), ["tg"], clock.now())
    assert deliverer.deliver_due().edited == 1
    [edit] = stub.calls("editMessageText")
    assert edit.status == 200 and "also: " in edit.params["text"] and "РИА Новости" in edit.params["text"]


def test_notify_test(stub: TelegramStub, clock: FakeClock) -> None:
    _, tg = tg_setup(stub, clock, pace=False)
    out = notify_test(tg, clock)
    assert out.startswith("tg: sent (message 1)\nserver answered: {")
    assert '"message_id": 1' in out and TOKEN not in out
    stub.script("403")
    with pytest.raises(NotifyError):
        notify_test(tg, clock)


# --- build_notifiers, console, SqlStore --------------------------------------------------------------


def test_build_notifiers_and_console(clock: FakeClock, store: FakeStore) -> None:
    config = make_config({"console": {"type": "console"}})
    notifiers = build_notifiers(config)
    assert isinstance(notifiers["console"], ConsoleNotifier)
    out = io.StringIO()
    console = ConsoleNotifier("console", out, topics={"strategic": "Стратегия"}, tz=MSK)
    enqueue(store, config, 1, clock.now())
    Deliverer(store, {"console": console}, config, clock).deliver_due()
    assert "Новость 1\nhttps://tass.ru/1\nТАСС · 25.11.2026 12:00 MSK\ntopics: Стратегия 0.80" in out.getvalue()


def test_on_sqlstore_exactly_once_across_restarts(tmp_path: Path, stub: TelegramStub, clock: FakeClock) -> None:
    sql = pytest.importorskip("monitor.store.sql")
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config, tg = tg_setup(stub, clock, pace=False)
    db = sql.SqlStore(url)
    for n in range(5):
        db.add_items([item(n)], clock.now())
        matches = [Match("strategic", 0.8, 0.5, True)]
        assert db.record_alert(item(n), matches, ["tg"], clock.now()) is not None
        assert db.record_alert(item(n), matches, ["tg"], clock.now()) is None  # re-classified: not again
    stub.script("ok", "ok", "429:3")  # a 429 holds the channel: two rows are left for the restart
    first = Deliverer(db, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_due()
    assert (first.sent, first.retried) == (2, 1)
    db.close()
    again = sql.SqlStore(url)  # a restart: new store, new worker
    report = Deliverer(again, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_until_idle(60)
    assert report.sent == 3
    assert len(stub.texts()) == 5 and len(set(stub.texts())) == 5
    assert again.outbox_counts()["sent"] == 5
    states = format_alerts(again.alerts_since(T0 - timedelta(days=1)))
    assert states.count("tg: sent") == 5
    again.close()


# --- the 'sent' mark on its way while the next message is rendered (PostgreSQL, store/marks.py) ----------


class AsyncMarkStore(FakeStore):
    """A store whose 'sent' marks go out without waiting (as SqlStore's on PostgreSQL): begin, then wait."""

    def __init__(self, events: list[tuple[str, int]]) -> None:
        super().__init__()
        self.events = events
        self.refuse_waits = 0  # the next marks' answers are failures, as from a lost connection

    def begin_mark_sent(self, delivery_id: int, now: datetime, message_ref: str | None = None) -> Callable[[], None]:
        self.events.append(("begin", delivery_id))

        def wait() -> None:
            self.events.append(("wait", delivery_id))
            if self.refuse_waits:
                self.refuse_waits -= 1
                raise StoreError(f"while marking sent delivery {delivery_id}: server closed the connection")
            self.mark_sent(delivery_id, now, message_ref)

        return wait


class Rendering(Recorder):
    """A Recorder that renders apart from sending (outbox.Renders), as TelegramNotifier does."""

    def __init__(self, name: str, clock: FakeClock, events: list[tuple[str, int]]) -> None:
        super().__init__(name, clock)
        self.events = events

    def render(self, alert: Alert) -> Alert:
        self.events.append(("render", alert.id))
        return alert

    def send_rendered(self, rendered: Alert) -> str | None:
        self.events.append(("send", rendered.id))
        return self.send(rendered)


def three_queued(clock: FakeClock) -> tuple[list[tuple[str, int]], AsyncMarkStore, Config]:
    """Three alerts queued on a store whose 'sent' marks go out without waiting; the events it and a notifier log."""
    events: list[tuple[str, int]] = []
    store = AsyncMarkStore(events)
    config = make_config()
    for n in range(3):
        enqueue(store, config, n, clock.now())
    return events, store, config


def test_the_next_message_is_rendered_while_the_mark_is_on_its_way_and_sent_after_it(clock: FakeClock) -> None:
    events, store, config = three_queued(clock)
    report = Deliverer(store, {"tg": Rendering("tg", clock, events)}, config, clock).deliver_due()
    assert report.sent == 3 and store.status() == {"sent": 3}
    assert events == [
        ("render", 1), ("send", 1), ("begin", 1),
        ("render", 2), ("wait", 1), ("send", 2), ("begin", 2),
        ("render", 3), ("wait", 2), ("send", 3), ("begin", 3),
        ("wait", 3),  # before the pass returns
    ]  # fmt: skip


def test_a_mark_that_fails_on_its_way_is_stored_again_before_the_next_send(clock: FakeClock) -> None:
    events, store, config = three_queued(clock)
    tg = Rendering("tg", clock, events)
    store.refuse_waits = 1
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_due()
    assert report.sent == 3 and [c[1] for c in tg.calls] == [1, 2, 3] and clock.sleeps == [0.5]
    later = T0 + timedelta(seconds=0.5)
    assert [e for e in store.log if e[0] == "sent"] == [("sent", 1, T0), ("sent", 2, later), ("sent", 3, later)]
    assert events.index(("send", 2)) > events.index(("wait", 1))  # the retried mark went through first


def test_a_mark_failing_again_stops_the_pass_and_is_stored_before_anything_else_is_sent(clock: FakeClock) -> None:
    events, store, config = three_queued(clock)
    tg = Rendering("tg", clock, events)
    deliverer = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep)
    store.refuse_waits = 1
    store.refuse_marks = 2  # the retry (mark_sent) fails too, and so does the next pass's first try
    with pytest.raises(StoreError):
        deliverer.deliver_due()
    assert [c[1] for c in tg.calls] == [1] and store.status() == {"pending": 3}  # 2 was rendered, never sent
    with pytest.raises(StoreError):
        deliverer.deliver_due()
    assert [c[1] for c in tg.calls] == [1]
    assert deliverer.deliver_due().sent == 2
    assert [c[1] for c in tg.calls] == [1, 2, 3] and store.status() == {"sent": 3}
    assert store.rows[1].sent_at == T0 and store.rows[1].message_ref == "m1"


def five_alerts(store: Store, clock: FakeClock) -> int:
    """Five alerts queued for the channel "tg"; the id of the third row to be sent."""
    for n in range(5):
        store.add_items([item(n)], clock.now())
        assert store.record_alert(item(n), [Match("strategic", 0.8, 0.5, True)], ["tg"], clock.now()) is not None
    return sorted(row.id for row, _ in store.due_deliveries(clock.now()))[2]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_on_sqlite_a_refused_mark_mid_pass_stops_it_and_is_stored_before_the_next_send(
    db: Db, stub: TelegramStub, clock: FakeClock
) -> None:
    # A trigger refuses the 'sent' mark of the third row (as a full disk would) until the table below is emptied:
    # the mark goes over the pass's held connection (store/litemarks.py), the deliverer keeps it in memory.
    config, tg = tg_setup(stub, clock, pace=False)
    store = db.open()
    third = five_alerts(store, clock)
    db.scalar("CREATE TABLE refuse (id INTEGER)")
    db.scalar(f"INSERT INTO refuse VALUES ({third})")
    db.scalar(
        "CREATE TRIGGER fail_mark BEFORE UPDATE ON outbox FOR EACH ROW "
        "WHEN NEW.status = 'sent' AND NEW.id IN (SELECT id FROM refuse) BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    deliverer = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep)
    with pytest.raises(StoreError, match="disk full"):
        deliverer.deliver_due()
    assert len(stub.texts()) == 3 and clock.sleeps == [0.5]  # the mark tried twice, then nothing more was sent
    assert store.outbox_counts() == {"pending": 3, "sent": 2, "failed": 0}
    db.scalar("DELETE FROM refuse")
    assert deliverer.deliver_due().sent == 2
    texts = stub.texts()
    assert len(texts) == 5 and len(set(texts)) == 5
    assert store.outbox_counts() == {"pending": 0, "sent": 5, "failed": 0}


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("failure", ["error", "connection lost"])
def test_on_postgresql_a_mark_failing_mid_pass_loses_nothing_and_sends_nothing_twice(
    db: Db, stub: TelegramStub, clock: FakeClock, failure: str
) -> None:
    # A trigger fails the 'sent' mark of the third row, once (a sequence is not rolled back with the UPDATE):
    # with an error, or by ending its own server process, as a failover would.
    config, tg = tg_setup(stub, clock, pace=False)
    store = db.open()
    third = five_alerts(store, clock)
    action = "RAISE EXCEPTION 'disk full'" if failure == "error" else "PERFORM pg_terminate_backend(pg_backend_pid())"
    db.scalar(
        "CREATE SEQUENCE mark_failures; "
        "CREATE FUNCTION fail_mark() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.status = 'sent' AND NEW.id = {third} AND nextval('mark_failures') = 1 THEN {action}; END IF; "
        "RETURN NEW; END $$; "
        "CREATE TRIGGER fail_mark BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION fail_mark()"
    )
    report = Deliverer(store, {"tg": tg}, config, clock, sleep=clock.sleep).deliver_due()
    assert report.sent == 5 and clock.sleeps == [0.5]
    texts = stub.texts()
    assert len(texts) == 5 and len(set(texts)) == 5
    assert store.outbox_counts() == {"pending": 0, "sent": 5, "failed": 0}
    assert db.scalar("SELECT nextval('mark_failures')") == 3  # the failed mark, its retry, and this
    assert Deliverer(store, {"tg": tg}, config, clock).deliver_due().sent == 0  # a new pass: a new connection
