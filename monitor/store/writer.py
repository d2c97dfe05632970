"""SQLite's one writer, queued for on a lock that spans the processes of one daemon.

SQLite lets one connection write at a time. Threads of one process queue for it on a lock; between processes
(the daemon and its delivery child, service/deliverer.py) SQLite's busy handler would do the waiting, and it
polls with sleeps of 1, 2, 5, 10 ... up to 100 ms (sqliteDefaultBusyCallback), idling the database between
them: a poll's transaction that meets a delivery mark sleeps several milliseconds, and the polls behind it
wait too. flock(2) on a file beside the database makes the waiter sleep in the kernel until the holder lets
go, and a holder that dies (kill -9 included) lets go with it. Processes that do not take it (`monitor label`
from a shell) still meet the busy timeout, as before.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WriterLock:
    """A threading lock, then an exclusive flock on `path` (created beside the database)."""

    def __init__(self, path: Path) -> None:
        self._threads = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # close-on-exec by default

    def __enter__(self) -> WriterLock:
        self._threads.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
