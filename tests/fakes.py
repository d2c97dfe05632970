"""The one test clock. Time in tests comes from it, never from sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


class FakeClock:
    """Wall time (ports.Clock) and monotonic time that move only when advanced or slept on.

    `now()` for the pipeline, store and channels; `monotonic()` and `sleep()` for pacing and retries
    (pass the bound methods); `sleeps` records every sleep. Set `t` or `mono` to jump.
    """

    def __init__(self, start: datetime = T0, *, mono: float = 1000.0) -> None:
        self.t = start
        self.mono = mono
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        self.mono += seconds
