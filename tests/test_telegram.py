"""TelegramNotifier against the Bot API stand-in: requests, error mapping, edits, pacing, token secrecy."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from monitor.config import TelegramChannel
from monitor.delivery.telegram import TelegramNotifier
from monitor.errors import NotifyError
from monitor.models import Alert, Item, Match
from tests.fakes import T0, FakeClock
from tests.tgstub import TelegramStub

TOKEN = "123456:SECRET-token_value"


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    with TelegramStub(token=TOKEN) as server:
        yield server


def make_alert(alert_id: int = 1, also: tuple[tuple[str, str | None], ...] = ()) -> Alert:
    item = Item(feed="ТАСС", key=f"k{alert_id}", title=f"Новость {alert_id} <b>&", link="https://tass.ru/1",
                published=T0, summary="О стратегической стабильности.")  # fmt: skip
    match = Match("strategic", 0.8, 0.5, True, terms=("стратегическ* стабильност*",))
    return Alert(id=alert_id, item=item, matches=(match,), created=T0, also=also)


def notifier(stub: TelegramStub, ticker: FakeClock | None = None, **overrides: object) -> TelegramNotifier:
    data: dict[str, object] = {"type": "telegram", "bot_token": TOKEN, "chat_id": "4242", "api_url": stub.url,
                               "pace": False, "timeout": 2}  # fmt: skip
    data.update(overrides)
    ticker = ticker or FakeClock()
    channel = TelegramChannel.model_validate(data)
    return TelegramNotifier("tg", channel, topics={"strategic": "Стратегия"}, monotonic=ticker.monotonic,
                            sleep=ticker.sleep)  # fmt: skip


def test_send_message(stub: TelegramStub) -> None:
    tg = notifier(stub, message_thread_id=7, disable_preview=True)
    ref = tg.send(make_alert())
    [call] = stub.calls("sendMessage")
    assert ref == "1"
    assert call.params["chat_id"] == "4242"
    assert call.params["parse_mode"] == "HTML"
    assert call.params["message_thread_id"] == 7
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert "Новость 1 &lt;b&gt;&amp;" in call.params["text"]
    assert '"message_id": 1' in tg.last_answer
    tg.close()


def test_429_gives_retry_after(stub: TelegramStub) -> None:
    stub.script("429:7")
    with pytest.raises(NotifyError) as info:
        notifier(stub).send(make_alert())
    assert info.value.retry_after == 7 and not info.value.permanent
    assert "Too Many Requests" in str(info.value)


@pytest.mark.parametrize("answer", ["500", "502"])
def test_server_errors_are_retryable(stub: TelegramStub, answer: str) -> None:
    stub.script(answer)
    tg = notifier(stub)
    with pytest.raises(NotifyError) as info:
        tg.send(make_alert())
    assert not info.value.permanent and info.value.retry_after is None
    assert tg.send(make_alert()) == "1"


@pytest.mark.parametrize(
    ("answer", "words"),
    [("400", "chat not found"), ("403", "bot was blocked"), ("400:Bad Request: message is too long", "too long")],
)
def test_client_errors_are_permanent(stub: TelegramStub, answer: str, words: str) -> None:
    stub.script(answer)
    with pytest.raises(NotifyError) as info:
        notifier(stub).send(make_alert())
    assert info.value.permanent and words in str(info.value)


def test_bad_token_is_permanent_and_never_shown(stub: TelegramStub) -> None:
    with pytest.raises(NotifyError) as info:
        notifier(stub, bot_token="999:WRONG-secret").send(make_alert())
    assert info.value.permanent and "401" in str(info.value)
    assert "WRONG-secret" not in str(info.value)


def test_network_error_hides_the_token(stub: TelegramStub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # monitor.service.logs may have raised it to INFO
    tg = notifier(stub)
    tg.send(make_alert())  # urllib3 logs the request line at DEBUG
    closed = notifier(stub, api_url="http://127.0.0.1:1")
    with pytest.raises(NotifyError) as info:
        closed.send(make_alert())
    assert not info.value.permanent
    assert "network error" in str(info.value)
    assert TOKEN not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "sendMessage" in caplog.text and TOKEN not in caplog.text


def test_hang_times_out_as_retryable(stub: TelegramStub) -> None:
    stub.script("hang:5")
    tg = notifier(stub, timeout=1)
    with pytest.raises(NotifyError) as info:
        tg.send(make_alert())
    stub.release()
    assert not info.value.permanent and "no answer within 1s" in str(info.value)


def test_edit_replaces_the_text(stub: TelegramStub) -> None:
    tg = notifier(stub)
    ref = tg.send(make_alert())
    assert ref is not None
    tg.edit(ref, make_alert(also=(("РИА", "https://ria.ru/1"), ("Интерфакс", None))))
    [edit] = stub.calls("editMessageText")
    assert edit.params["message_id"] == 1 and edit.status == 200
    assert "also: РИА, Интерфакс" in stub.messages[("4242", 1)]
    tg.edit(ref, make_alert(also=(("РИА", "https://ria.ru/1"), ("Интерфакс", None))))  # not modified: fine
    assert stub.calls("editMessageText")[-1].status == 400


def test_edit_of_a_missing_message_is_permanent(stub: TelegramStub) -> None:
    with pytest.raises(NotifyError) as info:
        notifier(stub).edit("99", make_alert())
    assert info.value.permanent and "message to edit not found" in str(info.value)


def test_get_me(stub: TelegramStub) -> None:
    assert notifier(stub).get_me()["username"] == "stub_bot"


def test_migrated_group_says_what_to_do(stub: TelegramStub, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": -1001234},
    }
    monkeypatch.setattr(stub, "_answer", lambda *a: (400, answer))
    with pytest.raises(NotifyError) as info:
        notifier(stub).send(make_alert())
    assert info.value.permanent and "set chat_id to -1001234" in str(info.value)


def test_pacing_one_message_per_second_per_chat(stub: TelegramStub) -> None:
    ticker = FakeClock()
    tg = notifier(stub, ticker, pace=True)
    for i in range(3):
        tg.send(make_alert(i))
    assert ticker.sleeps == [1.0, 1.0]


def test_pacing_twenty_per_minute_in_a_group(stub: TelegramStub) -> None:
    ticker = FakeClock()
    tg = notifier(stub, ticker, pace=True, chat_id="-100777")
    for i in range(21):
        tg.send(make_alert(i))
    assert len(stub.texts("-100777")) == 21
    assert sum(ticker.sleeps[:19]) == 19.0
    assert ticker.sleeps[-1] == pytest.approx(41.0)  # the 21st waits until the first leaves the 60 s window
    assert tg.ready_in() == pytest.approx(1.0)


def test_pacing_off(stub: TelegramStub) -> None:
    ticker = FakeClock()
    tg = notifier(stub, ticker, pace=False)
    for i in range(5):
        tg.send(make_alert(i))
    assert ticker.sleeps == [] and tg.ready_in() == 0


def test_digest_split_and_resumed_after_a_failure(stub: TelegramStub) -> None:
    tg = notifier(stub)
    alerts = [make_alert(i) for i in range(200)]
    stub.script("ok", "500")
    with pytest.raises(NotifyError):
        tg.send_digest(alerts, "Digest")
    tg.send_digest(alerts, "Digest")  # the retry continues after the chunk already accepted
    texts = stub.texts()
    assert len(texts) >= 3
    assert len(texts) == len(set(texts))
    joined = "\n".join(texts)
    assert all(f"Новость {i} " in joined for i in range(200))


def test_send_text(stub: TelegramStub) -> None:
    tg = notifier(stub)
    assert tg.send_text("test <ok> & done") == "1"
    assert stub.texts() == ["test &lt;ok&gt; &amp; done"]


def test_stand_in_as_a_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tgstub", "--token", TOKEN, "--port", "0"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}"
        with requests.Session() as http:
            http.post(f"{base}/_stub/script", json={"answers": ["429:2"]}, timeout=5)
            channel = TelegramChannel(type="telegram", bot_token=TOKEN, chat_id=1, api_url=base, pace=False)
            tg = TelegramNotifier("tg", channel)
            with pytest.raises(NotifyError):
                tg.send(make_alert())
            assert tg.send(make_alert()) == "1"
            tg.close()
            recorded = http.get(f"{base}/_stub/requests", timeout=5).json()
            assert [r["status"] for r in recorded] == [429, 200]
            assert recorded[1]["params"]["parse_mode"] == "HTML"
            [sent] = http.get(f"{base}/_stub/messages", timeout=5).json()
            assert sent["message_id"] == 1 and sent["text"].startswith("Новость 1 <b>&")
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
