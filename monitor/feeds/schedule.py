"""When to poll a feed next: pure decisions, no I/O (times in, a time out).

The rule, in order:

1. Base interval. A configured `interval` is used as is. Otherwise it adapts to the feed's publishing rate
   (miniflux's "entry frequency" scheduler, generalised from its fixed week): take the feed's items of the
   last 7 days, at most the newest 30, and divide the time from the oldest of them to now by their count:
   the mean gap between items, which grows by itself when a feed falls silent. That is clamped to
   [min_interval, max_interval]. No items in 7 days → max_interval; no dated items at all → default_interval
   (clamped too). Times at or after now are ignored: they are parse_feed's first-seen stand-in for undated
   entries (or clamped future dates), and would otherwise pin an undated feed to min_interval.
2. Errors. After `error_count` consecutive errors the base is doubled per error: base · 2^(errors−1),
   capped at max_backoff (6 h by default), with monitor.backoff's stable jitter when a `key` (the feed's
   name) is given. A feed is never disabled: it is retried at the cap forever.
3. Server hints. Never sooner than Cache-Control max-age, RSS <ttl> or Retry-After, each clamped to
   max_backoff so a hostile or mistaken server cannot park a feed for days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ..backoff import backoff

RATE_WINDOW = timedelta(days=7)
RATE_ITEMS = 30


def next_poll(
    now: datetime,
    *,
    interval: float | None,
    min_interval: float,
    max_interval: float,
    default_interval: float,
    result_max_age: float | None,
    ttl: float | None,
    retry_after: float | None,
    error_count: int,
    max_backoff: float,
    item_times: Sequence[datetime],
    key: str | None = None,
) -> datetime:
    """The time of the next poll (see the module docstring for the rule)."""
    max_interval = max(min_interval, max_interval)
    if interval is not None:
        base = interval
    else:
        base = adaptive_interval(now, item_times, min_interval, max_interval, default_interval)
    delay = backoff(base, error_count, max_backoff, key=key)
    hints = [h for h in (result_max_age, ttl, retry_after) if h is not None and h > 0]
    return now + timedelta(seconds=max([delay, *(min(h, max_backoff) for h in hints)]))


def adaptive_interval(
    now: datetime,
    item_times: Sequence[datetime],
    min_interval: float,
    max_interval: float,
    default_interval: float,
) -> float:
    """The mean gap between the feed's recent items, clamped to [min_interval, max_interval]."""
    # Times at or after `now` say nothing about the rate: parse_feed dates undated entries `now` (first seen),
    # and counting those would pin every undated feed to min_interval.
    dated = [t for t in item_times if t < now]
    if not dated:
        return _clamp(default_interval, min_interval, max_interval)
    recent = sorted((t for t in dated if now - t <= RATE_WINDOW), reverse=True)[:RATE_ITEMS]
    if not recent:
        return max_interval
    gap = (now - recent[-1]).total_seconds() / len(recent)
    return _clamp(gap, min_interval, max_interval)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))
