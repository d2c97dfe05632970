"""The connections under HttpFetcher: one deadline per fetch, and which addresses a fetch may reach.

    with watchdog.scope(deadline, refuse) as scope:        # one fetch, redirects included
        session.get(...)                                   # every socket it opens or reuses is watched
    └─ Guarded(HTTP|HTTPS)Connection
         ├─ _new_conn (TCP connected, nothing sent) ─► watch the socket; refuse(peer address) when given
         └─ request (a kept-alive connection)       ─► the same, before the request is written

Deadline. requests' (connect, read) timeouts bound each socket operation, not a request: a server that sends
its headers one byte per second never trips a 20 s read timeout, and holds the poll for as long as it likes
(issue 12: a `monitor check` still running after 260 s). The Watchdog is one thread per fetcher that shuts
down the sockets of a fetch whose deadline has passed; shutdown(2) wakes a read blocked in another thread at
once, which close() does not promise. It works on a duplicate of the socket's descriptor, so a socket the
fetch has closed meanwhile can't have its number reused under our feet.

Addresses. Full-text pages come from links in feed items, written by whoever writes the feed; fetching
http://127.0.0.1:…/ or a cloud metadata address for them is server-side request forgery. The check is on the
address actually connected, after DNS, for every hop of a redirect chain, so a name that resolves to a
private address (or re-resolves to one: DNS rebinding) is caught as well as a literal IP. Through an HTTP
proxy the peer is the proxy; HttpFetcher then resolves the target's name itself (check_host).
SOCKS proxies keep urllib3's own connection classes: neither the deadline nor the peer check applies there.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection

from ..errors import FetchError

_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")  # RFC 4193
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address

Refusal = Callable[[str], "str | None"]  # an address → why it may not be reached, or None


def refusal(address: str) -> str | None:
    """Why a fetch of content from a feed may not connect to `address`: "loopback", "private", …; None if public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for kind, found in (
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("unique-local", ip in _UNIQUE_LOCAL),
        ("private", ip.is_private),
        ("reserved", not ip.is_global),  # e.g. 100.64.0.0/10, shared address space (RFC 6598)
    ):
        if found:
            return kind
    return None


class AddressRefused(FetchError):
    """A connection for a public-only fetch reached, or would reach, a non-public address."""


def check_host(host: str, port: int, refuse: Refusal) -> None:
    """AddressRefused when `host` resolves to any address `refuse` names a reason for (fetches through a proxy)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the proxy reports an unknown name better than we can
    for *_, sockaddr in found:
        _check(host, str(sockaddr[0]), refuse)


def _check(host: str, address: str, refuse: Refusal) -> None:
    kind = refuse(address)
    if kind:
        at = "is" if host == address.split("%", 1)[0] else f"resolves to {address},"
        raise AddressRefused(f"{host} {at} a {kind} address")


class Scope:
    """One fetch: its deadline, its sockets, and which addresses it may not reach (refuse; None: any)."""

    def __init__(self, deadline: float, refuse: Refusal | None) -> None:
        self.deadline = deadline
        self.refuse = refuse
        self.expired = False
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def admit(self, sock: socket.socket, host: str, proxied: bool) -> None:
        """Watch `sock` for the deadline; refuse it when it reached an address this fetch may not."""
        if self.refuse is not None and not proxied:
            _check(host, str(sock.getpeername()[0]), self.refuse)
        watched = socket.fromfd(sock.fileno(), sock.family, sock.type)  # a dup: see the module docstring
        with self._lock:
            self._sockets.append(watched)
            late = self.expired or time.monotonic() >= self.deadline
        if late:
            self.expire()

    def expire(self) -> None:
        """Shut the fetch's sockets down: a read blocked on one returns at once."""
        with self._lock:
            if self._closed:
                return
            self.expired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    @property
    def closed(self) -> bool:
        return self._closed


_current = threading.local()  # the Scope of the fetch running in this thread, for the connection classes


class _QuietAfterDeadline(logging.Filter):
    """Drop urllib3's warning (with a traceback) about headers cut short, when it was the watchdog that cut them:
    the fetch reports that itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope: Scope | None = getattr(_current, "scope", None)
        return scope is None or not scope.expired


logging.getLogger("urllib3.connection").addFilter(_QuietAfterDeadline())


class Watchdog:
    """One thread that expires the scopes of fetches past their deadline; started on first use."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Scope]] = []
        self._order = itertools.count()  # ties on the deadline: never compare two Scopes
        self._thread: threading.Thread | None = None
        self._stopped = False

    @contextlib.contextmanager
    def scope(self, deadline: float, refuse: Refusal | None = None) -> Iterator[Scope]:
        """A Scope for the fetch this thread runs inside the block."""
        scope = Scope(deadline, refuse)
        with self._cond:
            heapq.heappush(self._due, (deadline, next(self._order), scope))
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="fetch-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
        outer = getattr(_current, "scope", None)
        _current.scope = scope
        try:
            yield scope
        finally:
            _current.scope = outer
            scope.close()

    def pending(self) -> int:
        """Scopes whose deadline the watchdog has not passed yet (finished or not)."""
        with self._cond:
            return len(self._due)

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._due:
                    self._cond.wait()
                    continue
                deadline, _, scope = self._due[0]
                wait = deadline - time.monotonic()
                if wait > 0 and not scope.closed:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)
                scope.expire()  # a no-op for a fetch that finished in time


def _admit(sock: socket.socket, conn: HTTPConnection) -> None:
    scope: Scope | None = getattr(_current, "scope", None)
    if scope is not None:
        scope.admit(sock, conn.host, proxied=conn.proxy is not None)


class GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # connected; for HTTPS, before the TLS handshake, which the deadline covers
        try:
            _admit(sock, self)
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # kept alive from an earlier fetch: admitted again, for this one
            _admit(self.sock, self)
        super().request(*args, **kwargs)


class GuardedHTTPSConnection(GuardedHTTPConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' HTTPAdapter with the guarded connection classes, direct and through HTTP(S) proxies."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _guard(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _guard(manager)
        return manager


def _guard(manager: PoolManager) -> None:
    # Only urllib3's own classes are replaced (SOCKS managers bring theirs); a new dict, as urllib3 shares its default.
    if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
