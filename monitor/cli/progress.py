"""A progress line on stderr for long commands (`eval`, a `check` of many feeds): done/total, rate, ETA.

Only on a terminal: redirected output, logs and `--json` get nothing. One line, rewritten in place at most
every REDRAW seconds and erased at the end, so what the command prints on stdout reads as without it.
No dependency: this is the whole of what tqdm would do here.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO

REDRAW = 0.2  # seconds between two redraws


def on_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


class Progress:
    """`step()` per unit of work (thread-safe); `close()` erases the line. Inert when `enabled` is false."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "items",
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = on_terminal(self.stream) if enabled is None else enabled
        self.done = 0
        self._clock = clock
        self._started = clock()
        self._drawn = float("-inf")
        self._width = 0
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        """A phase line ("scoring 12,000 items"), kept on the terminal."""
        if self.enabled:
            with self._lock:
                self._erase()
                self.stream.write(f"{text}\n")
                self.stream.flush()

    def step(self, count: int = 1) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += count
            now = self._clock()
            if now - self._drawn >= REDRAW or self.done >= self.total:
                self._drawn = now
                self._draw(self.line(now - self._started))

    def line(self, elapsed: float) -> str:
        """`scoring 1,200/12,000 items (10 %), 450 items/s, ETA 24s`."""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        left = (self.total - self.done) / rate if rate > 0 and self.total > self.done else None
        eta = f", ETA {_clock(left)}" if left is not None else ""
        return f"{self.label} {self.done:,}/{self.total:,} {self.unit}{share}, {rate:,.0f} {self.unit}/s{eta}"

    def close(self) -> None:
        if self.enabled:
            with self._lock:
                self._erase()
                self.stream.flush()

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write(f"\r{text}{' ' * pad}")
        self.stream.flush()
        self._width = len(text)

    def _erase(self) -> None:
        if self._width:
            self.stream.write(f"\r{' ' * self._width}\r")
            self._width = 0


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
