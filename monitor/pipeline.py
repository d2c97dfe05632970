"""The order of one poll, and nothing else.

    fetch(url, validators)          -> 304: record state, stop
      | parse(bytes, content-type)  -> error: record on feed, back off, stop
      | store new/changed items     (new = (feed, key) never seen; no timestamp cutoff)
      | full text for new items     (feeds with full_text: true)
      | classify each item          (TopicModel.classify)
      | group into stories          (StoryGrouper.assign)
      | enqueue alerts              (store.record_alert: match + alert + outbox rows, one transaction)
      | next poll time              (feeds.schedule.next_poll)

Delivery of the outbox is separate (outbox.Deliverer), so a slow channel never holds up polling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .models import Item, Match


@dataclass(frozen=True)
class PollReport:
    """What one poll of one feed did."""

    feed: str
    status: str  # ok | not_modified | error
    new: int = 0
    total: int = 0
    elapsed: float = 0.0
    error: str | None = None
    next_poll: datetime | None = None
    items: tuple[Item, ...] = ()  # new and changed items
    matches: dict[str, tuple[Match, ...]] = field(default_factory=dict)  # item uid -> matched topics
    alerts: int = 0
