"""Near misses offered for labelling: the pure rules and rendering, recording in the store (capped per topic and
day, in the database), the daily message (once, also across restarts), and presses on it through the Telegram
stand-in, end to end with the App."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import config as cfg
from monitor.app import App
from monitor.cli import commands as cli
from monitor.delivery import buttons, nearmiss
from monitor.delivery.console import ConsoleNotifier
from monitor.delivery.offers import NearMissOfferer
from monitor.delivery.telegram import TelegramNotifier
from monitor.models import Item, ItemIntent, Label, Match, NearMiss, NearMissIntent, NearMissOffer, Story
from monitor.ports import Notifier
from monitor.store import SqlStore
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401
from tests.storefixtures import Db, db_fixture, store_fixture  # noqa: F401
from tests.test_feedback import open_feedback_app, rss
from tests.tgstub import TelegramStub

TOKEN = "515151:near-miss-token"
CHAT, OTHER_CHAT = "1001", "2002"
ANALYST = 7001
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DAY = date(2026, 11, 25)
OFFER_TIME = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # the default near_misses, 17:00, in UTC


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


def a_config(**settings: object) -> cfg.Config:
    return cfg.Config.model_validate(
        {
            "settings": settings,
            "channels": {"desk": {"type": "console"}, "mail": {"type": "console"}},
            "topics": [
                {"id": "libya", "name": "Ливия", "notify": ["desk"]},
                {"id": "syria", "name": "Сирия"},
                {"id": "iran", "name": "Иран", "notify": []},
            ],
        }
    )


def an_item(key: str, title: str | None = None) -> Item:
    return Item(feed="ТАСС", key=key, title=title or f"Новость {key}", link=f"https://tass.example/{key}",
                published=T0, summary="Текст.")  # fmt: skip


def near(id_: int, topic: str, score: float, *, day: date = DAY, story: str | None = None, **kw: Any) -> NearMiss:
    return NearMiss(id_, an_item(str(id_)), topic, score, 0.5, day, story_id=story, **kw)


# --- the pure rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "offer", "due"),
    [
        ("16:59", DAY, DAY - timedelta(days=1)),  # before the time: today's message, yesterday's is the last due
        ("17:00", DAY + timedelta(days=1), DAY),  # from the time on: tomorrow's; today's is due
        ("23:30", DAY + timedelta(days=1), DAY),
        ("00:10", DAY, DAY - timedelta(days=1)),
    ],
)
def test_the_offer_day_and_the_due_day_in_local_time(local: str, offer: date, due: date) -> None:
    tz = cfg.Settings(timezone="Europe/Moscow").tz
    hour, minute = map(int, local.split(":"))
    now = datetime(2026, 11, 25, hour, minute, tzinfo=tz).astimezone(UTC)
    at = cfg.parse_clock("17:00")
    assert nearmiss.offer_day(now, at, tz) == offer
    assert nearmiss.due_day(now, at, tz) == due


def test_the_plan_groups_per_channel_and_day_best_first_and_drops_what_was_told_meanwhile() -> None:
    config = a_config()
    waiting = [
        near(1, "syria", 0.41),
        near(2, "libya", 0.42),
        near(3, "syria", 0.45),
        near(4, "libya", 0.44, story="muted"),
        near(5, "syria", 0.43, story="alerted"),  # its story has since alerted syria: the alert has buttons
        near(6, "libya", 0.43, verdict=False),  # labelled meanwhile
        near(7, "iran", 0.49),  # routed nowhere
        near(8, "gone", 0.49),  # no longer configured
        near(9, "syria", 0.40, day=DAY - timedelta(days=1), story="other"),
    ]
    stories = {
        "muted": Story("muted", "x", T0, T0, muted=True),
        "alerted": Story("alerted", "x", T0, T0, topics=("syria",)),
        "other": Story("other", "x", T0, T0, topics=("libya",)),
    }
    plan = nearmiss.plan_offers(waiting, stories, config)
    assert plan.offers == (
        ("desk", DAY - timedelta(days=1), (9,)),
        ("mail", DAY - timedelta(days=1), (9,)),
        ("desk", DAY, (2, 3, 1)),  # libya first (config order), then syria best first; syria goes everywhere
        ("mail", DAY, (3, 1)),
    )
    assert sorted(plan.offered) == [1, 2, 3, 9] and sorted(plan.dropped) == [4, 5, 6, 7, 8]


def test_a_long_plan_is_split_into_messages_of_a_few_items() -> None:
    config = a_config()
    many = [near(i, "libya", 0.4 + i / 1000) for i in range(1, nearmiss.ITEMS_PER_MESSAGE + 3)]
    plan = nearmiss.plan_offers(many, {}, config)
    assert [len(ids) for _, _, ids in plan.offers] == [nearmiss.ITEMS_PER_MESSAGE, 2]


def test_callback_data_fits_and_never_looks_like_an_alert_button() -> None:
    biggest = 2**63 - 1
    for relevant in (True, False):
        data = nearmiss.press_data(biggest, relevant)
        assert len(data.encode()) <= 64
        assert nearmiss.parse_press(data) == (biggest, relevant)
        assert buttons.parse(data) is None
    assert nearmiss.parse_press(buttons.label_data(5, 0, True)) is None
    assert nearmiss.parse_press(buttons.mute_data(5)) is None
    for junk in ["", "n5", "n5:x", "nx:y", "n-1:y", None, 7]:
        assert nearmiss.parse_press(junk) is None
    assert nearmiss.parse_id("n12") == 12 and nearmiss.parse_id("N12") == 12
    assert nearmiss.parse_id("12") is None and nearmiss.parse_id("no") is None


def an_offer() -> NearMissOffer:
    return NearMissOffer(
        1,
        "desk",
        DAY,
        (near(12, "libya", 0.452, verdict=True), near(13, "syria", 0.41), near(14, "syria", 0.4)),
    )


def test_the_text_shows_ids_the_cli_takes_and_the_score_against_the_line() -> None:
    text = nearmiss.render_text(an_offer(), {"libya": "Ливия", "syria": "Сирия"})
    lines = text.splitlines()
    assert lines[0] == "Just below the line · 25.11.2026"
    assert "monitor label n<id> yes|no" in lines[1]
    assert "Ливия" in lines and "Сирия" in lines
    assert "  n12  Новость 12 — ТАСС · 0.45 (line 0.50)  [marked relevant]" in lines
    assert "       https://tass.example/12" in lines
    assert lines.index("Сирия") < next(i for i, line in enumerate(lines) if "n13" in line)


def test_telegram_numbers_the_items_as_their_buttons_and_marks_the_verdicts() -> None:
    offer = an_offer()
    [html] = nearmiss.render_telegram(offer, {"libya": "Ливия"})
    assert html.startswith("<b>Just below the line · 25.11.2026</b>")
    assert '1. <a href="https://tass.example/12">Новость 12</a> — ТАСС · 0.45 (line 0.50)' in html
    assert "\n3. " in html
    board = nearmiss.keyboard(offer)["inline_keyboard"]
    assert [[b["text"] for b in row] for row in board] == [
        ["1 ● ✓ relevant", "1 ✗ not relevant"],
        ["2 ✓ relevant", "2 ✗ not relevant"],
        ["3 ✓ relevant", "3 ✗ not relevant"],
    ]
    assert board[1][1]["callback_data"] == "n13:n"


# --- recording, in the store ---------------------------------------------------------------------------


def record(store: SqlStore, key: str, score: float, *, topic: str = "libya", story: str | None = None,
           day: date = DAY, now: datetime = T0) -> None:  # fmt: skip
    it = an_item(key)
    store.add_items([it], now)
    wanted = NearMissIntent((Match(topic, score, 0.5, False),), day, 3)
    store.apply(ItemIntent(it, Story(story or f"s-{key}", it.uid, now, now, items=(it.uid,)), now, near=wanted))


def scores(store: SqlStore, topic: str = "libya", up_to: date = DAY) -> list[float]:
    return sorted(n.score for n in store.waiting_near_misses(up_to) if n.topic == topic)


def test_near_misses_are_capped_per_topic_and_day_in_the_database_keeping_the_best(db: Db) -> None:
    store = db.open()
    for key, score in [("a", 0.41), ("b", 0.43), ("c", 0.42)]:
        record(store, key, score)
    record(store, "d", 0.40)  # the day is full, and this one is the worst
    assert scores(store) == [0.41, 0.42, 0.43]
    store.close()
    store = db.open()  # the cap is counted in the database: a restart does not reset it
    record(store, "e", 0.40)
    record(store, "f", 0.45)  # better than the day's lowest: takes its place
    assert scores(store) == [0.42, 0.43, 0.45]
    record(store, "g", 0.40, topic="syria")  # another topic has its own cap
    record(store, "h", 0.40, day=DAY + timedelta(days=1))  # and so has another day
    assert scores(store, "syria") == [0.40]
    assert scores(store, up_to=DAY + timedelta(days=1)) == [0.40, 0.42, 0.43, 0.45]


def test_one_near_miss_per_item_and_per_story_and_none_for_a_labelled_or_muted_one(db: Db) -> None:
    store = db.open()
    record(store, "a", 0.41, story="s1")
    record(store, "a", 0.44, story="s1")  # the same item again (updated): offered once
    record(store, "b", 0.40, story="s1")  # another outlet's copy of the story, worse: not a second question
    assert scores(store) == [0.41]
    record(store, "c", 0.46, story="s1")  # a better copy takes the story's place
    assert [n.item.key for n in store.waiting_near_misses(DAY)] == ["c"]
    it = an_item("d")
    store.add_items([it], T0)
    store.put_label(Label(it.uid, "libya", True, "cli"), T0)
    record(store, "d", 0.45)  # labelled for the topic already
    store.put_story(Story("s-e", an_item("e").uid, T0, T0))
    assert store.mute_story("s-e")
    record(store, "e", 0.45)  # its story was muted while it was processed
    assert [n.item.key for n in store.waiting_near_misses(DAY)] == ["c"]


def test_an_offered_near_miss_keeps_its_place(db: Db) -> None:
    store = db.open()
    for key, score in [("a", 0.41), ("b", 0.42), ("c", 0.43)]:
        record(store, key, score)
    ids = tuple(n.id for n in store.waiting_near_misses(DAY))
    assert store.take_near_misses([("desk", DAY, ids)], ids, (), OFFER_TIME) == 1
    record(store, "d", 0.49)  # the day's near misses were offered: none to replace
    assert store.waiting_near_misses(DAY) == []
    assert store.near_miss_counts() == {"libya": (3, 0)}


def test_retention_prunes_old_near_misses_with_their_items_and_keeps_labelled_ones(db: Db) -> None:
    store = db.open()
    record(store, "a", 0.44)
    record(store, "b", 0.43)
    ids = tuple(n.id for n in store.waiting_near_misses(DAY))
    store.take_near_misses([("desk", DAY, ids)], ids, (), OFFER_TIME)
    [offer] = store.due_offers(OFFER_TIME)
    store.mark_offer(offer.id, "sent", OFFER_TIME, message_ref="7")
    store.put_label(Label(an_item("b").uid, "libya", True, "near-miss"), OFFER_TIME)
    assert store.prune(T0 + timedelta(days=31)) == 1  # "a"; "b" is labelled: the model learns from it
    assert store.get_item(an_item("a").uid) is None and store.get_item(an_item("b").uid) is not None
    assert store.offer_at("desk", "7") is None  # sent long ago: gone too
    assert store.near_miss_counts() == {"libya": (1, 1)}


# --- the daily message -------------------------------------------------------------------------------


def offerer(store: SqlStore, clock: Clock, **settings: object) -> tuple[NearMissOfferer, io.StringIO]:
    config = a_config(**settings)
    out = io.StringIO()
    notifiers: dict[str, Notifier] = {"desk": ConsoleNotifier("desk", out), "mail": ConsoleNotifier("mail", out)}
    return NearMissOfferer(store, notifiers, config, clock), out


def test_the_message_goes_out_once_at_its_time_and_only_with_something_to_offer(db: Db) -> None:
    store = db.open()
    clock = Clock(OFFER_TIME - timedelta(minutes=1))
    job, out = offerer(store, clock)
    assert job.run().sent == 0  # nothing to offer: no message
    record(store, "a", 0.44)
    record(store, "b", 0.41, topic="syria")
    assert job.run().sent == 0 and out.getvalue() == ""  # not yet 17:00
    clock.t = OFFER_TIME
    report = job.run()
    assert (report.taken, report.sent) == (2, 2)  # desk (libya, syria) and mail (syria)
    text = out.getvalue()
    assert text.count("Just below the line · 25.11.2026") == 2
    assert text.count("Новость a") == 1 and text.count("Новость b") == 2
    clock.t += timedelta(minutes=1)
    again, _ = offerer(db.open(), clock)  # also a new process on the same database
    assert again.run().sent == 0
    assert out.getvalue() == text
    assert store.near_miss_counts() == {"libya": (1, 0), "syria": (1, 0)}


def test_quiet_hours_hold_the_message_and_off_takes_nothing_new(db: Db) -> None:
    store = db.open()
    clock = Clock(OFFER_TIME)
    record(store, "a", 0.44)
    desk = cfg.ConsoleChannel(type="console", quiet_hours=cfg.parse_quiet_hours("16:00-19:00"))
    quiet = a_config().model_copy(update={"channels": {"desk": desk}})
    out = io.StringIO()
    job = NearMissOfferer(store, {"desk": ConsoleNotifier("desk", out)}, quiet, clock)
    assert job.run().deferred == 1 and out.getvalue() == ""
    clock.t = OFFER_TIME + timedelta(hours=2)
    assert job.run().sent == 1 and "Новость a" in out.getvalue()
    record(store, "b", 0.44, day=DAY + timedelta(days=1))
    clock.t += timedelta(days=1)
    off, silent = offerer(store, clock, near_misses="off")
    assert off.run().taken == 0 and silent.getvalue() == ""


def test_a_restart_between_taking_and_sending_loses_nothing(db: Db) -> None:
    store = db.open()
    record(store, "a", 0.44)
    clock = Clock(OFFER_TIME)
    job, out = offerer(store, clock)
    assert job.take() == 1  # the process dies here: the message is recorded, not sent
    store.close()
    job, out = offerer(db.open(), clock)
    report = job.run()
    assert (report.taken, report.sent) == (0, 1) and "Новость a" in out.getvalue()


def test_a_failing_telegram_send_is_retried_and_a_permanent_failure_gives_up(db: Db, stub: TelegramStub) -> None:
    store = db.open()
    record(store, "a", 0.44)
    clock = Clock(OFFER_TIME)
    channel = cfg.TelegramChannel(type="telegram", bot_token=TOKEN, chat_id=CHAT, api_url=stub.url, pace=False)
    config = a_config().model_copy(update={"channels": {"desk": channel}})
    tg = TelegramNotifier("desk", channel, topics={"libya": "Ливия"})
    job = NearMissOfferer(store, {"desk": tg}, config, clock)
    stub.script("500")
    report = job.run()
    assert (report.taken, report.sent, report.retried) == (1, 0, 1)
    assert job.run().sent == 0  # not yet time to retry
    clock.t += timedelta(minutes=1)
    assert job.run().sent == 1 and len(stub.texts(CHAT)) == 1
    record(store, "b", 0.44, day=DAY + timedelta(days=1))
    clock.t += timedelta(days=1)
    stub.script("403")  # the bot was blocked: retrying cannot help
    assert job.run().failed == 1 and job.run().sent == 0
    tg.close()


# --- end to end: the App, a feed server, the Telegram stand-in ------------------------------------------


class Below:
    """Wraps the real topic model and moves every match just below its line, so that the items the real model
    matches come out as near misses; learns by keeping the labels it is given (the wiring is under test here)."""

    def __init__(self, model: Any, labelled: Sequence[tuple[Label, Item]] = ()) -> None:
        self.model = model
        self.labelled = list(labelled)

    def classify_text(self, analysed: Any, *, explain_all: bool = False) -> list[Match]:
        found = self.model.classify_text(analysed, explain_all=explain_all)
        return [replace(m, matched=False, score=0.9 * m.threshold) if m.matched else m for m in found]

    def classify(self, title: str, text: str, lang: str | None = None, *, explain_all: bool = False) -> list[Match]:
        return list(self.model.classify(title, text, lang, explain_all=explain_all))

    def classify_texts(self, analysed: Sequence[Any], *, explain_all: bool = False) -> list[list[Match]]:
        return [self.classify_text(a, explain_all=explain_all) for a in analysed]

    def is_near_miss(self, match: Match) -> bool:
        return bool(self.model.is_near_miss(match))

    def with_labels(self, labelled: Sequence[tuple[Label, Item]]) -> Below:
        return Below(self.model, labelled)

    def refit(self, background: Sequence[str], *, fit: Any = None) -> Below:
        return Below(self.model.refit(background, fit=fit), self.labelled)

    def save(self, path: Path) -> None:
        self.model.save(path)


TRUCE = ("tass-1", "Стороны конфликта в Ливии договорились о перемирии",
         "Представители Триполи и Ливийской национальной армии Хафтара договорились о прекращении огня и "
         "возобновлении межливийского диалога.")  # fmt: skip
REPRINT = ("tass-3", "Стороны конфликта в Ливии договорились о перемирии",
           "Представители Триполи и Ливийской национальной армии Хафтара договорились о прекращении огня и о "
           "возобновлении межливийского диалога, передает агентство.")  # fmt: skip
OFFENSIVE = ("tass-2", "Хафтар объявил о наступлении на Триполи",
             "Командующий Ливийской национальной армией Халифа Хафтар объявил о наступлении на Триполи; ливийское "
             "правительство объявило мобилизацию.")  # fmt: skip


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    with TelegramStub(token=TOKEN) as server:
        yield server


def open_near_app(tmp_path: Path, server: FeedServer, stub: TelegramStub, clock: Clock) -> App:
    app = open_feedback_app(tmp_path, server, stub, clock, feeds=("TASS",))
    app.pipeline.use(model=Below(app.pipeline.model))  # type: ignore[arg-type]
    return app


def poll(app: App) -> int:
    return sum(app.pipeline.poll(feed).alerts for feed in app.config.feeds)


def test_the_daily_message_once_and_a_press_on_it_teaches_the_model(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    clock = Clock()
    feed_server.route("/tass.xml", rss([TRUCE, OFFENSIVE]))
    app = open_near_app(tmp_path, feed_server, stub, clock)
    try:
        assert poll(app) == 0
        assert [n.item.title for n in app.store.waiting_near_misses(DAY)] == [TRUCE[1], OFFENSIVE[1]]
        app.offer_near_misses()
        assert stub.calls("sendMessage") == []  # before 17:00
        clock.t = OFFER_TIME
        app.offer_near_misses()
        [sent] = stub.calls("sendMessage")
        message_id = sent.answer["result"]["message_id"]
        assert sent.params["text"].startswith("<b>Just below the line · 25.11.2026</b>")
        assert "Ливия" in sent.params["text"] and "(line " in sent.params["text"]
        board = stub.keyboard(CHAT, message_id)
        assert board is not None and [b["text"] for b in board[0]] == ["1 ✓ relevant", "1 ✗ not relevant"]
        app.offer_near_misses()
    finally:
        app.close()
    app = open_near_app(tmp_path, feed_server, stub, clock)  # a restart: the day's message is not sent again
    try:
        app.offer_near_misses()
        assert len(stub.calls("sendMessage")) == 1
        untaught = app.pipeline.model

        offensive = next(b["callback_data"] for b in board[1] if "✗" in b["text"])
        stub.press(OTHER_CHAT, message_id, offensive, user_id=ANALYST)
        assert app.poll_feedback() == 0 and stub.answers() == ["not allowed"]
        stub.press(CHAT, message_id, offensive, user_id=ANALYST)
        assert app.poll_feedback() == 1
        assert stub.answers()[-1] == "Marked not relevant for Ливия"
        shown = stub.keyboard(CHAT, message_id)
        assert shown is not None and [b["text"] for b in shown[1]] == ["2 ✓ relevant", "2 ● ✗ not relevant"]
        [(label, item)] = app.store.labelled_items()
        assert (item.title, label.topic, label.relevant, label.source, label.user) == (
            OFFENSIVE[1], "libya", False, "near-miss", str(ANALYST)
        )  # fmt: skip
        taught = app.pipeline.model
        assert taught is not untaught and [lab.item for lab, _ in taught.labelled] == [item.uid]  # type: ignore[attr-defined]
        assert app.store.near_miss_counts() == {"libya": (2, 1)}
        assert app.store.alerts_since(T0) == []  # near misses are never alerts
    finally:
        app.close()


def test_a_muted_story_offers_nothing(tmp_path: Path, feed_server: FeedServer, stub: TelegramStub) -> None:
    clock = Clock()
    feed_server.route("/tass.xml", rss([TRUCE]))
    app = open_near_app(tmp_path, feed_server, stub, clock)
    try:
        poll(app)
        [first] = app.store.waiting_near_misses(DAY)
        assert first.story_id is not None and app.store.mute_story(first.story_id)  # muted from another alert
        clock.t += timedelta(minutes=5)
        feed_server.set_body("/tass.xml", rss([TRUCE, REPRINT, OFFENSIVE]))
        poll(app)
        story = app.store.get_story(first.story_id)
        assert story is not None and f"TASS\x1f{REPRINT[0]}" in story.items  # the reprint joined the muted story
        waiting = {n.item.title for n in app.store.waiting_near_misses(DAY)}
        assert waiting == {TRUCE[1], OFFENSIVE[1]}  # none recorded for the reprint
        clock.t = OFFER_TIME
        app.offer_near_misses()
        [sent] = stub.calls("sendMessage")
        assert OFFENSIVE[1] in sent.params["text"]
        assert TRUCE[1] not in sent.params["text"]  # recorded before the mute: left out of the message
    finally:
        app.close()


def test_monitor_label_takes_a_near_miss_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(cli, "setup_logging", lambda **kw: None)
    path = tmp_path / "config.yaml"
    path.write_text(f"settings: {{data_dir: {tmp_path / 'data'}}}\ntopics:\n  - {{id: libya, name: Ливия}}\n"
                    "  - {id: syria, name: Сирия}\n", encoding="utf-8")  # fmt: skip
    (tmp_path / "data").mkdir()
    store = SqlStore(cfg.load(str(path), env={}).database_url)
    record(store, "a", 0.44)
    [waiting] = store.waiting_near_misses(DAY)
    store.close()
    assert cli.main(["label", "--config", str(path), f"n{waiting.id}", "no"]) == 0
    assert f"near miss n{waiting.id} (Новость a): marked not relevant for libya" in capsys.readouterr().out
    assert cli.main(["label", "--config", str(path), f"n{waiting.id}", "Сирия", "yes"]) == 0  # another topic
    assert cli.main(["label", "--config", str(path), "n999", "yes"]) == 2
    assert "no near miss n999" in capsys.readouterr().err
    store = SqlStore(cfg.load(str(path), env={}).database_url)
    assert [(lab.topic, lab.relevant, lab.source) for lab, _ in store.labelled_items()] == [
        ("libya", False, "near-miss"), ("syria", True, "near-miss")
    ]  # fmt: skip
    store.close()
