"""The daemon's summary line: once shortly after start-up, then hourly (issue 13).

    summary: 10 of 12 feeds reachable, 2 failing (Interfax, TASS); 37 new items in the last hour; 3 alerts queued

A daemon whose feeds all fail would otherwise say so once per feed at start-up and then stay silent. The
tally is fed by every poll (`record`); the line is a pure function of it (`summary_line`). The daemon's stats
job asks `due` every 15 s, so no job of its own is needed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import PollReport

EVERY = 3600.0  # seconds between two summary lines
WINDOW = 3600.0  # "new items in the last hour"
SHOWN_FAILING = 5  # failing feeds named in the line; the rest are counted


@dataclass(frozen=True)
class FeedTally:
    """What one poll of a feed said, for the summary."""

    status: str  # ok | not_modified | error
    new: int
    at: datetime


class PollTally:
    """The last poll of each feed and the new items of the last WINDOW; thread-safe (polls run in a pool)."""

    def __init__(self, started: datetime) -> None:
        self.started = started
        self._lock = threading.Lock()
        self._last: dict[str, FeedTally] = {}
        self._new: deque[tuple[datetime, int]] = deque()
        self._next: datetime | None = None

    def record(self, report: PollReport, now: datetime) -> None:
        with self._lock:
            self._last[report.feed] = FeedTally(report.status, report.new, now)
            if report.new:
                self._new.append((now, report.new))
            self._forget(now)

    def new_since(self, since: datetime) -> int:
        with self._lock:
            return sum(count for at, count in self._new if at >= since)

    def last(self) -> dict[str, FeedTally]:
        with self._lock:
            return dict(self._last)

    def due(self, now: datetime, first_after: float) -> bool:
        """True once `first_after` seconds after the start, then every EVERY seconds; moves the next time on."""
        with self._lock:
            when = self._next or self.started + timedelta(seconds=first_after)
            if now < when:
                self._next = when
                return False
            self._next = now + timedelta(seconds=EVERY)
            return True

    def _forget(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=WINDOW)
        while self._new and self._new[0][0] < cutoff:
            self._new.popleft()


def summary_line(
    feeds: Iterable[str], last: Mapping[str, FeedTally], new_items: int, outbox: Mapping[str, int],
    now: datetime, started: datetime,
) -> str:  # fmt: skip
    """The line: feeds reachable / failing / not polled yet, new items in the last hour, alerts queued."""
    names = list(feeds)
    failing = [name for name in names if name in last and last[name].status == "error"]
    waiting = [name for name in names if name not in last]
    reachable = len(names) - len(failing) - len(waiting)
    parts = [f"{reachable} of {len(names)} feeds reachable"]
    if failing:
        shown = ", ".join(failing[:SHOWN_FAILING]) + (f" and {len(failing) - SHOWN_FAILING} more"
                                                      if len(failing) > SHOWN_FAILING else "")  # fmt: skip
        parts.append(f"{len(failing)} failing ({shown})")
    if waiting:
        parts.append(f"{len(waiting)} not polled yet")
    window = min(WINDOW, (now - started).total_seconds())
    span = "the last hour" if window >= WINDOW else f"the {_span(window)} since start-up"
    queued = outbox.get("pending", 0)
    failed = outbox.get("failed", 0)
    alerts = f"{queued} alert{'s' if queued != 1 else ''} queued" + (f", {failed} failed" if failed else "")
    return f"summary: {', '.join(parts)}; {new_items} new items in {span}; {alerts}"


def _span(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min"
