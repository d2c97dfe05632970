"""When an outbox row is tried: first attempts, quiet hours, digest slots, retries, giving up."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.config import parse_quiet_hours
from monitor.delivery.rules import (
    channel_pause,
    first_attempt,
    gives_up,
    hold_until,
    next_digest,
    quiet_end,
    retry_delay,
)
from tests.test_outbox import MSK, T0, at, make_config


def channel_cfg(**fields: Any) -> Any:
    return make_config({"c": {"type": "console", **fields}}).channels["c"]


def test_first_attempt_instant() -> None:
    assert first_attempt(channel_cfg(), False, T0, MSK) == T0


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(23, 30), at(7, 0, day=26)),
        (at(2, 0), at(7, 0)),
        (at(6, 59), at(7, 0)),
        (at(7, 0), at(7, 0)),
        (at(12, 0), at(12, 0)),
        (at(22, 59), at(22, 59)),
    ],
)
def test_quiet_hours_hold_until_they_end(now: datetime, expected: datetime) -> None:
    assert first_attempt(channel_cfg(quiet_hours="23:00-07:00"), False, now, MSK) == expected


def test_high_priority_bypasses_quiet_hours() -> None:
    assert first_attempt(channel_cfg(quiet_hours="23:00-07:00"), True, at(23, 30), MSK) == at(23, 30)


def test_quiet_hours_within_a_day_and_empty() -> None:
    assert quiet_end(parse_quiet_hours("13:00-14:30"), at(13, 10), MSK) == at(14, 30)
    assert quiet_end(parse_quiet_hours("13:00-14:30"), at(14, 30), MSK) is None
    assert quiet_end(parse_quiet_hours("08:00-08:00"), at(8, 0), MSK) is None


@pytest.mark.parametrize(
    ("fields", "now", "expected"),
    [
        ({"every": "1h"}, at(10, 20), at(11, 0)),
        ({"every": "1h"}, at(11, 0), at(12, 0)),
        ({"every": "15m"}, at(23, 50), at(0, 0, day=26)),
        ({"at": "08:00"}, at(7, 59), at(8, 0)),
        ({"at": "08:00"}, at(8, 30), at(8, 0, day=26)),
        ({"at": "08:00", "every": "12h"}, at(9, 0), at(20, 0)),
        ({"at": "08:00", "every": "12h"}, at(3, 0), at(8, 0)),
    ],
)
def test_digest_slots(fields: dict[str, Any], now: datetime, expected: datetime) -> None:
    channel = channel_cfg(mode="digest", **fields)
    assert next_digest(channel, now, MSK) == expected
    assert first_attempt(channel, True, now, MSK) == expected


def test_digest_slot_in_quiet_hours_moves_to_their_end() -> None:
    channel = channel_cfg(mode="digest", at="06:00", quiet_hours="23:00-07:00")
    assert first_attempt(channel, False, at(12, 0), MSK) == at(7, 0, day=26)


def test_digest_at_follows_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    channel = channel_cfg(mode="digest", at="08:00")
    before = datetime(2026, 3, 28, 9, 0, tzinfo=berlin)  # the clocks go forward that night
    assert next_digest(channel, before, berlin) == datetime(2026, 3, 29, 8, 0, tzinfo=berlin)


def test_retry_delay() -> None:
    assert [retry_delay(n) for n in range(4)] == [5, 10, 20, 40]
    assert retry_delay(50) == 1800
    assert retry_delay(0, retry_after=33) == 33
    assert retry_delay(9, retry_after=2) == 2


@pytest.mark.parametrize(
    ("unreachable", "failing", "pause"),
    [
        (0, 1, None),  # one 5xx: only that row waits
        (0, 9, None),
        (2, 2, None),  # refused twice: maybe a blip
        (3, 3, 5.0),  # refused three times in a row: the server is not there
        (4, 4, 10.0),
        (0, 10, 5.0),  # ten failures in a row of any kind: the service is down
        (0, 12, 20.0),
        (40, 40, 300.0),  # capped: one row is tried at least every 5 minutes
    ],
)
def test_channel_pause(unreachable: int, failing: int, pause: float | None) -> None:
    assert channel_pause(unreachable, failing) == pause


def test_gives_up() -> None:
    week = 7 * 86400.0
    assert not gives_up(T0, T0 + timedelta(days=6, hours=23), week)
    assert gives_up(T0, T0 + timedelta(days=7), week)


def test_hold_until_for_the_pipeline() -> None:
    config = make_config({"now": {"type": "console"}, "night": {"type": "console", "quiet_hours": "23:00-07:00"}})
    assert hold_until(config, ["strategic"], ["now", "night"], at(12)) == {}
    assert hold_until(config, ["strategic"], ["now", "night"], at(23, 30)) == {"night": at(7, 0, day=26)}
    assert hold_until(config, ["alarm", "strategic"], ["now", "night"], at(23, 30)) == {}
