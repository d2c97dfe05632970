"""The config's value types: durations ("5m"), times of day ("08:00"), quiet hours, Telegram user ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time as dtime
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """'30s', '5m', '1h', '1d' (or a number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 5m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f'expected a duration like 5m, got "{value}"')
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as config.yaml writes it, for display: 86400 -> "1d", 300 -> "5m", 90 -> "90s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds < 1:
        raise ValueError(f'expected a duration of at least 1s, got "{value}"')
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]


def _clock_time(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(f'expected a time like "08:00", got {value!r}')
    return value


ClockTime = Annotated[str, BeforeValidator(_clock_time)]


def clock_or_off(value: object) -> str:
    # YAML 1.1 reads a bare `off` as false, and a bare 18:00 as the base-60 number 1080.
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return "off"
    if isinstance(value, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        return value
    raise ValueError(f'expected a time in quotes like "17:00", or off, got {value!r}')


def parse_clock(value: str) -> dtime:
    hours, minutes = value.split(":")
    return dtime(int(hours), int(minutes))


@dataclass(frozen=True)
class QuietHours:
    """A channel's daily quiet time, in settings.timezone: "23:00-07:00" wraps midnight, "08:00-08:00" is empty."""

    start: dtime
    end: dtime

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(value: object) -> QuietHours:
    """Parse "23:00-07:00" into QuietHours: once, when the config is loaded."""
    if isinstance(value, QuietHours):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d\d:\d\d\s*-\s*\d\d:\d\d", value):
        raise ValueError(f'expected a range like "23:00-07:00", got {value!r}')
    start, end = (part.strip() for part in value.split("-"))
    return QuietHours(parse_clock(_clock_time(start)), parse_clock(_clock_time(end)))


def _user_id(value: object) -> int:
    # A digit string is fine: ids often come from the environment ("${ANALYST_ID}").
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a Telegram user id (a positive number), got {value!r}")
    return value


UserId = Annotated[int, BeforeValidator(_user_id)]
