"""The delivery child of `monitor run` (service/deliverer.py): a real spawned process, a real store on disk (and on
PostgreSQL when MONITOR_TEST_DATABASE_URL is set), the Telegram stand-in on 127.0.0.1.

The child's own tick is set to an hour here, so whatever it delivers after its first pass it delivers because it
was kicked (or restarted, or told of a lease).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config
from monitor.models import Item, Match
from monitor.service.deliverer import DeliveryProcess, PassReport
from monitor.store import SqlStore
from tests.storefixtures import PG_ENV, PG_SKIP, schema_url
from tests.tgstub import TelegramStub

pytestmark = pytest.mark.slow  # each test spawns an interpreter

TOKEN = "555:child-test-token"
ROOT = Path(__file__).parent.parent
HOUR = 3600.0


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def make_config(tmp_path: Path, stub: TelegramStub, chats: dict[str, str], database: str | None = None) -> Config:
    channels = {
        name: {"type": "telegram", "bot_token": TOKEN, "chat_id": chat, "api_url": stub.url, "pace": False,
               "timeout": 2}
        for name, chat in chats.items()
    }  # fmt: skip
    settings: dict[str, Any] = {"data_dir": str(tmp_path / "data")}
    if database:
        settings["database"] = database
    return Config.model_validate(
        {"settings": settings, "channels": channels, "topics": [{"id": "libya", "name": "Ливия"}]}
    )


def queue(store: SqlStore, n: int, channels: list[str], label: str = "a") -> list[str]:
    """n alerts for `channels`; the titles they carry."""
    now = datetime.now(UTC)
    titles = []
    for k in range(n):
        title = f"Новость {label}{k} о Ливии"
        item = Item("ТАСС", f"{label}{k}", title, f"https://tass.ru/{label}/{k}", now)
        store.add_items([item], now)
        assert store.record_alert(item, [Match("libya", 0.9, 0.5, True)], channels, now) is not None
        titles.append(title)
    return titles


class Child:
    """A DeliveryProcess with its reports recorded."""

    def __init__(self, config: Config, **kwargs: Any) -> None:
        self.passes: list[PassReport] = []
        self.busy: list[frozenset[str]] = []
        self._lock = threading.Lock()
        self.process = DeliveryProcess(config, tick=HOUR, on_pass=self._passed, on_busy=self.busy.append, **kwargs)

    def _passed(self, report: PassReport) -> None:
        with self._lock:
            self.passes.append(report)

    def sent(self) -> int:
        with self._lock:
            return sum(report.sent for report in self.passes)

    def start(self) -> DeliveryProcess:
        self.process.start()
        wait_for(lambda: self.passes, what="the child's first pass")  # it is up: nothing below races its start
        return self.process


@pytest.fixture
def stub() -> Iterator[TelegramStub]:
    with TelegramStub(token=TOKEN) as server:
        yield server


@pytest.fixture
def children() -> Iterator[list[DeliveryProcess]]:
    started: list[DeliveryProcess] = []
    yield started
    for process in started:
        process.stop()
        process.join(5)


def test_a_kick_starts_a_pass_and_the_reports_reach_the_parent(
    tmp_path: Path, stub: TelegramStub, children: list[DeliveryProcess]
) -> None:
    config = make_config(tmp_path, stub, {"tg": "100"})
    store = SqlStore(config.database_url)
    child = Child(config)
    children.append(child.start())
    titles = queue(store, 3, ["tg"])
    child.process.kick()  # the child's tick is an hour: only the kick can start this pass
    wait_for(lambda: child.sent() == 3, what="three alerts reported sent")
    texts = stub.texts("100")
    assert all(sum(title in text for text in texts) == 1 for title in titles)
    assert store.outbox_counts().get("sent") == 3
    store.close()


def test_a_child_killed_mid_send_is_started_again_and_each_alert_goes_out_once(
    tmp_path: Path, stub: TelegramStub, children: list[DeliveryProcess], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, stub, {"tg": "100"})
    store = SqlStore(config.database_url)
    child = Child(config)
    process = child.start()
    children.append(process)
    first = process.pid
    assert first is not None
    titles = queue(store, 5, ["tg"])
    # The third send hangs: Telegram has not answered it, so it is not sent; the kill comes while it hangs.
    stub.script("ok", "ok", "hang")
    process.kick()
    wait_for(lambda: len(stub.calls("sendMessage")) == 3, what="the hanging third sendMessage")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not process.alive(), what="the child's death")
    stub.release()
    with caplog.at_level(logging.WARNING, logger="monitor.service.deliverer"):
        wait_for(lambda: (process.check(), process.pid != first)[1], what="the child started again")
    assert [r.getMessage() for r in caplog.records] == [
        f"delivery process {first} ended (killed by SIGKILL); starting it again"
    ]  # one line, no traceback
    process.kick()
    wait_for(lambda: store.outbox_counts().get("sent") == 5, what="all five marked sent")
    texts = stub.texts("100")
    assert [sum(title in text for text in texts) for title in titles] == [1, 1, 1, 1, 1]
    assert process.restarts == 1
    store.close()


def test_kicks_never_block_the_poll_threads_even_when_the_child_does_not_read_them(
    tmp_path: Path, stub: TelegramStub, children: list[DeliveryProcess]
) -> None:
    config = make_config(tmp_path, stub, {"tg": "100"})
    store = SqlStore(config.database_url)
    child = Child(config)
    process = child.start()
    children.append(process)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGSTOP)  # stuck: it reads nothing, the kick pipe fills (64 KiB on Linux)
    try:
        kicker = threading.Thread(target=lambda: [process.kick() for _ in range(200_000)], daemon=True)
        kicker.start()
        kicker.join(60)
        assert not kicker.is_alive(), "a kick blocked on the full pipe"
    finally:
        os.kill(process.pid, signal.SIGCONT)
    [title] = queue(store, 1, ["tg"])
    process.kick()
    wait_for(lambda: child.sent() == 1, what="the alert after the kicks")
    assert [title in text for text in stub.texts("100")] == [True]
    store.close()


def test_a_reloaded_config_reaches_the_child(
    tmp_path: Path, stub: TelegramStub, children: list[DeliveryProcess]
) -> None:
    config = make_config(tmp_path, stub, {"tg": "100"})
    store = SqlStore(config.database_url)
    child = Child(config)
    children.append(child.start())
    [before] = queue(store, 1, ["tg"], "before")
    child.process.kick()
    wait_for(lambda: child.sent() == 1, what="the first alert")
    passes = len(child.passes)
    child.process.configure(make_config(tmp_path, stub, {"tg": "200"}))  # the channel moved to another chat
    # The config and the kicks travel on two pipes, so a kick sent now could overtake the config. Applying it
    # wakes a pass of its own (no tick in these tests): once that pass is reported, the child has it.
    wait_for(lambda: len(child.passes) > passes, what="the pass the new config wakes")
    [after] = queue(store, 1, ["tg"], "after")
    child.process.kick()
    wait_for(lambda: child.sent() == 2, what="the second alert")
    assert [before in text for text in stub.texts("100")] == [True]
    assert [after in text for text in stub.texts("200")] == [True]
    store.close()


def test_stop_ends_the_child(tmp_path: Path, stub: TelegramStub) -> None:
    child = Child(make_config(tmp_path, stub, {"tg": "100"}))
    process = child.start()
    process.stop()
    assert process.join(10)  # by itself, not killed
    assert not process.alive()


def test_a_parent_killed_with_sigkill_leaves_no_delivering_orphan(tmp_path: Path, stub: TelegramStub) -> None:
    config = make_config(tmp_path, stub, {"tg": "100"})
    (tmp_path / "config.json").write_text(config.model_dump_json(), encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from pathlib import Path
        from monitor.config import Config
        from monitor.service.deliverer import DeliveryProcess
        config = Config.model_validate_json(Path({str(tmp_path / "config.json")!r}).read_text())
        child = DeliveryProcess(config, on_pass=lambda report: print("PASS", flush=True))
        child.start()
        print("CHILD", child.pid, flush=True)
        sys.stdin.readline()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None and parent.stdin is not None
        lines = {parent.stdout.readline().strip() for _ in range(2)}  # the pid, and the first pass: delivering
        assert "PASS" in lines
        [pid] = [int(line.split()[1]) for line in lines if line.startswith("CHILD ")]
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.wait(10) == -signal.SIGKILL
    wait_for(lambda: not running(pid), 10, "the orphaned child's end")


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps it here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The store the lease test runs on: SQLite in the data directory, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield None
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_SKIP)
    with schema_url(url, "d") as schema_scoped:
        yield schema_scoped


def test_with_replicas_the_child_delivers_only_the_channels_leased_and_only_while_the_lease_lasts(
    tmp_path: Path, stub: TelegramStub, children: list[DeliveryProcess], database: str | None
) -> None:
    config = make_config(tmp_path, stub, {"one": "100", "two": "200"}, database)
    store = SqlStore(config.database_url)
    child = Child(config, leased=True)  # no lease until told: a replica's child starts delivering nothing
    children.append(child.start())
    one = queue(store, 2, ["one"], "one")  # older than two's: a pass that could deliver them would do so first
    two = queue(store, 2, ["two"], "two")
    child.process.lease(["two"], HOUR)
    child.process.kick()
    wait_for(lambda: child.sent() == 2, what="channel two's alerts")
    assert frozenset({"two"}) in child.busy  # the parent heard which leases the pass was using
    assert stub.texts("100") == []  # channel one is another replica's
    assert [sum(title in text for text in stub.texts("200")) for title in two] == [1, 1]

    child.process.lease(["two"], 0.0)  # the lease ran out (the parent could not renew it)
    late = queue(store, 1, ["two"], "late")
    child.process.kick()
    child.process.lease(["one"], HOUR)  # ...then this replica gets channel one
    child.process.kick()
    wait_for(lambda: child.sent() == 4, what="channel one's alerts")
    assert [sum(title in text for text in stub.texts("100")) for title in one] == [1, 1]
    assert not any(late[0] in text for text in stub.texts("200"))  # two's lease is over: its new row waits
    assert store.outbox_counts().get("pending") == 1
    store.close()


def test_the_child_imports_only_what_delivery_needs() -> None:
    # What the spawned child imports: this module (to unpickle _serve) and, run from the `monitor` script,
    # the script's own import of monitor.cli (multiprocessing re-runs the parent's main module as __mp_main__).
    heavy = ("numpy", "scipy", "sklearn", "pymorphy3", "trafilatura", "feedparser", "apscheduler", "prometheus_client")
    probe = (
        f"import sys, monitor.cli, monitor.service.deliverer; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
