"""When an outbox row is tried: pure decisions of the channel's config, the alert's topics and the time.

pipeline:   store.record_alert(..., hold_until=hold_until(config, topics, channels, now))
                first_attempt: now (instant) or the next digest slot, moved past quiet hours
                unless a topic has priority: high
outbox:     quiet_end     a due row in quiet hours waits for their end
            retry_delay   after a failure, that row alone waits: the server's retry_after, else
                          monitor.backoff's curve; the channel's other rows go on
            channel_pause the whole channel waits only on news about the channel itself: a run of
                          failures to reach its server, or of failures of every kind (retry_after
                          from a 429 pauses it too, for that long)
            gives_up      past settings.give_up_after the row is marked failed
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import time as dtime

from ..backoff import backoff
from ..config import Config, ConsoleChannel, EmailChannel, QuietHours, TelegramChannel, parse_clock

ChannelConfig = ConsoleChannel | TelegramChannel | EmailChannel

RETRY_BASE = 5.0  # seconds before the first retry
RETRY_CAP = 1800.0  # backoff never waits longer than this between attempts
UNREACHABLE_AFTER = 3  # failures in a row to reach a channel's server (refused, no DNS) before it pauses
FAILING_AFTER = 10  # failures of any kind in a row before it pauses: the service is down, not one message
PAUSE_CAP = 300.0  # a paused channel is tried again (one row) at least this often


def quiet_end(quiet: QuietHours, now: datetime, tz: tzinfo) -> datetime | None:
    """When the quiet time that `now` falls in ends (UTC), or None when `now` is not quiet."""
    start, end = quiet.start, quiet.end
    if start == end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    quiet_now = start <= t < end if start < end else (t >= start or t < end)
    if not quiet_now:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz).astimezone(UTC)


def next_digest(channel: ChannelConfig, now: datetime, tz: tzinfo) -> datetime:
    """The first digest slot strictly after `now` (UTC): every `every` seconds counted from `at` (or from
    local midnight), or daily at `at` in the configured time zone."""
    local = now.astimezone(tz)
    at = parse_clock(channel.at) if channel.at else dtime(0, 0)
    if channel.every is None:
        slot = datetime.combine(local.date(), at, tzinfo=tz)
        if slot <= local:
            slot = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz)
        return slot.astimezone(UTC)
    anchor = datetime.combine(local.date(), at, tzinfo=tz).astimezone(UTC)
    periods = math.floor((now - anchor).total_seconds() / channel.every) + 1
    return anchor + timedelta(seconds=periods * channel.every)


def first_attempt(channel: ChannelConfig, priority_high: bool, now: datetime, tz: tzinfo) -> datetime:
    """When a new alert is first tried on a channel: now (instant), the next digest slot (digest), moved
    to the end of quiet hours unless the alert has a high-priority topic."""
    when = next_digest(channel, now, tz) if channel.mode == "digest" else now
    if channel.quiet_hours and not priority_high:
        when = quiet_end(channel.quiet_hours, when, tz) or when
    return when


def is_high_priority(topic_ids: Sequence[str], config: Config) -> bool:
    return any(t.priority == "high" for t in config.topics if t.id in topic_ids)


def hold_until(config: Config, topic_ids: Sequence[str], channels: Sequence[str], now: datetime) -> dict[str, datetime]:
    """`hold_until` for store.record_alert: the channels whose first attempt is later than now."""
    high = is_high_priority(topic_ids, config)
    out = {}
    for name in channels:
        when = first_attempt(config.channels[name], high, now, config.settings.tz)
        if when > now:
            out[name] = when
    return out


def retry_delay(
    attempts: int, retry_after: float | None = None, *, base: float = RETRY_BASE, cap: float = RETRY_CAP
) -> float:
    """Seconds a row waits after a failed attempt: the server's retry_after when it gave one (Bot API 429
    "parameters.retry_after": the number of seconds left to wait), else base·2^attempts up to `cap`.

    Only that row waits: with 20 % of calls failing at random, holding the channel for each failed row
    left it idle most of the time (issue 12, item 7)."""
    if retry_after is not None and retry_after > 0:
        return float(retry_after)
    return backoff(base, max(attempts, 0) + 1, cap)


def channel_pause(unreachable: int, failing: int, *, base: float = RETRY_BASE, cap: float = PAUSE_CAP) -> float | None:
    """Seconds the whole channel waits after `unreachable` failures in a row to reach its server and `failing`
    failures in a row of any kind (no success between); None: only the failed row backs off. Each further
    failure doubles the pause: after it, one row is tried, and its failure counts as the next in the run."""
    over = max(unreachable - UNREACHABLE_AFTER, failing - FAILING_AFTER)
    if over < 0:
        return None
    return backoff(base, over + 1, cap)


def gives_up(created: datetime, now: datetime, give_up_after: float) -> bool:
    """True when an alert created at `created` has been failing for too long to keep retrying."""
    return (now - created).total_seconds() >= give_up_after
