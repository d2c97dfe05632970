"""Benchmark `monitor run`: many feeds on loopback, items appearing at a steady rate, alerts to the Telegram stand-in.

    python bench/daemon.py                       # 1,000 feeds, 10 minutes, 30 s interval, 2 new items/s
    python bench/daemon.py --minutes 2 --feeds 300 --interval 10 --json bench/daemon-short.json
    python bench/daemon.py --burst 5000 --minutes 3   # 5,000 new items at once, then the steady stream
    python bench/daemon.py --memory                   # RSS: the polling process, and the daemon after a refit

What it measures:
- latency: from the moment an item is added to its feed on the local server to the moment the Telegram
  stand-in receives the sendMessage carrying it (both clocks are this process's time.monotonic());
  median, p90, p99, max. The target is p99 <= interval + 2 s: a poll comes at most one interval later.
- CPU and RSS of the daemon process, sampled every --sample seconds from /proc/<pid>/stat and status,
  so growth over the run is visible (compare the first and the last quarter).

Feeds are spread over --hosts loopback addresses (127.0.0.1, 127.0.0.2, ...: all of 127/8 is loopback on
Linux) because the daemon polls at most 2 feeds per host at once, as a polite client should; 1,000 feeds
on one host would measure that limit, not the daemon. Every feed starts with a few items that match no
topic; each new item matches the topic (keywords plus random filler words, so no two items are the same
story and every match is its own alert).

--burst N adds N matching items at once (spread over the feeds) when measuring starts; their latencies are
reported apart. --memory measures RSS instead (issue 16): (1) a fresh interpreter that polls the farm once
(fetch, parse, store; Pipeline.ingest) with the topic model not loaded: what polling itself holds, and which
heavy libraries it imported; then the same process after loading the model; (2) `monitor run` with --topics
topics (default 50) and --stored items (default 100,000, first seen evenly over the 30-day retention) after
its refit job has run (refit_every 60 s): RSS sampled until then and --settle seconds after, with the summed
RSS of its child processes beside it (the parser workers, and the model-fitting worker while a fit runs).

Every mode runs the daemon with the Environment= of systemd/topic-monitor.service (PYTHONUNBUFFERED=1,
MALLOC_ARENA_MAX=2), as systemd would; --no-unit-env leaves it out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "topic-monitor.service"  # its Environment= is the daemon's (unit_environment)
sys.path.insert(0, str(ROOT))

from monitor.models import Item  # noqa: E402
from monitor.store import SqlStore  # noqa: E402
from tests.tgstub import TelegramStub  # noqa: E402

TOKEN = "424242:bench-token"
KEEP = 20  # items per feed document

FILLER = (  # noqa: SIM905 - reads better as prose
    "правительство парламент министр заявил переговоры делегация соглашение встреча президент "
    "премьер экономика бюджет рынок нефть газ экспорт импорт инфляция банк кредит инвестиции регион "
    "губернатор выборы партия оппозиция протест суд прокуратура закон реформа налог пенсия школа "
    "больница дорога транспорт порт граница армия флот учения безопасность конференция саммит визит "
    "столица посол совет комиссия доклад рейтинг прогноз урожай засуха наводнение пожар спасатели "
    "полиция расследование компания завод производство поставки контракт тендер сделка акции биржа "
    "валюта курс санкции пошлины "
).split()
NOISE = ("В Москве ожидается снег", "Синоптики обещают снегопад и гололёд в выходные.")


@dataclass
class FeedDoc:
    items: list[tuple[str, str, str, str]] = field(default_factory=list)  # (guid, title, text, pubdate)
    version: int = 0
    body: bytes = b""


class Farm:
    """Feeds on several loopback addresses; items are added by `add`, bodies rendered once per change."""

    def __init__(self, feeds: int, hosts: int) -> None:
        self.lock = threading.Lock()
        self.docs = [FeedDoc() for _ in range(feeds)]
        self.requests = [0] * feeds
        self.servers: list[ThreadingHTTPServer] = []
        for h in range(hosts):
            server = ThreadingHTTPServer((f"127.0.0.{h + 1}", 0), self._handler())
            server.daemon_threads = True
            server.request_queue_size = 256
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)
        for i in range(feeds):
            for j in range(3):
                self.add(i, f"noise-{i}-{j}", *NOISE)

    def url(self, i: int) -> str:
        host, port = self.servers[i % len(self.servers)].server_address[:2]
        return f"http://{host}:{port}/f{i}.xml"

    def add(self, i: int, guid: str, title: str, text: str) -> None:
        now = format_datetime(datetime.now(UTC))
        with self.lock:
            doc = self.docs[i]
            doc.items = [(guid, title, text, now), *doc.items][:KEEP]
            doc.version += 1
            entries = "".join(
                f"<item><guid>{escape(g)}</guid><title>{escape(t)}</title>"
                f"<link>https://bench.example/{escape(g)}</link><description>{escape(d)}</description>"
                f"<pubDate>{p}</pubDate></item>"
                for g, t, d, p in doc.items
            )
            doc.body = (
                f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>feed {i}</title>'
                f"<link>https://bench.example/</link>{entries}</channel></rss>"
            ).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                m = re.fullmatch(r"/f(\d+)\.xml", self.path)
                if not m or int(m.group(1)) >= len(farm.docs):
                    self.send_error(404)
                    return
                i = int(m.group(1))
                with farm.lock:
                    farm.requests[i] += 1
                    doc = farm.docs[i]
                    etag, body = f'"{doc.version}"', doc.body
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def extra_topics(n: int) -> str:
    """Topics besides the Libya one, each with its own made-up keywords and description: they match nothing."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        words = [pseudo_word(rng) for _ in range(3)]
        about = " ".join(rng.sample(FILLER, 8))
        out.append(
            f'  - {{id: t{i}, name: Тема {i}, description: "{words[0]} {words[1]}: {about}", '
            f"keywords: [{', '.join(words)}]}}\n"
        )
    return "".join(out)


def write_config(path: Path, farm: Farm, stub: TelegramStub, args: argparse.Namespace) -> None:
    feeds = "".join(
        f'  - {{name: f{i}, url: "{farm.url(i)}", interval: {args.interval}s}}\n' for i in range(len(farm.docs))
    )
    refit = "  refit_every: 60s\n" if args.memory else ""
    path.write_text(
        textwrap.dedent(f"""\
            settings:
              data_dir: {path.parent / "data"}
              workers: {args.workers}
              timeout: 10s
            """)
        + refit
        + textwrap.dedent(f"""\
            channels:
              tg: {{type: telegram, bot_token: "{TOKEN}", chat_id: 1, api_url: "{stub.url}", pace: false}}
            topics:
              - id: libya
                name: Ливия
                description: "Ливия: конфликт между Триполи и армией Хафтара, прекращение огня, нефть."
                keywords: [Ливия, Триполи, Хафтар]
                examples:
                  - title: "Переговоры по Ливии"
                    text: "Стороны ливийского конфликта в Триполи и Бенгази обсудили перемирие и нефть."
            """)
        + (extra_topics(args.topics - 1) if args.memory else "")
        + "feeds:\n"
        + feeds,
        encoding="utf-8",
    )


def pseudo_word(rng: random.Random) -> str:
    consonants, vowels = "бвгдзклмнпрстфхцчш", "аеиоуяю"
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(3, 5)))


def matching_item(n: int, rng: random.Random) -> tuple[str, str, str]:
    """An item about the topic that is its own story: every item one event, as on a real watchlist's steady day.

    Only "в Ливии" and a town are shared. Items that shared a whole sentence ("Армия Хафтара и правительство в
    Триполи") were grouped into a few stories, which alert once and then edit, so most items went untimed."""
    own = [pseudo_word(rng) for _ in range(18)]
    words = rng.sample(FILLER, 6)
    town = rng.choice(["Триполи", "Бенгази", "Сирте", "Мисурате"])
    title = f"{own[0].capitalize()} {own[1]} {words[0]} в Ливии: {own[2]} {own[3]}"
    text = f"{own[4].capitalize()} {' '.join(own[5:11])} {words[1]} {town}. {' '.join(own[11:] + words[2:])} в Ливии."
    return f"bench-{n}", title, text


@dataclass
class Sample:
    t: float
    cpu: float  # percent of one core since the previous sample
    rss_mb: float
    children_mb: float = 0.0  # the daemon's child processes: parser workers, the model-fitting worker while it fits


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[Sample] = []
        self.stopped = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime

    def rss_mb(self, pid: int | None = None) -> float:
        for line in Path(f"/proc/{pid or self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def children_mb(self) -> float:
        """The summed RSS of the daemon's child processes."""
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.pid:  # its parent
                    total += self.rss_mb(int(stat.parent.name))
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
        return total

    def run(self) -> None:
        start = time.monotonic()
        last_t, last_cpu = start, self.cpu_seconds()
        while not self.stopped.wait(self.every):
            try:
                now, cpu = time.monotonic(), self.cpu_seconds()
                cpu_pct = 100 * (cpu - last_cpu) / (now - last_t)
                self.samples.append(Sample(now - start, cpu_pct, self.rss_mb(), self.children_mb()))
            except (FileNotFoundError, ProcessLookupError):
                return
            last_t, last_cpu = now, cpu


def unit_environment() -> dict[str, str]:
    """The Environment= assignments of the shipped systemd unit (systemd.exec(5); KEY=VALUE, shell-like quoting)."""
    found: dict[str, str] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.partition("=")[2]):
                key, _, value = assignment.partition("=")
                found[key] = value
    return found


def daemon_env(args: argparse.Namespace, notify_socket: Path | None) -> dict[str, str]:
    """This process's environment, plus the unit's Environment= (the daemon runs as systemd would run it) unless
    --no-unit-env, and the notify socket."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "WATCHDOG_USEC")}
    if args.unit_env:
        env.update(unit_environment())
    if notify_socket is not None:
        env["NOTIFY_SOCKET"] = str(notify_socket)
    return env


def wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}")
        try:
            if b"READY=1" in sock.recv(4096).split(b"\n"):
                return
        except TimeoutError:
            continue
    raise SystemExit("no READY=1 from the daemon")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long items keep appearing (default 10)")
    parser.add_argument("--interval", type=int, default=30, help="poll interval of every feed, seconds (default 30)")
    parser.add_argument("--rate", type=float, default=2.0, help="new items per second over all feeds (default 2)")
    parser.add_argument("--hosts", type=int, default=20, help="loopback addresses the feeds are spread over")
    parser.add_argument("--workers", type=int, default=16, help="settings.workers (default 16)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between CPU/RSS samples")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--no-unit-env", dest="unit_env", action="store_false",
        help="run the daemon without the Environment= of systemd/topic-monitor.service (MALLOC_ARENA_MAX=2)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (config, db, log)")
    parser.add_argument("--burst", type=int, default=0, help="matching items added at once when measuring starts")
    parser.add_argument("--memory", action="store_true", help="measure RSS (see above) instead of latency")
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="run the daemon from this checkout (a reference in the same run)"
    )
    parser.add_argument("--topics", type=int, default=50, help="--memory: topics in the config (default 50)")
    parser.add_argument("--stored", type=int, default=100_000, help="--memory: items stored beforehand")
    parser.add_argument("--settle", type=float, default=30.0, help="--memory: seconds sampled after the refit")
    args = parser.parse_args(argv)
    if args.memory:
        return memory(args)

    tmp = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    farm = Farm(args.feeds, args.hosts)
    stub = TelegramStub(token=TOKEN).start()
    config = tmp / "config.yaml"
    write_config(config, farm, stub, args)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp / "notify.sock"))
    notify.settimeout(0.2)
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115
    env = daemon_env(args, tmp / "notify.sock")
    cmd = [sys.executable, "-m", "monitor", "--log-level", "WARNING", "run", "--config", str(config)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=args.code, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(notify, proc, 120)
        notify.close()  # nobody reads STATUS= lines from here on (the daemon drops them, never blocks)
        print(
            f"daemon ready in {time.monotonic() - started:.1f}s; {args.feeds} feeds on {args.hosts} hosts, "
            f"interval {args.interval}s; warming up",
            flush=True,
        )
        deadline = time.monotonic() + 3 * args.interval + 60
        while min(farm.requests) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        print(f"every feed polled once after {time.monotonic() - started:.1f}s", flush=True)
        sampler = Sampler(proc.pid, args.sample)
        sampler.start()

        rng = random.Random(1)
        appeared: dict[str, float] = {}
        wall: dict[str, datetime] = {}  # the same moments on the clock the daemon stores
        n = 0
        for _ in range(args.burst):  # all at once: the next poll of each feed finds several new items
            guid, title, text = matching_item(n, rng)
            farm.add(n % args.feeds, guid, title, text)
            appeared[guid], wall[guid] = time.monotonic(), datetime.now(UTC)
            n += 1
        burst = set(appeared)
        run_until = time.monotonic() + args.minutes * 60
        next_at = time.monotonic()
        while time.monotonic() < run_until:
            guid, title, text = matching_item(n, rng)
            farm.add(rng.randrange(args.feeds), guid, title, text)
            appeared[guid] = time.monotonic()
            n += 1
            next_at += 1 / args.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
            if n % max(1, int(args.rate * 60)) == 0:
                print(f"  {n} items added, {len(stub.calls('sendMessage'))} alerts received", flush=True)
        time.sleep(args.interval + 5)  # stragglers: the last items' polls
        sampler.stopped.set()

        latencies = []
        burst_latencies = []
        seen: set[str] = set()
        edits = 0
        for call in stub.calls():  # the first sendMessage (or story edit) that carries each item
            if call.method not in ("sendMessage", "editMessageText") or call.status != 200:
                continue
            for guid in re.findall(r"bench-\d+", str(call.params.get("text"))):
                if guid in appeared and guid not in seen:
                    seen.add(guid)
                    latencies.append(call.at - appeared[guid])
                    if guid in burst:
                        burst_latencies.append(call.at - appeared[guid])
                    edits += call.method == "editMessageText"
        cpu_s = {"daemon": round(sampler.cpu_seconds(), 1)}  # since its start; the delivery child's apart
        child = delivery_child(proc.pid)
        if child is not None:
            cpu_s["delivery_child"] = round(cpu_of(child, sampler.tick), 1)
        stop_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        stop_s = time.monotonic() - stop_at
    finally:
        if proc.poll() is None:
            proc.kill()
        stub.stop()
        farm.close()
        log.close()
        notify.close()

    samples = sampler.samples
    quarter = max(1, len(samples) // 4)
    first, last = samples[:quarter], samples[-quarter:]
    result = {
        "feeds": args.feeds,
        "hosts": args.hosts,
        "interval_s": args.interval,
        "minutes": args.minutes,
        "rate_per_s": args.rate,
        "workers": args.workers,
        "items_added": n,
        "items_delivered": len(latencies),
        "burst": {
            "items": args.burst,
            "delivered": len(burst_latencies),
            "p99_s": round(pct(burst_latencies, 0.99), 2) if burst_latencies else None,
            "max_s": round(max(burst_latencies), 2) if burst_latencies else None,
        },
        "burst_stages_s": stages(tmp / "data" / "monitor.db", {g: wall[g] for g in burst}) if args.burst else None,
        "of_which_by_story_edit": edits,
        "latency_s": {
            "median": round(statistics.median(latencies), 2) if latencies else None,
            "p90": round(pct(latencies, 0.90), 2),
            "p99": round(pct(latencies, 0.99), 2),
            "max": round(max(latencies), 2) if latencies else None,
            "target_p99": args.interval + 2,
        },
        "cpu_percent": {
            "first_quarter": round(statistics.mean(s.cpu for s in first), 1) if first else None,
            "last_quarter": round(statistics.mean(s.cpu for s in last), 1) if last else None,
        },
        "rss_mb": {
            "first_quarter": round(statistics.mean(s.rss_mb for s in first), 1) if first else None,
            "last_quarter": round(statistics.mean(s.rss_mb for s in last), 1) if last else None,
            "max": round(max(s.rss_mb for s in samples), 1) if samples else None,
        },
        "samples": [(round(s.t), round(s.cpu, 1), round(s.rss_mb, 1)) for s in samples],
        "sigterm_exit": {"code": code, "seconds": round(stop_s, 2)},
        "cpu_seconds": cpu_s,
        "polls": sum(farm.requests),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    print("samples (t s, cpu %, rss MB):", " ".join(f"{t}:{c}/{r}" for t, c, r in result["samples"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.keep:
        print(f"kept {tmp}")
    return 0


def stages(db: Path, appeared: Mapping[str, datetime]) -> dict[str, dict[str, float]]:
    """Where the burst's time went, from the daemon's database: median / p99 / max of each stage.

    appeared → polled: waiting for the feed's poll (items.first_seen is the poll's start); polled → queued:
    fetch, parse, store, classify, group, one transaction (alerts.created is taken when the poll's items are
    grouped); queued → sent: the outbox (outbox.sent_at, marked right after Telegram's answer)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT i.key, i.first_seen, a.created, o.sent_at FROM items i JOIN alerts a ON a.item_id = i.id "
            "JOIN outbox o ON o.alert_id = a.id AND o.kind = 'send' AND o.status = 'sent'"
        ).fetchall()
    finally:
        conn.close()

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    spans: dict[str, list[float]] = {"appeared → polled": [], "polled → queued": [], "queued → sent": []}
    for key, seen, created, sent in rows:
        if key not in appeared:
            continue
        marks = [appeared[key], at(seen), at(created), at(sent)]
        for name, start, end in zip(spans, marks, marks[1:], strict=False):
            spans[name].append((end - start).total_seconds())
    return {
        name: {"items": len(v), "median": round(statistics.median(v), 2), "p99": round(pct(v, 0.99), 2),
               "max": round(max(v), 2)}
        for name, v in spans.items() if v
    }  # fmt: skip


POLL_ONLY = """
import json, resource, sys
from monitor import config as cfg
from monitor.feeds.concurrency import poll_all
from monitor.feeds.http import HttpFetcher
from monitor.feeds.pool import ParserPool
from monitor.pipeline import Pipeline
from monitor.ports import SystemClock
from monitor.store import SqlStore
from monitor.stories.group import StoryGrouper

HEAVY = {"sklearn", "scipy", "numpy", "pymorphy3", "trafilatura", "apscheduler"}

def state():
    rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
    heavy = sorted({name.split(".")[0] for name in sys.modules} & HEAVY)
    return {"rss_mb": round(rss, 1), "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "heavy_modules": heavy}

config = cfg.load(sys.argv[1], env={})
store = SqlStore(config.database_url)
fetcher = HttpFetcher.from_settings(config.settings)
parser = ParserPool()
# Pipeline.ingest never reads the model: polling is measured before one is loaded.
pipeline = Pipeline(config, store, fetcher, None, StoryGrouper(), SystemClock(), parse=parser)
reports = poll_all(config.feeds, lambda feed: pipeline.ingest(feed)[0].status, workers=config.settings.workers)
polled = {"polls_ok": sum(r == "ok" for r in reports), "items": store.count_items(), **state()}
from monitor.app import load_model
load_model(config, store)
print(json.dumps({"polled, model not loaded": polled, "after loading the model": state()}))
parser.close()
"""


def fill(url: str, stored: int, retention: float) -> None:
    """`stored` items, first seen evenly over the retention window (most of them older than the story window)."""
    rng = random.Random(3)
    # A news-like vocabulary: a few thousand words, drawn Zipf-like (unique words per item would make the topic
    # model's vocabulary, and its memory, grow with every item as no real stream does).
    pool = sorted({pseudo_word(rng) for _ in range(12_000)})[:8000]
    weights = [1 / (rank + 1) for rank in range(len(pool))]
    store = SqlStore(url)
    now = datetime.now(UTC)
    days = max(1, int(retention // 86400))
    per_day = stored // days
    try:
        for day in range(days):
            seen = now - timedelta(days=days - day - 0.5)
            batch = []
            for j in range(per_day):
                words = rng.sample(FILLER, 12) + rng.choices(pool, weights=weights, k=60)
                batch.append(
                    Item(
                        feed=f"f{j % 1000}",
                        key=f"old-{day}-{j}",
                        title=" ".join(words[:8]).capitalize(),
                        link=f"https://bench.example/old-{day}-{j}",
                        published=seen,
                        summary=" ".join(words),
                    )
                )
            store.add_items(batch, seen)
    finally:
        store.close()


def memory(args: argparse.Namespace) -> int:
    """Issue 16's two memory figures: polling alone, and the daemon after a refit."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    farm = Farm(args.feeds, args.hosts)
    stub = TelegramStub(token=TOKEN).start()
    result: dict[str, object] = {"feeds": args.feeds, "topics": args.topics, "stored": args.stored}
    try:
        polling = tmp / "polling" / "config.yaml"
        polling.parent.mkdir()
        write_config(polling, farm, stub, args)
        done = subprocess.run(
            [sys.executable, "-c", POLL_ONLY, str(polling)],
            cwd=args.code, env=daemon_env(args, None), capture_output=True, text=True, check=True,
        )  # fmt: skip
        result["polling process"] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result["polling process"], indent=2), flush=True)

        config = tmp / "daemon" / "config.yaml"
        config.parent.mkdir()
        write_config(config, farm, stub, args)
        started = time.monotonic()
        fill(f"sqlite:///{config.parent / 'data' / 'monitor.db'}", args.stored, 30 * 86400.0)
        print(f"{args.stored} items stored in {time.monotonic() - started:.0f}s; starting the daemon", flush=True)
        result["daemon"] = run_until_refit(config, args)
        print(json.dumps(result["daemon"], indent=2))
    finally:
        stub.stop()
        farm.close()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.keep:
        print(f"kept {tmp}")
    return 0


def delivery_child(parent: int) -> int | None:
    """The pid of the daemon's delivery process (named monitor-deliver, service/deliverer.py); None for a daemon
    that delivers in a thread (the code before session 9)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != "monitor-deliver":
                continue
            if int((comm.parent / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                return int(comm.parent.name)
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return None


def cpu_of(pid: int, tick: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / tick


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages divided among the processes that map them (smaps_rollup)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_until_refit(config: Path, args: argparse.Namespace) -> dict[str, object]:
    """Start `monitor run`, wait for its refit (refit_every 60 s), sample RSS until --settle seconds after it."""
    log_path = config.parent / "daemon.log"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(config.parent / "notify.sock"))
    notify.settimeout(0.2)
    env = daemon_env(args, config.parent / "notify.sock")
    cmd = [sys.executable, "-m", "monitor", "--log-level", "INFO", "run", "--config", str(config)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=args.code, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(notify, proc, 600)
            sampler = Sampler(proc.pid, 1.0)
            ready_rss = sampler.rss_mb()
            sampler.start()
            deadline = time.monotonic() + 900
            while "topic model refit on" not in log_path.read_text(errors="replace"):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"no refit logged; see {log_path}")
                time.sleep(1)
            refit_rss, refit_at = sampler.rss_mb(), len(sampler.samples)
            time.sleep(args.settle)
            sampler.stopped.set()
            end_rss, end_children = sampler.rss_mb(), sampler.children_mb()
            child = delivery_child(proc.pid)
            child_rss = sampler.rss_mb(child) if child else 0.0
            child_pss = pss_mb(child) if child else 0.0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            notify.close()
    return {
        "rss_mb_at_ready": round(ready_rss, 1),
        "rss_mb_when_the_refit_was_logged": round(refit_rss, 1),
        f"rss_mb_{args.settle:.0f}s_after_the_refit": round(end_rss, 1),
        "rss_mb_max": round(max([s.rss_mb for s in sampler.samples] or [end_rss]), 1),
        # parser workers, plus the model-fitting worker while the refit runs
        "children_rss_mb_max": round(max([s.children_mb for s in sampler.samples] or [0.0]), 1),
        "children_rss_mb_at_the_end": round(end_children, 1),
        # `monitor run` delivers from a child process (service/deliverer.py), one of the children above; its RSS
        # counts the interpreter's shared library pages again, its PSS shares them out
        "delivery_child_rss_mb_at_the_end": round(child_rss, 1),
        "delivery_child_pss_mb_at_the_end": round(child_pss, 1),
        "daemon_plus_delivery_child_rss_mb_at_the_end": round(end_rss + child_rss, 1),
        "environment_from_the_unit": unit_environment() if args.unit_env else {},
        "samples_before_the_refit_was_logged": refit_at,
        "samples (t s, rss MB, children MB)": [
            (round(s.t), round(s.rss_mb, 1), round(s.children_mb, 1)) for s in sampler.samples
        ],
    }


if __name__ == "__main__":
    raise SystemExit(main())
