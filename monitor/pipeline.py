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

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from . import config as cfg
from .delivery.rules import hold_until
from .errors import FetchError, MonitorError, ParseError
from .feeds.fulltext import extract_article
from .feeds.parse import parse_feed
from .feeds.schedule import next_poll
from .match.classify import TopicModel
from .models import FeedState, FetchResult, Item, Match, ParsedFeed, Story
from .ports import Clock, Fetcher, Store
from .stories.group import StoryGrouper

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Enqueued:
    """What processing one item led to."""

    matches: tuple[Match, ...]
    alerted: bool


class Pipeline:
    """Polls one feed at a time; safe to call from several threads at once."""

    def __init__(
        self,
        config: cfg.Config,
        store: Store,
        fetcher: Fetcher,
        model: TopicModel,
        grouper: StoryGrouper,
        clock: Clock,
        *,
        parse: Callable[..., ParsedFeed] = parse_feed,
    ) -> None:
        self.config = config
        self.parse = parse  # parse_feed, or a ParserPool running it in worker processes
        self.model = model
        self.store = store
        self.fetcher = fetcher
        self.grouper = grouper
        self.clock = clock
        # Grouping and enqueueing read-modify-write story state: one item at a time.
        self._story_lock = threading.Lock()

    def poll(self, feed: cfg.Feed) -> PollReport:
        """Ingest one feed, then match, group and enqueue its new and changed items."""
        done_before = self.store.get_feed(feed.name)
        report, new, changed = self.ingest(feed, done_before)
        # A feed's first poll brings its whole backlog: items older than `backfill` are matched and
        # grouped (so later reports of their stories stay quiet) but not alerted, or every new feed
        # would flood the analyst with last week's news.
        first_poll = done_before is None or done_before.last_success is None
        cutoff = self.clock.now() - timedelta(seconds=self.config.settings.backfill)
        matches: dict[str, tuple[Match, ...]] = {}
        alerts = 0
        for item, is_update in [*((i, False) for i in new), *((i, True) for i in changed)]:
            quiet = first_poll and item.published < cutoff
            done = self.process(item, update=is_update, alert=not quiet)
            if done.matches:
                matches[item.uid] = done.matches
            alerts += done.alerted
        return replace(report, matches=matches, alerts=alerts)

    def ingest(
        self, feed: cfg.Feed, state: FeedState | None = None
    ) -> tuple[PollReport, list[Item], list[Item]]:
        """Fetch, parse and store one feed; return the report and the (new, changed) items.

        `state` is the feed's stored state when the caller has read it already. Feed problems never
        raise: they are recorded on the feed's state and in the report. A process stopped after this
        step loses nothing: stored items not yet in a story are matched at start-up.
        """
        started = time.monotonic()
        now = self.clock.now()
        state = state or self.store.get_feed(feed.name) or FeedState(name=feed.name, url=feed.url)
        if state.url != feed.url:  # the user edited the URL: old validators belong to the old one
            state = replace(state, url=feed.url, etag=None, last_modified=None, redirected_to=None)
        try:
            result, parsed = self._fetch(feed, state.etag, state.last_modified, now)
        except (FetchError, ParseError) as exc:
            return self._finish(feed, state, now, started, "error", error=exc), [], []
        if parsed is None:
            return self._finish(feed, state, now, started, "not_modified", result=result), [], []
        new, changed = self.store.add_items(parsed.items, now)
        if feed.full_text:
            new = [self._with_full_text(item) for item in new]
        report = self._finish(
            feed,
            state,
            now,
            started,
            "ok",
            result=result,
            ttl=parsed.ttl,
            item_times=[i.published for i in parsed.items],
            new_items=(*new, *changed),
            new_count=len(new),
            warning=parsed.warning,
        )
        return report, new, changed

    def preview(self, feed: cfg.Feed) -> PollReport:
        """Fetch, parse and match one feed, writing nothing: `monitor check` beside a running daemon.

        The daemon owns the data directory's state. Items stored here would no longer be new to it, and
        a story grouped here would be missing from its in-memory window, so the same story could alert
        twice. The report lists the items the store does not hold yet and the topics each matches.
        """
        started = time.monotonic()
        state = self.store.get_feed(feed.name)
        # the daemon's validators (a 304 then means nothing new to it), if they belong to this URL
        same_url = state is not None and state.url == feed.url
        etag, modified = (state.etag, state.last_modified) if state is not None and same_url else (None, None)
        try:
            _, parsed = self._fetch(feed, etag, modified, self.clock.now())
        except (FetchError, ParseError) as exc:
            return PollReport(feed.name, "error", elapsed=time.monotonic() - started, error=str(exc))
        total = state.items_total if state else 0
        if parsed is None:
            return PollReport(feed.name, "not_modified", total=total, elapsed=time.monotonic() - started)
        unseen = [item for item in parsed.items if self.store.get_item(item.uid) is None]
        if feed.full_text:
            unseen = [self._with_full_text(item) for item in unseen]
        matches = {}
        for item in unseen:
            matched = tuple(m for m in self.model.classify(item.title, item.text, item.lang or None) if m.matched)
            if matched:
                matches[item.uid] = matched
        return PollReport(
            feed.name,
            "ok",
            new=len(unseen),
            total=total,
            elapsed=time.monotonic() - started,
            items=tuple(unseen),
            matches=matches,
        )

    def process(self, item: Item, *, update: bool = False, alert: bool = True) -> Enqueued:
        """Classify one stored item, place it in a story, and enqueue what the analyst should see.

        Per story and topic one alert: the first matching item alerts; later items of the story
        edit the sent message ("also: …"); a later item matching a topic the story had not matched
        alerts for that topic only. An updated item (same id, new text) alerts only for new topics.
        With `alert=False` the item is matched and grouped, and its topics count as told, silently.
        """
        config, model = self.config, self.model
        matched = tuple(m for m in model.classify(item.title, item.text, item.lang or None) if m.matched)
        with self._story_lock:
            now = self.clock.now()
            decision = self.grouper.assign(item, now)
            story = self.store.get_story(decision.story_id) or Story(
                id=decision.story_id, first_item=item.uid, first_seen=now, last_seen=now
            )
            fresh = tuple(m for m in matched if m.topic not in story.topics)
            if item.uid not in story.items:
                story = replace(
                    story,
                    items=(*story.items, item.uid),
                    sources=(*story.sources, item.feed),
                    last_seen=now,
                )
            alerted = False
            if fresh and not alert:
                story = replace(story, topics=(*story.topics, *(m.topic for m in fresh)))
            elif fresh:
                topics = [m.topic for m in fresh]
                channels = config.channels_for(topics)
                hold = hold_until(config, topics, channels, now)
                recorded = self.store.record_alert(item, fresh, channels, now, story_id=story.id, hold_until=hold)
                alerted = recorded is not None
                story = replace(story, topics=(*story.topics, *topics))
            # The story is saved before its edit is queued, so the edit renders the new source.
            self.store.put_story(story)
            if alert and not fresh and not update and not decision.is_new:
                first_alert = self.store.alert_for_story(story.id)
                if first_alert is not None:
                    channels = config.channels_for(list(story.topics))
                    self.store.record_story_update(first_alert, item, channels, now)
        return Enqueued(matches=matched, alerted=alerted)

    def _fetch(
        self, feed: cfg.Feed, etag: str | None, last_modified: str | None, now: datetime
    ) -> tuple[FetchResult, ParsedFeed | None]:
        """Fetch and parse one feed; None when the server says it has not changed. Raises FetchError, ParseError."""
        result = self.fetcher.fetch(feed.url, etag=etag, last_modified=last_modified, headers=feed.headers)
        if result.not_modified:
            return result, None
        parsed = self.parse(
            result.body or b"",
            feed=feed.name,
            url=result.url,
            now=now,
            content_type=result.content_type,
            encoding=feed.encoding,
        )
        return result, parsed

    def _with_full_text(self, item: Item) -> Item:
        """The article body from the item's page; the feed's text when that fails."""
        if not item.link:
            return item
        try:
            page = self.fetcher.get_page(item.link)
        except FetchError as exc:
            log.info("full text of %s: %s; keeping the feed's text", item.link, exc)
            return item
        body = extract_article(page.body or b"", page.url)
        return replace(item, content=body) if body else item

    def _finish(
        self,
        feed: cfg.Feed,
        state: FeedState,
        now: datetime,
        started: float,
        status: str,
        *,
        result: FetchResult | None = None,
        error: MonitorError | None = None,
        ttl: float | None = None,
        item_times: Sequence[datetime] = (),
        new_items: Sequence[Item] = (),
        new_count: int = 0,
        warning: str | None = None,
    ) -> PollReport:
        """Record the feed's state and when to poll it next."""
        settings = self.config.settings
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
        )
        # Counting costs a query; only a poll that stored something can change the count.
        total = self.store.count_items(feed.name) if new_items or state.items_total == 0 else state.items_total
        state = replace(
            state,
            last_fetch=now,
            next_poll=when,
            status=status,
            error_count=errors,
            items_total=total,
        )
        if error is None:
            state = replace(
                state,
                last_success=now,
                etag=result.etag if result and result.etag else state.etag,
                last_modified=result.last_modified if result and result.last_modified else state.last_modified,
                redirected_to=(result.permanent_redirect if result else None) or state.redirected_to,
                last_new_item=now if new_count else state.last_new_item,
            )
            if warning:
                log.info("%s: %s", feed.name, warning)
        else:
            state = replace(state, last_error=str(error), last_error_at=now)
            log.warning("%s: %s (retry at %s)", feed.name, error, when.isoformat(timespec="seconds"))
        self.store.put_feed(state)
        return PollReport(
            feed=feed.name,
            status=status,
            new=new_count,
            total=total,
            elapsed=time.monotonic() - started,
            error=str(error) if error else None,
            next_poll=when,
            items=tuple(new_items),
        )
