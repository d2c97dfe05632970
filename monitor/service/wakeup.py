"""The main loop's wakeup: signals and other threads interrupt its wait at once.

Signal handlers only set flags (Python runs them between two bytecodes of the main thread, wherever it is);
the wakeup fd (signal.set_wakeup_fd) writes a byte to a socket pair for each signal, and `wake()` from any
thread writes one too, so the loop's select() returns without waiting out its tick.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from types import FrameType


class Wakeup:
    """A socket pair: `wait(timeout)` sleeps until `wake()`, a signal, or the timeout."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def wake(self) -> None:
        """Thread-safe and signal-safe."""
        # OSError: the buffer is full (it is awake anyway) or the socket is closed (stopped)
        with contextlib.suppress(OSError):
            self._w.send(b"\0")

    def wait(self, timeout: float) -> None:
        select.select([self._r], [], [], timeout)
        try:
            while self._r.recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def on_signals(self, handlers: Mapping[signal.Signals, Callable[[], None]]) -> Callable[[], None]:
        """Call `handlers[signum]()` on those signals and wake; returns what puts the old handlers back.

        Only the main thread may install signal handlers: elsewhere (tests) this does nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handle(signum: int, frame: FrameType | None) -> None:
            handlers[signal.Signals(signum)]()

        old = {signum: signal.getsignal(signum) for signum in handlers}
        old_fd = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        for signum in handlers:
            signal.signal(signum, handle)

        def restore() -> None:
            signal.set_wakeup_fd(old_fd)
            for signum, handler in old.items():
                signal.signal(signum, handler)

        return restore

    def close(self) -> None:
        self._r.close()
        self._w.close()
