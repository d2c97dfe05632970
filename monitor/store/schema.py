"""Tables of the store, as SQLAlchemy Core metadata, and the column types they share.

Times are stored as ``DateTime(timezone=True)``: PostgreSQL keeps ``timestamptz``; SQLite has no time zone
type, so values are normalised to UTC before they are written (its text format then sorts and compares
correctly) and tagged UTC again when read. Every time handed out of the store is tz-aware UTC.

These definitions are what a new database is created with. A schema change edits them AND appends a step
of explicit DDL to migrate.py, which is what an existing database runs; tests/test_migrate.py checks that
both give the same schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    func,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A tz-aware datetime in, a tz-aware UTC datetime out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time is ambiguous (local? UTC?); refusing it keeps a wrong clock out of the data.
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; expected tz-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class SafeText(TypeDecorator[str]):
    """Text without NUL characters: PostgreSQL rejects them in ``text`` and feeds do contain them."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and "\x00" in value:
            return value.replace("\x00", "")
        return value


# Integer on SQLite so the key is an alias of the rowid (a BIGINT key there is not auto-incremented).
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()


def _id() -> Column[Any]:
    return Column("id", Id, primary_key=True, autoincrement=True)


schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1: a single row
    Column("version", Integer, nullable=False),
    Column("applied", UTCDateTime, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("name", SafeText, primary_key=True),
    Column("url", SafeText, nullable=False),
    Column("etag", SafeText),
    Column("last_modified", SafeText),
    Column("last_fetch", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("next_poll", UTCDateTime),
    Column("status", SafeText, nullable=False, server_default="new"),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("last_error", SafeText),
    Column("last_error_at", UTCDateTime),
    Column("redirected_to", SafeText),
    Column("items_total", Integer, nullable=False, server_default="0"),
    Column("last_new_item", UTCDateTime),
    Column("dead_reported", Boolean, nullable=False, server_default="0"),
)

items = Table(
    "items",
    metadata,
    _id(),
    Column("feed", SafeText, nullable=False),
    Column("key", SafeText, nullable=False),
    Column("uid", SafeText, nullable=False, unique=True),  # models.Item.uid: feed + "\x1f" + key
    Column("title", SafeText, nullable=False),
    Column("link", SafeText),
    Column("published", UTCDateTime, nullable=False),
    Column("summary", SafeText, nullable=False),
    Column("content", SafeText, nullable=False),
    Column("author", SafeText, nullable=False),
    Column("lang", SafeText, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("content_hash", SafeText, nullable=False),  # tells a changed item from a re-published one
    UniqueConstraint("feed", "key", name="uq_items_feed_key"),
    Index("ix_items_first_seen", "first_seen"),
)

alerts = Table(
    "alerts",
    metadata,
    _id(),
    Column("item_id", Id, ForeignKey("items.id"), nullable=False),
    Column("topics_key", SafeText, nullable=False),  # sorted matched topic ids joined by ","
    Column("story_id", SafeText),
    Column("created", UTCDateTime, nullable=False),
    UniqueConstraint("item_id", "topics_key", name="uq_alerts_item_topics"),
    Index("ix_alerts_created", "created"),
    Index("ix_alerts_story", "story_id"),
)

matches = Table(
    "matches",
    metadata,
    _id(),
    Column("item_id", Id, ForeignKey("items.id"), nullable=False),
    Column("alert_id", Id, ForeignKey("alerts.id")),
    Column("position", Integer, nullable=False),  # order of the alert's matches, for rendering
    Column("topic", SafeText, nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("matched", Boolean, nullable=False),
    Column("terms", SafeText, nullable=False),  # JSON list
    Column("passage", SafeText, nullable=False),
    Column("keyword_hits", SafeText, nullable=False),  # JSON list
    Column("vetoed_by", SafeText),
    Column("matched_at", UTCDateTime, nullable=False),
    Index("ix_matches_alert", "alert_id"),
    Index("ix_matches_item", "item_id"),
    Index("ix_matches_matched_at", "matched_at"),
)

outbox = Table(
    "outbox",
    metadata,
    _id(),
    Column("alert_id", Id, ForeignKey("alerts.id"), nullable=False),
    Column("channel", SafeText, nullable=False),
    Column("kind", SafeText, nullable=False),
    Column("item_uid", SafeText, nullable=False),  # '' for sends (NULLs would defeat the unique key)
    Column("status", SafeText, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt", UTCDateTime, nullable=False),
    Column("last_error", SafeText),
    Column("last_attempt", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("message_ref", SafeText),
    Column("created", UTCDateTime, nullable=False),
    UniqueConstraint("alert_id", "channel", "kind", "item_uid", name="uq_outbox_row"),
    CheckConstraint("channel <> ''", name="ck_outbox_channel"),
    CheckConstraint("kind IN ('send', 'edit')", name="ck_outbox_kind"),
    CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_outbox_status"),
    Index("ix_outbox_due", "status", "next_attempt", "id"),  # due_deliveries: no sort, even on ties
)

stories = Table(
    "stories",
    metadata,
    Column("id", SafeText, primary_key=True),
    Column("first_item", SafeText, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("topics", SafeText, nullable=False),  # JSON list
    Column("muted", Boolean, nullable=False, server_default="0"),  # v2: the analyst muted it (no alerts, no edits)
    # v5: members in story_items, so a new member's position is known without counting them (issue 16)
    Column("size", Integer, nullable=False, server_default="0"),
    Index("ix_stories_last_seen", "last_seen"),
)

# No foreign key to items: a story keeps its source lines after old items are pruned.
story_items = Table(
    "story_items",
    metadata,
    Column("story_id", SafeText, ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
    Column("item_uid", SafeText, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("feed", SafeText, nullable=False),
    Column("link", SafeText),
    Column("added", UTCDateTime, nullable=False),
    Index("ix_story_items_uid", "item_uid"),
)

# v2. One verdict per (item, topic), a later one replacing it; the item row is kept by prune for as long as
# a label points at it, since the topic model learns from the item's text.
labels = Table(
    "labels",
    metadata,
    _id(),
    Column("item_id", Id, ForeignKey("items.id"), nullable=False),
    Column("topic", SafeText, nullable=False),
    Column("relevant", Boolean, nullable=False),
    Column("source", SafeText, nullable=False),  # telegram | cli | url | import
    Column("labeller", SafeText, nullable=False),  # Telegram user id or local user name; '' when unknown
    Column("labelled_at", UTCDateTime, nullable=False),
    UniqueConstraint("item_id", "topic", name="uq_labels_item_topic"),
)

# v2. Small named values that must survive a restart: the Telegram update offset per bot, the labels revision.
state = Table(
    "state",
    metadata,
    Column("name", SafeText, primary_key=True),
    Column("value", SafeText, nullable=False),
)

# v3. Items that scored just below a topic's line, kept to be offered for a label (delivery/offers.py); never
# alerts. One per (item, topic); `day` (YYYY-MM-DD, settings.timezone) is the day of the offer it waits for,
# and at most NEAR_MISSES_PER_TOPIC_DAY per topic and day are kept, the best-scoring.
near_misses = Table(
    "near_misses",
    metadata,
    _id(),
    Column("item_id", Id, ForeignKey("items.id"), nullable=False),
    Column("topic", SafeText, nullable=False),
    Column("story_id", SafeText),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("day", SafeText, nullable=False),
    Column("status", SafeText, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    UniqueConstraint("item_id", "topic", name="uq_near_misses_item_topic"),
    CheckConstraint("status IN ('waiting', 'offered', 'dropped')", name="ck_near_misses_status"),
    Index("ix_near_misses_topic_day", "topic", "day"),
    Index("ix_near_misses_status_day", "status", "day"),
    Index("ix_near_misses_story", "story_id", "topic"),
)

# v3. One "just below the line" message per channel and day (more when long), delivered like an outbox row.
near_miss_offers = Table(
    "near_miss_offers",
    metadata,
    _id(),
    Column("channel", SafeText, nullable=False),
    Column("day", SafeText, nullable=False),
    Column("near_misses", SafeText, nullable=False),  # JSON list of near_misses.id, in the order shown
    Column("status", SafeText, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt", UTCDateTime, nullable=False),
    Column("last_error", SafeText),
    Column("sent_at", UTCDateTime),
    Column("message_ref", SafeText),
    Column("created", UTCDateTime, nullable=False),
    CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_near_miss_offers_status"),
    Index("ix_near_miss_offers_due", "status", "next_attempt"),
    Index("ix_near_miss_offers_message", "channel", "message_ref"),
)

# v4. Several daemons on one PostgreSQL database (store/leases.py): the live replicas, the leases they hold
# (a feed's polls, a channel's delivery, the getUpdates loop, the leader's chores), and the fitted topic model
# the leader refits, which the other replicas load when its revision changes. Times are the database's.
replicas = Table(
    "replicas",
    metadata,
    Column("id", SafeText, primary_key=True),  # host:pid:random, new at every start
    Column("host", SafeText, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("heartbeat", UTCDateTime, nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", SafeText, primary_key=True),  # poll:<id> | deliver:<channel> | feedback | leader
    Column("holder", SafeText, nullable=False),
    Column("expires", UTCDateTime, nullable=False),
    Column("taken", UTCDateTime, nullable=False),
    Index("ix_leases_holder", "holder"),
)

models = Table(
    "models",
    metadata,
    Column("name", SafeText, primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("saved", UTCDateTime, nullable=False),
)

# v4. Every story membership written, in the order written: replicas catch up on the items the others grouped
# (store.story_lock). Memberships are written under the story lock, so the sequence is their commit order. On
# PostgreSQL a trigger on story_items fills it, in the writing transaction; SQLite (one process) leaves it empty.
story_log = Table(
    "story_log",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("item_uid", SafeText, nullable=False),
    Column("story_id", SafeText, nullable=False),
    Column("logged", UTCDateTime, nullable=False, server_default=func.now()),
)

STORY_LOG_DDL = (
    """CREATE FUNCTION monitor_story_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO story_log (item_uid, story_id) VALUES (NEW.item_uid, NEW.story_id);
        RETURN NEW;
    END $$""",
    "CREATE TRIGGER story_items_log AFTER INSERT ON story_items FOR EACH ROW EXECUTE FUNCTION monitor_story_log()",
)
for _statement in STORY_LOG_DDL:  # after every table: the trigger is on story_items
    event.listen(metadata, "after_create", DDL(_statement).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]
