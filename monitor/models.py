"""Domain objects shared by every part. Frozen dataclasses; this module imports nothing from the package."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class Item:
    """One normalised feed entry.

    `key` is the stable id inside its feed (GUID, else the normalised link, else a hash of title and
    published); `(feed, key)` is unique in the store. Text fields are plain text, HTML already stripped.
    """

    feed: str
    key: str
    title: str
    link: str | None
    published: datetime  # UTC, tz-aware; first-seen time when the feed gives none
    summary: str = ""
    content: str = ""
    author: str = ""
    lang: str = ""  # "ru", "en", "" when unknown
    first_seen: datetime | None = None

    @property
    def text(self) -> str:
        """The body used for matching: full content when present, else the summary."""
        return self.content or self.summary

    @property
    def uid(self) -> str:
        """A key unique across feeds."""
        return f"{self.feed}\x1f{self.key}"


@dataclass(frozen=True)
class FeedState:
    """What the store keeps about one feed between polls."""

    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    last_fetch: datetime | None = None
    last_success: datetime | None = None
    next_poll: datetime | None = None
    status: str = "new"  # new | ok | not_modified | error
    error_count: int = 0  # consecutive errors
    last_error: str | None = None
    last_error_at: datetime | None = None
    redirected_to: str | None = None  # target of a permanent redirect, shown in `monitor feeds`
    items_total: int = 0
    last_new_item: datetime | None = None
    dead_reported: bool = False


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one HTTP fetch; `body` is None for 304 Not Modified."""

    url: str
    status: int
    body: bytes | None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None
    retry_after: float | None = None  # seconds
    max_age: float | None = None  # seconds, from Cache-Control
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class ParsedFeed:
    """Items parsed from one feed document, plus the hints it gives about polling."""

    items: tuple[Item, ...]
    title: str = ""
    ttl: float | None = None  # seconds, from RSS <ttl>
    warning: str | None = None  # a tolerated problem (e.g. an ill-formed but usable document)


@dataclass(frozen=True)
class Match:
    """One topic's verdict on one item, with the reasons."""

    topic: str
    score: float
    threshold: float
    matched: bool
    terms: tuple[str, ...] = ()  # top contributing terms, human readable ("стратегическ* стабильност*")
    passage: str = ""  # best-scoring passage
    keyword_hits: tuple[str, ...] = ()  # keyword phrases found in the text
    vetoed_by: str | None = None  # exclude phrase that vetoed the topic


@dataclass(frozen=True)
class Story:
    """Items from several outlets telling the same news."""

    id: str
    first_item: str  # uid of the first item
    first_seen: datetime
    last_seen: datetime
    items: tuple[str, ...] = ()  # uids
    sources: tuple[str, ...] = ()  # feed names, in arrival order
    topics: tuple[str, ...] = ()  # topics already alerted for this story
    muted: bool = False  # the analyst muted it: later items raise no alerts and no edits
    first_alert_at: datetime | None = None  # when its first alert was recorded (read, not stored on the row)


@dataclass(frozen=True)
class AlertIntent:
    """A new alert for an item: its topics the story had not matched, and where they go."""

    matches: tuple[Match, ...]
    channels: tuple[str, ...]
    hold_until: Mapping[str, datetime] = field(default_factory=dict)  # channel -> first attempt, when later than now


@dataclass(frozen=True)
class NearMissIntent:
    """Topics an item scored just below the line for: offered to the analyst for a label, never alerted."""

    matches: tuple[Match, ...]
    day: date  # the day of the offer they wait for (delivery.nearmiss.offer_day), in settings.timezone
    per_topic_day: int  # at most this many kept per topic and day: the best-scoring


@dataclass(frozen=True)
class ItemIntent:
    """What processing one item changes, decided by a pure function (monitor.decide) and applied by the store in
    one transaction (Store.apply): the story as it is to be saved, an alert to record, an edit to queue, near
    misses to record."""

    item: Item
    story: Story
    now: datetime
    alert: AlertIntent | None = None
    edit: tuple[str, ...] | None = None  # channels where the story's first alert is to show this item; None: no edit
    near: NearMissIntent | None = None


@dataclass(frozen=True)
class PollReport:
    """What one poll of one feed did."""

    feed: str
    status: str  # ok | not_modified | error
    new: int = 0
    total: int = 0
    elapsed: float = 0.0
    error: str | None = None
    warning: str | None = None  # a problem the poll got past (ParsedFeed.warning: bytes replaced, ill-formed XML)
    next_poll: datetime | None = None
    items: tuple[Item, ...] = ()  # new and changed items
    matches: dict[str, tuple[Match, ...]] = field(default_factory=dict)  # item uid -> matched topics
    alerts: int = 0


@dataclass(frozen=True)
class Alert:
    """What is sent for one item: every topic it matched, routed to the union of their channels."""

    id: int
    item: Item
    matches: tuple[Match, ...]
    created: datetime
    story_id: str | None = None
    also: tuple[tuple[str, str | None], ...] = field(default=())  # (source, link) of later items of the story
    labels: tuple[Label, ...] = ()  # the analyst's verdicts on the item, any topic (the buttons show them)
    muted: bool = False  # its story is muted
    gained: tuple[str, ...] = ()  # topics later alerts of its story added: an edit of this message tells them
    continues: str = ""  # the title of its story's first alert, when this alert is a later one


@dataclass(frozen=True)
class Delivery:
    """One outbox row: an alert bound for one channel."""

    id: int
    alert_id: int
    channel: str
    status: str  # pending | sent | failed | held
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    message_ref: str | None = None  # e.g. Telegram message_id, for later edits


@dataclass(frozen=True)
class Label:
    """An analyst's verdict on one item for one topic: the evidence the topic model learns from.

    One label per (item, topic): a later verdict replaces the earlier one.
    """

    item: str  # item uid
    topic: str
    relevant: bool
    source: str  # telegram | cli | url | import | eval | near-miss
    user: str = ""  # Telegram user id, or the local user name; "" when unknown
    at: datetime | None = None


@dataclass(frozen=True)
class NearMiss:
    """An item that scored just below a topic's threshold, kept to be offered for a label (never an alert)."""

    id: int
    item: Item
    topic: str
    score: float
    threshold: float
    day: date  # the day of the offer it waits for
    story_id: str | None = None
    status: str = "waiting"  # waiting | offered | dropped (its story was muted or told the topic meanwhile)
    verdict: bool | None = None  # the analyst's label on (item, topic), if any


@dataclass(frozen=True)
class NearMissOffer:
    """One "just below the line" message to one channel, with its near misses in the order shown."""

    id: int
    channel: str
    day: date
    near_misses: tuple[NearMiss, ...]
    status: str = "pending"  # pending | sent | failed
    attempts: int = 0
    created: datetime | None = None
    message_ref: str | None = None  # Telegram message_id: presses under it are checked against it


@dataclass(frozen=True)
class LabelEffect:
    """What the analyst's labels did to one topic's score on one item (`monitor explain`)."""

    relevant: int  # labels of the topic: relevant / not relevant
    not_relevant: int
    prior_score: float  # the score without the labels
    score: float  # with them
    weighed: tuple[tuple[str, bool, float], ...]  # (title, relevant, log-odds it moved the item by), largest first


@dataclass(frozen=True)
class Replica:
    """A `monitor run` process as the database sees it (`monitor status`)."""

    id: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime
    age: float  # seconds since its last heartbeat, by the database's clock
    leases: int = 0
    duties: tuple[str, ...] = ()  # its leases that are not feeds: deliver:<channel>, feedback, leader
