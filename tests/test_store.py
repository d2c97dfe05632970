"""SqlStore against real databases: SQLite always, PostgreSQL when MONITOR_TEST_DATABASE_URL is set."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import event

from monitor.errors import StoreError
from monitor.models import AlertIntent, FeedState, Item, ItemIntent, Match, Story
from monitor.ports import Store
from monitor.store import SqlStore
from monitor.store.engine import make_engine
from monitor.store.migrate import LATEST
from tests.storefixtures import T0, Db, db_fixture, item, store_fixture  # noqa: F401

MATCHES = (
    Match("nuclear", 0.82, 0.5, True, terms=("стратегическ* стабильност*", "снв"), passage="…договор СНВ…"),
    Match("arctic", 0.61, 0.55, True, keyword_hits=("северный морской путь",)),
    Match("space", 0.1, 0.5, False, vetoed_by="игра"),
)


def run_threads(count: int, work: Callable[[int], object]) -> None:
    """Run work(0..count-1) in threads started together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(n)
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]


# --- opening and migrations -----------------------------------------------------------------------


def test_open_creates_and_migrates_once(db: Db) -> None:
    assert db.open().schema_versions == (0, LATEST)
    assert db.open().schema_versions == (LATEST, LATEST)
    assert db.scalar("SELECT version FROM schema_version") == LATEST


def test_concurrent_opens_migrate_once(db: Db) -> None:
    versions: list[tuple[int, int]] = []
    run_threads(4, lambda n: versions.append(db.open().schema_versions))
    assert sorted(versions) == [(0, LATEST)] + [(LATEST, LATEST)] * 3


def test_newer_schema_is_refused(db: Db) -> None:
    db.open()
    db.scalar("UPDATE schema_version SET version = 999")
    with pytest.raises(StoreError, match="version 999, newer"):
        db.open()


def test_sqlite_file_gets_its_directory(tmp_path: Path) -> None:
    SqlStore(f"sqlite:///{tmp_path / 'a' / 'b' / 'monitor.db'}").close()
    assert (tmp_path / "a" / "b" / "monitor.db").exists()


@pytest.mark.parametrize(
    ("url", "schema", "message"),
    [
        ("mysql://localhost/x", None, "unsupported database"),
        ("sqlite:///x.db", "s", "only be given for PostgreSQL"),
        ("postgresql+psycopg://localhost/x", "Bad; DROP", "schema name"),
        ("not a url", None, "while opening the database"),
    ],
)
def test_bad_urls_raise_store_error(url: str, schema: str | None, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        SqlStore(url, schema=schema)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'monitor.db'}")
    with store._tx("checking settings") as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    engine = make_engine("postgresql://monitor@127.0.0.1/monitor", schema="s1")  # no connection is made
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_in_memory_sqlite_is_shared_between_threads() -> None:
    mem = SqlStore("sqlite://")
    run_threads(4, lambda n: mem.add_items([item(f"k{n}-{i}", feed=f"f{n}") for i in range(20)], T0))
    assert mem.count_items() == 80
    mem.close()


# --- feeds ----------------------------------------------------------------------------------------


def test_feed_state_round_trip(store: SqlStore) -> None:
    assert store.get_feed("ria") is None
    state = FeedState("ria", "https://ria.example/rss", etag='"x"', last_fetch=T0, next_poll=T0, status="ok")
    store.put_feed(state)
    assert store.get_feed("ria") == state
    updated = FeedState("ria", "https://ria.example/rss", error_count=3, last_error="HTTP 500", dead_reported=True)
    store.put_feed(updated)
    store.put_feed(FeedState("aaa", "https://aaa.example/rss"))
    assert store.get_feed("ria") == updated
    assert [f.name for f in store.feeds()] == ["aaa", "ria"]


# --- items ----------------------------------------------------------------------------------------


def test_new_changed_and_republished_items(store: SqlStore) -> None:
    first = [item("a"), item("b"), item("c")]
    new, changed = store.add_items(first, T0)
    assert [i.key for i in new] == ["a", "b", "c"] and changed == []
    assert all(i.first_seen == T0 for i in new)

    later = T0 + timedelta(hours=1)
    republished = item("a", minutes=30)  # new date, same text: a feed re-publishing its item
    edited = item("b", title="title b, updated")
    new, changed = store.add_items([republished, edited, item("c", text="new body"), item("d")], later)
    assert [i.key for i in new] == ["d"]
    assert [i.key for i in changed] == ["b", "c"]
    assert changed[0].first_seen == T0  # first seen stays the first time
    stored = store.get_item(edited.uid)
    assert stored is not None and stored.title == "title b, updated" and stored.first_seen == T0
    assert store.add_items(first[:1], later) == ([], [])
    assert store.count_items() == 4


def test_late_and_low_items_are_still_new(store: SqlStore) -> None:
    store.add_items([item("fresh", minutes=600), item("older", minutes=500)], T0)
    # Shows up a day later with a date older than everything seen, at the bottom of the feed.
    late = item("late", minutes=-60 * 24 * 30)
    new, _ = store.add_items([item("fresh", minutes=600), item("older", minutes=500), late], T0 + timedelta(days=1))
    assert new == [replace(late, first_seen=T0 + timedelta(days=1))]


def test_same_key_in_other_feeds_and_repeated_keys(store: SqlStore) -> None:
    new, _ = store.add_items([item("1", feed="a"), item("1", feed="b"), item("1", feed="a", title="dup")], T0)
    assert [(i.feed, i.title) for i in new] == [("a", "title 1"), ("b", "title 1")]
    assert store.count_items("a") == 1 and store.count_items("b") == 1


def test_add_items_in_more_rows_than_one_statement_takes(store: SqlStore) -> None:
    batch = [item(f"k{i}", feed=f"f{i % 3}") for i in range(1_234)]
    new, _ = store.add_items(batch, T0)
    assert len(new) == 1_234
    new, changed = store.add_items([item("k5", feed="f2", text="edited"), *batch[:700]], T0)
    assert new == [] and [i.key for i in changed] == ["k5"]


class Settler:
    """A poll's settle callback that records what the store gave it; counts when told to, fails when told to."""

    def __init__(self, count: bool = True, fail: BaseException | None = None, when: object = T0) -> None:
        self.count, self.fail, self.when = count, fail, when
        self.seen: list[tuple[list[str], list[str], int | None]] = []

    def __call__(self, new: list[Item], changed: list[Item], count: Callable[[], int]) -> FeedState:
        total = count() if self.count else None
        self.seen.append(([i.key for i in new], [i.key for i in changed], total))
        if self.fail is not None:
            raise self.fail
        return FeedState("ria", "https://ria.example/rss", last_fetch=self.when, status="ok", items_total=total or 0)


def test_a_poll_stores_its_items_and_its_feed_state_together(store: SqlStore) -> None:
    store.add_items([item("other", feed="tass")], T0)
    settle = Settler()
    new, changed, state = store.store_poll("ria", [item("a"), item("b")], T0, settle)
    assert [i.key for i in new] == ["a", "b"] and changed == []
    # The count is taken in the transaction, after the items went in: this feed's, with them.
    assert settle.seen == [(["a", "b"], [], 2)]
    assert store.get_feed("ria") == state and state.items_total == 2
    later = T0 + timedelta(minutes=5)
    again = Settler(count=False, when=later)  # nothing counted when the poll does not ask
    new, changed, state = store.store_poll("ria", [item("a", text="edited"), item("b"), item("c")], later, again)
    assert ([i.key for i in new], [i.key for i in changed]) == (["c"], ["a"])
    assert again.seen == [(["c"], ["a"], None)] and store.get_feed("ria") == state and state.last_fetch == later
    # A poll of an empty feed still records the feed.
    _, _, state = store.store_poll("ria", [], later, Settler())
    assert store.get_feed("ria") == state and state.items_total == 3
    assert store.count_items("ria") == 3


@pytest.mark.parametrize("failure", ["callback", "database"])
def test_a_poll_that_fails_inside_its_transaction_stores_neither_items_nor_state(store: SqlStore, failure: str) -> None:
    before = FeedState("ria", "https://ria.example/rss", last_fetch=T0, status="ok", items_total=1)
    store.store_poll("ria", [item("a")], T0, lambda new, changed, count: before)
    later = T0 + timedelta(minutes=5)
    if failure == "callback":  # the decision itself raises, after the items were written in the transaction
        settle = Settler(fail=RuntimeError("boom"))
        with pytest.raises(RuntimeError, match="boom"):
            store.store_poll("ria", [item("a", text="edited"), item("b")], later, settle)
    else:  # the feed's row is refused by the database layer (a naive time), after the items were written
        settle = Settler(when=later.replace(tzinfo=None))
        with pytest.raises(StoreError, match="storing a poll of feed 'ria'"):
            store.store_poll("ria", [item("a", text="edited"), item("b")], later, settle)
    assert settle.seen == [(["b"], ["a"], 2)]  # the items were in, uncommitted, when it failed
    assert store.get_feed("ria") == before
    assert store.count_items("ria") == 1 and store.get_item(item("b").uid) is None
    stored = store.get_item(item("a").uid)
    assert stored is not None and stored.summary == "text"
    # Nothing half-written: the next poll sees the same items as new and changed.
    new, changed, _ = store.store_poll("ria", [item("a", text="edited"), item("b")], later, Settler())
    assert ([i.key for i in new], [i.key for i in changed]) == (["b"], ["a"])


def test_recent_items_newest_first(store: SqlStore) -> None:
    for n in range(5):
        store.add_items([item(f"k{n}")], T0 + timedelta(minutes=n))
    assert [i.key for i in store.recent_items(3)] == ["k4", "k3", "k2"]
    assert [i.key for i in store.recent_items(10, since=T0 + timedelta(minutes=3))] == ["k4", "k3"]


def test_times_come_back_tz_aware_utc(store: SqlStore) -> None:
    moscow = timezone(timedelta(hours=3))
    local = replace(item("k"), published=T0.astimezone(moscow))
    store.add_items([local], T0.astimezone(moscow))
    got = store.get_item(local.uid)
    assert got is not None
    assert got.published == T0 and got.published.tzinfo is not None and got.published.utcoffset() == timedelta(0)
    assert got.first_seen == T0 and got.first_seen is not None and got.first_seen.utcoffset() == timedelta(0)
    with pytest.raises(StoreError, match="naive datetime"):
        store.add_items([item("naive")], T0.replace(tzinfo=None))


def test_nul_characters_are_dropped(store: SqlStore) -> None:
    store.add_items([item("k", title="a\x00b")], T0)
    got = store.get_item(item("k").uid)
    assert got is not None and got.title == "ab"


def test_prune_keeps_alerted_items(store: SqlStore) -> None:
    old, alerted, recent = item("old"), item("alerted"), item("recent")
    store.add_items([old, alerted], T0)
    store.add_items([recent], T0 + timedelta(days=10))
    store.record_alert(alerted, MATCHES, ["tg"], T0)
    assert store.prune(T0 + timedelta(days=5)) == 1
    assert store.get_item(old.uid) is None
    assert store.get_item(alerted.uid) is not None and store.get_item(recent.uid) is not None
    assert store.prune(T0 + timedelta(days=5)) == 0


def test_prune_drops_old_stories_without_alerts(store: SqlStore) -> None:
    a, b = item("a"), item("b")
    store.add_items([a, b], T0)
    store.put_story(Story("quiet", a.uid, T0, T0, (a.uid,), ("ria",)))
    store.put_story(Story("alerted", b.uid, T0, T0, (b.uid,), ("ria",)))
    store.put_story(Story("recent", b.uid, T0, T0 + timedelta(days=9), (b.uid,), ("ria",)))
    store.record_alert(b, MATCHES, ["tg"], T0, story_id="alerted")
    store.prune(T0 + timedelta(days=5))
    assert store.get_story("quiet") is None
    assert store.get_story("alerted") is not None and store.get_story("recent") is not None


# --- alerts and outbox ----------------------------------------------------------------------------


def test_record_alert_round_trip_and_idempotency(store: SqlStore) -> None:
    it = item("a")
    store.add_items([it], T0)
    hold = {"mail": T0 + timedelta(hours=8)}
    alert = store.record_alert(it, MATCHES, ["tg", "mail", "tg"], T0, story_id="s1", hold_until=hold)
    assert alert is not None
    assert alert.item.uid == it.uid and alert.matches == MATCHES and alert.created == T0 and alert.story_id == "s1"
    assert store.get_alert(alert.id) == alert
    # Same item and topics (whatever the scores or order): nothing new is written.
    assert store.record_alert(it, MATCHES[::-1], ["tg", "console"], T0 + timedelta(minutes=5)) is None
    assert store.outbox_counts() == {"pending": 2, "sent": 0, "failed": 0}
    due = store.due_deliveries(T0)
    assert [(d.channel, kind) for d, kind in due] == [("tg", "send")]
    assert [d.channel for d, _ in store.due_deliveries(T0 + timedelta(hours=8))] == ["tg", "mail"]
    # Another topic set for the same item is another alert.
    assert store.record_alert(it, MATCHES[:1], ["tg"], T0) is not None
    with pytest.raises(StoreError, match="no alert with id 999"):
        store.get_alert(999)


def test_record_alert_is_one_transaction(db: Db, store: SqlStore) -> None:
    it = item("a")
    store.add_items([it], T0)
    # The empty channel name breaks the outbox's CHECK constraint after matches and alert were inserted.
    with pytest.raises(StoreError, match="while recording an alert"):
        store.record_alert(it, MATCHES, ["tg", ""], T0)
    assert db.scalar("SELECT count(*) FROM alerts") == 0
    assert db.scalar("SELECT count(*) FROM matches") == 0
    assert db.scalar("SELECT count(*) FROM outbox") == 0
    assert store.record_alert(it, MATCHES, ["tg"], T0) is not None


def test_record_alert_stores_an_unseen_item(store: SqlStore) -> None:
    alert = store.record_alert(item("x"), MATCHES, ["tg"], T0)
    assert alert is not None and alert.item.first_seen == T0
    assert store.get_item(item("x").uid) is not None


def test_delivery_flow(store: SqlStore) -> None:
    alert = store.record_alert(item("a"), MATCHES, ["tg", "mail", "console"], T0)
    assert alert is not None
    (tg, _), (mail, _), (console, _) = store.due_deliveries(T0)
    assert store.due_deliveries(T0, limit=1) == [(tg, "send")]

    store.mark_sent(tg.id, T0, message_ref="4242")
    store.mark_retry(mail.id, T0, "SMTP 451", T0 + timedelta(minutes=5))
    store.defer(console.id, T0 + timedelta(minutes=1))
    assert store.due_deliveries(T0) == []
    assert [d.channel for d, _ in store.due_deliveries(T0 + timedelta(minutes=1))] == ["console"]
    assert [d.channel for d, _ in store.due_deliveries(T0 + timedelta(minutes=5))] == ["console", "mail"]
    assert store.message_ref(alert.id, "tg") == "4242" and store.message_ref(alert.id, "mail") is None

    store.mark_failed(mail.id, T0 + timedelta(minutes=5), "550 no such user")
    [(listed, deliveries)] = store.alerts_since(T0)
    assert listed == alert
    by_channel = {d.channel: d for d in deliveries}
    assert by_channel["tg"].status == "sent" and by_channel["tg"].sent_at == T0
    assert by_channel["tg"].message_ref == "4242"
    assert by_channel["mail"].status == "failed" and by_channel["mail"].attempts == 2
    assert by_channel["mail"].last_error == "550 no such user"
    assert by_channel["console"].attempts == 0 and by_channel["console"].next_attempt == T0 + timedelta(minutes=1)
    assert store.outbox_counts() == {"pending": 1, "sent": 1, "failed": 1}
    with pytest.raises(StoreError, match="no delivery with id 999"):
        store.mark_sent(999, T0)


def test_a_mark_begun_in_a_delivery_pass_stores_what_mark_sent_does(db: Db, store: SqlStore) -> None:
    # On PostgreSQL the begun mark is a prepared statement of its own, sent without waiting (store/marks.py).
    alerts = [store.record_alert(item(k), MATCHES, ["tg"], T0) for k in "abc"]
    rows = [row for row, _ in store.due_deliveries(T0)]
    later = T0 + timedelta(minutes=1)
    store.mark_sent(rows[0].id, later, message_ref="41")
    with store.delivery_pass():
        wait = store.begin_mark_sent(rows[1].id, later.astimezone(timezone(timedelta(hours=3))), "42\x00")
        wait()
        store.begin_mark_sent(rows[2].id, later)  # not waited for: the pass's end waits, or the next statement
        with pytest.raises(StoreError, match="no delivery with id 999"):
            store.begin_mark_sent(999, later)()
        store.defer(rows[2].id, later)  # after the mark in flight, on the same connection
    by_alert = {a.id: d for a, [d] in store.alerts_since(T0)}
    first, second, third = (by_alert[a.id] for a in alerts if a is not None)
    assert (second.status, second.attempts, second.sent_at, second.message_ref) == ("sent", 1, later, "42")
    assert (first.status, first.attempts, first.sent_at, first.message_ref) == ("sent", 1, later, "41")
    assert (third.status, third.sent_at, third.message_ref) == ("sent", later, None)
    assert db.scalar("SELECT count(*) FROM outbox WHERE last_attempt = sent_at") == 3
    with store.delivery_pass():  # a connection from the pool, its statement prepared already (or anew)
        rows = [row for row, _ in store.due_deliveries(later)]
        assert rows == []
        with pytest.raises(StoreError, match="no delivery with id 999"):
            store.begin_mark_sent(999, later)()


def test_a_mark_in_a_delivery_pass_is_committed_when_it_returns(db: Db, store: SqlStore) -> None:
    # The exactly-once rule: the mark is durable before the next message goes out, not at the end of the pass.
    for k in "ab":
        store.record_alert(item(k), MATCHES, ["tg"], T0)
    first, second = (row for row, _ in store.due_deliveries(T0))
    with store.delivery_pass():
        store.mark_sent(first.id, T0, "7")
        assert db.scalar(f"SELECT status FROM outbox WHERE id = {first.id}") == "sent"  # another connection sees it
        store.begin_mark_sent(second.id, T0, "8")()
        assert db.scalar(f"SELECT message_ref FROM outbox WHERE id = {second.id}") == "8"
        with pytest.raises(StoreError, match="naive datetime"):
            store.mark_sent(second.id, T0.replace(tzinfo=None))


def test_alerts_since_newest_first(store: SqlStore) -> None:
    for n in range(3):
        store.record_alert(item(f"k{n}"), MATCHES, ["tg"], T0 + timedelta(minutes=n))
    assert [a.item.key for a, _ in store.alerts_since(T0 + timedelta(minutes=1))] == ["k2", "k1"]


def test_match_counts_per_topic(store: SqlStore) -> None:
    store.record_alert(item("a"), MATCHES, ["tg"], T0)
    store.record_alert(item("a"), MATCHES[:1], ["tg"], T0)  # the same item again: still one item
    store.record_alert(item("b"), MATCHES[1:], ["tg"], T0 + timedelta(hours=1))
    assert store.match_counts(T0) == {"nuclear": 1, "arctic": 2}
    assert store.match_counts(T0 + timedelta(minutes=1)) == {"arctic": 1}


# --- stories --------------------------------------------------------------------------------------


def test_story_round_trip_and_also_lines(store: SqlStore) -> None:
    first, second, third = item("1", feed="ria"), item("2", feed="tass"), item("3", feed="rbc")
    store.add_items([first, second, third], T0)
    story = Story("s1", first.uid, T0, T0, items=(first.uid,), sources=("ria",), topics=("nuclear",))
    store.put_story(story)
    assert store.get_story("s1") == story and store.get_story("nope") is None
    alert = store.record_alert(first, MATCHES, ["tg", "mail"], T0, story_id="s1")
    assert alert is not None
    later = T0 + timedelta(minutes=10)
    grown = Story("s1", first.uid, T0, later, (first.uid, second.uid, third.uid), ("ria", "tass", "rbc"), ("nuclear",))
    store.put_story(grown)
    store.put_story(grown)  # saving the same story again changes nothing
    assert store.get_story("s1") == grown
    assert store.get_alert(alert.id).also == (("tass", second.link), ("rbc", third.link))
    assert store.alert_for_story("s1") == alert.id and store.alert_for_story("s2") is None
    assert [s.id for s in store.stories_since(later)] == ["s1"] and store.stories_since(later + timedelta(1)) == []
    # Story lines survive the pruning of their (unalerted) items.
    store.prune(T0 + timedelta(days=1))
    assert store.get_alert(alert.id).also == (("tass", second.link), ("rbc", third.link))
    # The grouper's order wins, and items it dropped are dropped.
    regrouped = replace(grown, items=(third.uid, first.uid), sources=("rbc", "ria"))
    store.put_story(regrouped)
    assert store.get_story("s1") == regrouped
    assert store.get_alert(alert.id).also == (("rbc", third.link),)


def test_story_updates_queue_edits_once(store: SqlStore) -> None:
    alert = store.record_alert(item("1"), MATCHES, ["tg", "mail"], T0, story_id="s1")
    assert alert is not None
    update = item("2", feed="tass")
    assert store.record_story_update(alert.id, update, ["tg", "mail", "never-sent"], T0) == 2
    assert store.record_story_update(alert.id, update, ["tg", "mail"], T0) == 0
    assert store.record_story_update(alert.id, item("3"), ["tg"], T0) == 1
    kinds = [(d.channel, kind) for d, kind in store.due_deliveries(T0)]
    assert kinds == [("tg", "send"), ("mail", "send"), ("tg", "edit"), ("mail", "edit"), ("tg", "edit")]
    assert [d.channel for d in store.alerts_since(T0)[0][1]] == ["tg", "mail"]  # sends only


def test_items_for_story_index(store: SqlStore) -> None:
    a, b, c = item("a"), item("b"), item("c")
    store.add_items([a], T0)
    store.add_items([b, c], T0 + timedelta(minutes=1))
    store.put_story(Story("s1", a.uid, T0, T0, (a.uid, b.uid), ("ria", "ria")))
    got = [(i.key, story) for i, story in store.items_for_story_index(T0)]
    assert got == [("a", "s1"), ("b", "s1"), ("c", None)]
    assert [i.key for i, _ in store.items_for_story_index(T0 + timedelta(minutes=1))] == ["b", "c"]


# --- applying what processing an item decided -------------------------------------------------------


def test_apply_records_alert_story_and_edits(store: SqlStore) -> None:
    first, second = item("1", feed="ria"), item("2", feed="tass")
    store.add_items([first, second], T0)
    story = Story("s1", first.uid, T0, T0, (first.uid,), ("ria",), ("nuclear", "arctic"))
    hold = {"mail": T0 + timedelta(hours=3)}
    alert = store.apply(ItemIntent(first, story, T0, alert=AlertIntent(MATCHES[:2], ("tg", "mail"), hold)))
    assert alert is not None and alert.story_id == "s1" and [m.topic for m in alert.matches] == ["nuclear", "arctic"]
    assert store.get_story("s1") == story
    assert [(d.channel, kind) for d, kind in store.due_deliveries(T0)] == [("tg", "send")]  # mail held
    later = T0 + timedelta(minutes=5)
    grown = replace(story, items=(first.uid, second.uid), sources=("ria", "tass"), last_seen=later)
    assert store.apply(ItemIntent(second, grown, later, edit=("tg", "mail", "never-sent"))) is None
    assert store.get_story("s1") == grown
    edits = [(d.channel, kind) for d, kind in store.due_deliveries(later + timedelta(hours=3)) if kind == "edit"]
    assert edits == [("tg", "edit"), ("mail", "edit")]  # only where the alert went
    assert store.get_alert(alert.id).also == (("tass", second.link),)  # the edit renders the new source
    # Applying the same again writes nothing new: the alert and its edits are keyed.
    store.apply(ItemIntent(first, grown, later, alert=AlertIntent(MATCHES[:2], ("tg", "mail"), hold)))
    store.apply(ItemIntent(second, grown, later, edit=("tg", "mail")))
    assert store.outbox_counts()["pending"] == 4


def test_apply_of_a_story_without_an_alert_queues_no_edit(store: SqlStore) -> None:
    it = item("1")
    story = Story("quiet", it.uid, T0, T0, (it.uid,), ("ria",), ("nuclear",))
    assert store.apply(ItemIntent(it, story, T0, edit=("tg",))) is None
    assert store.get_story("quiet") == story and sum(store.outbox_counts().values()) == 0


def test_apply_is_one_transaction(db: Db, store: SqlStore) -> None:
    it = item("a")
    store.add_items([it], T0)
    story = Story("s1", it.uid, T0, T0, (it.uid,), ("ria",), ("nuclear",))
    # The empty channel name breaks the outbox's CHECK constraint after matches and alert were inserted.
    with pytest.raises(StoreError, match="while recording item"):
        store.apply(ItemIntent(it, story, T0, alert=AlertIntent(MATCHES, ("tg", ""))))
    assert store.get_story("s1") is None
    assert [db.scalar(f"SELECT count(*) FROM {t}") for t in ("alerts", "matches", "outbox", "story_items")] == [0] * 4
    # A story the database refuses (a naive time) after the alert and its outbox rows went in: all or nothing.
    naive = replace(story, last_seen=T0.replace(tzinfo=None))
    with pytest.raises(StoreError, match="while recording item"):
        store.apply(ItemIntent(it, naive, T0, alert=AlertIntent(MATCHES, ("tg",))))
    assert [db.scalar(f"SELECT count(*) FROM {t}") for t in ("alerts", "matches", "outbox", "story_items")] == [0] * 4
    assert store.apply(ItemIntent(it, story, T0, alert=AlertIntent(MATCHES, ("tg",)))) is not None


class Statements:
    """What the store sends the database: statements, rows written, and on SQLite the VM instructions run (a
    measure of the work, reads included, that does not depend on the machine's speed)."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store._engine  # the store's own connections: one open store, one engine
        self.sql: list[str] = []
        self.written = 0
        self.steps = 0
        event.listen(self.engine, "before_cursor_execute", self._count)
        event.listen(self.engine, "connect", self._watch)
        self.engine.dispose()  # new connections, so each gets the progress handler

    def _count(self, conn: object, cursor: object, statement: str, params: object, context: object, many: bool) -> None:
        self.sql.append(statement.split("(")[0].split(" WHERE")[0])
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            self.written += len(params) if many and isinstance(params, list) else 1  # type: ignore[arg-type]

    def _watch(self, dbapi_connection: object, record: object) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_progress_handler(self._step, 1)

    def _step(self) -> int:
        self.steps += 1
        return 0  # 0: carry on

    def during(self, work: Callable[[], object]) -> tuple[list[str], int, int]:
        self.sql, self.written, self.steps = [], 0, 0
        work()
        return list(self.sql), self.written, self.steps


def test_saving_an_item_into_a_story_costs_the_same_whatever_its_size(db: Db, store: SqlStore) -> None:
    # Issue 16: each save re-read and rewrote every member, so a farm whose items all merge into one story went
    # quadratic. Now a save appends the member and updates the story's row; reading for a decision reads the row.
    members = [item(f"m{i}", feed=f"feed{i % 7}") for i in range(10_000)]
    big = Story("big", members[0].uid, T0, T0)
    store.apply_all([ItemIntent(m, replace(big, items=(m.uid,), sources=(m.feed,)), T0) for m in members])
    small = Story("small", "ria\x1fs0", T0, T0)
    store.apply(ItemIntent(item("s0"), replace(small, items=("ria\x1fs0",), sources=("ria",)), T0))
    counter = Statements(store)
    later = T0 + timedelta(minutes=1)
    costs = []
    for story, new in ((small, item("s1", feed="tass")), (big, item("m-new", feed="tass"))):
        store.add_items([new], later)

        def save(story: Story = story, new: Item = new) -> None:
            head = store.get_stories([story.id], members=[new.uid])[story.id]
            assert new.uid not in head.items
            grown = replace(head, items=(*head.items, new.uid), sources=(*head.sources, "tass"), last_seen=later)
            store.apply(ItemIntent(new, grown, later))

        costs.append(counter.during(save))
    (small_sql, small_rows, small_steps), (big_sql, big_rows, big_steps) = costs
    assert big_sql == small_sql and big_rows == small_rows <= 2  # the story's row and the new member's
    if db.kind == "sqlite":
        assert big_steps <= 1.5 * small_steps, (small_steps, big_steps)  # a B-tree level at most, not 10,000 rows
    stored = store.get_story("big")
    assert stored is not None and len(stored.items) == 10_001 and stored.items[-1] == "tass\x1fm-new"
    assert stored.items[:3] == tuple(m.uid for m in members[:3]) and stored.sources[-1] == "tass"
    assert db.scalar("SELECT size FROM stories WHERE id = 'big'") == 10_001


def test_a_batch_of_items_in_one_story_appends_each_once(store: SqlStore) -> None:
    a, b = item("a", feed="ria"), item("b", feed="tass")
    store.add_items([a, b], T0)
    story = Story("s1", a.uid, T0, T0, (a.uid,), ("ria",), ("nuclear",))
    grown = replace(story, items=(a.uid, b.uid), sources=("ria", "tass"))
    alerts = store.apply_all(
        [
            ItemIntent(a, story, T0, alert=AlertIntent(MATCHES[:1], ("tg",))),
            ItemIntent(b, grown, T0, edit=("tg",)),
            ItemIntent(b, grown, T0, edit=("tg",)),  # the same item again (a retry): nothing more
        ]
    )
    assert [alert is not None for alert in alerts] == [True, False, False]
    assert store.get_story("s1") == grown
    assert sorted(kind for _, kind in store.due_deliveries(T0)) == ["edit", "send"]
    # A head lists only the members asked about; applying it appends and keeps the others.
    head = store.get_story("s1", members=[b.uid])
    assert head is not None and head.items == (b.uid,) and head.topics == ("nuclear",)
    c = item("c", feed="rbc")
    store.apply(ItemIntent(c, replace(head, items=(b.uid, c.uid), sources=("tass", "rbc")), T0))
    assert store.get_story("s1") == replace(grown, items=(a.uid, b.uid, c.uid), sources=("ria", "tass", "rbc"))


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_writers(db: Db) -> None:
    store = db.open()
    per_thread = 6

    def work(n: int) -> None:
        for round_ in range(per_thread):
            batch = [item(f"{round_}-{i}", feed=f"feed{n}") for i in range(25)]
            new, _ = store.add_items(batch, T0)
            assert len(new) == 25
            alert = store.record_alert(new[0], MATCHES, ["tg"], T0)
            assert alert is not None
            store.put_feed(FeedState(f"feed{n}", "https://x.example", items_total=round_))
            for delivery, _ in store.due_deliveries(T0, limit=5):
                store.defer(delivery.id, T0)

    run_threads(8, work)
    assert store.count_items() == 8 * per_thread * 25
    assert store.outbox_counts()["pending"] == 8 * per_thread
    assert {f.items_total for f in store.feeds()} == {per_thread - 1}


@pytest.mark.parametrize("stored_first", [True, False])
def test_racing_record_alert_writes_once(db: Db, stored_first: bool) -> None:
    stores = [db.open() for _ in range(4)]
    if stored_first:
        stores[0].add_items([item("a")], T0)
    results = []
    run_threads(4, lambda n: results.append(stores[n].record_alert(item("a"), MATCHES, ["tg"], T0)))
    assert sum(r is not None for r in results) == 1
    assert stores[0].outbox_counts()["pending"] == 1 and stores[0].count_items() == 1


def test_sql_store_is_a_store(store: SqlStore) -> None:
    port: Store = store  # mypy checks the signatures against ports.Store, names of parameters included
    assert port is store


def test_item_counts_per_feed_since(store: SqlStore) -> None:
    store.add_items([item("a", feed="A"), item("b", feed="A"), item("c", feed="B")], T0)
    store.add_items([item("d", feed="B")], T0 + timedelta(hours=2))
    assert store.item_counts(T0) == {"A": 2, "B": 2}
    assert store.item_counts(T0 + timedelta(hours=1)) == {"B": 1}


def test_get_alerts_reads_several_at_once(store: SqlStore) -> None:
    match = Match("libya", 0.9, 0.5, True)
    first = store.record_alert(item("a"), [match], ["tg"], T0)
    second = store.record_alert(item("b"), [match], ["tg"], T0)
    assert first is not None and second is not None
    got = store.get_alerts([first.id, second.id, 999])
    assert sorted(got) == [first.id, second.id]
    assert got[second.id] == store.get_alert(second.id)
