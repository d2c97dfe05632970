"""A threaded HTTP server on 127.0.0.1 for feed tests, reusable by end-to-end tests.

    server.route("/feed.xml", body=b"<rss>...</rss>", headers={"Content-Type": "application/rss+xml"},
                 etag='"v1"')                       # answers 304 to a matching If-None-Match
    server.route("/slow", body=b"x", drip=0.05, endless=True)   # one byte every 50 ms, forever
    server.route("/stall", body=rss, header_drip=0.05)          # status line and headers one byte per 50 ms
    server.route("/bomb", body=gzip_bomb(64 << 20), headers={"Content-Encoding": "gzip"})
    server.redirect("/old", "/feed.xml", status=301)
    server.set_body("/feed.xml", new_bytes)        # change a feed between polls
    fetch(server.url("/feed.xml")); server.requests_to("/feed.xml")[-1].headers["if-none-match"]
    server.wait_for("/feed.xml", count=2)           # a daemon under test polled twice (deadline, no fixed sleep)
    FeedServer(host="127.0.0.2", keep_alive=True)   # another loopback address; HTTP/1.1 persistent connections

Use the `feed_server` fixture: `from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401`.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # sent as ETag; a matching If-None-Match gets 304
    last_modified: str | None = None  # sent as Last-Modified; an equal If-Modified-Since gets 304
    delay: float = 0.0  # seconds before the status line
    drip: float | None = None  # seconds between body bytes
    header_drip: float | None = None  # seconds between bytes of the status line and headers
    endless: bool = False  # repeat the body until the client goes away (no Content-Length)


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]  # keys lower-cased
    client_port: int = 0  # the same for requests over one persistent connection


class FeedServer:
    """Routes by exact path (query string included, else without it); unknown paths get 404."""

    def __init__(self, host: str = "127.0.0.1", *, keep_alive: bool = False) -> None:
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[SeenRequest] = []
        self.host = host
        handler = _handler_for(self)
        if keep_alive:  # endless bodies need HTTP/1.0: they end when the server closes the connection
            handler.protocol_version = "HTTP/1.1"
        self._httpd = ThreadingHTTPServer((host, 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="feed-server", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        delay: float = 0.0,
        drip: float | None = None,
        endless: bool = False,
        header_drip: float | None = None,
    ) -> None:
        """Serve `body` at `path` (replacing any earlier route)."""
        with self._lock:
            self._routes[path] = Route(
                body, status, dict(headers or {}), etag, last_modified, delay, drip, header_drip, endless
            )

    def set_body(self, path: str, body: bytes, *, etag: str | None = None) -> None:
        """Change what an existing route serves (and its ETag, when given)."""
        with self._lock:
            old = self._routes[path]
            self._routes[path] = replace(old, body=body, etag=etag if etag is not None else old.etag)

    def redirect(self, path: str, to: str, *, status: int = 301) -> None:
        """Answer `path` with a redirect; `to` may be a path on this server or an absolute URL."""
        self.route(path, status=status, headers={"Location": to})

    def requests_to(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 5.0) -> list[SeenRequest]:
        """Wait until `path` has been requested `count` times (polling, with a deadline); return the requests."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests_to(path)
            if len(seen) >= count:
                return seen
            if time.monotonic() >= deadline:
                raise AssertionError(f"{path} requested {len(seen)} times within {timeout} s, expected {count}")
            time.sleep(0.01)

    def clear(self) -> None:
        """Forget recorded requests (routes stay)."""
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path) or self._routes.get(path.split("?", 1)[0])

    def record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.requests.append(seen)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def close(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: endless bodies end when we close

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = SeenRequest(self.command, self.path, headers, int(self.client_address[1]))
            server.record(seen)
            route = server.lookup(self.path)
            if route is None:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")
                return
            if route.delay:
                time.sleep(route.delay)
            if _not_modified(route, seen.headers):
                self._send(304, _validators(route), b"")
                return
            self._serve(route)

        def _serve(self, route: Route) -> None:
            headers = {**_validators(route), **route.headers}
            if route.header_drip is not None:
                self._drip_headers(route, headers)
            elif route.endless or route.drip is not None:
                self._stream(route, headers)
            else:
                self._send(route.status, headers, route.body)

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers and status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # The client may stop reading early (size cap): expected, not an error.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def _stream(self, route: Route, headers: dict[str, str]) -> None:
            self.send_response(route.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                while not server.stopping:
                    self._write_body(route)
                    if not route.endless:
                        return
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up, as it should

        def _drip_headers(self, route: Route, headers: dict[str, str]) -> None:
            assert route.header_drip is not None
            lines = [f"HTTP/1.0 {route.status} {self.responses.get(route.status, ('',))[0]}"]
            lines += [f"{name}: {value}" for name, value in {"Content-Length": str(len(route.body)), **headers}.items()]
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            try:
                for i in range(len(head)):
                    if server.stopping:
                        return
                    self.wfile.write(head[i : i + 1])
                    self.wfile.flush()
                    time.sleep(route.header_drip)
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up, as it should

        def _write_body(self, route: Route) -> None:
            if route.drip is None:
                self.wfile.write(route.body or b"x" * 65536)
                return
            for i in range(len(route.body or b"x")):
                if server.stopping:
                    return
                self.wfile.write((route.body or b"x")[i : i + 1])
                self.wfile.flush()
                time.sleep(route.drip)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

    return Handler


def _validators(route: Route) -> dict[str, str]:
    out = {}
    if route.etag:
        out["ETag"] = route.etag
    if route.last_modified:
        out["Last-Modified"] = route.last_modified
    return out


def _not_modified(route: Route, headers: dict[str, str]) -> bool:
    if route.etag and "if-none-match" in headers:
        return route.etag in [tag.strip() for tag in headers["if-none-match"].split(",")]
    return bool(route.last_modified) and headers.get("if-modified-since") == route.last_modified


def gzip_bomb(decompressed: int) -> bytes:
    """A gzip stream of `decompressed` zero bytes (about 1,000:1), built without holding it all in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    block = b"\0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(decompressed >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)


@pytest.fixture(name="feed_server")
def feed_server_fixture() -> Iterator[FeedServer]:
    """A running FeedServer, closed after the test."""
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()
