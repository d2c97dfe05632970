"""Feed parsing in worker processes: same results and errors as in-process; a dying worker is contained."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed
from monitor.feeds.pool import ParserPool
from monitor.models import ParsedFeed

NOW = datetime(2026, 11, 25, tzinfo=UTC)
RSS = (
    '<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel><title>T</title>'
    "<item><guid>1</guid><title>Перемирие в Ливии</title><description>Триполи</description></item>"
    "</channel></rss>"
).encode("windows-1251")


def crash_on_request(body: bytes, **kwargs: object) -> ParsedFeed:
    """Stands in for a parser bug that kills its process (a segfault in a C extension, the OOM killer)."""
    if body == b"crash":
        os._exit(1)
    return parse_feed(body, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    running = ParserPool(workers=1, target=crash_on_request)
    try:
        yield running
    finally:
        running.close()


def test_parses_like_parse_feed(pool: ParserPool) -> None:
    here = parse_feed(RSS, feed="F", url="http://127.0.0.1/f", now=NOW)
    there = pool(RSS, feed="F", url="http://127.0.0.1/f", now=NOW)
    assert there == here
    assert there.items[0].title == "Перемирие в Ливии"


def test_parse_errors_cross_the_process_boundary(pool: ParserPool) -> None:
    with pytest.raises(ParseError):
        pool(b"<html><body>not a feed</body></html>", feed="F", url="http://127.0.0.1/f", now=NOW)


def test_a_dying_worker_is_a_parse_error_and_the_pool_recovers(pool: ParserPool) -> None:
    with pytest.raises(ParseError, match="parser process died"):
        pool(b"crash", feed="F", url="http://127.0.0.1/f", now=NOW)
    assert pool(RSS, feed="F", url="http://127.0.0.1/f", now=NOW).items
