"""Notice that config.yaml changed on disk, once it has stopped changing; what to tell the admin about reloads.

Polling, not inotify: it works on every filesystem and inside containers, and a stat() per second is
free. mtime and size say "something happened"; the content hash says whether it matters (a `touch` or
an editor rewriting the same bytes is not a change). Editors that save by writing a new file and
renaming it over the old one (vim, sed -i, Ansible) show up as a new inode, which the stat key includes.
A file that never stops changing (a script rewriting it every second) is still read every MAX_DELAY seconds.

`ReloadNotices` keeps the admin channel to one notice per distinct config error (again every 10 minutes
while it lasts) and one when the config is fixed: saving a broken file over and over used to send a
notice each time.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable

from ..repeats import Recurring

MAX_DELAY = 5.0  # seconds: a change is acted on by then even if the file is still changing
NOTICE_EVERY = 600.0  # seconds before the admin hears of the same config error again

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
    several writes (or a delete-then-create) triggers one reload, not three half-written ones; but no
    later than `max_delay` seconds after the first unsettled change, so edits that never pause still
    reach the daemon (a half-written file is refused by validation and the previous config kept).
    """

    def __init__(
        self,
        path: str,
        *,
        debounce: float = 1.0,
        max_delay: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.debounce = debounce
        self.max_delay = max_delay
        self._clock = clock
        self._seen = _stat(path)
        self._digest = _digest(path)
        self._pending_since: float | None = None  # the last change not yet acted on
        self._first_pending: float | None = None  # the first one

    def accept(self) -> None:
        """Take the file as it is now as the baseline (after a reload triggered some other way, e.g. SIGHUP)."""
        self._seen = _stat(self.path)
        self._digest = _digest(self.path)
        self._pending_since = self._first_pending = None

    def changed(self) -> bool:
        now = self._clock()
        current = _stat(self.path)
        if current != self._seen:
            self._seen = current
            self._pending_since = now
            if self._first_pending is None:
                self._first_pending = now
        if self._pending_since is None or self._first_pending is None:
            return False
        if now - self._pending_since < self.debounce and now - self._first_pending < self.max_delay:
            return False
        self._pending_since = self._first_pending = None
        digest = _digest(self.path) if current is not None else None
        if digest == self._digest:
            return False
        self._digest = digest
        return True


class ReloadNotices:
    """The admin channel's notices about reloads: each distinct error once, again at most every `every`
    seconds while the config stays broken, and one notice when a reload succeeds after a failure."""

    def __init__(self, every: float = NOTICE_EVERY, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._errors = Recurring(every, monotonic=monotonic)

    def failed(self, error: str) -> str | None:
        """The notice to send for a refused reload, or None: this error was told recently."""
        # Line numbers move while the user edits around the mistake: "config.yaml:14:" and ":15:" are one error.
        if self._errors.seen(re.sub(r":\d+:", ":", error)) is None:
            return None
        return f"⚠️ topic-monitor: config reload failed, still running the previous config.\n{error}"

    def applied(self) -> str | None:
        """The notice for a reload that worked: one when it fixes a failure that was told, else None."""
        if not self._errors.over():
            return None
        return "✅ topic-monitor: config reloaded, the error is fixed."
