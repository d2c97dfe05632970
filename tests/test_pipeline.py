"""The poll order end to end with real parts: feed server, SQLite store, topic model, story grouper,
outbox and the Telegram Bot API stand-in. Time comes from the fake clock."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from monitor import config as cfg
from monitor.app import App, open_app
from monitor.errors import StoreError
from monitor.feeds.parse import parse_feed
from monitor.models import Alert, FetchResult, Item, ItemIntent
from monitor.pipeline import Enqueued, Unfinished
from tests.fakes import T0, FakeClock
from tests.feeddata import READOUT, rss
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401
from tests.tgstub import TelegramStub, visible_text

ROOT = Path(__file__).parent.parent


OTHER = (
    "ria-2",
    "В Москве открылась выставка современного искусства",
    "В Манеже открылась выставка современного искусства, на которой представлены работы молодых художников.",
)


def config_text(tmp_path: Path, server: FeedServer, stub: TelegramStub, topics: str) -> str:
    return textwrap.dedent(f"""\
        settings:
          data_dir: {tmp_path / "data"}
          timezone: Europe/Moscow
        channels:
          tg: {{type: telegram, bot_token: "{stub.token}", chat_id: "1001", api_url: "{stub.url}", pace: false}}
        feeds:
          - {{name: Interfax, url: "{server.url("/interfax.xml")}"}}
          - {{name: TASS, url: "{server.url("/tass.xml")}"}}
          - {{name: RIA, url: "{server.url("/ria.xml")}"}}
        topics:
        """) + textwrap.indent(textwrap.dedent(topics), "  ")


LIBYA_TOPIC = """\
- id: libya
  name: Ливия
  description: "Ливия: конфликт между Триполи и армией Хафтара, прекращение огня, межливийский диалог."
  keywords: [Ливия, Триполи, Хафтар, ливийский]
  examples:
    - {title: "Переговоры по Ливии", text: "Стороны ливийского конфликта в Триполи обсудили перемирие и нефть."}
"""
FRANCE_TOPIC = """\
- id: france
  name: Франция
  description: "Отношения России и Франции: контакты президентов, визиты, переговоры."
  keywords: [Макрон, Франция, Париж]
  examples:
    - {title: "Путин и Макрон", text: "Президенты России и Франции провели переговоры в Париже."}
"""


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    with TelegramStub(token="123:secret-token") as running:
        yield running


def open_with(tmp_path: Path, text: str, clock: FakeClock) -> App:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return open_app(cfg.load(str(path), env={}), clock=clock)


@contextmanager
def three_outlets(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub, topics: str = LIBYA_TOPIC
) -> Iterator[tuple[App, FakeClock]]:
    """The three outlets' config with `topics`, opened on the fake clock at T0, closed after the test."""
    clock = FakeClock(T0)
    app = open_with(tmp_path, config_text(tmp_path, feed_server, stub, topics), clock)
    try:
        yield app, clock
    finally:
        app.close()


def poll_all(app: App) -> None:
    for feed in app.config.feeds:
        app.pipeline.poll(feed)


def test_three_outlets_one_story_one_message_then_edits(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, clock):
        feed_server.route("/interfax.xml", rss([READOUT[0]]))
        feed_server.route("/tass.xml", rss([]))
        feed_server.route("/ria.xml", rss([OTHER]))
        poll_all(app)
        app.deliverer.deliver_due()
        assert len(stub.calls("sendMessage")) == 1
        assert "Путин и Макрон призвали" in stub.texts()[0]
        # Minutes later the two other outlets carry the same statement in other words.
        clock.t += timedelta(minutes=3)
        feed_server.set_body("/tass.xml", rss([READOUT[1]]))
        feed_server.set_body("/ria.xml", rss([OTHER, READOUT[2]]))
        poll_all(app)
        app.deliverer.deliver_due()
        assert len(stub.calls("sendMessage")) == 1, "the same story must not alert twice"
        edits = stub.calls("editMessageText")
        assert 1 <= len(edits) <= 2  # the outbox may fold two due edits of one message into one
        assert "also: TASS, RIA" in visible_text(edits[-1].params["text"])
        # Nothing more on the next cycle: no edits or alerts repeat.
        poll_all(app)
        app.deliverer.deliver_due()
        assert (len(stub.calls("sendMessage")), len(stub.calls("editMessageText"))) == (1, len(edits))


def gain_a_topic(tmp_path: Path, feed_server: FeedServer, stub: TelegramStub, after: timedelta) -> list[Alert]:
    """The first report alerts Libya; the analyst adds France and restarts; `after` the first alert a second
    outlet's report of the same story matches both. The story's alerts as stored."""
    clock = FakeClock(T0)
    app = open_with(tmp_path, config_text(tmp_path, feed_server, stub, LIBYA_TOPIC), clock)
    feed_server.route("/interfax.xml", rss([READOUT[0]]))
    feed_server.route("/tass.xml", rss([]))
    feed_server.route("/ria.xml", rss([]))
    try:
        poll_all(app)
        app.deliverer.deliver_due()
    finally:
        app.close()
    assert len(stub.calls("sendMessage")) == 1
    # The analyst adds a topic; a restart in the middle of the story keeps grouping.
    clock.t += after
    app = open_with(tmp_path, config_text(tmp_path, feed_server, stub, LIBYA_TOPIC + FRANCE_TOPIC), clock)
    feed_server.set_body("/tass.xml", rss([READOUT[1]], published=clock.t))
    try:
        poll_all(app)
        app.deliverer.deliver_due()
        alerts = [a for a, _ in app.store.alerts_since(T0 - timedelta(days=1))]
    finally:
        app.close()
    assert sorted(tuple(m.topic for m in a.matches) for a in alerts) == [("france",), ("libya",)]
    assert len({a.story_id for a in alerts}) == 1
    return alerts


def test_a_topic_a_story_gains_within_the_hour_edits_its_message(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    gain_a_topic(tmp_path, feed_server, stub, timedelta(minutes=20))
    assert len(stub.calls("sendMessage")) == 1, "a topic gained within the hour is told by an edit, not a message"
    edits = stub.calls("editMessageText")
    assert edits and "+ Франция" in visible_text(edits[-1].params["text"])


def test_a_topic_a_story_gains_later_alerts_as_a_continuation(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    gain_a_topic(tmp_path, feed_server, stub, timedelta(minutes=90))
    sent = stub.calls("sendMessage")
    assert len(sent) == 2
    text = visible_text(sent[-1].params["text"])
    assert "Франция" in text
    assert "continues a story already sent: Путин и Макрон призвали" in text


def test_an_updated_item_does_not_alert_again(tmp_path: Path, feed_server: FeedServer, stub: TelegramStub) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, clock):
        feed_server.route("/interfax.xml", rss([READOUT[0]]))
        feed_server.route("/tass.xml", rss([]))
        feed_server.route("/ria.xml", rss([]))
        poll_all(app)
        guid, title, text = READOUT[0]
        feed_server.set_body("/interfax.xml", rss([(guid, title + " (обновлено)", text + " Дополнено.")]))
        clock.t += timedelta(minutes=2)
        report = app.pipeline.poll(app.config.feeds[0])
        app.deliverer.deliver_due()
        assert report.new == 0 and len(report.items) == 1  # seen as changed, not new
        assert len(stub.calls("sendMessage")) == 1
        assert stub.calls("editMessageText") == []


def test_items_stored_by_a_killed_run_are_matched_on_restart(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    clock = FakeClock(T0)
    text = config_text(tmp_path, feed_server, stub, LIBYA_TOPIC)
    app = open_with(tmp_path, text, clock)
    guid, title, body = READOUT[0]
    item = Item(feed="Interfax", key=guid, title=title, link=None, published=T0, summary=body, lang="ru")
    app.store.add_items([item], T0)  # ...and the process dies before matching it
    app.close()
    app = open_with(tmp_path, text, clock)
    try:
        assert app.claim_delivery() and app.recover() == 1
        app.deliverer.deliver_due()
    finally:
        app.close()
    assert len(stub.calls("sendMessage")) == 1


class FullDisk:
    """The store, with writes of stories and alerts failing as on a full disk while `full` is set."""

    def __init__(self, store: object) -> None:
        self.store = store
        self.full = False

    def apply(self, intent: ItemIntent) -> Alert | None:
        if self.full:
            raise StoreError(f"while recording item {intent.item.uid!r}: database or disk is full",
                             reason="database or disk is full")  # fmt: skip
        return self.store.apply(intent)  # type: ignore[attr-defined, no-any-return]

    def apply_all(self, intents: list[ItemIntent]) -> list[Alert | None]:
        if self.full:
            raise StoreError(f"while recording {len(intents)} items: database or disk is full",
                             reason="database or disk is full")  # fmt: skip
        return self.store.apply_all(intents)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def test_items_stored_before_a_failed_write_are_matched_once_writes_work(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    # Issue 12, item 9: such items waited for the next restart (they are no longer new to a poll).
    clock = FakeClock(T0)
    app = open_with(tmp_path, config_text(tmp_path, feed_server, stub, LIBYA_TOPIC), clock)
    disk = FullDisk(app.store)
    app.pipeline.store = disk  # type: ignore[assignment]
    feed_server.route("/interfax.xml", rss([READOUT[0], OTHER]))
    try:
        disk.full = True
        with pytest.raises(StoreError, match="disk is full"):
            app.pipeline.poll(app.config.feeds[0])
        assert app.store.count_items("Interfax") == 2 and app.store.outbox_counts()["pending"] == 0
        with pytest.raises(StoreError):
            app.recover()  # still full: the items stay for the next pass
        disk.full = False
        clock.t += timedelta(minutes=1)
        report = app.pipeline.poll(app.config.feeds[0])  # what the daemon does: poll, then recover
        assert report.new == 0
        assert app.recover() == 2
        app.deliverer.deliver_due()
        assert app.recover() == 0
    finally:
        app.close()
    assert len(stub.calls("sendMessage")) == 1 and "Путин и Макрон призвали" in stub.texts()[0]


def test_a_broken_feed_is_recorded_and_backs_off_while_the_others_go_on(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, _clock):
        feed_server.route("/interfax.xml", b"<html>oops</html>", headers={"Content-Type": "text/html"})
        feed_server.route("/tass.xml", b"", status=500)
        feed_server.route("/ria.xml", rss([READOUT[2]]))
        reports = [app.pipeline.poll(feed) for feed in app.config.feeds]
        assert [r.status for r in reports] == ["error", "error", "ok"]
        first = app.store.get_feed("TASS")
        assert first is not None and first.error_count == 1 and "500" in (first.last_error or "")
        app.pipeline.poll(app.config.feeds[1])
        second = app.store.get_feed("TASS")
        assert second is not None and second.error_count == 2
        assert second.next_poll is not None and first.next_poll is not None
        assert second.next_poll - T0 > first.next_poll - T0  # exponential backoff


def test_a_new_feeds_backlog_is_matched_but_not_alerted(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, clock):
        feed_server.route("/interfax.xml", rss([READOUT[0]], published=T0 - timedelta(hours=30)))
        feed_server.route("/tass.xml", rss([]))
        feed_server.route("/ria.xml", rss([]))
        report = app.pipeline.poll(app.config.feeds[0])
        assert report.matches and report.alerts == 0  # matched, quietly
        # A late report of that old story stays quiet too; a new story on the same feed alerts.
        clock.t += timedelta(minutes=5)
        feed_server.set_body("/tass.xml", rss([READOUT[1]]))
        feed_server.set_body("/interfax.xml", rss([READOUT[0], LIBYA_NEW], published=T0 + timedelta(minutes=5)))
        poll_all(app)
        app.deliverer.deliver_due()
        assert [c.params["text"].count("Хафтар") > 0 for c in stub.calls("sendMessage")] == [True]


LIBYA_NEW = (
    "interfax-2",
    "Хафтар объявил о наступлении на Триполи",
    "Командующий Ливийской национальной армией Халифа Хафтар объявил о начале наступления на Триполи, "
    "правительство национального согласия заявило о мобилизации.",
)


def test_preview_beside_a_daemon_matches_new_items_and_writes_nothing(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, _clock):
        feed_server.route("/interfax.xml", rss([READOUT[0]]))
        feed_server.route("/tass.xml", b"<html>oops</html>", headers={"Content-Type": "text/html"})
        feed_server.route("/ria.xml", rss([OTHER]))
        interfax, tass, ria = app.config.feeds
        first = app.pipeline.preview(interfax)
        assert (first.status, first.new, [i.key for i in first.items]) == ("ok", 1, ["interfax-1"])
        assert [m.topic for m in first.matches[first.items[0].uid]] == ["libya"]
        assert app.pipeline.preview(tass).status == "error"
        assert app.pipeline.preview(ria).matches == {}
        # Nothing was stored, grouped or queued: to the daemon, the items are still new.
        assert app.store.feeds() == [] and app.store.count_items() == 0
        assert sum(app.store.outbox_counts().values()) == 0 and app.store.stories_since(T0 - timedelta(days=1)) == []
        assert app.pipeline.preview(interfax).new == 1
        # Once the daemon has stored them, a preview shows only what it has not seen.
        app.pipeline.poll(interfax)
        feed_server.set_body("/interfax.xml", rss([READOUT[0], READOUT[1]]))
        again = app.pipeline.preview(interfax)
        assert [i.key for i in again.items] == ["tass-1"]
        assert app.store.count_items() == 1


class CallLog:
    """The store, recording which of its methods the pipeline calls."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


def stored(app: App, feeds: Sequence[str], texts: Sequence[tuple[str, str, str]]) -> list[Item]:
    """One item per feed with its (key, title, body), stored as a poll stores them (not yet processed)."""
    items = [
        Item(feed=feed, key=key, title=title, link=None, published=T0, summary=body, lang="ru")
        for feed, (key, title, body) in zip(feeds, texts, strict=True)
    ]
    app.store.add_items(items, T0)
    return items


def test_processing_an_item_reads_its_story_and_writes_once(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, _clock):
        items = stored(app, ("Interfax", "TASS"), READOUT[:2])
        log = CallLog(app.store)
        app.pipeline.store = log  # type: ignore[assignment]
        first = app.pipeline.process(items[0])  # alerts
        second = app.pipeline.process(items[1])  # the same story: edits the alert
        assert (first.alerted, second.alerted) == (True, False)
        assert log.calls == ["get_story", "apply"] * 2  # the whole decision in one transaction per item
        kinds = sorted(kind for _, kind in app.store.due_deliveries(T0 + timedelta(days=1)))
        assert kinds == ["edit", "send"]


def test_a_poll_writes_its_items_with_its_feed_state_then_its_batch(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, clock):
        feed_server.route("/interfax.xml", rss([READOUT[0], OTHER]), etag='"v1"')
        log = CallLog(app.store)
        app.pipeline.store = log  # type: ignore[assignment]
        report = app.pipeline.poll(app.config.feeds[0])
        assert report.new == 2 and report.alerts == 1 and report.total == 2
        # Two write transactions: the items with the feed's state (counted in it), then the batch's decisions.
        reads = ("get_feed",)  # read twice for a feed never polled (poll, then ingest): no state to hand over
        assert [call for call in log.calls if call not in reads] == ["store_poll", "get_stories", "apply_all"]
        state = app.store.get_feed("Interfax")
        assert state is not None and state.items_total == 2 and state.etag == '"v1"' and state.status == "ok"
        log.calls.clear()
        clock.t += timedelta(minutes=1)
        assert app.pipeline.poll(app.config.feeds[0]).status == "not_modified"
        assert log.calls == ["get_feed", "put_feed"]  # nothing stored: the feed's state alone, as before


def process_together(app: App, items: list[Item]) -> list[object]:
    """`process` of each item in a thread of its own, all queued at the grouping lock before it is let go, in
    this order; what each call returned or raised."""
    pipeline = app.pipeline
    out: list[object] = [None] * len(items)

    def run(i: int) -> None:
        try:
            out[i] = pipeline.process(items[i])
        except Exception as exc:  # handed to the test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
    with pipeline._group_lock:  # a poll holds it: the others queue behind, as in a burst
        for i, thread in enumerate(threads):
            thread.start()
            deadline = time.monotonic() + 10
            while len(pipeline._waiting) <= i:  # queued in order
                assert time.monotonic() < deadline, "a call did not queue at the grouping lock"
                time.sleep(0.005)
    for thread in threads:
        thread.join(10)
    return out


def test_calls_waiting_at_the_grouping_lock_are_decided_in_order_in_one_transaction(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, _clock):
        items = stored(app, ("Interfax", "TASS", "RIA"), [*READOUT[:2], OTHER])
        log = CallLog(app.store)
        app.pipeline.store = log  # type: ignore[assignment]
        first, second, other = process_together(app, items)
        assert isinstance(first, Enqueued) and isinstance(second, Enqueued) and isinstance(other, Enqueued)
        assert (first.alerted, second.alerted, other.alerted) == (True, False, False)  # the second edits the first
        assert log.calls == ["get_stories", "apply_all"]  # one read and one transaction for the three calls
        kinds = sorted(kind for _, kind in app.store.due_deliveries(T0 + timedelta(days=1)))
        assert kinds == ["edit", "send"]


def test_a_failed_group_transaction_fails_every_call_in_it(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    clock = FakeClock(T0)
    app = open_with(tmp_path, config_text(tmp_path, feed_server, stub, LIBYA_TOPIC), clock)
    disk = FullDisk(app.store)
    try:
        items = stored(app, ("Interfax", "RIA"), [READOUT[0], OTHER])
        app.pipeline.store = disk  # type: ignore[assignment]
        disk.full = True
        results = process_together(app, items)
        assert all(isinstance(r, StoreError) for r in results)  # each poll keeps its items for App.recover
        assert app.store.outbox_counts()["pending"] == 0
        disk.full = False
        assert [r.alerted for r in process_together(app, items)] == [True, False]  # type: ignore[attr-defined]
    finally:
        app.close()


def test_preview_decides_as_a_poll_would(tmp_path: Path, feed_server: FeedServer, stub: TelegramStub) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, _clock):
        feed_server.route("/interfax.xml", rss([READOUT[0]]))
        feed_server.route("/tass.xml", rss([READOUT[1]]))
        feed_server.route("/ria.xml", rss([OTHER]))
        interfax, tass, ria = app.config.feeds
        assert app.pipeline.preview(interfax).alerts == 1
        assert (app.pipeline.preview(ria).alerts, len(app.pipeline.grouper)) == (0, 0)  # the window stays as it was
        app.pipeline.poll(interfax)
        assert app.pipeline.preview(tass).alerts == 0  # the story has alerted: TASS's report would edit it
        assert app.pipeline.poll(tass).alerts == 0


def test_use_swaps_the_config_and_model_for_the_next_items(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    with three_outlets(tmp_path, feed_server, stub) as (app, _clock):
        feed_server.route("/interfax.xml", rss([READOUT[0]]))
        feed_server.route("/tass.xml", rss([]))
        feed_server.route("/ria.xml", rss([]))
        model = app.pipeline.model
        app.reconfigure(cfg.loads(config_text(tmp_path, feed_server, stub, FRANCE_TOPIC), env={}))
        assert app.pipeline.model is not model and app.pipeline.config is app.config
        assert app.pipeline.model.topic_ids == ("france",)
        report = app.pipeline.poll(app.config.feeds[0])
        assert [m.topic for m in report.matches[report.items[0].uid]] == ["france"]


# A process that stores a poll's items, then dies by SIGKILL inside the transaction that records them: after the
# first item's alert, matches and message and the second's edit went in, as the third item's edit is written.
KILLED_MID_BATCH = """
import os, signal, sys
from sqlalchemy import event
from monitor import config as cfg
from monitor.app import open_app
from monitor.models import Item
from monitor.pipeline import Enqueued, Unfinished
from tests.fakes import T0, FakeClock
from tests.test_pipeline import OTHER, READOUT

app = open_app(cfg.load(sys.argv[1], env={}), clock=FakeClock(T0))
items = [Item(feed=f"F{n}", key=g, title=t, link=None, published=T0, summary=b, lang="ru")
         for n, (g, t, b) in enumerate([*READOUT, OTHER])]
new, _ = app.store.add_items(items, T0)
outbox_writes = []
def die(conn, cursor, statement, *rest):
    if statement.startswith("INSERT INTO outbox"):
        outbox_writes.append(statement)
        if len(outbox_writes) == 3:  # the last item's edit: the other items' rows are written by then
            os.kill(os.getpid(), signal.SIGKILL)
event.listen(app.store._engine, "before_cursor_execute", die)
app.pipeline.process_all([Unfinished(item) for item in new])
app.close()
"""


def console_config(tmp_path: Path) -> Path:
    tmp_path.mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            settings: {{data_dir: {tmp_path / "data"}}}
            channels: {{out: {{type: console}}}}
            feeds: [{{name: F0, url: "http://127.0.0.1:9/f.xml"}}]
            topics:
            """)
        + textwrap.indent(LIBYA_TOPIC, "  "),
        encoding="utf-8",
    )
    return path


def outbox_rows(app: App) -> list[tuple[str, str]]:
    return sorted((d.channel, kind) for d, kind in app.store.due_deliveries(T0 + timedelta(days=1), limit=1000))


@pytest.mark.slow
def test_a_kill_9_inside_a_polls_batched_write_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    config = console_config(tmp_path / "killed")
    done = subprocess.run([sys.executable, "-c", KILLED_MID_BATCH, str(config), "kill"], cwd=ROOT, timeout=120)
    assert done.returncode == -signal.SIGKILL
    app = open_app(cfg.load(str(config), env={}), clock=FakeClock(T0))
    try:
        # All or nothing: the items are stored, none of their stories, matches, alerts or outbox rows.
        assert app.store.count_items() == 4 and sum(app.store.outbox_counts().values()) == 0
        assert app.store.alerts_since(T0 - timedelta(days=1)) == [] and app.store.stories_since(T0) == []
        assert app.recover() == 4  # what a restart does with them
        recovered = outbox_rows(app)
        assert app.recover() == 0 and outbox_rows(app) == recovered  # nothing twice
    finally:
        app.close()
    # The same poll left to finish queues the same: one message for the story, an edit for each later report.
    app = open_app(cfg.load(str(console_config(tmp_path / "finished")), env={}), clock=FakeClock(T0))
    try:
        items = [
            Item(feed=f"F{n}", key=g, title=t, link=None, published=T0, summary=b, lang="ru")
            for n, (g, t, b) in enumerate([*READOUT, OTHER])
        ]
        new, _ = app.store.add_items(items, T0)
        app.pipeline.process_all([Unfinished(item) for item in new])
        assert recovered == outbox_rows(app) == [("out", "edit"), ("out", "edit"), ("out", "send")]
    finally:
        app.close()


class OneFeed:
    """A fetcher that serves the same RSS body for every feed URL (a 200 each time, validators ignored)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def fetch(self, url: str, **_: object) -> FetchResult:
        return FetchResult(url, 200, self.body, "application/rss+xml", etag='"v1"')

    def get_page(self, url: str, *, allow_private: bool = False) -> FetchResult:
        raise AssertionError("no full text in these tests")


# A process that polls a feed and dies by SIGKILL inside the poll's first transaction: its items are written,
# its feed's state is about to be.
KILLED_BEFORE_FEED_STATE = """
import os, signal, sys
from sqlalchemy import event
from monitor import config as cfg
from monitor.app import open_app
from monitor.feeds.parse import parse_feed
from tests.fakes import T0, FakeClock
from tests.feeddata import READOUT, rss
from tests.test_pipeline import OTHER, OneFeed

app = open_app(cfg.load(sys.argv[1], env={}), clock=FakeClock(T0))
app.pipeline.fetcher, app.pipeline.parse = OneFeed(rss([*READOUT, OTHER])), parse_feed
written = []
def die(conn, cursor, statement, *rest):
    if statement.startswith("INSERT INTO items"):
        written.append(statement)
    if statement.startswith("INSERT INTO feeds") and written:
        os.kill(os.getpid(), signal.SIGKILL)
event.listen(app.store._engine, "before_cursor_execute", die)
app.pipeline.poll(app.config.feeds[0])
app.close()
"""


def polled_once_more(config: Path) -> tuple[int, list[tuple[str, str]], int]:
    """Open the data directory as a restart does, recover, poll F0 twice: (new items, outbox rows, new again)."""
    app = open_app(cfg.load(str(config), env={}), clock=FakeClock(T0))
    app.pipeline.fetcher, app.pipeline.parse = OneFeed(rss([*READOUT, OTHER])), parse_feed
    try:
        assert app.recover() == 0  # nothing stored and unmatched
        first = app.pipeline.poll(app.config.feeds[0])
        rows = outbox_rows(app)
        again = app.pipeline.poll(app.config.feeds[0])
        assert outbox_rows(app) == rows  # nothing twice
        state = app.store.get_feed("F0")
        assert state is not None and state.etag == '"v1"' and state.items_total == 4
        return first.new, rows, again.new
    finally:
        app.close()


@pytest.mark.slow
def test_a_kill_9_between_a_polls_items_and_its_feed_state_loses_nothing(tmp_path: Path) -> None:
    config = console_config(tmp_path / "killed")
    done = subprocess.run([sys.executable, "-c", KILLED_BEFORE_FEED_STATE, str(config)], cwd=ROOT, timeout=120)
    assert done.returncode == -signal.SIGKILL
    app = open_app(cfg.load(str(config), env={}), clock=FakeClock(T0))
    try:
        # Neither landed: no items (that the next poll would take for seen), no feed state.
        assert app.store.count_items() == 0 and app.store.get_feed("F0") is None
    finally:
        app.close()
    # So the next poll finds them all new and queues what a poll never killed queues, once.
    killed = polled_once_more(config)
    assert killed == polled_once_more(console_config(tmp_path / "finished"))
    assert killed[0] == 4 and ("out", "send") in killed[1] and killed[2] == 0
