"""Ingestion benchmark: one full poll cycle of N synthetic feeds, cold (all 200, every item new) and warm (all 304).

    python bench/ingest.py                 # 1,000 feeds x 30 items
    python bench/ingest.py --feeds 200     # smaller
    python bench/ingest.py --stage full    # the ingest cycle, then the whole pipeline's, in the same run: the ratio
    python bench/ingest.py --stage full --feeds 100 --vocabulary 40   # one vocabulary: everything one story

The feeds are served by ThreadingHTTPServers in another process on 20 loopback addresses (127.0.0.1-20).
The poll cycle is the one `monitor check` runs (monitor.feeds.concurrency.poll_all over the pipeline) against a
fresh SQLite database with the shipped config's topics: `--stage ingest` (default) times Pipeline.ingest
(fetch, parse in worker processes, store), `--stage full` times it and then Pipeline.poll (also match, group
into stories, enqueue alerts) on a second fresh database, and prints full/ingest ratios of the two cold cycles
(issue 16: ≤ 2× in wall time) and how many items were left without a story (must be 0). Prints wall time, CPU
time of this process and its parser processes (not the server's), and peak RSS of this process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import config as cfg  # noqa: E402
from monitor.app import open_app  # noqa: E402
from monitor.feeds.concurrency import poll_all  # noqa: E402

SYLLABLES = "ка ли ро на те ви мо ре ду за по ст ер ан ов ин ск ол ен ра".split()  # noqa: SIM905


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    """Pseudo-Russian words; drawn Zipf-like below, so items share common words but not whole stories."""
    words = {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def sentence(rng: random.Random, words: list[str], n: int) -> str:
    weights = [1 / (rank + 1) for rank in range(len(words))]
    return " ".join(rng.choices(words, weights=weights, k=n))


def make_feed(index: int, items: int, rng: random.Random, words: list[str]) -> bytes:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    entries = []
    for j in range(items):
        title = sentence(rng, words, 8).capitalize()
        text = sentence(rng, words, 80)
        when = format_datetime(start + timedelta(minutes=index * 7 + j * 13))
        entries.append(
            f"<item><guid>https://bench.example/{index}/{j}</guid><title>{title}</title>"
            f"<link>https://bench.example/{index}/{j}</link><description>&lt;p&gt;{text}&lt;/p&gt;</description>"
            f"<pubDate>{when}</pubDate></item>"
        )
    doc = (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {index}</title>'
        f"<link>https://bench.example/{index}</link>{''.join(entries)}</channel></rss>"
    )
    return doc.encode("utf-8")


def serve(port_queue: multiprocessing.Queue, feeds: int, items: int, hosts: int, words_n: int) -> None:  # type: ignore[type-arg]
    rng = random.Random(42)
    words = vocabulary(rng, words_n)
    docs = {f"/feed/{i}.xml": make_feed(i, items, rng, words) for i in range(feeds)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = docs.get(self.path)
            if body is None:
                self.send_error(404)
                return
            etag = f'"{hash(self.path) & 0xFFFFFFFF:x}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
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

    # One server per loopback address (all of 127/8 is loopback on Linux): feeds spread over `hosts`
    # hosts, as a watchlist's feeds are, so the two-connections-per-host limit applies as in real use.
    servers = [ThreadingHTTPServer((f"127.0.0.{h + 1}", 0), Handler) for h in range(hosts)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port_queue.put([server.server_address[1] for server in servers])
    threading.Event().wait()


def cpu() -> float:
    """CPU seconds of this process and its live children (the parser processes), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        for child in children:
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            if int(child) != server_pid:
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


server_pid = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--hosts", type=int, default=20, help="loopback addresses the feeds are spread over")
    parser.add_argument(
        "--stage",
        choices=["ingest", "full"],
        default="ingest",
        help="ingest: fetch, parse, store (the foundation's cycle); full: that, then also match, group and enqueue",
    )
    parser.add_argument(
        "--vocabulary",
        type=int,
        default=6000,
        help="distinct words the items are drawn from (a few dozen: every item shares them, one story)",
    )
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    server = ctx.Process(target=serve, args=(ports, args.feeds, args.items, args.hosts, args.vocabulary), daemon=True)
    server.start()
    global server_pid
    server_pid = server.pid or 0
    port_of = ports.get(timeout=600)  # building the farm takes over a minute on a loaded machine
    stages = ["ingest", "full"] if args.stage == "full" else ["ingest"]
    try:
        hosts = [f"127.0.0.{h + 1}:{port}" for h, port in enumerate(port_of)]
        cold = {stage: run(stage, hosts, args) for stage in stages}
    finally:
        server.terminate()
    if "full" in cold:
        (iw, ic), (fw, fc) = cold["ingest"], cold["full"]
        print(f"full/ingest, cold cycle, same run: wall {fw / iw:.2f}x, cpu {fc / ic:.2f}x (target: wall <= 2x)")


def run(stage: str, hosts: list[str], args: argparse.Namespace) -> tuple[float, float]:
    """One stage's cold and warm cycles on a fresh database; the cold cycle's (wall, cpu)."""
    cold = (0.0, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        shipped = cfg.load(str(ROOT / "config.yaml"), env={})
        feeds = [
            cfg.Feed(name=f"feed-{i}", url=f"http://{hosts[i % len(hosts)]}/feed/{i}.xml") for i in range(args.feeds)
        ]
        config = shipped.model_copy(
            update={
                "feeds": feeds,
                "settings": shipped.settings.model_copy(update={"data_dir": tmp}),
                "path": str(ROOT / "config.yaml"),
            }
        )
        app = open_app(config)
        try:
            for label in ("cold", "warm"):
                wall0, cpu0 = time.perf_counter(), cpu()
                step = app.pipeline.poll if stage == "full" else lambda f: app.pipeline.ingest(f)[0]

                def poll(feed: cfg.Feed) -> tuple[str, int]:
                    # Keep what is counted, not the reports with every item, as the daemon does.
                    report = step(feed)  # noqa: B023 - used within this iteration
                    return report.status, report.new

                reports = poll_all(feeds, poll, workers=config.settings.workers)
                wall, used = time.perf_counter() - wall0, cpu() - cpu0
                if label == "cold":
                    cold = (wall, used)
                statuses = {s: sum(status == s for status, _ in reports) for s in ("ok", "not_modified", "error")}
                new = sum(count for _, count in reports)
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"{stage} {label}: {args.feeds} feeds x {args.items} items: "
                    f"wall {wall:.2f} s, cpu {used:.2f} s, "
                    f"new items {new}, statuses {statuses}, peak RSS {rss:.0f} MB",
                    flush=True,
                )
            if stage == "full":
                since = datetime(1970, 1, 1, tzinfo=UTC)
                grouped = app.store.items_for_story_index(since)
                alone = sum(story is None for _, story in grouped)
                biggest = max((len(s.items) for s in app.store.stories_since(since)), default=0)
                print(f"full: {len(grouped)} items stored, {alone} without a story; largest story {biggest} items")
        finally:
            app.close()
    return cold


if __name__ == "__main__":
    main()
