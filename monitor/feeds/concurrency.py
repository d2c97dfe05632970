"""Polling many feeds at once: a bounded pool, and at most two connections per host.

Two per host is the HTTP/1.1 politeness rule of thumb (RFC 2616 §8.1.4 said so; RFC 9110 asks clients to
limit parallel connections without a number): a site serving several of the watchlist's feeds is not
hammered, and one slow host cannot take every worker.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit

from ..config import Feed

T = TypeVar("T")

PER_HOST = 2


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or url).lower()


class HostLimiter:
    """Runs tasks in a pool, at most `per_host` at once per host, one at a time per key.

    A task over the limit waits in a per-host queue, not in a pool thread, so a slow host never delays
    feeds on other hosts. Submitting a key that is already queued or running is a no-op (`coalesce`).
    """

    def __init__(self, pool: Executor, per_host: int = PER_HOST) -> None:
        self._pool = pool
        self._per_host = per_host
        self._cond = threading.Condition()
        self._running: dict[str, int] = {}
        self._queues: dict[str, deque[tuple[str, Callable[[], None]]]] = {}
        self._keys: set[str] = set()
        self._closed = False

    def submit(self, key: str, host: str, task: Callable[[], None]) -> bool:
        """Queue `task`; False when `key` is already queued or running, or the limiter is closed."""
        with self._cond:
            if self._closed or key in self._keys:
                return False
            self._keys.add(key)
            if self._running.get(host, 0) >= self._per_host:
                self._queues.setdefault(host, deque()).append((key, task))
                return True
            self._running[host] = self._running.get(host, 0) + 1
        self._start(key, host, task)
        return True

    def _start(self, key: str, host: str, task: Callable[[], None]) -> None:
        try:
            self._pool.submit(self._run, key, host, task)
        except RuntimeError:  # the pool is shut down: we are stopping
            self._done(key, host)

    def _run(self, key: str, host: str, task: Callable[[], None]) -> None:
        try:
            task()
        finally:
            self._done(key, host)

    def _done(self, key: str, host: str) -> None:
        nxt: tuple[str, Callable[[], None]] | None = None
        with self._cond:
            self._keys.discard(key)
            queue = self._queues.get(host)
            if queue and not self._closed:
                nxt = queue.popleft()
            else:
                self._running[host] -= 1
                if not self._running[host]:
                    del self._running[host]
            if not queue:
                self._queues.pop(host, None)
            self._cond.notify_all()
        if nxt is not None:
            self._start(nxt[0], host, nxt[1])

    def running(self, host: str | None = None) -> int:
        with self._cond:
            return self._running.get(host, 0) if host else sum(self._running.values())

    def queued(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def close(self) -> int:
        """Accept nothing more and drop the queue; return how many queued tasks were dropped."""
        with self._cond:
            self._closed = True
            dropped = sum(len(q) for q in self._queues.values())
            for queue in self._queues.values():
                for key, _ in queue:
                    self._keys.discard(key)
            self._queues.clear()
            self._cond.notify_all()
            return dropped

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing runs; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)


def poll_all(feeds: Sequence[Feed], poll: Callable[[Feed], T], *, workers: int, per_host: int = PER_HOST) -> list[T]:
    """Run `poll` for every feed in a pool of `workers` threads, `per_host` at a time per host; results in
    feed order. An exception from `poll` is re-raised after the others finish."""
    results: dict[int, T] = {}
    errors: list[BaseException] = []
    finished = threading.Semaphore(0)

    def task(index: int, feed: Feed) -> None:
        try:
            results[index] = poll(feed)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)
        finally:
            finished.release()

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="poll") as pool:
        limiter = HostLimiter(pool, per_host)
        for index, feed in enumerate(feeds):
            limiter.submit(str(index), host_of(feed.url), functools.partial(task, index, feed))
        for _ in feeds:
            finished.acquire()
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(feeds))]
