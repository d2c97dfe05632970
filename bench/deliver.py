"""Delivery benchmark: N queued alerts through the outbox worker to the Telegram Bot API stand-in.

    python bench/deliver.py                  # 10,000 alerts
    python bench/deliver.py --alerts 2000    # smaller

Setup (not timed): a fresh SQLite database in a temporary directory (monitor.store.sql.SqlStore), N items,
N alerts with one pending 'send' row each for one Telegram channel (pace: false). The stand-in
(tests/tgstub.py) runs in its own process on 127.0.0.1 and answers every sendMessage at once, so the
time measured is the outbox's own: read due rows, load each alert, render it, POST it over a kept-alive
connection, mark the row sent in its own transaction. Prints alerts/s (wall time of
Deliverer.deliver_until_idle), CPU time of this process, and peak RSS of this process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.config import Config  # noqa: E402
from monitor.delivery.outbox import Deliverer  # noqa: E402
from monitor.delivery.telegram import TelegramNotifier  # noqa: E402
from monitor.models import Item, Match  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    proc, port = start_stub()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Config.model_validate(
                {
                    "channels": {
                        "tg": {"type": "telegram", "bot_token": TOKEN, "chat_id": "-100500",
                               "api_url": f"http://127.0.0.1:{port}", "pace": False},
                    },
                    "topics": [{"id": "strategic", "name": "Стратегическая стабильность"}],
                }
            )  # fmt: skip
            store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            title = "Новость {}: Лавров о стратегической стабильности"
            items = [
                Item("РИА Новости", f"k{n}", title.format(n), f"https://ria.ru/{n}", now, summary=SUMMARY)
                for n in range(args.alerts)
            ]
            for start in range(0, len(items), 500):
                store.add_items(items[start : start + 500], now)
            match = Match("strategic", 0.82, 0.5, True, terms=("стратегическ* стабильност*",), keyword_hits=("ДСНВ",))
            for it in items:
                store.record_alert(it, [match], ["tg"], now)
            setup = time.perf_counter() - t0

            channel = config.channels["tg"]
            assert channel.type == "telegram"
            notifier = TelegramNotifier("tg", channel, topics={"strategic": "Стратегическая стабильность"})
            deliverer = Deliverer(store, {"tg": notifier}, config)
            cpu0, t0 = time.process_time(), time.perf_counter()
            report = deliverer.deliver_until_idle(timeout=3600, max_rows=500)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            notifier.close()
            counts = store.outbox_counts()
            store.close()
    finally:
        proc.terminate()
        proc.wait(10)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ok = report.sent == args.alerts and counts["sent"] == args.alerts
    print(f"setup {setup:.1f}s; {report}")
    print(
        f"deliver: {report.sent} alerts in {wall:.2f}s = {report.sent / wall:.0f} alerts/s "
        f"(cpu {cpu:.2f}s), peak RSS {peak_mb:.0f} MB, {'OK' if ok else 'INCOMPLETE'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
