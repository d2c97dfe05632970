"""Start-up cost of `monitor` commands and of the daemon, measured as whole processes.

    python bench/startup.py                   # 5 runs of each command, then 2 daemon starts
    python bench/startup.py --runs 9 --json bench/startup.json

What it measures:
- each command as a child process (the `monitor` script beside this Python, else `python -m monitor`):
  wall time, CPU time (user + system) and peak RSS, from os.wait4's rusage of that one child. Medians over
  --runs, peak RSS the largest seen. `python -c pass` and `python -c "import requests"` run in the same loop
  as references, so a busy machine shows up in them too and the ratios stay comparable.
- `monitor run` on a temporary data directory with the shipped config's topics and one feed on a local HTTP
  server, started twice (a first start builds the topic model, a second loads it): seconds from the process
  start to the model being ready, to "running" (systemd READY=1 on a socket this script binds), to the first
  request for the feed and to that poll being stored (the daemon's JSON log); then the peak RSS of the
  daemon and of each parser worker (/proc/<pid>/status VmHWM), and SIGTERM.
  The first poll of a feed is deliberately spread after a start (monitor.service.daemon, STARTUP_SPREAD);
  the table shows that offset and the poll's time without it.
Targets (issue 10): --version <= 0.3 s and validate <= 1.0 s wall on a quiet machine, no parser worker above
60 MB, start to first poll <= 3 s plus the model load.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
FEED_INTERVAL = 2.0  # seconds; the first poll after a start comes within half of it (the start-up spread)
RESTART_NEW = 5  # items that appear while the daemon is down
WORDS = (  # noqa: SIM905 - reads better as prose
    "правительство парламент министр заявил переговоры делегация соглашение встреча президент премьер экономика "
    "бюджет рынок нефть газ экспорт импорт инфляция банк кредит регион губернатор выборы партия суд закон реформа "
    "налог школа больница дорога транспорт порт граница армия флот учения безопасность саммит визит посол совет"
).split()


def articles(count: int, corpus: Path | None = None) -> list[tuple[str, str]]:
    """`count` (title, text) pairs: filler words, or the first articles of a corpus.

    Filler repeats a few dozen words, so the story grouper's word caches warm at once; a corpus of real articles
    (JSON lines with title and text, as `monitor eval` reads) shows what a cold restart costs."""
    if corpus is not None:
        opener = gzip.open if corpus.suffix == ".gz" else open
        with opener(corpus, "rt", encoding="utf-8") as fh:
            return [(row["title"], row.get("text", "")[:2000]) for row in map(json.loads, itertools.islice(fh, count))]
    rnd = random.Random(1)
    return [
        (" ".join(rnd.choices(WORDS, k=6)).capitalize(), " ".join(rnd.choices(WORDS, k=60)) + ".") for _ in range(count)
    ]


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mb: float
    status: int


# Runs the command in a child of a small Python: os.wait4's ru_maxrss counts a child's memory from before its exec
# too, so a child forked from this (larger) process would report at least this process's RSS.
TRAMPOLINE = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
print(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Run:
    """One process: wall and CPU time, peak RSS (its own rusage, not RUSAGE_CHILDREN's largest child)."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", TRAMPOLINE, *argv], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    ).stdout.split()
    wall, cpu, rss_kb, status = float(out[0]), float(out[1]), float(out[2]), int(out[3])
    return Run(wall, cpu, rss_kb / 1024, status)


def monitor_argv() -> list[str]:
    script = Path(sys.executable).with_name("monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


@dataclass(frozen=True)
class Row:
    name: str
    wall: float
    cpu: float
    rss_mb: float


def commands(runs: int) -> list[Row]:
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    monitor = monitor_argv()
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import requests"': [sys.executable, "-c", "import requests"],
        "monitor --version": [*monitor, "--version"],
        "monitor --help": [*monitor, "--help"],
        "monitor validate": [*monitor, "validate", "--config", str(ROOT / "config.yaml")],
    }
    seen: dict[str, list[Run]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved, so a burst of load on the machine hits every case alike
        for name, argv in cases.items():
            run = measure(argv, env=env)
            if run.status != 0:
                raise SystemExit(f"{name} exited {run.status}")
            seen[name].append(run)
    median = statistics.median
    return [
        Row(name, median(r.wall for r in rs), median(r.cpu for r in rs), max(r.rss_mb for r in rs))
        for name, rs in seen.items()
    ]


# --- the daemon ------------------------------------------------------------------------------------------


class Feed:
    """One RSS document on 127.0.0.1; remembers when each request came (time.time(), like the daemon's log)."""

    def __init__(self) -> None:
        self.body = b""
        self.requests: list[float] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests.append(time.time())
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, entries: list[tuple[str, str]]) -> None:
        now = format_datetime(datetime.now(UTC))
        xml = "".join(
            f"<item><guid>bench-{i}</guid><title>{escape(title)}</title><link>https://news.example/{i}</link>"
            f"<description>{escape(text)}</description><pubDate>{now}</pubDate></item>"
            for i, (title, text) in enumerate(entries)
        )
        self.body = (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>B</title>{xml}</channel></rss>'
        ).encode()
        self.requests.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/feed.xml"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(tmp: Path, feed: Feed) -> Path:
    """The shipped config's settings, channels and topics; its public feeds replaced by the one local feed."""
    shipped = (ROOT / "config.yaml").read_text(encoding="utf-8")
    head, rest = shipped.split("\nfeeds:\n", 1)
    topics = rest[rest.index("\ntopics:\n") :]
    text = (
        head.replace("data_dir: ./data", f"data_dir: {tmp / 'data'}")
        + f'\nfeeds:\n  - {{name: Bench, url: "{feed.url}", interval: {FEED_INTERVAL:g}s}}\n'
        + topics.replace("examples/", f"{ROOT / 'examples'}/")
    )
    path = tmp / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Start:
    label: str
    window: float = float("nan")  # seconds from the process start
    model: float = float("nan")
    running: float = float("nan")
    first_request: float = float("nan")
    spread: float = float("nan")  # the first poll's deliberate offset after "running"
    stored: float = float("nan")
    daemon_mb: float = float("nan")
    workers_mb: list[float] = field(default_factory=list)


def _status_kb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return float("nan")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _is_worker(pid: int) -> bool:
    """A parser worker, not multiprocessing's resource tracker."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    return b"resource_tracker" not in cmdline and b"forkserver" not in cmdline


MILESTONES = {"story window": "window", "topic model": "model", "feed Bench:": "stored"}  # log line -> Start field


def daemon_start(label: str, config: Path, feed: Feed, tmp: Path) -> Start:
    sys.path.insert(0, str(ROOT))
    from monitor.backoff import jitter  # the daemon's own spread, to report it (light: no model)

    result = Start(label, spread=jitter("Bench", FEED_INTERVAL / 2))
    sock_path = tmp / "notify.sock"
    sock_path.unlink(missing_ok=True)
    log_path = tmp / f"{label}.log"
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = str(sock_path)
    feed.requests.clear()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, log_path.open("wb") as log:
        notify.bind(str(sock_path))
        notify.settimeout(0.05)
        started = time.time()
        proc = subprocess.Popen(
            [*monitor_argv(), "--log-format", "json", "--log-level", "INFO", "run", "--config", str(config)],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with log_path.open(encoding="utf-8", errors="replace") as lines:
                deadline, partial = time.monotonic() + 600, ""
                while math.isnan(result.stored):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the daemon exited or hung ({proc.returncode}):\n{log_path.read_text()}")
                    with contextlib.suppress(TimeoutError):
                        if b"READY=1" in notify.recv(4096).split(b"\n"):
                            result.running = time.time() - started
                    *complete, partial = (partial + lines.read()).split("\n")  # the daemon may be mid-line
                    for line in complete:
                        if not line.startswith("{"):
                            continue  # the shipped config's console channel prints alerts to stdout
                        entry = json.loads(line)
                        if entry["level"] == "ERROR" or (entry["level"] == "WARNING" and "Bench" in entry["msg"]):
                            raise SystemExit(f"the daemon logged: {entry['msg']}")
                        for prefix, name in MILESTONES.items():
                            if entry["msg"].startswith(prefix):
                                setattr(result, name, datetime.fromisoformat(entry["ts"]).timestamp() - started)
            result.first_request = feed.requests[0] - started
            result.daemon_mb = _status_kb(proc.pid, "VmHWM") / 1024
            result.workers_mb = [_status_kb(c, "VmHWM") / 1024 for c in _children(proc.pid) if _is_worker(c)]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result


def daemon(count: int, corpus: Path | None) -> list[Start]:
    tmp = Path(tempfile.mkdtemp(prefix="monitor-startup-"))
    feed = Feed()
    try:
        config = write_config(tmp, feed)
        pool = articles(count + RESTART_NEW, corpus)
        feed.serve(pool[:count])  # a new feed: all of it is stored and matched (a backlog: not alerted)
        first = daemon_start("first start", config, feed, tmp)
        feed.serve(pool)  # the restart regroups a story window of `count` items, then stores a few new ones
        return [first, daemon_start("restart", config, feed, tmp)]
    finally:
        feed.close()
        shutil.rmtree(tmp, ignore_errors=True)


# --- report ------------------------------------------------------------------------------------------------


def report(rows: list[Row], starts: list[Start]) -> str:
    lines = []
    if rows:
        requests = next(r for r in rows if "import requests" in r.name)
        lines.append(f"{'command':<28} {'wall s':>7} {'CPU s':>6} {'RSS MB':>7} {'wall / import requests':>23}")
        lines += [
            f"{r.name:<28} {r.wall:7.3f} {r.cpu:6.3f} {r.rss_mb:7.1f} {r.wall / requests.wall:23.1f}" for r in rows
        ]
    lines.append(f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
    columns = ("window", "model", "running", "1st poll", "spread", "poll-spread", "stored", "daemon MB")
    lines += ["", f"{'daemon: s from start':<20}" + "".join(f"{c:>12}" for c in columns) + "  parser workers MB"]
    for s in starts:
        values = (
            s.window,
            s.model,
            s.running,
            s.first_request,
            s.spread,
            s.first_request - s.spread,
            s.stored,
            s.daemon_mb,
        )
        workers = ", ".join(f"{mb:.1f}" for mb in s.workers_mb) or "-"
        lines.append(f"{s.label:<20}" + "".join(f"{v:12.2f}" for v in values) + f"  {workers}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default 5; 0: the daemon only)")
    parser.add_argument("--items", type=int, default=300, help="items in the daemon's feed (default 300)")
    parser.add_argument("--corpus", help="serve articles from this JSON-lines corpus (.gz too) instead of filler")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    rows = commands(args.runs) if args.runs > 0 else []
    starts = daemon(args.items, Path(args.corpus) if args.corpus else None)
    print(report(rows, starts))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"commands": [asdict(r) for r in rows], "daemon": [asdict(s) for s in starts]}, indent=2) + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
