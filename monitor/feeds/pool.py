"""Feed parsing in worker processes.

feedparser is pure Python on top of expat: parsing is CPU-bound and holds the GIL, so poll threads share one
core however many there are. A small process pool puts every core to work, and keeps a document that crashes
or exhausts a parser process from taking the daemon with it (the pool is rebuilt, the feed gets an error).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from ..errors import ParseError
from ..models import ParsedFeed
from .parse import parse_feed

log = logging.getLogger(__name__)
PARENT_CHECK = 1.0  # seconds between a worker's looks at whether the daemon still lives


def _exit_with(parent: int) -> None:
    """Worker initializer: leave when the parent process is gone, and leave without a teardown.

    A daemon killed with SIGKILL (the OOM killer, a timed-out stop) cannot shut its pool down, and an idle worker
    never notices: it waits on the call queue, whose write end its sibling workers hold open too. Without this,
    each such kill left the parser processes running for good (systemd's control group kills them; a daemon run
    by hand or in a container has no such net).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    # A worker holds nothing to clean up. Skipping the interpreter's teardown of lxml, feedparser and the
    # rest saves 0.2-1.5 s per worker, which a daemon's stop waits for (ProcessPoolExecutor joins them).
    atexit.register(_leave)


def _leave() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class ParserPool:
    """`parse_feed` in a lazily started pool of worker processes; same signature, same errors."""

    def __init__(self, workers: int | None = None, *, target: Callable[..., ParsedFeed] = parse_feed) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.target = target  # a module-level function (it is pickled to the workers)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the daemon has threads, and a forked child would inherit their locks.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),)
                )
            return self._pool

    def __call__(
        self,
        body: bytes,
        *,
        feed: str,
        url: str,
        now: datetime,
        content_type: str | None = None,
        encoding: str | None = None,
    ) -> ParsedFeed:
        kwargs = {"feed": feed, "url": url, "now": now, "content_type": content_type, "encoding": encoding}
        if self.workers < 1:
            return self.target(body, **kwargs)
        try:
            pool = self._executor()
        except OSError as exc:  # no semaphores (/dev/shm) in a tight sandbox: parse in this process
            log.warning("parsing in this process: worker processes are unavailable (%s)", exc)
            self.workers = 0
            return self.target(body, **kwargs)
        try:
            return pool.submit(self.target, body, **kwargs).result()
        except BrokenProcessPool as exc:
            self._discard(pool)
            raise ParseError(f"the parser process died while parsing {url}") from exc

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        log.warning("parser processes restarted")

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
