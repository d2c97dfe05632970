"""The boundaries between the pipeline and its parts, as Protocols.

Real implementations: SqlStore (store/), HttpFetcher (feeds/http.py), TelegramNotifier / EmailNotifier /
ConsoleNotifier (delivery/), SystemClock (below). Tests pass small fakes that record what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from typing import Protocol

from .models import (
    Alert,
    Delivery,
    FeedState,
    FetchResult,
    Item,
    ItemIntent,
    Label,
    Match,
    NearMiss,
    NearMissOffer,
    Replica,
    Story,
)

# Store.store_poll's callback: given the poll's (new, changed) items and a count of the feed's stored items (a
# query, in the poll's transaction: called only when needed), the feed's state to store with them.
Settle = Callable[[list[Item], list[Item], Callable[[], int]], FeedState]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Fetcher(Protocol):
    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> FetchResult:
        """GET a feed (conditionally when validators are given); raise FetchError on failure."""
        ...

    def get_page(self, url: str, *, allow_private: bool = False) -> FetchResult:
        """GET an article page (full text), with the same limits; raise FetchError on failure, and when the page
        is on a loopback, private or other non-public address unless allowed."""
        ...


class Notifier(Protocol):
    """One configured channel."""

    name: str

    def send(self, alert: Alert) -> str | None:
        """Deliver one alert; return a reference for later edits (e.g. Telegram message_id) or None.

        Raise NotifyError (permanent=True when retrying cannot help; retry_after when the server asked).
        """
        ...

    def edit(self, ref: str, alert: Alert) -> None:
        """Re-render an already sent alert in place (story updates); a no-op where the channel can't."""
        ...

    def send_digest(self, alerts: Sequence[Alert], title: str) -> None:
        """Deliver several alerts as one message (split when long)."""
        ...

    def send_text(self, text: str) -> str | None:
        """A plain message: admin notices, `monitor notify-test`."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """Persistent state. Every method is one transaction; times are tz-aware UTC."""

    # feeds
    def get_feed(self, name: str) -> FeedState | None: ...
    def put_feed(self, state: FeedState) -> None: ...
    def feeds(self) -> list[FeedState]: ...

    # items
    def add_items(self, items: Sequence[Item], now: datetime) -> tuple[list[Item], list[Item]]:
        """Store items; return (new, changed). New: (feed, key) never seen. Changed: seen, text differs
        (the stored copy is updated). Re-published old items are neither."""
        ...

    def store_poll(
        self, feed: str, items: Sequence[Item], now: datetime, settle: Settle
    ) -> tuple[list[Item], list[Item], FeedState]:
        """A successful poll's writes in one transaction: `add_items`, then the feed's state `settle` returns
        (called inside it); (new, changed, the state written). Both land or neither."""
        ...

    def get_item(self, uid: str) -> Item | None: ...
    def recent_items(self, limit: int, since: datetime | None = None) -> list[Item]:
        """Newest first: the background corpus for the topic model, and story-index rebuilds."""
        ...

    def count_items(self, feed: str | None = None) -> int: ...
    def item_counts(self, since: datetime) -> dict[str, int]:
        """Items first seen since a time, per feed."""
        ...

    def item_by_link(self, link: str) -> Item | None:
        """The earliest stored item with this link."""
        ...

    def prune(self, before: datetime) -> int:
        """Delete items first seen before `before`, except those an alert or a label references; return the
        count."""
        ...

    @property
    def shared(self) -> bool:
        """Several replicas may use this database at once (PostgreSQL): see story_lock and service.leases."""
        ...

    def replicas(self) -> list[Replica]:
        """The `monitor run` replicas a shared database knows, with their leases; [] otherwise."""
        ...

    def story_lock(self, known: Callable[[str], bool] | None = None) -> AbstractContextManager[list[tuple[Item, str]]]:
        """Serialise story grouping with the other replicas of a shared database, yielding the (item, story id)
        pairs they grouped since the last call that `known` does not hold (SqlStore.story_lock)."""
        ...

    # alerts and outbox
    def apply(self, intent: ItemIntent) -> Alert | None:
        """In one transaction, what processing one item decided (monitor.decide): the alert with its matches and
        outbox rows (as record_alert), the story (its row, and the item appended to its members, which are not
        otherwise read or rewritten), 'edit' rows so the sent messages of the story's first alert
        show the item (keyed by alert, item and channel; only channels that alert went to), and its near misses
        (one per item and per story and topic, the best-scoring per topic and day up to the intent's cap).
        Returns the alert recorded, None when there was none or the same was recorded before."""
        ...

    def apply_all(self, intents: Sequence[ItemIntent]) -> list[Alert | None]:
        """`apply` of several items (a poll's), in order, in one transaction; one result per intent."""
        ...

    def record_alert(
        self,
        item: Item,
        matches: Sequence[Match],
        channels: Sequence[str],
        now: datetime,
        *,
        story_id: str | None = None,
        hold_until: dict[str, datetime] | None = None,
    ) -> Alert | None:
        """In one transaction: the matches, an alert, and one pending outbox row per channel.

        Keyed by (item uid, sorted matched topics): recording the same again returns None and writes
        nothing. `hold_until` gives a channel's first attempt time (digest, quiet hours)."""
        ...

    def get_alert(self, alert_id: int) -> Alert:
        """The alert with its item and matches, `also` filled from its story's later items."""
        ...

    def get_alerts(self, alert_ids: Sequence[int]) -> dict[int, Alert]:
        """Several alerts by id in a few queries; unknown ids are left out."""
        ...

    def due_deliveries(
        self, now: datetime, limit: int = 100, *, channels: Collection[str] | None = None
    ) -> list[tuple[Delivery, str]]:
        """Pending rows whose next attempt is due, oldest first, with their kind ('send' or 'edit')."""
        ...

    def message_ref(self, alert_id: int, channel: str) -> str | None:
        """The reference recorded when the alert's 'send' row for `channel` was sent."""
        ...

    def mark_sent(self, delivery_id: int, now: datetime, message_ref: str | None = None) -> None: ...
    def mark_retry(self, delivery_id: int, now: datetime, error: str, next_attempt: datetime) -> None:
        """Record a failed attempt (attempts += 1) and when to try again."""
        ...

    def defer(self, delivery_id: int, until: datetime) -> None:
        """Move the next attempt without counting an attempt (quiet hours, pacing)."""
        ...

    def mark_failed(self, delivery_id: int, now: datetime, error: str) -> None: ...
    def alerts_since(self, since: datetime) -> list[tuple[Alert, list[Delivery]]]: ...
    def outbox_counts(self) -> dict[str, int]:
        """Rows per status: pending, sent, failed."""
        ...

    def match_counts(self, since: datetime) -> dict[str, int]:
        """Matched items per topic since a time."""
        ...

    # stories
    def get_story(self, story_id: str, *, members: Sequence[str] | None = None) -> Story | None:
        """The story; with `members`, listing only those of its members (read at a cost that does not grow with
        the story), which is what deciding those items needs and what `apply` accepts."""
        ...

    def get_stories(self, story_ids: Sequence[str], *, members: Sequence[str]) -> dict[str, Story]:
        """`get_story(..., members=...)` of several stories, by id; unknown ids are left out."""
        ...

    def stories_since(self, since: datetime) -> list[Story]: ...

    def mute_story(self, story_id: str) -> bool:
        """Mute a story for good (saving it never clears that): record_alert and record_story_update write
        nothing more for it, and its queued edits are dropped. False when the story is unknown."""
        ...

    # labels and state
    def put_label(self, label: Label, now: datetime) -> None:
        """Record a verdict on a stored item, replacing an earlier one for the same topic; StoreError when
        the item is not stored."""
        ...

    def labelled_items(self, topic: str | None = None) -> list[tuple[Label, Item]]:
        """Every label with its item, oldest first: what the topic model learns from."""
        ...

    def label_counts(self) -> dict[str, tuple[int, int]]:
        """Per topic: (labelled relevant, labelled not relevant)."""
        ...

    def labels_revision(self) -> int:
        """Changes with every label written, by any process (a cheap "labels changed?" check)."""
        ...

    # near misses (delivery/offers.py)
    def waiting_near_misses(self, up_to: date) -> list[NearMiss]:
        """Near misses still waiting for their message, of day `up_to` and before, with their items and verdicts."""
        ...

    def get_near_miss(self, near_miss_id: int) -> NearMiss | None: ...
    def take_near_misses(
        self,
        offers: Sequence[tuple[str, date, tuple[int, ...]]],
        offered: Sequence[int],
        dropped: Sequence[int],
        now: datetime,
    ) -> int:
        """In one transaction: the messages to send (channel, day, near miss ids, pending) and the near misses
        they took (offered) or left out (dropped); the number of messages."""
        ...

    def due_offers(self, now: datetime, limit: int = 20) -> list[NearMissOffer]: ...
    def offer_at(self, channel: str, message_ref: str) -> NearMissOffer | None:
        """The near-miss message sent to `channel` as `message_ref`."""
        ...

    def mark_offer(
        self,
        offer_id: int,
        status: str,
        now: datetime,
        *,
        message_ref: str | None = None,
        error: str | None = None,
        next_attempt: datetime | None = None,
        attempted: bool = True,
    ) -> None: ...
    def near_miss_counts(self) -> dict[str, tuple[int, int]]:
        """Per topic: (near misses offered, of those labelled)."""
        ...

    def get_state(self, name: str) -> str | None: ...
    def put_state(self, name: str, value: str) -> None:
        """Small named values kept across restarts (the Telegram update offset)."""
        ...

    def close(self) -> None: ...
