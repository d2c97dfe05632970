"""HttpFetcher against a real server on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.errors import FetchError
from monitor.feeds.http import DEFAULT_USER_AGENT, TIMEOUT_PAUSE, HttpFetcher, parse_max_age, parse_retry_after
from monitor.feeds.transport import refusal
from tests.feedserver import FeedServer, feed_server_fixture, gzip_bomb, gzipped  # noqa: F401 - fixture

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
PAGE = b"<html><body><p>an internal page</p></body></html>"
PAD = {"X-Pad": "p" * 150}  # about 200 bytes of status line and headers: 10 s at one byte per 50 ms


@pytest.fixture
def fetcher() -> Iterator[HttpFetcher]:
    f = HttpFetcher(user_agent=DEFAULT_USER_AGENT, connect_timeout=2, read_timeout=0.5, max_body=1 << 20)
    yield f
    f.close()


def test_fetch_returns_body_headers_and_sends_user_agent(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route(
        "/f", RSS, headers={"Content-Type": "application/rss+xml; charset=utf-8", "Cache-Control": "max-age=900"}
    )
    result = fetcher.fetch(feed_server.url("/f"), headers={"X-Extra": "1"})
    assert result.status == 200
    assert result.body == RSS
    assert result.content_type == "application/rss+xml; charset=utf-8"
    assert result.max_age == 900
    seen = feed_server.requests_to("/f")[0].headers
    assert seen["user-agent"] == DEFAULT_USER_AGENT
    assert seen["x-extra"] == "1"
    assert "gzip" in seen["accept-encoding"]


def test_gzip_body_is_decoded(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/gz", gzipped(RSS), headers={"Content-Encoding": "gzip"})
    assert fetcher.fetch(feed_server.url("/gz")).body == RSS


def test_conditional_get_sends_validators_and_gets_304(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    lm = "Tue, 24 Nov 2026 10:00:00 GMT"
    feed_server.route("/f", RSS, etag='"v1"', last_modified=lm)
    first = fetcher.fetch(feed_server.url("/f"))
    assert (first.etag, first.last_modified) == ('"v1"', lm)
    second = fetcher.fetch(feed_server.url("/f"), etag=first.etag, last_modified=first.last_modified)
    assert second.status == 304
    assert second.not_modified
    assert second.body is None
    seen = feed_server.requests_to("/f")[-1].headers
    assert seen["if-none-match"] == '"v1"'
    assert seen["if-modified-since"] == lm
    feed_server.set_body("/f", RSS + b" ", etag='"v2"')
    assert fetcher.fetch(feed_server.url("/f"), etag='"v1"').status == 200


def test_server_wait_for_and_clear(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/f", RSS)
    fetcher.fetch(feed_server.url("/f"))
    assert len(feed_server.wait_for("/f", 1)) == 1
    with pytest.raises(AssertionError, match="requested 1 times"):
        feed_server.wait_for("/f", 2, timeout=0.05)
    feed_server.clear()
    assert feed_server.requests == []
    assert fetcher.fetch(feed_server.url("/f?x=1")).body == RSS  # the query string falls back to the path
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher.fetch(feed_server.url("/missing"))


def test_first_fetch_sends_no_validators(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/f", RSS)
    fetcher.fetch(feed_server.url("/f"))
    seen = feed_server.requests_to("/f")[0].headers
    assert "if-none-match" not in seen
    assert "if-modified-since" not in seen


@pytest.mark.parametrize(("status", "retry_after"), [(429, "120"), (503, "7"), (500, None), (404, None)])
def test_error_status_raises_with_status_and_retry_after(
    feed_server: FeedServer, fetcher: HttpFetcher, status: int, retry_after: str | None
) -> None:
    feed_server.route("/e", b"nope", status=status, headers={"Retry-After": retry_after} if retry_after else {})
    with pytest.raises(FetchError, match=rf"HTTP {status} while fetching http://127\.0\.0\.1:\d+/e") as info:
        fetcher.fetch(feed_server.url("/e"))
    assert info.value.status == status
    assert info.value.retry_after == (float(retry_after) if retry_after else None)


def test_permanent_redirect_is_recorded(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/new", RSS)
    feed_server.redirect("/old", "/mid", status=301)
    feed_server.redirect("/mid", "/new", status=308)
    result = fetcher.fetch(feed_server.url("/old"), etag='"x"')
    assert result.body == RSS
    assert result.url == feed_server.url("/new")
    assert result.permanent_redirect == feed_server.url("/new")
    assert feed_server.requests_to("/new")[0].headers["if-none-match"] == '"x"'


def test_temporary_hop_stops_the_permanent_record(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/new", RSS)
    feed_server.redirect("/old", "/mid", status=301)
    feed_server.redirect("/mid", "/new", status=302)
    result = fetcher.fetch(feed_server.url("/old"))
    assert result.url == feed_server.url("/new")
    # Only the permanent part of the chain may replace the configured URL.
    assert result.permanent_redirect == feed_server.url("/mid")


def test_temporary_redirect_only_is_not_recorded(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/new", RSS)
    feed_server.redirect("/old", "/new", status=302)
    assert fetcher.fetch(feed_server.url("/old")).permanent_redirect is None


def test_credentials_do_not_follow_a_redirect_to_another_host(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/new", RSS)
    feed_server.redirect("/same", "/new", status=302)
    feed_server.redirect("/away", f"http://localhost:{feed_server.port}/new", status=302)
    fetcher.fetch(feed_server.url("/same"), headers={"Authorization": "Bearer s3cret"})
    fetcher.fetch(feed_server.url("/away"), headers={"Authorization": "Bearer s3cret", "X-Keep": "1"})
    same, away = feed_server.requests_to("/new")
    assert same.headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in away.headers
    assert away.headers["x-keep"] == "1"


def test_redirect_loop_and_too_many_redirects(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.redirect("/a", "/b")
    feed_server.redirect("/b", "/a")
    with pytest.raises(FetchError, match="redirect loop"):
        fetcher.fetch(feed_server.url("/a"))
    for i in range(7):
        feed_server.redirect(f"/r{i}", f"/r{i + 1}", status=302)
    feed_server.route("/r7", RSS)
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher.fetch(feed_server.url("/r0"))


def test_redirect_to_other_scheme_is_refused(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.redirect("/a", "file:///etc/passwd")
    with pytest.raises(FetchError, match="only http and https"):
        fetcher.fetch(feed_server.url("/a"))


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed", "file:///etc/passwd", "http://[::1/x", "http:///path"])
def test_non_http_url_is_refused(fetcher: HttpFetcher, url: str) -> None:
    with pytest.raises(FetchError, match="only http and https"):
        fetcher.fetch(url)


def test_malformed_redirect_target_is_a_fetch_error(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.redirect("/a", "http://[::1/broken")
    with pytest.raises(FetchError, match="Invalid IPv6 URL"):
        fetcher.fetch(feed_server.url("/a"))


def test_oversized_body_is_cut_off(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/big", b"x" * (2 << 20))
    with pytest.raises(FetchError, match="response larger than 1 MB"):
        fetcher.fetch(feed_server.url("/big"))


def test_endless_body_is_cut_off(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/endless", b"<rss>" * 1000, endless=True)
    with pytest.raises(FetchError, match="response larger than 1 MB"):
        fetcher.fetch(feed_server.url("/endless"))


def test_gzip_bomb_is_cut_off_after_max_body(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    bomb = gzip_bomb(64 << 20)
    assert len(bomb) < 100_000
    feed_server.route("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="response larger than 1 MB"):
        fetcher.fetch(feed_server.url("/bomb"))


def test_slow_drip_body_hits_the_deadline(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    # Each byte arrives well within the 0.5 s read timeout, but the body never ends.
    feed_server.route("/slow", b"<rss>", drip=0.05, endless=True)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"took longer than 1\.5 s"):
        fetcher.fetch(feed_server.url("/slow"))
    assert time.monotonic() - started < 3


def test_slow_headers_hit_the_read_timeout(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/late", RSS, delay=1.0)
    with pytest.raises(FetchError, match="timed out while fetching") as info:
        fetcher.fetch(feed_server.url("/late"))
    # A feed that timed out waits ten times as long as it held its host's polling slot.
    assert info.value.retry_after is not None and info.value.retry_after >= TIMEOUT_PAUSE * 0.5


def test_headers_dripped_one_byte_at_a_time_hit_the_deadline(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    # Each byte of the status line and headers arrives well within the 0.5 s read timeout; all take 10 s.
    feed_server.route("/stall", RSS, headers=PAD, header_drip=0.05)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"took longer than 1\.5 s") as info:
        fetcher.fetch(feed_server.url("/stall"))
    assert time.monotonic() - started < 5  # the 1.5 s deadline, not the 10 s the headers take
    assert info.value.retry_after is not None and info.value.retry_after >= TIMEOUT_PAUSE * 1.5


def test_a_kept_alive_connection_is_watched_and_checked_again(fetcher: HttpFetcher) -> None:
    with FeedServer(keep_alive=True) as server:
        server.route("/f", RSS)
        server.route("/page", PAGE)
        server.route("/stall", RSS, headers=PAD, header_drip=0.05)
        fetcher.fetch(server.url("/f"))
        with pytest.raises(FetchError, match="refused"):
            fetcher.get_page(server.url("/page"))  # over the connection the feed opened
        assert server.requests_to("/page") == []
        fetcher.fetch(server.url("/f"))  # a new connection: the refusal closed the other
        with pytest.raises(FetchError, match=r"took longer than 1\.5 s"):
            fetcher.fetch(server.url("/stall"))
        first, second, stall = (seen.client_port for seen in server.requests)
        assert stall == second != first  # the dripping response came over a kept-alive connection


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_pages_on_loopback_are_refused_unless_allowed(feed_server: FeedServer, fetcher: HttpFetcher, host: str) -> None:
    feed_server.route("/internal", PAGE, headers={"Content-Type": "text/html"})
    url = f"http://{host}:{feed_server.port}/internal"
    address = rf"{host} (is|resolves to [\d.:]+,) a loopback address"
    with pytest.raises(FetchError, match=rf"^refused to fetch {re.escape(url)}: {address}; .*allow_private_fetch"):
        fetcher.get_page(url)
    assert feed_server.requests_to("/internal") == []  # refused before a byte was sent
    assert fetcher.get_page(url, allow_private=True).body == PAGE
    assert fetcher.fetch(url).body == PAGE  # a feed URL is the user's own: fetched as written
    allowing = HttpFetcher(user_agent=DEFAULT_USER_AGENT, allow_private_pages=True)
    try:
        assert allowing.get_page(url).body == PAGE
    finally:
        allowing.close()


def test_every_redirect_hop_of_a_page_is_checked(feed_server: FeedServer) -> None:
    # 127.0.0.1 plays a public host here; it redirects to an internal one on another loopback address.
    def refuse(address: str) -> str | None:
        return None if address == "127.0.0.1" else refusal(address)

    fetcher = HttpFetcher(user_agent=DEFAULT_USER_AGENT, read_timeout=2, refuse=refuse)
    with FeedServer("127.0.0.2") as internal:
        internal.route("/admin", PAGE)
        feed_server.route("/article", b"<html>an article</html>")
        feed_server.redirect("/moved", internal.url("/admin"), status=302)
        try:
            assert fetcher.get_page(feed_server.url("/article")).body == b"<html>an article</html>"
            with pytest.raises(FetchError, match=r"refused to fetch .*/moved: 127\.0\.0\.2 is a loopback address"):
                fetcher.get_page(feed_server.url("/moved"))
            assert internal.requests == []
            assert fetcher.get_page(feed_server.url("/moved"), allow_private=True).body == PAGE
        finally:
            fetcher.close()


def test_connection_refused_is_a_fetch_error(fetcher: HttpFetcher) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match=f"cannot connect while fetching http://127.0.0.1:{port}/"):
        fetcher.fetch(f"http://127.0.0.1:{port}/")


def test_get_page_uses_the_same_limits(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    feed_server.route("/page", b"<html><body>hi</body></html>", headers={"Content-Type": "text/html"})
    feed_server.route("/huge", b"y" * (2 << 20))
    assert fetcher.get_page(feed_server.url("/page"), allow_private=True).body == b"<html><body>hi</body></html>"
    assert "text/html" in feed_server.requests_to("/page")[0].headers["accept"]
    with pytest.raises(FetchError, match="larger than"):
        fetcher.get_page(feed_server.url("/huge"), allow_private=True)


def test_wrong_charset_header_is_passed_through(feed_server: FeedServer, fetcher: HttpFetcher) -> None:
    body = '<?xml version="1.0" encoding="windows-1251"?><rss/>'.encode("cp1251")
    feed_server.route("/w", body, headers={"Content-Type": "text/xml; charset=utf-8"})
    result = fetcher.fetch(feed_server.url("/w"))
    assert (result.body, result.content_type) == (body, "text/xml; charset=utf-8")


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    later = format_datetime(date + timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(later, format_datetime(date, usegmt=True)) == 300
    assert parse_retry_after(format_datetime(date, usegmt=True), later) == 0


def test_parse_max_age() -> None:
    assert parse_max_age("public, max-age=600") == 600
    assert parse_max_age("max-age=600, no-cache") is None
    assert parse_max_age("private") is None
    assert parse_max_age(None) is None
