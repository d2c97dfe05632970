"""sd_notify(3) without libsystemd: READY=1, RELOADING=1, WATCHDOG=1, STATUS=, STOPPING=1 over $NOTIFY_SOCKET.

The protocol is one AF_UNIX datagram per message, "KEY=value" lines; a socket name starting with "@" is in
the Linux abstract namespace (first byte NUL). See sd_notify(3) and systemd.service(5) `Type=notify`,
`WatchdogSec=`. The environment is passed in by the caller (only `config`/`cli` read os.environ).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SdNotifier:
    """Talks to the service manager when started under systemd; every method is a no-op otherwise."""

    def __init__(self, socket_path: str | None = None, watchdog_usec: int | None = None) -> None:
        self.socket_path = socket_path or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SdNotifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (ignored when it names another process)."""
        watchdog: int | None = None
        pid = environ.get("WATCHDOG_PID", "")
        if not pid or pid == str(os.getpid()):
            try:
                watchdog = int(environ.get("WATCHDOG_USEC", ""))
            except ValueError:
                watchdog = None
        return cls(environ.get("NOTIFY_SOCKET"), watchdog)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of WatchdogSec, as sd_watchdog_enabled(3) advises."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, *states: str) -> bool:
        """Send "KEY=value" lines in one datagram; return whether it was sent."""
        if self.socket_path is None or not states:
            return False
        address: str | bytes = self.socket_path
        if self.socket_path.startswith("@"):
            address = b"\0" + self.socket_path[1:].encode()
        try:
            # Non-blocking: if nobody drains the socket (its queue holds ~10 datagrams), drop the message
            # rather than hang the caller, which may be the shutdown path.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
                sock.connect(address)
                sock.sendall("\n".join(states).encode())
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.socket_path, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def reloading(self) -> bool:
        """A reload begins; READY=1 must follow when it is over, whatever the outcome.

        MONOTONIC_USEC (CLOCK_MONOTONIC, µs) lets a Type=notify-reload unit (systemd 253) tell this
        notification from one sent before its SIGHUP; older systemd ignores it."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")
