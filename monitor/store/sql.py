"""SqlStore: the ports.Store on SQLite or PostgreSQL, with SQLAlchemy Core.

Every public method is one short transaction, so the daemon's worker threads can share one store; `store_poll`
writes a poll's items with its feed's state, and `apply` everything processing one item changes (story, matches,
alert, outbox rows, edits, near misses), each in one, so a process killed at any moment leaves each fully recorded
or not at all. Errors from the database leave as StoreError("while <doing what>: ...").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from ..models import (
    Alert,
    Delivery,
    FeedState,
    Item,
    ItemIntent,
    Label,
    Match,
    NearMiss,
    NearMissOffer,
    Replica,
    Story,
)
from . import alerts as alert_queries
from . import labels as label_queries
from . import leases as lease_queries
from . import nearmisses as near_queries
from . import stories as story_queries
from .engine import WRITE_OPTION, describe, is_memory, make_engine
from .litemarks import LiteMarks
from .migrate import migrate
from .rows import (
    FEED_FIELDS,
    chunks,
    feed_values,
    insert_for,
    item_values,
    to_delivery,
    to_feed,
    to_item,
)
from .schema import alerts, labels, outbox, story_items
from .schema import feeds as feed_table
from .schema import items as item_table
from .schema import matches as match_table
from .schema import stories as story_table
from .writer import WriterLock

if TYPE_CHECKING:
    from .marks import HeldMarks

# Statements on the hot paths (every item, every outbox message) are built once: building them per call
# cost more than running them.
_DUE = (
    select(outbox)
    .where(outbox.c.status == "pending", outbox.c.next_attempt <= bindparam("now"))
    .order_by(outbox.c.next_attempt, outbox.c.id)
    .limit(bindparam("limit"))
)
_MESSAGE_REF = select(outbox.c.message_ref).where(
    outbox.c.alert_id == bindparam("alert"), outbox.c.channel == bindparam("channel"), outbox.c.kind == "send"
)
_ATTEMPT: dict[str, Any] = {"attempts": outbox.c.attempts + 1, "last_attempt": bindparam("b_now")}
_OUTCOMES: dict[str, dict[str, Any]] = {
    "sent": {"status": "sent", **_ATTEMPT, "sent_at": bindparam("b_now"), "message_ref": bindparam("b_ref")},
    "retry": {**_ATTEMPT, "last_error": bindparam("b_error"), "next_attempt": bindparam("b_next")},
    "defer": {"next_attempt": bindparam("b_next")},
    "failed": {"status": "failed", **_ATTEMPT, "last_error": bindparam("b_error")},
}
_MARK = {
    outcome: update(outbox).where(outbox.c.id == bindparam("b_id")).values(**values)
    for outcome, values in _OUTCOMES.items()
}
_FIRST_ALERT = select(func.min(alerts.c.id)).where(alerts.c.story_id == bindparam("story"))
_UPDATABLE = ("title", "link", "published", "summary", "content", "author", "lang", "content_hash")
_STORED = select(item_table.c.id, item_table.c.uid, item_table.c.content_hash, item_table.c.first_seen).where(
    item_table.c.uid.in_(bindparam("uids", expanding=True))
)
_UPDATE_ITEM = (
    update(item_table)
    .where(item_table.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _UPDATABLE})
)
_INSERT_ITEMS = {
    name: dialect.insert(item_table).on_conflict_do_nothing().returning(item_table.c.uid)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


# store_poll's callback: (new, changed, count) -> the feed's state to write with them (ports.Settle).
Settle = Callable[[list[Item], list[Item], Callable[[], int]], FeedState]


def _stored() -> None:
    """The wait of a mark that was stored before begin_mark_sent returned."""


class SqlStore:
    """The monitor's persistent state in a SQL database (`sqlite:///path` or `postgresql+psycopg://...`)."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        """Open (creating and migrating as needed); `schema` is a PostgreSQL schema to work in.

        `schema_versions` tells what the opening did: (version found, version now), (0, n) for a new database.
        """
        self._feed_upsert: Any = None
        self._writer: WriterLock | None = None
        try:
            self._engine = make_engine(url, schema)
            memory = is_memory(make_url(url))
            single_writer = self._engine.dialect.name == "sqlite"
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"while opening the database: {exc}") from exc
        # SQLite has one writer at a time. Writers queue for it on a lock: left to SQLite's busy handler they
        # would poll with sleeps of up to 100 ms (sqliteDefaultBusyCallback), idling the lock between them; the
        # busy timeout still covers processes that do not take the lock. An in-memory database is one shared
        # connection, so there even readers take turns.
        lock = threading.Lock()
        database = make_url(url).database
        # A file's writers, this process's threads and the daemon's delivery child alike, queue in the kernel
        # (store/writer.py); an in-memory database is this process's alone.
        writer: AbstractContextManager[Any] = lock
        if single_writer and not memory and database:
            try:
                writer = self._writer = WriterLock(Path(f"{database}.writer"))
            except OSError as exc:
                self._engine.dispose()
                raise StoreError(f"while opening the database: {exc}") from exc
        self.shared = self._engine.dialect.name == "postgresql"  # several replicas may run on it (leases)
        self._story_mutex = threading.Lock()  # one thread of this process waits for the database's story lock
        self._pinned = threading.local()  # delivery_pass: this thread's held connection (`held`)
        self._story_seq = 0  # the story_log rows up to this one are in this process's story window
        self._memory = memory
        self._read_lock: AbstractContextManager[Any] = lock if memory else nullcontext()
        self._write_lock: AbstractContextManager[Any] = writer if single_writer else nullcontext()
        try:
            with self._tx("migrating the database schema", write=True) as conn:
                self.schema_versions = migrate(conn, schema)
            if self.shared:  # before the story window is read from the items: nothing falls in between
                with self._tx("reading the story log") as conn:
                    self._story_seq = lease_queries.story_seq(conn)
        except StoreError:
            self._engine.dispose()  # no half-open store keeps pooled connections alive
            raise

    @contextmanager
    def _tx(self, doing: str, *, write: bool = False) -> Iterator[Connection]:
        try:
            with self._write_lock if write else self._read_lock, self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            reason = describe(exc)
            raise StoreError(f"while {doing}: {reason}", reason=reason) from exc
        except ValueError as exc:  # e.g. a naive datetime refused by UTCDateTime before reaching the driver
            raise StoreError(f"while {doing}: {exc}", reason=str(exc)) from exc

    def close(self) -> None:
        self._engine.dispose()
        if self._writer is not None:
            self._writer.close()

    # --- several replicas on one PostgreSQL database (store/leases.py, service/leases.py) ------------

    @contextmanager
    def story_lock(self, known: Callable[[str], bool] | None = None) -> Iterator[list[tuple[Item, str]]]:
        """Serialise story grouping with every other replica; yield the (item, story id) pairs they grouped
        since the last call (not those `known` says this process holds), for the window to add first.

        On PostgreSQL a transaction-scoped advisory lock, held until the block ends (a dying process's
        connection releases it). On SQLite only this process's threads: one process per database.
        Hold it around: catch up the window, assign, read the story, decide, apply."""
        with self._story_mutex:
            if not self.shared:
                yield []
                return
            with self._tx("waiting for the story lock") as conn:
                lease_queries.story_lock(conn)
                others = self._story_catch_up(conn, known)
                # The lock is this transaction's, so the caller's work runs inside it, on other connections.
                yield others

    def _story_catch_up(self, conn: Connection, known: Callable[[str], bool] | None) -> list[tuple[Item, str]]:
        # Memberships are written under this lock, so the log's sequence is their commit order: everything
        # after the last row read is new here (this process's own rows too, which `known` filters out).
        rows = lease_queries.story_rows(conn, self._story_seq)
        if not rows:
            return []
        self._story_seq = rows[-1][0]
        wanted: dict[str, str] = {}
        for _, uid, story_id in rows:
            if known is None or not known(uid):
                wanted[uid] = story_id  # the last membership of an item wins (an item moved to another story)
        if not wanted:
            return []
        found = lease_queries.items_by_uid(conn, list(wanted))
        return [(found[uid], story_id) for uid, story_id in wanted.items() if uid in found]

    def heartbeat(self, replica_id: str, host: str, pid: int, forget_after: float) -> None:
        with self._tx("recording this replica's heartbeat", write=True) as conn:
            lease_queries.heartbeat(conn, replica_id, host, pid, timedelta(seconds=forget_after))

    def live_replicas(self, within: float) -> list[str]:
        with self._tx("listing live replicas") as conn:
            return lease_queries.live_replicas(conn, timedelta(seconds=within))

    def renew_leases(self, holder: str, ttl: float) -> set[str]:
        with self._tx("renewing leases", write=True) as conn:
            return lease_queries.renew(conn, holder, timedelta(seconds=ttl))

    def taken_leases(self, names: Collection[str]) -> set[str]:
        with self._tx("reading leases") as conn:
            return lease_queries.taken(conn, names)

    def claim_leases(self, holder: str, names: Sequence[str], ttl: float) -> dict[str, bool]:
        with self._tx(f"claiming {len(names)} leases", write=True) as conn:
            return lease_queries.claim(conn, holder, names, timedelta(seconds=ttl))

    def release_leases(self, holder: str, names: Collection[str] | None = None, *, forget: bool = False) -> int:
        """Free `holder`'s leases (all when `names` is None); `forget`: its replica row too (a clean stop)."""
        with self._tx("releasing leases", write=True) as conn:
            count = lease_queries.release(conn, holder, names)
            if forget:
                lease_queries.forget(conn, holder)
            return count

    def replicas(self) -> list[Replica]:
        """The replicas the database knows, with their leases (`monitor status`); [] on SQLite."""
        if not self.shared:
            return []
        with self._tx("listing replicas") as conn:
            return lease_queries.all_replicas(conn)

    def leases(self) -> list[tuple[str, str, float]]:
        if not self.shared:
            return []
        with self._tx("listing leases") as conn:
            return lease_queries.lease_rows(conn)

    def unfinished_items(self, feeds: Collection[str], since: datetime) -> list[Item]:
        """Items of these feeds stored since a time but in no story (their poll's process died first)."""
        with self._tx("reading unfinished items") as conn:
            return lease_queries.unfinished(conn, feeds, since)

    def model_revision(self, name: str) -> int | None:
        with self._tx("reading the stored model's revision") as conn:
            return lease_queries.model_revision(conn, name)

    def load_model_bytes(self, name: str) -> tuple[int, bytes] | None:
        with self._tx("reading the stored model") as conn:
            return lease_queries.load_model(conn, name)

    def save_model_bytes(self, name: str, data: bytes) -> int:
        with self._tx("storing the model", write=True) as conn:
            return lease_queries.save_model(conn, name, data)

    # --- feeds ------------------------------------------------------------------------------------

    def get_feed(self, name: str) -> FeedState | None:
        with self._tx(f"reading feed {name!r}") as conn:
            row = conn.execute(select(feed_table).where(feed_table.c.name == name)).first()
        return None if row is None else to_feed(row)

    def put_feed(self, state: FeedState) -> None:
        with self._tx(f"saving feed {state.name!r}", write=True) as conn:
            self._put_feed(conn, state)

    def _put_feed(self, conn: Connection, state: FeedState) -> None:
        if self._feed_upsert is None:
            # Built once: constructing the statement cost more than running it (one per poll).
            stmt = insert_for(conn, feed_table)
            self._feed_upsert = stmt.on_conflict_do_update(
                index_elements=[feed_table.c.name], set_={k: stmt.excluded[k] for k in FEED_FIELDS}
            )
        conn.execute(self._feed_upsert, feed_values(state))

    def feeds(self) -> list[FeedState]:
        with self._tx("listing feeds") as conn:
            return [to_feed(row) for row in conn.execute(select(feed_table).order_by(feed_table.c.name))]

    # --- items ------------------------------------------------------------------------------------

    def add_items(self, items: Sequence[Item], now: datetime) -> tuple[list[Item], list[Item]]:
        """Store items; return (new, changed), both with `first_seen` as stored.

        New means the (feed, key) pair was never stored, however old the item's date or low its place in
        the feed; no time cutoff is involved. Changed means stored with a different title or text (the row
        is updated, first_seen kept). A feed repeating a key within one batch counts once (first wins).
        """
        if not items:
            return [], []
        with self._tx("storing new items", write=True) as conn:
            return self._add_items(conn, items, now)

    def store_poll(
        self, feed: str, items: Sequence[Item], now: datetime, settle: Settle
    ) -> tuple[list[Item], list[Item], FeedState]:
        """A successful poll's writes in one transaction: its items as `add_items` stores them, then the feed's
        state that `settle(new, changed, count)` returns (`count()` counts the feed's stored items, these
        included, in this transaction). Returns (new, changed, the state written).

        Both land or neither: items stored without the state that says they were seen would be no longer new to
        the next poll (and a state without its items would skip them)."""
        with self._tx(f"storing a poll of feed {feed!r}", write=True) as conn:
            new, changed = self._add_items(conn, items, now)
            state = settle(new, changed, lambda: self._count_items(conn, feed))
            self._put_feed(conn, state)
        return new, changed, state

    def _add_items(self, conn: Connection, items: Sequence[Item], now: datetime) -> tuple[list[Item], list[Item]]:
        batch: dict[str, Item] = {}
        for item in items:
            batch.setdefault(item.uid, item)
        stored: dict[str, tuple[int, str, datetime]] = {}
        for chunk in chunks(list(batch)):
            for row in conn.execute(_STORED, {"uids": list(chunk)}):
                stored[row.uid] = (row.id, row.content_hash, row.first_seen)
        fresh: list[Item] = []
        changed: list[Item] = []
        updates: list[dict[str, Any]] = []
        for uid, item in batch.items():
            if uid not in stored:
                fresh.append(replace(item, first_seen=now))
                continue
            row_id, old_hash, first_seen = stored[uid]
            values = item_values(item, first_seen)
            if values["content_hash"] != old_hash:
                changed.append(replace(item, first_seen=first_seen))
                updates.append({"b_id": row_id, **{f"b_{name}": values[name] for name in _UPDATABLE}})
        new = self._insert_items(conn, fresh, now)
        if updates:
            conn.execute(_UPDATE_ITEM, updates)
        return new, changed

    @staticmethod
    def _insert_items(conn: Connection, fresh: list[Item], now: datetime) -> list[Item]:
        if not fresh:
            return []
        # Bulk insert (multi-row VALUES); ON CONFLICT + RETURNING tells which rows really went in, should
        # another process have stored the same item since our SELECT (possible on PostgreSQL).
        rows = [item_values(item, now) for item in fresh]
        inserted = set(conn.execute(_INSERT_ITEMS[conn.dialect.name], rows).scalars())
        return [item for item in fresh if item.uid in inserted]

    def get_item(self, uid: str) -> Item | None:
        with self._tx("reading an item") as conn:
            row = conn.execute(select(item_table).where(item_table.c.uid == uid)).first()
        return None if row is None else to_item(row)

    def recent_items(self, limit: int, since: datetime | None = None) -> list[Item]:
        query = select(item_table).order_by(item_table.c.first_seen.desc(), item_table.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(item_table.c.first_seen >= since)
        with self._tx("reading recent items") as conn:
            return [to_item(row) for row in conn.execute(query)]

    def items_for_story_index(self, since: datetime) -> list[tuple[Item, str | None]]:
        """Items first seen since a time with their story id, oldest first: rebuilds the story window."""
        story_of = select(story_items.c.story_id).where(story_items.c.item_uid == item_table.c.uid)
        query = (
            select(item_table, story_of.order_by(story_items.c.story_id).limit(1).scalar_subquery())
            .where(item_table.c.first_seen >= since)
            .order_by(item_table.c.first_seen, item_table.c.id)
        )
        with self._tx("reading items for the story index") as conn:
            return [(to_item(row), row[-1]) for row in conn.execute(query)]

    def count_items(self, feed: str | None = None) -> int:
        with self._tx("counting items") as conn:
            return self._count_items(conn, feed)

    @staticmethod
    def _count_items(conn: Connection, feed: str | None) -> int:
        query = select(func.count()).select_from(item_table)
        if feed is not None:
            query = query.where(item_table.c.feed == feed)
        return int(conn.execute(query).scalar_one())

    def item_counts(self, since: datetime) -> dict[str, int]:
        """Items first seen since a time, per feed (`monitor status`: items/day)."""
        query = (
            select(item_table.c.feed, func.count()).where(item_table.c.first_seen >= since).group_by(item_table.c.feed)
        )
        with self._tx("counting items per feed") as conn:
            return {feed: int(n) for feed, n in conn.execute(query)}

    def item_by_link(self, link: str) -> Item | None:
        """The earliest stored item with this link (`monitor label --url` labels it rather than a copy)."""
        query = select(item_table).where(item_table.c.link == link).order_by(item_table.c.id).limit(1)
        with self._tx("finding an item by its link") as conn:
            row = conn.execute(query).first()
        return None if row is None else to_item(row)

    def prune(self, before: datetime) -> int:
        """Delete items first seen before `before` that no alert or label references (and their matches and near
        misses); return the count. Stories last seen before then without an alert go too, or they would grow
        without bound, and near-miss messages sent by then. A labelled item keeps its text: the topic model
        learns from it."""
        doomed = select(item_table.c.id).where(
            item_table.c.first_seen < before,
            ~select(alerts.c.id).where(alerts.c.item_id == item_table.c.id).exists(),
            ~select(labels.c.id).where(labels.c.item_id == item_table.c.id).exists(),
        )
        stale = select(story_table.c.id).where(
            story_table.c.last_seen < before, ~select(alerts.c.id).where(alerts.c.story_id == story_table.c.id).exists()
        )
        with self._tx("pruning old items", write=True) as conn:
            conn.execute(delete(match_table).where(match_table.c.item_id.in_(doomed)))
            near_queries.prune(conn, doomed, before)
            pruned = int(conn.execute(delete(item_table).where(item_table.c.id.in_(doomed))).rowcount)
            conn.execute(delete(story_items).where(story_items.c.story_id.in_(stale)))
            conn.execute(delete(story_table).where(story_table.c.id.in_(stale)))
        return pruned

    # --- alerts and outbox ------------------------------------------------------------------------

    def apply(self, intent: ItemIntent) -> Alert | None:
        """What processing one item decided, in one transaction: the alert with its matches and outbox rows, the
        story (its row, and the item appended to its members), and the edits of the story's first alert. Returns
        the alert when one was recorded (None: none was decided, or the same was recorded before)."""
        return self.apply_all([intent])[0]

    def apply_all(self, intents: Sequence[ItemIntent]) -> list[Alert | None]:
        """`apply` for a poll's items, in processing order, all in one transaction: a process killed meanwhile
        leaves all of them recorded or none (those are matched again at start-up, their alerts keyed). One alert
        or None per intent."""
        if not intents:
            return []
        first = intents[0].item.uid
        doing = f"recording item {first!r}" if len(intents) == 1 else f"recording {len(intents)} items ({first!r}, …)"
        with self._tx(doing, write=True) as conn:
            # The stories first: record_alert re-reads `muted` in this transaction (a mute pressed meanwhile
            # stays), which the save keeps as it was (muted is only ever set).
            story_queries.append_members(conn, [(intent.story, intent.item) for intent in intents])
            return [self._apply_one(conn, intent) for intent in intents]

    @staticmethod
    def _apply_one(conn: Connection, intent: ItemIntent) -> Alert | None:
        item, story, now = intent.item, intent.story, intent.now
        recorded = None
        if intent.alert is not None:
            wanted = intent.alert
            hold = dict(wanted.hold_until)
            recorded = alert_queries.record_alert(conn, item, wanted.matches, wanted.channels, now, story.id, hold)
        if intent.edit is not None:
            first = conn.execute(_FIRST_ALERT, {"story": story.id}).scalar()
            if first is not None:
                alert_queries.record_story_update(conn, first, item, intent.edit, now)
        if intent.near is not None:
            near_queries.record(conn, item, story.id, intent.near, now)
        return recorded

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
        """Matches, alert and one pending 'send' row per channel, in one transaction; None if recorded before
        or the story is muted."""
        with self._tx(f"recording an alert for {item.uid!r}", write=True) as conn:
            return alert_queries.record_alert(conn, item, matches, channels, now, story_id, hold_until or {})

    def record_story_update(self, alert_id: int, item: Item, channels: Sequence[str], now: datetime) -> int:
        """Queue 'edit' rows for the channels the alert was sent to (others have nothing to edit); none when its
        story is muted."""
        with self._tx(f"queueing story updates for alert {alert_id}", write=True) as conn:
            return alert_queries.record_story_update(conn, alert_id, item, channels, now)

    def get_alert(self, alert_id: int) -> Alert:
        """The alert with item, matches and the (feed, link) of its story's other items; StoreError if none."""
        with self._tx(f"reading alert {alert_id}") as conn:
            return alert_queries.get_alert(conn, alert_id)

    def get_alerts(self, alert_ids: Sequence[int]) -> dict[int, Alert]:
        """Several alerts in a few queries (a delivery pass), by id; unknown ids are left out."""
        with self._tx(f"reading {len(alert_ids)} alerts") as conn:
            return alert_queries.get_alerts(conn, alert_ids)

    def due_deliveries(
        self, now: datetime, limit: int = 100, *, channels: Collection[str] | None = None
    ) -> list[tuple[Delivery, str]]:
        """Pending rows due by `now`, oldest first; of `channels` only, when given."""
        query = _DUE if channels is None else _DUE.where(outbox.c.channel.in_(sorted(channels)))
        with self._tx("reading due deliveries") as conn:
            return [(to_delivery(row), row.kind) for row in conn.execute(query, {"now": now, "limit": limit})]

    def message_ref(self, alert_id: int, channel: str) -> str | None:
        with self._tx(f"reading the message reference of alert {alert_id}") as conn:
            return conn.execute(_MESSAGE_REF, {"alert": alert_id, "channel": channel}).scalar()

    @contextmanager
    def delivery_pass(self) -> Iterator[None]:
        """Around a delivery pass: its marks go over one connection held for the pass, each one autocommitted
        UPDATE. On PostgreSQL all outcome marks, one round trip per row where a transaction of its own took four
        (the pool's ping, BEGIN, UPDATE, COMMIT), and `begin_mark_sent` does not wait for it (store/marks.py); on
        SQLite the 'sent' marks, one call into SQLite where a transaction took ten (store/litemarks.py). Each mark
        is still durable on its own before the next message is sent."""
        if getattr(self._pinned, "held", None) is not None or getattr(self._pinned, "lite", None) is not None:
            yield
            return
        if not self.shared:
            with self._lite_pass():
                yield
            return
        from .marks import HeldMarks  # psycopg is the optional `postgres` extra: imported on PostgreSQL only

        conn = self._delivery_connection().execution_options(isolation_level="AUTOCOMMIT")
        try:
            held = HeldMarks(conn)
        except StoreError:
            conn.invalidate()
            conn.close()
            raise
        self._pinned.held = held
        try:
            yield
        finally:
            self._pinned.held = None
            held.close()

    @contextmanager
    def _lite_pass(self) -> Iterator[None]:
        if self._memory:
            yield  # in memory: the one shared connection is everybody's (StaticPool); marks keep their transactions
            return
        lite = LiteMarks(self._delivery_connection(), _MARK["sent"], self._write_lock)
        self._pinned.lite = lite
        try:
            yield
        finally:
            self._pinned.lite = None
            lite.close()

    def _delivery_connection(self) -> Connection:
        """The connection a delivery pass holds for its marks."""
        try:
            return self._engine.connect()
        except SQLAlchemyError as exc:
            reason = describe(exc)
            raise StoreError(f"while connecting for delivery: {reason}", reason=reason) from exc

    def _held(self) -> HeldMarks | None:
        held: HeldMarks | None = getattr(self._pinned, "held", None)
        return None if held is None or held.broken else held  # broken: the rest of the pass uses transactions

    def _update_delivery(self, delivery_id: int, doing: str, outcome: str, **values: Any) -> None:
        held = self._held()
        if held is not None:
            done = held.execute(_MARK[outcome], {"b_id": delivery_id, **values}, f"{doing} delivery {delivery_id}")
            if done == 0:
                raise StoreError(f"no delivery with id {delivery_id}")
            return
        with self._tx(f"{doing} delivery {delivery_id}", write=True) as conn:
            if conn.execute(_MARK[outcome], {"b_id": delivery_id, **values}).rowcount == 0:
                raise StoreError(f"no delivery with id {delivery_id}")

    def begin_mark_sent(self, delivery_id: int, now: datetime, message_ref: str | None = None) -> Callable[[], None]:
        """`mark_sent`, returning the call that waits until it is stored: inside a delivery pass on PostgreSQL the
        UPDATE is on its way meanwhile (the deliverer renders the next message, then waits before sending it);
        elsewhere it is stored before this returns. StoreError from either, as from mark_sent."""
        held = self._held()
        if held is None:
            self.mark_sent(delivery_id, now, message_ref)
            return _stored
        return held.begin_sent(delivery_id, now, message_ref)

    def mark_sent(self, delivery_id: int, now: datetime, message_ref: str | None = None) -> None:
        """Sent (the attempt counts); keep the channel's message reference for later edits."""
        lite: LiteMarks | None = getattr(self._pinned, "lite", None)
        if lite is not None:
            lite.sent(delivery_id, now, message_ref)
            return
        self._update_delivery(delivery_id, "marking sent", "sent", b_now=now, b_ref=message_ref)

    def mark_retry(self, delivery_id: int, now: datetime, error: str, next_attempt: datetime) -> None:
        """Record a failed attempt (attempts += 1) and when to try again."""
        self._update_delivery(
            delivery_id, "scheduling a retry of", "retry", b_now=now, b_error=error, b_next=next_attempt
        )

    def defer(self, delivery_id: int, until: datetime) -> None:
        """Move the next attempt without counting an attempt (quiet hours, pacing)."""
        self._update_delivery(delivery_id, "deferring", "defer", b_next=until)

    def mark_failed(self, delivery_id: int, now: datetime, error: str) -> None:
        """Give up (the last attempt counts); the row stays, for `monitor alerts` to show."""
        self._update_delivery(delivery_id, "marking failed", "failed", b_now=now, b_error=error)

    def alerts_since(self, since: datetime) -> list[tuple[Alert, list[Delivery]]]:
        """Alerts created since a time, newest first, each with its 'send' rows."""
        with self._tx("listing alerts") as conn:
            return alert_queries.alerts_since(conn, since)

    def outbox_counts(self) -> dict[str, int]:
        query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        with self._tx("counting outbox rows") as conn:
            counts = {"pending": 0, "sent": 0, "failed": 0}
            counts.update({status: int(n) for status, n in conn.execute(query)})
        return counts

    def match_counts(self, since: datetime) -> dict[str, int]:
        """Matched items per topic since a time."""
        query = (
            select(match_table.c.topic, func.count(match_table.c.item_id.distinct()))
            .where(match_table.c.matched.is_(True), match_table.c.matched_at >= since)
            .group_by(match_table.c.topic)
        )
        with self._tx("counting matches") as conn:
            return {topic: int(n) for topic, n in conn.execute(query)}

    # --- stories ----------------------------------------------------------------------------------

    def put_story(self, story: Story) -> None:
        with self._tx(f"saving story {story.id!r}", write=True) as conn:
            story_queries.put_story(conn, story)

    def get_story(self, story_id: str, *, members: Sequence[str] | None = None) -> Story | None:
        """The story with all its members; with `members`, only those of them (the cost of reading it then does
        not grow with its size: what deciding an item needs)."""
        with self._tx(f"reading story {story_id!r}") as conn:
            if members is None:
                return story_queries.get_story(conn, story_id)
            return story_queries.story_heads(conn, [story_id], members).get(story_id)

    def get_stories(self, story_ids: Sequence[str], *, members: Sequence[str]) -> dict[str, Story]:
        """`get_story(id, members=...)` of several stories in one transaction, by id; unknown ids are left out."""
        with self._tx(f"reading {len(story_ids)} stories") as conn:
            return story_queries.story_heads(conn, story_ids, members)

    def stories_since(self, since: datetime) -> list[Story]:
        """Stories last seen since a time, oldest first."""
        with self._tx("listing stories") as conn:
            return story_queries.stories_since(conn, since)

    def alert_for_story(self, story_id: str) -> int | None:
        """The earliest alert recorded for a story."""
        with self._tx(f"finding the alert of story {story_id!r}") as conn:
            return conn.execute(_FIRST_ALERT, {"story": story_id}).scalar()

    def mute_story(self, story_id: str) -> bool:
        """Mute a story for good: no more alerts or edits; its queued edits are dropped. False if unknown."""
        with self._tx(f"muting story {story_id!r}", write=True) as conn:
            return label_queries.mute_story(conn, story_id)

    # --- labels and state -------------------------------------------------------------------------

    def put_label(self, label: Label, now: datetime) -> None:
        """Record a verdict on a stored item (replacing an earlier one for the same topic); `at` defaults to now.

        StoreError when the item is not stored."""
        with self._tx(f"labelling {label.item!r} for {label.topic!r}", write=True) as conn:
            label_queries.put_label(conn, label, now)

    def labelled_items(self, topic: str | None = None) -> list[tuple[Label, Item]]:
        """Every label with its item, oldest first: what the topic model learns from."""
        with self._tx("reading labels") as conn:
            return label_queries.labelled_items(conn, topic)

    def label_counts(self) -> dict[str, tuple[int, int]]:
        """Per topic: (labelled relevant, labelled not relevant)."""
        with self._tx("counting labels") as conn:
            return label_queries.label_counts(conn)

    def labels_revision(self) -> int:
        """A number that changes with every label written, by any process: one cheap read."""
        with self._tx("reading the labels revision") as conn:
            return int(label_queries.get_state(conn, label_queries.LABELS_REVISION) or 0)

    def get_state(self, name: str) -> str | None:
        with self._tx(f"reading state {name!r}") as conn:
            return label_queries.get_state(conn, name)

    def put_state(self, name: str, value: str) -> None:
        with self._tx(f"saving state {name!r}", write=True) as conn:
            label_queries.put_state(conn, name, value)

    # --- near misses ------------------------------------------------------------------------------

    def waiting_near_misses(self, up_to: date) -> list[NearMiss]:
        """Near misses still waiting for their message, of day `up_to` and before."""
        with self._tx("reading near misses") as conn:
            return near_queries.waiting(conn, up_to)

    def get_near_miss(self, near_miss_id: int) -> NearMiss | None:
        with self._tx(f"reading near miss n{near_miss_id}") as conn:
            return near_queries.by_ids(conn, [near_miss_id]).get(near_miss_id)

    def take_near_misses(
        self,
        offers: Sequence[tuple[str, date, tuple[int, ...]]],
        offered: Sequence[int],
        dropped: Sequence[int],
        now: datetime,
    ) -> int:
        """In one transaction: the messages to send (channel, day, near miss ids) and the near misses they took."""
        with self._tx("recording near-miss messages", write=True) as conn:
            return near_queries.take(conn, offers, offered, dropped, now)

    def due_offers(self, now: datetime, limit: int = 20) -> list[NearMissOffer]:
        """Near-miss messages pending and due, oldest first."""
        with self._tx("reading due near-miss messages") as conn:
            return near_queries.due_offers(conn, now, limit)

    def offer_at(self, channel: str, message_ref: str) -> NearMissOffer | None:
        with self._tx("finding a near-miss message") as conn:
            return near_queries.offer_at(conn, channel, message_ref)

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
    ) -> None:
        """A near-miss message's outcome: 'sent', 'failed', or 'pending' with the next attempt (`attempted=False`:
        moved untried, as in quiet hours)."""
        with self._tx(f"recording the outcome of near-miss message {offer_id}", write=True) as conn:
            near_queries.mark_offer(
                conn, offer_id, status, now,
                message_ref=message_ref, error=error, next_attempt=next_attempt, attempted=attempted,
            )  # fmt: skip

    def near_miss_counts(self) -> dict[str, tuple[int, int]]:
        """Per topic: (near misses offered, of those labelled)."""
        with self._tx("counting near misses") as conn:
            return near_queries.counts(conn)
