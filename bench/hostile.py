"""Hostile feeds against the fetcher and parser (issue 12, "Inputs that hurt" 1, 3, 4, 5), as figures.

    python bench/hostile.py                  # about 30 s before the fixes, under 10 s after
    python bench/hostile.py --drip 0.1       # seconds between dripped header bytes

Every case runs against the test feed server (tests/feedserver.py) on 127.0.0.1 with a fetcher whose read
timeout is 0.5 s, so each is bounded in time:
- drip: a response whose status line and headers arrive one byte per --drip seconds (about 100 bytes): how
  long one fetch held on, what it ended with, and the wait it asked for before the next poll.
- slots: two such feeds and one healthy feed on the same host, polled as `monitor check` does (two at a time
  per host): when the healthy feed's poll finished.
- stray byte: a UTF-8 Russian feed with one invalid byte in one title: titles read right, and the warning.
- entities: a billion-laughs document in cp037 (EBCDIC), UTF-7 and unicode_escape, the entity declarations
  hidden behind "<!-- <a -->": the CPU seconds parse_feed spent and what it said.
- full text: article pages at 127.0.0.1 and localhost fetched with HttpFetcher.get_page, as `full_text: true`
  and `monitor explain --url` fetch them: fetched or refused.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import config as cfg  # noqa: E402
from monitor.errors import MonitorError  # noqa: E402
from monitor.feeds.concurrency import poll_all  # noqa: E402
from monitor.feeds.http import DEFAULT_USER_AGENT, HttpFetcher  # noqa: E402
from monitor.feeds.parse import parse_feed  # noqa: E402
from tests.feedserver import FeedServer  # noqa: E402

URL, XML = "https://news.example/rss.xml", "application/xml"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TITLES = [
    "Ливийские стороны договорились о перемирии",
    "Нефтяная гавань снова принимает танкеры",
    "В Триполи прошли переговоры",
]
RSS = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Новости</title>'
    + "".join(f"<item><guid>g{i}</guid><title>{t}</title></item>" for i, t in enumerate(TITLES))
    + "</channel></rss>"
).encode()
PAD = {"X-Pad": "p" * 40}  # with the status line and Content-Length, about 100 header bytes


def fetcher() -> HttpFetcher:
    return HttpFetcher(user_agent=DEFAULT_USER_AGENT, connect_timeout=2, read_timeout=0.5)


def outcome(call: object) -> tuple[float, str, object]:
    """(seconds, what happened, the exception or result) of a zero-argument call."""
    started = time.monotonic()
    try:
        result = call()  # type: ignore[operator]
    except MonitorError as exc:
        return time.monotonic() - started, f"{type(exc).__name__}: {exc}", exc
    return time.monotonic() - started, "ok", result


def drip(server: FeedServer, pause: float) -> None:
    server.route("/drip.xml", RSS, headers=PAD, header_drip=pause)
    f = fetcher()
    try:
        held, what, exc = outcome(lambda: f.fetch(server.url("/drip.xml")))
    finally:
        f.close()
    wait = getattr(exc, "retry_after", None)
    print(f"drip     one fetch held {held:.1f} s: {what[:90]}")
    after = f"{wait:.0f} s (asked by the fetcher)" if wait else "the feed interval"
    print(f"         next poll no sooner than: {after}")


def slots(server: FeedServer, pause: float) -> None:
    server.route("/drip1.xml", RSS, headers=PAD, header_drip=pause)
    server.route("/drip2.xml", RSS, headers=PAD, header_drip=pause)
    server.route("/ok.xml", RSS)
    feeds = [cfg.Feed(name=p, url=server.url(f"/{p}.xml")) for p in ("drip1", "drip2", "ok")]
    started = time.monotonic()
    done: dict[str, float] = {}
    f = fetcher()

    def poll(feed: cfg.Feed) -> str:
        _, what, _ = outcome(lambda: f.fetch(feed.url))
        done[feed.name] = time.monotonic() - started
        return what

    try:
        poll_all(feeds, poll, workers=8)
    finally:
        f.close()
    print(
        f"slots    healthy feed on the same host polled after {done['ok']:.1f} s "
        f"(dripping ones ended after {done['drip1']:.1f} s, {done['drip2']:.1f} s)"
    )


def stray_byte(server: FeedServer) -> None:
    body = RSS.replace("Нефтяная".encode(), "Нефт".encode() + b"\xff" + "яная".encode(), 1)
    server.route("/stray.xml", body, headers={"Content-Type": "application/rss+xml; charset=utf-8"})
    f = fetcher()
    try:
        result = f.fetch(server.url("/stray.xml"))
    finally:
        f.close()
    parsed = parse_feed(result.body or b"", feed="f", url=result.url, now=NOW, content_type=result.content_type)
    right = sum(item.title == title for item, title in zip(parsed.items, TITLES, strict=False))
    print(
        f"stray    {right} of {len(TITLES)} titles read right; first: {parsed.items[0].title[:40]!r}; "
        f"warning: {parsed.warning}"
    )


def billion_laughs(codec: str) -> bytes:
    doc = (
        f'<?xml version="1.0" encoding="{codec}"?>\n<!DOCTYPE rss [<!-- <a -->\n<!ENTITY lol "lol">\n'
        + "".join(f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">\n' for i in range(1, 10))
        + ']>\n<rss version="2.0"><channel><title>t</title><item><title>&lol9;</title></item></channel></rss>'
    )
    if codec == "cp037":
        return doc.encode(codec)
    head, rest = doc.split("?>", 1)  # the declaration readable, the rest escaped so no "<" is left as a byte
    escaped = rest.encode().replace(b"<", b"+ADw-" if codec == "utf-7" else b"\\x3c")
    return head.encode() + b"?>" + escaped


def entities() -> None:
    for codec in ("cp037", "utf-7", "unicode_escape"):
        body = billion_laughs(codec)
        cpu = time.process_time()
        _, what, _ = outcome(lambda body=body: parse_feed(body, feed="f", url=URL, now=NOW, content_type=XML))
        print(f"entities {codec:<15} {time.process_time() - cpu:.2f} s CPU: {what[:100]}")


def full_text(server: FeedServer) -> None:
    page = b"<html><body><p>INTERNAL PAGE</p></body></html>"
    server.route("/internal/admin", page, headers={"Content-Type": "text/html"})
    f = fetcher()
    try:
        for url in (server.url("/internal/admin"), f"http://localhost:{server.port}/internal/admin"):
            _, what, result = outcome(lambda url=url: f.get_page(url))
            fetched = "fetched" if what == "ok" and b"INTERNAL" in (result.body or b"") else what  # type: ignore[union-attr]
            print(f"fulltext {url}: {fetched[:110]}")
    finally:
        f.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drip", type=float, default=0.1, help="seconds between dripped header bytes")
    args = parser.parse_args()
    with FeedServer() as server:
        drip(server, args.drip)
        slots(server, args.drip)
        stray_byte(server)
        entities()
        full_text(server)
    print(f"threads left: {threading.active_count()}")


if __name__ == "__main__":
    main()
