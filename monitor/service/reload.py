"""Notice that config.yaml changed on disk, once it has stopped changing.

Polling, not inotify: it works on every filesystem and inside containers, and a stat() per second is
free. mtime and size say "something happened"; the content hash says whether it matters (a `touch` or
an editor rewriting the same bytes is not a change). Editors that save by writing a new file and
renaming it over the old one (vim, sed -i, Ansible) show up as a new inode, which the stat key includes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

_Stat = tuple[int, int, int, int] | None  # (inode, device, mtime_ns, size), None when missing


def _stat(path: str) -> _Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    """Call `changed()` every second or so; it is True once per settled change of the file's content.

    A change settles when the stat key has stayed the same for `debounce` seconds, so a save that takes
    several writes (or a delete-then-create) triggers one reload, not three half-written ones.
    """

    def __init__(self, path: str, *, debounce: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.debounce = debounce
        self._clock = clock
        self._seen = _stat(path)
        self._digest = _digest(path)
        self._pending_since: float | None = None

    def accept(self) -> None:
        """Take the file as it is now as the baseline (after a reload triggered some other way, e.g. SIGHUP)."""
        self._seen = _stat(self.path)
        self._digest = _digest(self.path)
        self._pending_since = None

    def changed(self) -> bool:
        now = self._clock()
        current = _stat(self.path)
        if current != self._seen:
            self._seen = current
            self._pending_since = now
            return False
        if self._pending_since is None or now - self._pending_since < self.debounce:
            return False
        self._pending_since = None
        digest = _digest(self.path) if current is not None else None
        if digest == self._digest:
            return False
        self._digest = digest
        return True
