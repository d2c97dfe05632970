"""The order of one poll, and nothing else.

    fetch(url, validators)          -> 304: record state (store.put_feed), stop
      | parse(bytes, content-type)  -> error: record on feed, back off (store.put_feed), stop
      | store new/changed items     (new = (feed, key) never seen; no timestamp cutoff)  } store.store_poll:
      |   with the feed's state     (decide.next_feed_state, next poll time; pure given  } one transaction
      |                              the item count, which the store counts in it)
      | full text for new items     (feeds with full_text: true)
      | the poll's items, as one batch:
      |   analyse each text once    (match.text.AnalysedText: read by matching and by grouping)
      |   classify them together    (TopicModel.classify_texts)
      |   group into stories        (StoryGrouper.assign, in order)           } under the grouping lock
      |   read their stories        (store.get_stories: rows, not members)    } under the story lock, taken
      |   decide, item by item      (decide.decide -> ItemIntent; pure)       } in grouping order
      |   apply                     (store.apply_all: stories, matches, alerts, outbox rows, near misses;
      |                              one transaction for the poll, and for the polls that waited
      |                              at the grouping lock with it: a group commit)

Delivery of the outbox is separate (outbox.Deliverer), so a slow channel never holds up polling.

A successful poll writes in two transactions: its items with the feed's state, then what processing them
decided. Both are all or nothing. A failed or killed first one leaves the feed as it was: the next poll fetches
the same items, new again. Between the two, the items are stored and no longer new to the next poll: a database
write that fails while they are processed (disk full, database locked) raises StoreError out of the poll and
keeps them (`finish_unfinished`), and a stopped process's are found at start-up; without this their alerts
would be lost. A poll's items are applied in one transaction (with those of the polls that waited with it), so a
process killed at any point has recorded all of them or none, and alerts are keyed, so none is queued twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime

from . import config as cfg
from .decide import decide, is_backfill, next_feed_state
from .errors import FetchError, MonitorError, ParseError, StoreError
from .feeds.fulltext import extract_article
from .feeds.parse import parse_feed
from .match.classify import NEAR_MISSES_PER_TOPIC_DAY, TopicModel
from .match.text import AnalysedText, analyse
from .models import FeedState, FetchResult, Item, Match, ParsedFeed, PollReport, Story
from .ports import Clock, Fetcher, Store
from .stories.group import StoryDecision, StoryGrouper

log = logging.getLogger(__name__)

RECOVER_BATCH = 100  # unfinished items matched per transaction by finish_unfinished


@dataclass(frozen=True)
class Unfinished:
    """An item stored but not yet matched, with how it was to be processed."""

    item: Item
    update: bool = False
    alert: bool = True


@dataclass(frozen=True)
class Enqueued:
    """What processing one item led to."""

    matches: tuple[Match, ...]
    alerted: bool


@dataclass
class _Batch:
    """One process_all call's items, classified, waiting for the grouping lock; `result` is set by whichever
    call took the lock and placed and applied it (with the other batches waiting then)."""

    todo: Sequence[Unfinished]
    analysed: Sequence[AnalysedText]
    matched: Sequence[tuple[Match, ...]]
    near: Sequence[tuple[Match, ...]]
    config: cfg.Config
    taken: bool = False
    result: Future[list[Enqueued]] = field(default_factory=Future)


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
        self._current = (config, model)  # swapped as one pair by use(): an item never sees a mix of two configs
        self._swap_lock = threading.Lock()
        self.parse = parse  # parse_feed, or a ParserPool running it in worker processes
        self.store = store
        self.fetcher = fetcher
        self.grouper = grouper
        self.clock = clock
        # Grouping decides the order items enter stories; reading, deciding and applying read-modify-write stored
        # story state. A batch takes the story lock before it lets go of the grouping lock, so stories are decided
        # in the order their items were grouped, while the next batch groups as this one writes.
        self._group_lock = threading.Lock()
        self._story_lock = threading.Lock()
        # Batches waiting for the grouping lock: the call that gets it places and applies all of them, in the order
        # they came, in one transaction (a group commit). Under a burst, polls queue at the lock, and each lock
        # hand-over, story read and transaction cost about as much as the few items of a poll.
        self._waiting: list[_Batch] = []
        self._waiting_lock = threading.Lock()
        self._unfinished: list[Unfinished] = []
        self._unfinished_lock = threading.Lock()

    @property
    def config(self) -> cfg.Config:
        return self._current[0]

    @property
    def model(self) -> TopicModel:
        return self._current[1]

    def use(self, *, config: cfg.Config | None = None, model: TopicModel | None = None) -> None:
        """Swap in a new config and/or topic model (reload, refit); items processed from now on use them.

        Safe while other threads poll: an item in progress finishes with the pair it started with.
        """
        with self._swap_lock:
            old_config, old_model = self._current
            self._current = (old_config if config is None else config, old_model if model is None else model)

    def poll(self, feed: cfg.Feed, *, alert: bool = True) -> PollReport:
        """Ingest one feed, then match, group and enqueue its new and changed items.

        `alert=False` (`monitor check --learn`): every item is processed silently, as a new feed's backlog is."""
        done_before = self.store.get_feed(feed.name)
        report, new, changed = self.ingest(feed, done_before)
        now = self.clock.now()
        matches: dict[str, tuple[Match, ...]] = {}
        alerts = 0
        todo = self._todo(new, changed, done_before, now)
        if not alert:
            todo = [replace(step, alert=False) for step in todo]
        try:
            done = self.process_all(todo)
        except StoreError:
            self.keep_unfinished(todo)  # stored, not matched: App.recover matches them once writes work
            raise
        for step, enqueued in zip(todo, done, strict=True):
            if enqueued.matches:
                matches[step.item.uid] = enqueued.matches
            alerts += enqueued.alerted
        return replace(report, matches=matches, alerts=alerts)

    def ingest(self, feed: cfg.Feed, state: FeedState | None = None) -> tuple[PollReport, list[Item], list[Item]]:
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
            return self._record(feed, state, now, started, "error", error=exc), [], []
        if parsed is None:
            return self._record(feed, state, now, started, "not_modified", result=result), [], []

        def settle(new: list[Item], changed: list[Item], count: Callable[[], int]) -> FeedState:
            return next_feed_state(
                feed,
                self.config.settings,
                state,
                now,
                "ok",
                total=_total(state, bool(new or changed), count),
                result=result,
                ttl=parsed.ttl,
                item_times=[i.published for i in parsed.items],
                new_count=len(new),
            )

        # One transaction for the items and the feed's state: a StoreError or a kill leaves both or neither.
        new, changed, after = self.store.store_poll(feed.name, parsed.items, now, settle)
        if feed.full_text:
            new = [self._with_full_text(item, feed) for item in new]
        report = self._report(
            feed, after, started, new_items=(*new, *changed), new_count=len(new), warning=parsed.warning
        )
        return report, new, changed

    def preview(self, feed: cfg.Feed) -> PollReport:
        """Fetch, parse, match and decide one feed, writing nothing: `monitor check` beside a running daemon.

        The daemon owns the data directory's state. Items stored here would no longer be new to it, and
        a story grouped here would be missing from its in-memory window, so the same story could alert
        twice. The report lists the items the store does not hold yet, the topics each matches, and how
        many would alert (the same decision as `process`, against the stories known here, applied nowhere).
        """
        config, model = self._current
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
            unseen = [self._with_full_text(item, feed) for item in unseen]
        matches = {}
        alerts = 0
        for item in unseen:
            analysed = analyse(item.title, item.text)
            matched = tuple(m for m in model.classify_text(analysed) if m.matched)
            if matched:
                matches[item.uid] = matched
            now = self.clock.now()
            placement = self.grouper.place(item, now, analysed)  # where assign() would put it; the window stays as is
            quiet = is_backfill(item, state, now, config.settings.backfill)
            story = self.store.get_story(placement.story_id, members=(item.uid,))
            intent = decide(item, matched, story, placement, config, now, alert=not quiet)
            alerts += intent.alert is not None
        return PollReport(
            feed.name,
            "ok",
            new=len(unseen),
            total=total,
            elapsed=time.monotonic() - started,
            warning=parsed.warning,
            items=tuple(unseen),
            matches=matches,
            alerts=alerts,
        )

    def _todo(
        self, new: Sequence[Item], changed: Sequence[Item], state: FeedState | None, now: datetime
    ) -> list[Unfinished]:
        """What processing the items of a poll means: new items alert unless they are a new feed's backlog."""
        backfill = self.config.settings.backfill
        return [
            Unfinished(item, update, alert=not is_backfill(item, state, now, backfill))
            for item, update in [*((i, False) for i in new), *((i, True) for i in changed)]
        ]

    def keep_unfinished(self, todo: Sequence[Unfinished]) -> None:
        """Remember stored items that are not matched yet, for `finish_unfinished`."""
        with self._unfinished_lock:
            self._unfinished.extend(todo)

    def finish_unfinished(self) -> int:
        """Process the items kept by `keep_unfinished`, oldest first, RECOVER_BATCH at a time; how many. A StoreError
        leaves the batch it happened in, and the rest, for the next call."""
        done = 0
        while True:
            with self._unfinished_lock:
                if not self._unfinished:
                    return done
                todo = self._unfinished[:RECOVER_BATCH]
                del self._unfinished[:RECOVER_BATCH]
            try:
                self.process_all(todo)
            except StoreError:
                with self._unfinished_lock:
                    self._unfinished[:0] = todo
                raise
            done += len(todo)

    def process(self, item: Item, *, update: bool = False, alert: bool = True) -> Enqueued:
        """Classify one stored item, place it in a story, decide what the analyst should see, and apply it.

        `process_all` of one item, with the one-item store calls (get_story, apply). `update`: the item is a
        changed version of one processed before. With `alert=False` the item is matched and grouped, and its
        topics count as told, silently.
        """
        return self.process_all([Unfinished(item, update, alert)])[0]

    def process_all(self, todo: Sequence[Unfinished]) -> list[Enqueued]:
        """Classify stored items together, place them in stories in order, decide and apply, in one transaction.

        The decision is `decide.decide` (one alert per story and topic, later items edit it; see there), made on
        each story as stored and as the earlier items of the batch left it. The store applies all of them at once:
        stories, matches, alerts and their outbox rows, edits, near misses. Analysing and classifying, most of
        the work, run outside both locks.
        """
        if not todo:
            return []
        config, model = self._current
        items = [step.item for step in todo]
        analysed = [analyse(item.title, item.text) for item in items]  # analysed once, for matching and grouping
        scored = model.classify_texts(analysed)
        matched = [tuple(m for m in s if m.matched) for s in scored]
        near = [tuple(m for m in s if not m.matched and model.is_near_miss(m)) for s in scored]  # for a label
        # The store's story lock serialises grouping over every replica of a shared database, and hands over
        # the items the others grouped meanwhile, so a story reported to two replicas alerts once.
        shared = self.store.story_lock(known=self.grouper.knows) if self.store.shared else nullcontext([])
        with shared as others:
            if others:
                self.grouper.add_known(others)
            return self._place_and_apply(_Batch(todo, analysed, matched, near, config))

    def _place_and_apply(self, batch: _Batch) -> list[Enqueued]:
        """Group in order under the grouping lock, then read, decide and apply under the story lock: this batch
        and the others waiting for the lock with it, unless one of those calls took them all first.

        On a shared database the store's story lock lets one call at a time in here, so nothing waits with it."""
        with self._waiting_lock:
            self._waiting.append(batch)
        with self._group_lock:
            if batch.taken:
                group: list[_Batch] = []
            else:
                with self._waiting_lock:
                    group, self._waiting = self._waiting, []
                for each in group:
                    each.taken = True
                try:
                    now = self.clock.now()
                    placements = [
                        self.grouper.assign(step.item, now, text)
                        for each in group
                        for step, text in zip(each.todo, each.analysed, strict=True)
                    ]
                except BaseException as exc:
                    _fail(group, exc)
                    raise
                self._story_lock.acquire()
        if group:
            try:
                self._decide_and_apply(group, placements, now)
            except BaseException as exc:
                _fail(group, exc)
                raise
            finally:
                self._story_lock.release()
        return batch.result.result()  # taken by another call: wait for its transaction

    def _decide_and_apply(self, group: Sequence[_Batch], placements: Sequence[StoryDecision], now: datetime) -> None:
        """Read the placed items' stories, decide item by item in grouping order, apply all in one transaction."""
        steps = [(each, step, hits, below) for each in group
                 for step, hits, below in zip(each.todo, each.matched, each.near, strict=True)]  # fmt: skip
        stories = self._read_stories(placements, [step.item for _, step, _, _ in steps])
        intents = []
        for (each, step, hits, below), placement in zip(steps, placements, strict=True):
            story = stories.get(placement.story_id)
            intent = decide(
                step.item, hits, story, placement, each.config, now,
                update=step.update, alert=step.alert, near=below, near_per_day=NEAR_MISSES_PER_TOPIC_DAY,
            )  # fmt: skip
            stories[placement.story_id] = intent.story  # what a later item in this story sees
            intents.append(intent)
        recorded = self.store.apply_all(intents) if len(intents) > 1 else [self.store.apply(intents[0])]
        outcomes = [Enqueued(hits, alert is not None) for (_, _, hits, _), alert in zip(steps, recorded, strict=True)]
        start = 0
        for each in group:  # each call's own items, in its order
            each.result.set_result(outcomes[start : start + len(each.todo)])
            start += len(each.todo)

    def _read_stories(self, placements: Sequence[StoryDecision], items: Sequence[Item]) -> dict[str, Story]:
        """The stories the items were placed in, with of their members only these items: a read that costs the
        same whatever the stories' sizes."""
        uids = [item.uid for item in items]
        if len(placements) == 1:
            story = self.store.get_story(placements[0].story_id, members=uids)
            return {} if story is None else {story.id: story}
        return self.store.get_stories([p.story_id for p in placements], members=uids)

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

    def _with_full_text(self, item: Item, feed: cfg.Feed) -> Item:
        """The article body from the item's page; the feed's text when that fails or the page is refused."""
        if not item.link:
            return item
        try:
            page = self.fetcher.get_page(item.link, allow_private=feed.allow_private_fetch)
        except FetchError as exc:
            log.info("full text of %s: %s; keeping the feed's text", item.link, exc)
            return item
        body = extract_article(page.body or b"", page.url)
        return replace(item, content=body) if body else item

    def _record(
        self,
        feed: cfg.Feed,
        state: FeedState,
        now: datetime,
        started: float,
        status: str,
        *,
        result: FetchResult | None = None,
        error: MonitorError | None = None,
    ) -> PollReport:
        """Store the state of a poll that stored no items (an error, a 304) and report it."""
        total = _total(state, False, lambda: self.store.count_items(feed.name))
        state = next_feed_state(feed, self.config.settings, state, now, status, total=total, result=result, error=error)
        self.store.put_feed(state)
        return self._report(feed, state, started, error=error)

    def _report(
        self,
        feed: cfg.Feed,
        state: FeedState,
        started: float,
        *,
        error: MonitorError | None = None,
        warning: str | None = None,
        new_items: Sequence[Item] = (),
        new_count: int = 0,
    ) -> PollReport:
        """Log and report a poll whose state `state` is stored."""
        when = state.next_poll
        assert when is not None  # next_feed_state always schedules the next poll
        if error is not None:
            at = when.astimezone(self.config.settings.tz)  # human output in settings.timezone, labelled
            log.warning("%s: %s (retry at %s)", feed.name, error, f"{at:%Y-%m-%d %H:%M:%S %Z}")
        elif warning:
            log.info("%s: %s", feed.name, warning)
        return PollReport(
            feed=feed.name,
            status=state.status,
            new=new_count,
            total=state.items_total,
            elapsed=time.monotonic() - started,
            error=str(error) if error else None,
            warning=warning,
            next_poll=when,
            items=tuple(new_items),
        )


def _total(state: FeedState, stored: bool, count: Callable[[], int]) -> int:
    """The feed's item count after a poll: counted (a query) only when the poll stored something, or none is
    known yet; otherwise the stored count stands."""
    return count() if stored or state.items_total == 0 else state.items_total


def _fail(group: Sequence[_Batch], exc: BaseException) -> None:
    """The calls waiting on a group's transaction raise what stopped it (a StoreError: each keeps its items)."""
    for each in group:
        if not each.result.done():
            each.result.set_exception(exc)
