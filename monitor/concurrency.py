"""Polling many feeds at once: a bounded pool, and at most two connections per host.

Two per host is the HTTP/1.1 politeness rule of thumb (RFC 2616 §8.1.4 said so; RFC 9112 dropped the number
but not the courtesy): a site serving several of the watchlist's feeds is not hammered, and one slow host
cannot take every worker.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

from .config import Feed

T = TypeVar("T")

PER_HOST = 2


class HostLimiter:
    """A semaphore per host name."""

    def __init__(self, per_host: int = PER_HOST) -> None:
        self._per_host = per_host
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(self._per_host))

    @contextmanager
    def hold(self, url: str) -> Iterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            semaphore = self._semaphores[host]
        with semaphore:
            yield


def poll_all(
    feeds: Sequence[Feed],
    poll: Callable[[Feed], T],
    *,
    workers: int,
    limiter: HostLimiter | None = None,
) -> list[T]:
    """Run `poll` for every feed in a pool of `workers` threads; results in feed order."""
    limiter = limiter or HostLimiter()

    def one(feed: Feed) -> T:
        with limiter.hold(feed.url):
            return poll(feed)

    # Workers would all block on one busy host's semaphore if its feeds came in a row: interleave hosts.
    order = interleave_hosts(feeds)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="poll") as pool:
        results = dict(zip(order, pool.map(one, [feeds[i] for i in order]), strict=True))
    return [results[i] for i in range(len(feeds))]


def interleave_hosts(feeds: Sequence[Feed]) -> list[int]:
    """Feed indexes, round-robin over hosts: a, b, c, a, b, a, ..."""
    by_host: dict[str, list[int]] = defaultdict(list)
    for i, feed in enumerate(feeds):
        by_host[(urlsplit(feed.url).hostname or "").lower()].append(i)
    queues = list(by_host.values())
    order: list[int] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        order.extend(q[depth] for q in queues if depth < len(q))
    return order
