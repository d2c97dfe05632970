"""next_poll: fixed and adaptive intervals, backoff, server hints, jitter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from monitor.backoff import backoff, jitter
from monitor.feeds.schedule import adaptive_interval, next_poll

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MIN, MAX, DEFAULT, CAP = 300.0, 3 * 3600.0, 600.0, 6 * 3600.0


def delay(
    *,
    interval: float | None = None,
    max_age: float | None = None,
    ttl: float | None = None,
    retry_after: float | None = None,
    errors: int = 0,
    times: Sequence[datetime] = (),
) -> float:
    when = next_poll(
        NOW,
        interval=interval,
        min_interval=MIN,
        max_interval=MAX,
        default_interval=DEFAULT,
        result_max_age=max_age,
        ttl=ttl,
        retry_after=retry_after,
        error_count=errors,
        max_backoff=CAP,
        item_times=times,
    )
    return (when - NOW).total_seconds()


def every(minutes: float, count: int, *, ago: float = 1) -> list[datetime]:
    """`count` items, one every `minutes`, the newest `ago` minutes before NOW."""
    return [NOW - timedelta(minutes=ago + i * minutes) for i in range(count)]


def test_fixed_interval_is_used_as_is() -> None:
    assert delay(interval=120, times=every(1, 30)) == 120
    assert delay(interval=86400) == 86400


def test_no_items_ever_means_default_interval() -> None:
    assert delay() == DEFAULT


def test_busy_feed_polls_at_min_interval() -> None:
    assert delay(times=every(1, 30)) == MIN


def test_adaptive_interval_follows_the_mean_gap() -> None:
    # 12 items, one every 20 minutes, the newest a minute ago: the oldest is 221 min old → 221/12 min.
    assert delay(times=every(20, 12)) == pytest.approx(221 * 60 / 12)


def test_silent_feed_slows_down_to_max_interval() -> None:
    assert delay(times=every(60, 5, ago=60 * 24 * 8)) == MAX  # nothing in the last week
    assert delay(times=every(30, 3, ago=60 * 24)) == MAX  # three items a day ago: gap ≈ 8 h → clamped


def test_undated_and_future_item_times_are_ignored() -> None:
    # parse_feed gives undated entries published=now; they must not look like a burst of news.
    assert delay(times=[NOW] * 30) == DEFAULT
    assert delay(times=[NOW + timedelta(days=3)] * 5 + every(60, 3, ago=1)) == pytest.approx(121 * 60 / 3)


def test_only_the_newest_items_count() -> None:
    many = every(1, 30) + every(60, 500, ago=60)
    assert adaptive_interval(NOW, many, MIN, MAX, DEFAULT) == MIN


def test_errors_back_off_exponentially_up_to_the_cap() -> None:
    assert [delay(interval=600, errors=n) for n in range(7)] == [600, 600, 1200, 2400, 4800, 9600, 19200]
    assert delay(interval=600, errors=8) == CAP
    assert delay(interval=600, errors=10_000) == CAP  # never disabled, never overflows


def test_backoff_never_polls_faster_than_a_long_fixed_interval() -> None:
    assert backoff(86400, 3, CAP) == 86400


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        ({"max_age": 1800}, 1800),
        ({"ttl": 3600}, 3600),
        ({"retry_after": 900}, 900),
        ({"max_age": 60}, 600),  # shorter than the interval: no effect
        ({"retry_after": 7 * 86400}, CAP),  # clamped to max_backoff
        ({"max_age": 0, "ttl": None}, 600),
    ],
)
def test_server_hints_are_a_floor(hints: dict[str, float | None], expected: float) -> None:
    assert delay(interval=600, **hints) == expected  # type: ignore[arg-type]


def test_retry_after_with_errors_takes_the_longer() -> None:
    assert delay(interval=600, errors=3, retry_after=60) == 2400
    assert delay(interval=600, errors=1, retry_after=3000) == 3000


def test_min_above_max_is_tolerated() -> None:
    assert adaptive_interval(NOW, every(1, 30), 900, 900, DEFAULT) == 900


def test_jitter_is_stable_and_in_range() -> None:
    values = [jitter(f"feed-{i}", 60) for i in range(200)]
    assert values == [jitter(f"feed-{i}", 60) for i in range(200)]
    assert all(0 <= v < 60 for v in values)
    assert len({round(v) for v in values}) > 30  # spread out, not clustered
    assert jitter("x", 0) == 0
