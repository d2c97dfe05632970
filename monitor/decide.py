"""The pipeline's decisions, as pure functions of data: no store, no clock, no network.

    is_backfill(item, feed state, now, backfill)  -> match and group quietly?    (a new feed's backlog)
    decide(item, matches, story, placement, ...)  -> ItemIntent                   (story update, alert, edit,
                                                                                   near misses to offer)
    next_feed_state(feed, settings, state, ...)   -> FeedState                    (status, validators, next poll)

The pipeline does the I/O around them: it reads what they need, and applies what they return (an ItemIntent in one
store transaction, Store.apply). `monitor check` beside a daemon runs the same decisions and applies nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from . import config as cfg
from .delivery.nearmiss import offer_day
from .delivery.rules import hold_until
from .errors import MonitorError
from .feeds.schedule import next_poll
from .models import AlertIntent, FeedState, FetchResult, Item, ItemIntent, Match, NearMissIntent, Story
from .stories.group import StoryDecision


def is_backfill(item: Item, state: FeedState | None, now: datetime, backfill: float) -> bool:
    """An item of a feed's first poll older than `backfill` seconds: matched and grouped, not alerted.

    A feed's first poll brings its whole backlog; alerting it would flood the analyst with last week's news.
    Grouping it still keeps later reports of those stories quiet.
    """
    first_poll = state is None or state.last_success is None
    return first_poll and item.published < now - timedelta(seconds=backfill)


def decide(
    item: Item,
    matched: Sequence[Match],
    story: Story | None,
    placement: StoryDecision,
    config: cfg.Config,
    now: datetime,
    *,
    update: bool = False,
    alert: bool = True,
    near: Sequence[Match] = (),
    near_per_day: int = 0,
) -> ItemIntent:
    """What one classified and grouped item leads to.

    `matched` are the item's matching topics, `placement` where the grouper put it, `story` that story as stored
    (None: not stored yet); of its members it need list only the item, if the item is one (Store.get_stories reads
    no more, so the decision costs the same for a story of any size). The returned story is what the store saves:
    its row, and the item appended to its members.

    Per story and topic one alert: the first matching item alerts; later items of the story edit the sent message
    ("also: …"); a later item matching a topic the story had not matched alerts for that topic only. An updated item
    (same id, new text) alerts only for new topics and edits nothing. With `alert=False` (backfill), or in a muted
    story, the item's topics count as told, silently.

    `near` are the topics the model calls near misses (TopicModel.is_near_miss): kept to be offered for a label,
    at most `near_per_day` per topic and day, unless vetoed, already told for the story, routed to no channel, in
    a muted story or backfill, or offering is off. The store keys them by (item, topic), so an updated item
    already offered is not offered again.

    A topic a story gains later (`topic_gain`, issue 14 §2), when the story's first alert time is known
    (`story.first_alert_at`, as the store reads it): while that alert is less than TOPIC_GAIN_EDIT old, the topic
    is recorded and told by an edit of its message, not a second message; later it is a new alert (rendered as
    continuing a story already sent). The returned story carries its first alert's time, so a later item of the
    same poll decides on it too.
    """
    if story is None:
        story = Story(id=placement.story_id, first_item=item.uid, first_seen=now, last_seen=now)
    told = story.topics
    fresh = tuple(m for m in matched if m.topic not in story.topics)
    if item.uid not in story.items:
        story = replace(story, items=(*story.items, item.uid), sources=(*story.sources, item.feed), last_seen=now)
    if fresh:
        story = replace(story, topics=(*story.topics, *(m.topic for m in fresh)))
    if not alert or story.muted:
        return ItemIntent(item, story, now)
    offered = _near_misses(near, story, config, now, near_per_day)
    first_alert_at = story.first_alert_at
    if fresh and first_alert_at is not None and topic_gain(told, first_alert_at, now) == "edit":
        return _gained_by_edit(item, story, now, fresh, told, config, offered)
    if fresh:
        story = replace(story, first_alert_at=first_alert_at or now)
        topics = [m.topic for m in fresh]
        channels = config.channels_for(topics)
        held = hold_until(config, topics, channels, now)
        return ItemIntent(item, story, now, alert=AlertIntent(fresh, tuple(channels), held), near=offered)
    if update or placement.is_new:
        return ItemIntent(item, story, now, near=offered)
    return ItemIntent(item, story, now, edit=tuple(config.channels_for(story.topics)), near=offered)


# Issue 14 §2: an analyst reading a story's alert should see a topic it gains soon after as part of that message
# ("+ Ukraine settlement"); an hour later the first message has scrolled away, and an edit would go unseen.
TOPIC_GAIN_EDIT = timedelta(hours=1)


def topic_gain(told: Sequence[str], first_alert_at: datetime, now: datetime) -> Literal["first", "edit", "continues"]:
    """How newly matched topics of a story are told: the story's first alert ("first": none told yet), an edit of
    the first alert's message (it is less than TOPIC_GAIN_EDIT old), or a new message that continues the story."""
    if not told:
        return "first"
    return "edit" if now - first_alert_at < TOPIC_GAIN_EDIT else "continues"


def _gained_by_edit(
    item: Item,
    story: Story,
    now: datetime,
    fresh: Sequence[Match],
    told: Sequence[str],
    config: cfg.Config,
    offered: NearMissIntent | None,
) -> ItemIntent:
    """The gained topics recorded as an alert (matches, labels, `monitor alerts`) that is sent nowhere itself:
    the channels of the first alert get an edit of its message; a channel only the new topics go to, which has no
    message to edit, gets the alert as a message of its own."""
    before = config.channels_for(list(told))
    own = tuple(c for c in config.channels_for([m.topic for m in fresh]) if c not in before)
    held = hold_until(config, [m.topic for m in fresh], list(own), now) if own else {}
    edit = tuple(config.channels_for(list(story.topics)))
    return ItemIntent(item, story, now, alert=AlertIntent(tuple(fresh), own, held), edit=edit, near=offered)


def _near_misses(
    near: Sequence[Match], story: Story, config: cfg.Config, now: datetime, per_day: int
) -> NearMissIntent | None:
    at = config.settings.near_miss_time
    if at is None or per_day <= 0:
        return None
    kept = tuple(
        m
        for m in near
        if not m.matched and m.vetoed_by is None and m.topic not in story.topics and config.channels_for([m.topic])
    )
    return NearMissIntent(kept, offer_day(now, at, config.settings.tz), per_day) if kept else None


def next_feed_state(
    feed: cfg.Feed,
    settings: cfg.Settings,
    state: FeedState,
    now: datetime,
    status: str,
    *,
    total: int,
    result: FetchResult | None = None,
    error: MonitorError | None = None,
    ttl: float | None = None,
    item_times: Sequence[datetime] = (),
    new_count: int = 0,
) -> FeedState:
    """The feed's state after a poll: its status and errors, validators, item count and when to poll it next."""
    errors = state.error_count + 1 if error else 0
    retry_after = getattr(error, "retry_after", None) or (result.retry_after if result else None)
    when = next_poll(
        now,
        interval=feed.interval,
        min_interval=feed.min_interval or min(60.0, settings.default_interval),
        max_interval=feed.max_interval or max(4 * settings.default_interval, 3600.0),
        default_interval=settings.default_interval,
        result_max_age=result.max_age if result else None,
        ttl=ttl,
        retry_after=retry_after,
        error_count=errors,
        max_backoff=settings.max_backoff,
        item_times=item_times,
        key=feed.name,  # a stable jitter on the error backoff: feeds failing together do not retry together
    )
    state = replace(state, last_fetch=now, next_poll=when, status=status, error_count=errors, items_total=total)
    if error is not None:
        return replace(state, last_error=str(error), last_error_at=now)
    return replace(
        state,
        last_success=now,
        etag=result.etag if result and result.etag else state.etag,
        last_modified=result.last_modified if result and result.last_modified else state.last_modified,
        redirected_to=(result.permanent_redirect if result else None) or state.redirected_to,
        last_new_item=now if new_count else state.last_new_item,
    )
