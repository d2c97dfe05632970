"""Feedback buttons under Telegram alerts: the keyboard, and presses received through the Bot API stand-in
(getUpdates with injected callback queries), recorded in a real SQLite store, answered, and shown."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import config as cfg
from monitor.app import App, open_app
from monitor.delivery import buttons
from monitor.delivery.feedback import FeedbackPoller, bot_key, same_chat
from monitor.delivery.telegram import TelegramNotifier
from monitor.models import Alert, Item, Label, Match, Story
from monitor.ports import Clock
from monitor.store import SqlStore
from tests.fakes import T0, FakeClock
from tests.feeddata import READOUT, rss
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401
from tests.tgstub import TelegramStub

TOKEN = "424242:feedback-token"
CHAT, OTHER_CHAT = "1001", "2002"
ANALYST, STRANGER = 7001, 666

LIBYA = Match("libya", 0.8, 0.5, True)
SYRIA = Match("syria", 0.7, 0.5, True)
QUIET = Match("iran", 0.1, 0.5, False)


class Ticker:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    with TelegramStub(token=TOKEN) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'monitor.db'}")
    yield opened
    opened.close()


def config(stub: TelegramStub, **channel: object) -> cfg.Config:
    tg = {"type": "telegram", "bot_token": TOKEN, "chat_id": CHAT, "api_url": stub.url, "pace": False, "timeout": 2}
    return cfg.Config.model_validate(
        {
            "channels": {"tg": {**tg, **channel}},
            "topics": [
                {"id": "libya", "name": "Ливия"},
                {"id": "syria", "name": "Сирия"},
                {"id": "iran", "name": "Иран"},
            ],
        }
    )


def make_item(key: str = "a") -> Item:
    return Item(feed="ТАСС", key=key, title=f"Новость {key}", link="https://tass.example/1", published=T0,
                summary="Перемирие в Ливии.")  # fmt: skip


def sent_alert(
    store: SqlStore, stub: TelegramStub, conf: cfg.Config, matches: tuple[Match, ...] = (LIBYA, QUIET)
) -> tuple[Alert, int]:
    """An alert recorded in a story, sent to the chat through the notifier, marked sent: (alert, message_id)."""
    it = make_item()
    store.add_items([it], T0)
    store.put_story(Story("s1", it.uid, T0, T0, items=(it.uid,)))
    alert = store.record_alert(it, matches, ["tg"], T0, story_id="s1")
    assert alert is not None
    notifier = TelegramNotifier("tg", conf.channels["tg"], topics={t.id: t.name for t in conf.topics})  # type: ignore[arg-type]
    ref = notifier.send(store.get_alert(alert.id))
    notifier.close()
    assert ref is not None
    [(row, _)] = store.due_deliveries(T0)
    store.mark_sent(row.id, T0, ref)
    return alert, int(ref)


def poller(store: SqlStore, conf: cfg.Config, ticker: Ticker | None = None) -> FeedbackPoller:
    return FeedbackPoller(conf, store, FakeClock(), long_poll=0, monotonic=ticker or Ticker())


def texts(board: list[list[dict[str, str]]] | None) -> list[list[str]]:
    assert board is not None, "the message has no keyboard"
    return [[button["text"] for button in row] for row in board]


# --- the buttons ----------------------------------------------------------------------------------


def test_callback_data_round_trips_within_64_bytes() -> None:
    biggest = 2**63 - 1
    for data, press in [
        (buttons.label_data(biggest, 12, False), buttons.Press(biggest, position=12, relevant=False)),
        (buttons.label_data(5, 0, True), buttons.Press(5, position=0, relevant=True)),
        (buttons.mute_data(biggest), buttons.Press(biggest, mute=True)),
    ]:
        assert len(data.encode()) <= 64
        assert buttons.parse(data) == press
    for junk in ["", "l5:0:x", "l5:0", "m", "mx", "l-1:0:y", "l5:0:y ", None, 42, "x" * 65]:
        assert buttons.parse(junk) is None


def test_the_keyboard_has_a_row_per_matched_topic_and_marks_the_verdicts() -> None:
    alert = Alert(1, make_item(), (LIBYA, QUIET, SYRIA), T0, story_id="s1")
    names = {"libya": "Ливия", "syria": "Сирия"}
    assert texts(buttons.keyboard(alert, names)["inline_keyboard"]) == [
        ["Ливия: ✓ relevant", "Ливия: ✗ not relevant"],
        ["Сирия: ✓ relevant", "Сирия: ✗ not relevant"],
        ["🔇 mute story"],
    ]
    labelled = Alert(1, make_item(), (LIBYA, QUIET), T0, labels=(Label("x", "libya", False, "telegram"),), muted=True)
    board = buttons.keyboard(labelled, names)["inline_keyboard"]
    assert texts(board) == [["✓ relevant", "● ✗ not relevant"], ["🔇 story muted"]]
    assert [b["callback_data"] for b in board[0]] == ["l1:0:y", "l1:0:n"]  # position among the stored matches


def test_an_alert_carries_its_keyboard_and_a_story_edit_keeps_it(stub: TelegramStub) -> None:
    conf = config(stub)
    tg = TelegramNotifier("tg", conf.channels["tg"], topics={"libya": "Ливия"})  # type: ignore[arg-type]
    alert = Alert(3, make_item(), (LIBYA,), T0, story_id="s1")
    ref = tg.send(alert)
    assert ref == "1"
    assert texts(stub.keyboard(CHAT, 1)) == [["✓ relevant", "✗ not relevant"], ["🔇 mute story"]]
    labelled = Alert(3, make_item(), (LIBYA,), T0, also=(("RIA", None),), labels=(Label("x", "libya", True, "cli"),))
    tg.edit(ref, labelled)
    assert "also: RIA" in stub.messages[(CHAT, 1)]
    assert texts(stub.keyboard(CHAT, 1))[0] == ["● ✓ relevant", "✗ not relevant"]
    tg.close()


def test_chats_are_matched_by_id_or_by_channel_username() -> None:
    assert same_chat("1001", {"id": 1001}) and same_chat(-100123, {"id": -100123})
    assert same_chat("@NewsDesk", {"id": -1005, "username": "newsdesk"})
    assert not same_chat("1001", {"id": 2002}) and not same_chat("@desk", {"id": -1005})
    assert bot_key("424242:secret") == "424242" and "secret" not in bot_key("no-colon-secret")


# --- presses --------------------------------------------------------------------------------------


def test_a_not_relevant_press_is_recorded_answered_and_shown_and_a_second_press_changes_it(
    store: SqlStore, stub: TelegramStub
) -> None:
    conf = config(stub)
    alert, message_id = sent_alert(store, stub, conf)
    feedback = poller(store, conf)
    stub.press(CHAT, message_id, buttons.label_data(alert.id, 0, False), user_id=ANALYST)
    assert feedback.poll() == 1
    [(label, item)] = store.labelled_items()
    assert (label.item, label.topic, label.relevant, label.source, label.user) == (
        alert.item.uid, "libya", False, "telegram", str(ANALYST)
    )  # fmt: skip
    assert item.title == alert.item.title
    assert stub.answers() == ["Marked not relevant for Ливия"]
    assert texts(stub.keyboard(CHAT, message_id)) == [["✓ relevant", "● ✗ not relevant"], ["🔇 mute story"]]
    stub.press(CHAT, message_id, buttons.label_data(alert.id, 0, True), user_id=ANALYST)
    assert feedback.poll() == 1
    assert [lab.relevant for lab, _ in store.labelled_items()] == [True]
    assert stub.answers()[-1] == "Marked relevant for Ливия"
    assert texts(stub.keyboard(CHAT, message_id))[0] == ["● ✓ relevant", "✗ not relevant"]
    get_updates = stub.calls("getUpdates")
    assert get_updates[0].params["allowed_updates"] == ["callback_query"]
    assert [call.params.get("offset") for call in get_updates] == [None, 2]  # confirms the first press
    assert store.get_state("telegram.offset.424242") == "3"
    feedback.close()


@pytest.mark.parametrize(
    ("chat", "user", "which"),
    [
        (OTHER_CHAT, ANALYST, "another chat"),
        (CHAT, STRANGER, "a user not in allowed_users"),
        (CHAT, ANALYST, "another message"),
        (CHAT, ANALYST, "a button this monitor never made"),
        (CHAT, ANALYST, "a topic the alert did not match"),
    ],
)
def test_a_press_from_elsewhere_changes_nothing(
    store: SqlStore, stub: TelegramStub, chat: str, user: int, which: str
) -> None:
    conf = config(stub, allowed_users=[ANALYST])
    alert, message_id = sent_alert(store, stub, conf)
    before = stub.keyboard(CHAT, message_id)
    data = {
        "a button this monitor never made": "buy:now",
        "a topic the alert did not match": buttons.label_data(alert.id, 1, False),  # position 1 is iran, unmatched
    }.get(which, buttons.label_data(alert.id, 0, False))
    stub.press(chat, message_id + 1 if which == "another message" else message_id, data, user_id=user)
    feedback = poller(store, conf)
    assert feedback.poll() == 0
    assert stub.answers() == ["not allowed"]
    assert store.labelled_items() == [] and store.labels_revision() == 0
    assert stub.keyboard(CHAT, message_id) == before and stub.calls("editMessageReplyMarkup") == []
    assert not store.get_alert(alert.id).muted
    feedback.close()


def test_a_restart_after_a_press_neither_repeats_nor_loses_it(tmp_path: Path, stub: TelegramStub) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    conf = config(stub)
    store = SqlStore(url)
    alert, message_id = sent_alert(store, stub, conf)
    stub.press(CHAT, message_id, buttons.label_data(alert.id, 0, False))
    first = poller(store, conf)
    assert first.poll() == 1
    first.close()
    store.close()
    # Down: a press arrives meanwhile, and Telegram still holds it (not yet confirmed by any offset).
    stub.press(CHAT, message_id, buttons.mute_data(alert.id))
    store = SqlStore(url)
    again = poller(store, conf)
    assert again.poll() == 1  # the mute, once; the label press is not handled again
    assert again.poll() == 0
    assert stub.answers() == ["Marked not relevant for Ливия", "Story muted: no more alerts or edits for it"]
    assert [lab.relevant for lab, _ in store.labelled_items()] == [False]
    assert store.get_alert(alert.id).muted
    assert texts(stub.keyboard(CHAT, message_id)) == [["✓ relevant", "● ✗ not relevant"], ["🔇 story muted"]]
    assert stub.pending_updates() == 0 and store.get_state("telegram.offset.424242") == "3"
    again.close()
    store.close()


def test_a_webhook_gets_one_clear_line_naming_deletewebhook(
    store: SqlStore, stub: TelegramStub, caplog: pytest.LogCaptureFixture
) -> None:
    stub.webhook = True
    ticker = Ticker()
    feedback = poller(store, config(stub), ticker)
    with caplog.at_level(logging.WARNING, logger="monitor.delivery.feedback"):
        assert feedback.poll() == 0
        ticker.now += 3600
        assert feedback.poll() == 0
    [record] = caplog.records
    line = record.getMessage()
    assert record.levelname == "ERROR" and "\n" not in line
    assert "webhook" in line and "deleteWebhook" in line and TOKEN not in line
    assert len(stub.calls("getUpdates")) == 2
    feedback.close()


def test_telegram_outages_back_off_and_never_raise(
    store: SqlStore, stub: TelegramStub, caplog: pytest.LogCaptureFixture
) -> None:
    conf = config(stub, timeout=1)
    alert, message_id = sent_alert(store, stub, conf)
    ticker = Ticker()
    feedback = poller(store, conf, ticker)
    stub.script_updates("500", "502", "hang:5")
    with caplog.at_level(logging.WARNING, logger="monitor.delivery.feedback"):
        assert feedback.poll() == 0
        assert feedback.poll() == 0  # left alone for a while: no call
        assert len(stub.calls("getUpdates")) == 1
        ticker.now += 2
        assert feedback.poll() == 0
        ticker.now += 4
        assert feedback.poll() == 0  # the hang: a timeout, also survived
        assert len(stub.calls("getUpdates")) == 3
    stub.release()
    stub.press(CHAT, message_id, buttons.label_data(alert.id, 0, True))
    ticker.now += 60
    stub.script("500", "500")  # the answer and the keyboard edit fail too: the press still counts
    assert feedback.poll() == 1
    assert [lab.relevant for lab, _ in store.labelled_items()] == [True]
    lines = [r.getMessage() for r in caplog.records]  # one line per problem, not one per attempt
    assert len(lines) == 4 and "500" in lines[0] and "502" in lines[1] and "no answer" in lines[2], lines
    assert "could not show the verdict" in lines[3]
    feedback.close()


# --- end to end: the App with a feed server, the stand-in and a learning stand-in model -------------------


class Learner:
    """Wraps the real topic model; learning silences a topic that has a 'not relevant' label.

    The learning algorithm is not under test here, the wiring is: which labels reach the model, and that the
    pipeline decides the next item with the model that learned from them."""

    def __init__(self, model: Any, labelled: Sequence[tuple[Label, Item]] = ()) -> None:
        self.model = model
        self.labelled = list(labelled)
        self.silenced = {label.topic for label, _ in labelled if not label.relevant}

    def classify(self, title: str, text: str, lang: str | None = None, *, explain_all: bool = False) -> list[Match]:
        found = self.model.classify(title, text, lang, explain_all=explain_all)
        return [replace(m, matched=False) if m.topic in self.silenced else m for m in found]

    def classify_text(self, analysed: Any, *, explain_all: bool = False) -> list[Match]:
        found = self.model.classify_text(analysed, explain_all=explain_all)
        return [replace(m, matched=False) if m.topic in self.silenced else m for m in found]

    def classify_texts(self, analysed: Sequence[Any], *, explain_all: bool = False) -> list[list[Match]]:
        return [self.classify_text(a, explain_all=explain_all) for a in analysed]

    def is_near_miss(self, match: Match) -> bool:
        return bool(self.model.is_near_miss(match))

    def with_labels(self, labelled: Sequence[tuple[Label, Item]]) -> Learner:
        return Learner(self.model, labelled)

    def refit(self, background: Sequence[str], *, fit: Any = None) -> Learner:
        return Learner(self.model.refit(background, fit=fit))  # forgets the labels: App.refit must re-apply them

    def save(self, path: Path) -> None:
        self.model.save(path)


LIBYA_NEW = ("interfax-2", "Хафтар объявил о наступлении на Триполи",
             "Командующий Ливийской национальной армией Халифа Хафтар объявил о начале наступления на Триполи, "
             "правительство национального согласия заявило о мобилизации.")  # fmt: skip


def open_feedback_app(
    tmp_path: Path,
    server: FeedServer,
    stub: TelegramStub,
    clock: Clock,
    feeds: Sequence[str] = ("Interfax", "TASS", "RIA"),
) -> App:
    """An app with the Libya topic, a Telegram channel on the stub that takes presses from ANALYST, and a feed for
    each name of `feeds` (served at /<name lowercased>.xml); its feedback poller answers at once."""
    feed_list = ", ".join(f'{{name: {name}, url: "{server.url(f"/{name.lower()}.xml")}"}}' for name in feeds)
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            settings:
              data_dir: {tmp_path / "data"}
            channels:
              tg: {{type: telegram, bot_token: "{stub.token}", chat_id: "{CHAT}", api_url: "{stub.url}", pace: false,
                   allowed_users: [{ANALYST}]}}
            feeds: [{feed_list}]
            topics:
              - id: libya
                name: Ливия
                description: "Ливия: конфликт между Триполи и армией Хафтара, прекращение огня, межливийский диалог."
                keywords: [Ливия, Триполи, Хафтар, ливийский]
                examples:
                  - {{title: "Переговоры по Ливии", text: "Стороны ливийского конфликта в Триполи обсудили перемирие."}}
            """),
        encoding="utf-8",
    )
    app = open_app(cfg.load(str(path), env={}), clock=clock)
    app._feedback = FeedbackPoller(app.config, app.store, clock, long_poll=0)
    return app


def cycle(app: App) -> None:
    for feed in app.config.feeds:
        app.pipeline.poll(feed)
    app.deliverer.deliver_due()


def test_a_press_in_the_chat_teaches_the_running_pipeline_and_mute_stops_the_storys_edits(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    clock = FakeClock()
    feed_server.route("/interfax.xml", rss([READOUT[0]]))
    feed_server.route("/tass.xml", rss([]))
    feed_server.route("/ria.xml", rss([]))
    app = open_feedback_app(tmp_path, feed_server, stub, clock)
    try:
        app.pipeline.use(model=Learner(app.pipeline.model))  # type: ignore[arg-type]
        cycle(app)
        [sent] = stub.calls("sendMessage")
        message_id = sent.answer["result"]["message_id"]
        [alert] = [a for a, _ in app.store.alerts_since(T0)]
        assert texts(stub.keyboard(CHAT, message_id)) == [["✓ relevant", "✗ not relevant"], ["🔇 mute story"]]
        untaught = app.pipeline.model

        stub.press(OTHER_CHAT, message_id, buttons.label_data(alert.id, 0, False), user_id=ANALYST)
        stub.press(CHAT, message_id, buttons.label_data(alert.id, 0, False), user_id=STRANGER)
        assert app.poll_feedback() == 0 and app.pipeline.model is untaught
        assert stub.answers() == ["not allowed", "not allowed"]

        stub.press(CHAT, message_id, buttons.label_data(alert.id, 0, False), user_id=ANALYST)
        assert app.poll_feedback() == 1
        assert stub.answers()[-1] == "Marked not relevant for Ливия"
        assert texts(stub.keyboard(CHAT, message_id))[0] == ["✓ relevant", "● ✗ not relevant"]
        taught = app.pipeline.model
        assert taught is not untaught, "the model that learned from the press is swapped in"
        assert [(label.item, label.relevant) for label, _ in taught.labelled] == [(alert.item.uid, False)]

        # The next similar item (another story) is decided by the taught model: it stays quiet.
        clock.t += timedelta(minutes=2)
        feed_server.set_body("/interfax.xml", rss([READOUT[0], LIBYA_NEW]))
        cycle(app)
        assert len(stub.calls("sendMessage")) == 1

        # A second outlet joins the story: the message is edited, keyboard and verdict kept.
        clock.t += timedelta(minutes=2)
        feed_server.set_body("/ria.xml", rss([READOUT[2]]))
        cycle(app)
        [edit] = stub.calls("editMessageText")
        assert "also: RIA" in stub.messages[(CHAT, message_id)]
        assert texts(stub.keyboard(CHAT, message_id))[0] == ["✓ relevant", "● ✗ not relevant"]

        # Muted: a third outlet's report no longer edits it.
        stub.press(CHAT, message_id, buttons.mute_data(alert.id), user_id=ANALYST)
        assert app.poll_feedback() == 1
        assert stub.answers()[-1] == "Story muted: no more alerts or edits for it"
        assert texts(stub.keyboard(CHAT, message_id))[-1] == ["🔇 story muted"]
        clock.t += timedelta(minutes=2)
        feed_server.set_body("/tass.xml", rss([READOUT[1]]))
        cycle(app)
        assert stub.calls("editMessageText") == [edit]
        assert "TASS" not in stub.messages[(CHAT, message_id)]
    finally:
        app.close()


def test_labels_written_by_another_process_are_learned_without_a_restart(
    tmp_path: Path, feed_server: FeedServer, stub: TelegramStub
) -> None:
    clock = FakeClock()
    feed_server.route("/interfax.xml", rss([READOUT[0]]))
    feed_server.route("/tass.xml", rss([]))
    feed_server.route("/ria.xml", rss([]))
    app = open_feedback_app(tmp_path, feed_server, stub, clock)
    try:
        app.pipeline.use(model=Learner(app.pipeline.model))  # type: ignore[arg-type]
        cycle(app)
        assert app.relearn() is False  # nothing new: no rebuild
        other = SqlStore(app.config.database_url)  # `monitor label` in another process
        other.put_label(Label(f"Interfax\x1f{READOUT[0][0]}", "libya", False, "cli", user="ann"), T0)
        other.close()
        assert app.relearn() is True
        assert [label.user for label, _ in app.pipeline.model.labelled] == ["ann"]
        assert app.relearn() is False
        # A refit re-applies the labels to the refitted model.
        app.refit()
        assert [label.user for label, _ in app.pipeline.model.labelled] == ["ann"]
    finally:
        app.close()
