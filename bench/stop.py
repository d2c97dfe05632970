"""How long `monitor run` takes to exit after SIGTERM when nothing is in flight.

    python bench/stop.py                  # 10 starts, SIGTERM at a random moment of each
    python bench/stop.py --runs 20 --seed 3

Each run starts the daemon (`python -m monitor run`) on a small config: two feeds served from this process
with nothing new to match, a Telegram channel on the Bot API stand-in (tests/tgstub.py), so the `feedback`
job's getUpdates long poll is running most of the time, as it is in production. After READY=1 it waits a
random 2-8 s, sends SIGTERM and measures the time until the process has exited (wall time of this process's
`wait()`). Prints each run, then the median and the maximum. The target is <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.feedserver import FeedServer  # noqa: E402
from tests.tgstub import TelegramStub  # noqa: E402

TOKEN = "424242:stop-bench-token"
RSS = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
    b"<item><guid>w1</guid><title>Snow in Moscow</title><description>Snow and ice.</description></item>"
    b"</channel></rss>"
)


def write_config(path: Path, feeds: FeedServer, stub: TelegramStub) -> None:
    telegram = f'type: telegram, bot_token: "{TOKEN}", api_url: "{stub.url}", pace: false'
    path.write_text(
        textwrap.dedent(f"""\
            settings:
              data_dir: {path.parent / "data"}
              admin_channel: admin
            channels:
              tg: {{{telegram}, chat_id: 100}}
              admin: {{{telegram}, chat_id: 999}}
            feeds:
              - {{name: A, url: "{feeds.url("/a.xml")}", interval: 2s}}
              - {{name: B, url: "{feeds.url("/b.xml")}", interval: 2s}}
            topics:
              - id: libya
                name: Libya
                keywords: [Libya, Tripoli]
                examples: [{{title: "Talks on Libya", text: "Tripoli and Benghazi discussed a ceasefire."}}]
            """),
        encoding="utf-8",
    )


def one_run(config: Path, tmp: Path, wait: float) -> tuple[float, int]:
    sock_path = tmp / "notify.sock"
    sock_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    notify.settimeout(0.2)
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = str(sock_path)
    cmd = [sys.executable, "-m", "monitor", "--log-level", "WARNING", "run", "--config", str(config)]
    with open(tmp / "daemon.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start; see {tmp / 'daemon.log'}")
            try:
                if b"READY=1" in notify.recv(4096).split(b"\n"):
                    break
            except TimeoutError:
                continue
        time.sleep(wait)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        return time.monotonic() - started, code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stop-"))
    feeds = FeedServer()
    feeds.route("/a.xml", RSS, headers={"Content-Type": "application/rss+xml"})
    feeds.route("/b.xml", RSS, headers={"Content-Type": "application/rss+xml"})
    stub = TelegramStub(token=TOKEN).start()
    times = []
    try:
        write_config(tmp / "config.yaml", feeds, stub)
        for run in range(args.runs):
            wait = rng.uniform(2, 8)
            seconds, code = one_run(tmp / "config.yaml", tmp, wait)
            times.append(seconds)
            print(f"run {run + 1}: SIGTERM {wait:.1f}s after READY=1 -> exit {code} in {seconds:.2f}s", flush=True)
    finally:
        stub.stop()
        feeds.close()
    print(f"SIGTERM -> exit: median {statistics.median(times):.2f}s, max {max(times):.2f}s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
