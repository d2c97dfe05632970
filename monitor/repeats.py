"""How often to say something that keeps happening: pure bookkeeping, the caller does the saying.

    Throttle(burst, window)   at most `burst` lines per key (a channel) in `window` seconds; the lines held
                              back are counted and the count goes out with the next line let through
    Recurring(every)          one line per distinct problem, again at most every `every` seconds while it
                              lasts, with the number of repeats; `over()` when it is fixed (a "works again" line)

Time is a monotonic clock passed in (tests pass FakeClock.monotonic). Both are thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Window:
    start: float
    lines: int = 0
    held: int = 0


class Throttle:
    """Lets through at most `burst` lines per key in any window of `window` seconds."""

    def __init__(self, burst: int = 5, window: float = 60.0, *, monotonic: Callable[[], float] = time.monotonic):
        self.burst = burst
        self.window = window
        self._monotonic = monotonic
        self._keys: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        """None: hold this line back (it is counted); else let it through, with the number held back before it."""
        now = self._monotonic()
        with self._lock:
            state = self._keys.get(key)
            if state is None or now - state.start >= self.window:
                state = self._keys[key] = _Window(now, held=state.held if state else 0)
            if state.lines >= self.burst:
                state.held += 1
                return None
            state.lines += 1
            held, state.held = state.held, 0
            return held


class Recurring:
    """Tells each distinct cause of a lasting problem once, then at most every `every` seconds."""

    def __init__(self, every: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._monotonic = monotonic
        self._told: dict[str, tuple[float, int]] = {}  # cause -> (when last told, occurrences since)
        self._total = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        with self._lock:
            return self._total > 0

    def seen(self, cause: str) -> int | None:
        """Count one occurrence of `cause`. When it should be told now, the occurrences since it was last told
        (1 the first time); None when it is only counted."""
        now = self._monotonic()
        with self._lock:
            self._total += 1
            told, since = self._told.get(cause, (None, 0))
            since += 1
            if told is not None and now - told < self.every:
                self._told[cause] = (told, since)
                return None
            self._told[cause] = (now, 0)
            return since

    def over(self) -> int:
        """The problem is fixed: forget every cause; how many occurrences it had (0: there was no problem)."""
        with self._lock:
            total, self._total = self._total, 0
            self._told.clear()
            return total
