"""Delivery benchmark: N queued alerts through the outbox worker to the Telegram Bot API stand-in, twice.

    python bench/deliver.py                  # 10,000 alerts, failure-free, then with 20 % of sends failing
    python bench/deliver.py --alerts 2000 --fail 0.3
    python bench/deliver.py --busy 2         # beside 2 threads that keep the GIL busy, as the polls of `monitor run` do
    python bench/deliver.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test
                                             # the same on PostgreSQL (a fresh schema per phase, dropped after),
                                             # then on SQLite in the same run: the ratio of the two rates

Setup (not timed): a fresh SQLite database in a temporary directory (monitor.store.sql.SqlStore), N items,
N alerts with one pending 'send' row each for one Telegram channel (pace: false). The stand-in
(tests/tgstub.py) runs in its own process on 127.0.0.1 and answers every sendMessage at once, so the
time measured is the outbox's own: read due rows, load each alert, render it, POST it over a kept-alive
connection, mark the row sent in its own transaction (on PostgreSQL the next message is rendered while that
mark is on its way, store/marks.py; it is sent once the mark is stored). Prints alerts/s (wall time of
Deliverer.deliver_until_idle), CPU time of this process, and peak RSS of this process (ru_maxrss) by then.

Then the same on a second fresh database with the stand-in answering --fail of the sends with 500 at
random (a seeded generator). Its rate is the alerts delivered by the moment every alert had had its first
attempt, divided by that time: how fast the channel moves a backlog while calls fail. The drain to the
last alert is printed too; it ends with the unluckiest rows' backoff (5 s, 10 s, 20 s, ... per row), which
is their latency, not the channel's rate (--fail 0: no second phase). Both phases check that every alert
arrived exactly once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.config import Config  # noqa: E402
from monitor.delivery.outbox import Deliverer, DeliveryReport  # noqa: E402
from monitor.delivery.telegram import Rendered, TelegramNotifier  # noqa: E402
from monitor.errors import NotifyError  # noqa: E402
from monitor.models import Alert, Item, Match  # noqa: E402
from monitor.store.sql import SqlStore  # noqa: E402

TOKEN = "123456:BENCH"
SUMMARY = (
    "Москва готова обсуждать вопросы стратегической стабильности и продление ДСНВ, заявил министр "
    "иностранных дел. По его словам, диалог с Вашингтоном возможен только на равноправной основе. "
) * 3


def start_stub() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tgstub", "--token", TOKEN, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the stand-in did not start: {line!r}")
    return proc, int(line.split()[1])


class Timed:
    """The notifier, with the time and outcome of every send (the rate under failures needs them)."""

    def __init__(self, notifier: TelegramNotifier) -> None:
        self.notifier = notifier
        self.name = notifier.name
        self.calls: list[tuple[float, int, bool]] = []  # (perf_counter, alert id, accepted)

    def send(self, alert: Alert) -> str | None:
        return self.send_rendered(self.render(alert))

    def render(self, alert: Alert) -> tuple[int, Rendered]:  # outbox.Renders, as the notifier is
        return alert.id, self.notifier.render(alert)

    def send_rendered(self, rendered: tuple[int, Rendered]) -> str | None:
        alert_id, message = rendered
        try:
            ref = self.notifier.send_rendered(message)
        except NotifyError:
            self.calls.append((time.perf_counter(), alert_id, False))
            raise
        self.calls.append((time.perf_counter(), alert_id, True))
        return ref

    def __getattr__(self, name: str) -> Any:
        return getattr(self.notifier, name)


def control(port: int, command: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_stub/{command}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def open_store(database: str | None, tmp: Path, label: str) -> tuple[SqlStore, Callable[[], None]]:
    """A fresh database: a SQLite file in `tmp`, or a new schema in `database`; and how to drop it."""
    if database is None:
        return SqlStore(f"sqlite:///{tmp / f'{label}.db'}"), lambda: None
    schema = f"bench_{label}_{secrets.token_hex(4)}"
    admin = sa.create_engine(database)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

    return SqlStore(database, schema=schema), drop


class Drain:
    """n alerts queued in a fresh database (not timed), then delivered: all at once, or pass by pass."""

    def __init__(self, n: int, port: int, tmp: Path, label: str, database: str | None = None) -> None:
        config = Config.model_validate(
            {
                "channels": {
                    "tg": {"type": "telegram", "bot_token": TOKEN, "chat_id": "-100500",
                           "api_url": f"http://127.0.0.1:{port}", "pace": False},
                },
                "topics": [{"id": "strategic", "name": "Стратегическая стабильность"}],
            }
        )  # fmt: skip
        self.n, self.port, self.label = n, port, label
        self.store, self.drop = open_store(database, tmp, label)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        title = f"Новость {label}-{{}}: Лавров о стратегической стабильности"
        items = [
            Item("РИА Новости", f"{label}{k}", title.format(k), f"https://ria.ru/{label}/{k}", now, summary=SUMMARY)
            for k in range(n)
        ]
        for start in range(0, len(items), 500):
            self.store.add_items(items[start : start + 500], now)
        match = Match("strategic", 0.82, 0.5, True, terms=("стратегическ* стабильност*",), keyword_hits=("ДСНВ",))
        for it in items:
            self.store.record_alert(it, [match], ["tg"], now)
        self.setup = time.perf_counter() - t0
        channel = config.channels["tg"]
        assert channel.type == "telegram"
        self.notifier = Timed(TelegramNotifier("tg", channel, topics={"strategic": "Стратегическая стабильность"}))
        self.deliverer = Deliverer(self.store, {"tg": self.notifier}, config)
        self.report = DeliveryReport()
        self.wall = self.cpu = 0.0
        self.t0: float | None = None

    def until_idle(self) -> None:
        """Deliver everything, retries included (deliver_until_idle), timed as one."""
        cpu0, self.t0 = time.process_time(), time.perf_counter()
        self.report = self.deliverer.deliver_until_idle(timeout=3600, max_rows=500)
        self.wall, self.cpu = time.perf_counter() - self.t0, time.process_time() - cpu0

    def one_pass(self) -> bool:
        """One delivery pass of up to 500 rows, its time added; whether more are due (failure-free only)."""
        cpu0, t0 = time.process_time(), time.perf_counter()
        self.t0 = t0 if self.t0 is None else self.t0
        report = self.deliverer.deliver_due(500)
        self.wall, self.cpu = self.wall + time.perf_counter() - t0, self.cpu + time.process_time() - cpu0
        self.report.add(report)
        return report.more

    def finish(self) -> dict[str, Any]:
        """The figures of the drain; checks that every alert arrived exactly once, then drops the database."""
        notifier, n, label = self.notifier, self.n, self.label
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the checks below
        notifier.notifier.close()
        counts = self.store.outbox_counts()
        self.store.close()
        self.drop()
        t0 = self.t0 or 0.0
        attempts: dict[int, int] = {}
        for _, alert_id, _ in notifier.calls:
            attempts[alert_id] = attempts.get(alert_id, 0) + 1
        first_done, tried = t0, set()
        for at, alert_id, _ in notifier.calls:
            if alert_id not in tried:
                tried.add(alert_id)
                first_done = at
        by_then = sum(ok and at <= first_done for at, _, ok in notifier.calls)
        accepted = [m["text"] for m in control(self.port, "messages", {}) if f"Новость {label}-" in m["text"]]
        report = self.report
        return {
            "setup": self.setup, "report": report, "wall": self.wall, "cpu": self.cpu, "peak_mb": peak_mb,
            "sent": counts.get("sent", 0), "calls": len(notifier.calls),
            "most_attempts": max(attempts.values(), default=0), "first_done": first_done - t0, "by_then": by_then,
            "ok": report.sent == n and counts.get("sent") == n and len(accepted) == n == len(set(accepted)),
        }  # fmt: skip


def run(n: int, port: int, tmp: Path, label: str, database: str | None = None) -> dict[str, Any]:
    """Queue n alerts in a fresh database and deliver them all; the figures of that drain."""
    drain = Drain(n, port, tmp, label, database)
    drain.until_idle()
    result = drain.finish()
    control(port, "reset", {})
    return result


def interleaved(n: int, port: int, tmp: Path, label: str, database: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """n alerts on SQLite and n on `database`, delivered in alternating passes of 500 rows (SQLite first, then
    PostgreSQL first, ...), each timed: both drains see the same load, second by second. (SQLite, PostgreSQL)."""
    lite, pg = Drain(n, port, tmp, f"lite{label}"), Drain(n, port, tmp, f"pg{label}", database)
    pending, turn = [lite, pg], 0
    while pending:
        order = pending if turn % 2 == 0 else pending[::-1]
        pending = [drain for drain in order if drain.one_pass()]
        pending.sort(key=lambda d: d is pg)
        turn += 1
    results = lite.finish(), pg.finish()
    control(port, "reset", {})
    return results


def busy(stop: threading.Event) -> None:
    """Pure Python work until `stop`, holding the GIL as a poll thread does while it parses, matches and groups: each
    blocking call of delivery (the socket, the database) then waits up to the switch interval to take it back."""
    while not stop.is_set():
        sum(i * i for i in range(1000))


BUSY_SCRIPT = "while True: sum(i * i for i in range(1000))"  # busy(), in a process of its own (--busy-process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--fail", type=float, default=0.2, help="share of sends failing in the second phase")
    parser.add_argument("--database", help="a PostgreSQL URL: run there, and on SQLite in the same run for the ratio")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --database: SQLite and PostgreSQL drains, "
        "alternated this many times; the ratio is the median of the rounds' ratios",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="with --database: the two drains alternate pass "
        "by pass (500 rows each) instead of one after the other, so they share the machine's load",
    )
    parser.add_argument("--busy", type=int, default=0, help="threads of pure Python work running beside delivery")
    parser.add_argument(
        "--busy-process",
        action="store_true",
        help="run the --busy work in a process of its own instead (delivery then has its own GIL, as a delivery "
        "child process of `monitor run` has)",
    )
    args = parser.parse_args()
    stop = threading.Event()
    workers = []
    for _ in range(args.busy):
        if args.busy_process:
            workers.append(subprocess.Popen([sys.executable, "-c", BUSY_SCRIPT]))
        else:
            threading.Thread(target=busy, args=(stop,), daemon=True).start()
    logging.basicConfig(level=logging.ERROR)  # the failing phase logs every failed attempt (rate-limited)
    proc, port = start_stub()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ratios = []
            lite = None
            for r in range(args.rounds if args.database else 1):
                load = os.getloadavg()[0]
                if args.database and args.interleave:
                    lite, free = interleaved(args.alerts, port, Path(tmp), str(r), args.database)
                else:
                    lite = run(args.alerts, port, Path(tmp), f"lite{r}") if args.database else None
                    free = run(args.alerts, port, Path(tmp), f"free{r}", args.database)
                if lite is not None:
                    pg_rate, lite_rate = free["sent"] / free["wall"], lite["sent"] / lite["wall"]
                    ratios.append(pg_rate / lite_rate)
                    print(f"round {r + 1}: PostgreSQL / SQLite rate {ratios[-1]:.2f} ({pg_rate:.0f} / {lite_rate:.0f} "
                          f"alerts/s; load average {load:.1f} → {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
            failing = None
            if args.fail > 0:  # with --fail 0 the second phase would be the first again
                control(port, "fail", {"rate": args.fail, "seed": 1})
                failing = run(args.alerts, port, Path(tmp), "failing", args.database)
    finally:
        stop.set()
        for worker in workers:
            worker.kill()
            worker.wait()
        proc.terminate()
        proc.wait(10)
    rate = free["sent"] / free["wall"]
    if lite is not None:
        lite_rate = lite["sent"] / lite["wall"]
        print(
            f"SQLite in the same run: {lite['sent']} alerts in {lite['wall']:.2f}s = {lite_rate:.0f} alerts/s "
            f"(cpu {lite['cpu']:.2f}s), {'OK' if lite['ok'] else 'INCOMPLETE'}"
        )
        print(f"PostgreSQL / SQLite rate: {statistics.median(ratios):.2f} (median of {len(ratios)} rounds: "
              f"{', '.join(f'{x:.2f}' for x in ratios)})")  # fmt: skip
    print(f"{'PostgreSQL' if args.database else 'SQLite'}: setup {free['setup']:.1f}s; {free['report']}")
    print(
        f"deliver: {free['sent']} alerts in {free['wall']:.2f}s = {rate:.0f} alerts/s "
        f"(cpu {free['cpu']:.2f}s), peak RSS {free['peak_mb']:.0f} MB, {'OK' if free['ok'] else 'INCOMPLETE'}"
    )
    if failing is None:
        return 0 if free["ok"] and (lite is None or lite["ok"]) else 1
    under = failing["by_then"] / failing["first_done"] if failing["first_done"] else 0.0
    print(f"with {args.fail:.0%} of sends failing: {failing['report']}")
    print(
        f"  {failing['by_then']} alerts delivered by the time every alert had been tried once "
        f"({failing['first_done']:.2f}s) = {under:.0f} alerts/s, {under / rate:.0%} of the failure-free rate; "
        f"all {failing['sent']} after {failing['wall']:.1f}s ({failing['calls']} calls, at most "
        f"{failing['most_attempts']} for one alert), "
        f"{'OK' if failing['ok'] else 'INCOMPLETE'}"
    )
    return 0 if free["ok"] and failing["ok"] and (lite is None or lite["ok"]) else 1


if __name__ == "__main__":
    sys.exit(main())
