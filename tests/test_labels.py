"""Labels, the state table and muted stories in SqlStore, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.errors import StoreError
from monitor.models import Label, Match, Story
from monitor.store import SqlStore
from tests.storefixtures import T0, Db, db_fixture, item, store_fixture  # noqa: F401

LIBYA = (Match("libya", 0.8, 0.5, True), Match("syria", 0.2, 0.5, False))


def test_a_later_verdict_replaces_the_earlier_and_every_write_moves_the_revision(store: SqlStore) -> None:
    a, b = item("a", title="Ливия"), item("b")
    store.add_items([a, b], T0)
    revisions = [store.labels_revision()]
    store.put_label(Label(a.uid, "libya", True, "telegram", user="42"), T0)
    revisions.append(store.labels_revision())
    store.put_label(Label(a.uid, "libya", False, "cli", user="ann", at=T0 + timedelta(minutes=1)), T0)
    revisions.append(store.labels_revision())
    store.put_label(Label(b.uid, "syria", False, "cli"), T0 + timedelta(minutes=2))
    revisions.append(store.labels_revision())
    assert len(set(revisions)) == 4, "a verdict replaced in place must still change the revision"
    labelled = store.labelled_items()
    assert [(label.item, label.topic, label.relevant, label.source, label.user) for label, _ in labelled] == [
        (a.uid, "libya", False, "cli", "ann"),
        (b.uid, "syria", False, "cli", ""),
    ]
    assert labelled[0][0].at == T0 + timedelta(minutes=1) and labelled[1][0].at == T0 + timedelta(minutes=2)
    assert labelled[0][1].title == "Ливия" and labelled[0][1].text == a.text
    assert [label.item for label, _ in store.labelled_items("syria")] == [b.uid]
    store.put_label(Label(b.uid, "libya", True, "cli"), T0)
    assert store.label_counts() == {"libya": (1, 1), "syria": (0, 1)}


def test_labelling_an_unknown_item_is_an_error(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="no stored item"):
        store.put_label(Label("nope\x1fx", "libya", True, "cli"), T0)
    assert store.labels_revision() == 0


def test_prune_keeps_labelled_items_and_their_text(store: SqlStore) -> None:
    kept, dropped = item("kept", text="the text the model learns from"), item("dropped")
    store.add_items([kept, dropped], T0)
    store.put_label(Label(kept.uid, "libya", False, "telegram"), T0)
    assert store.prune(T0 + timedelta(days=60)) == 1
    stored = store.get_item(kept.uid)
    assert stored is not None and stored.text == "the text the model learns from"
    assert [it.uid for _, it in store.labelled_items()] == [kept.uid]


def test_state_values(store: SqlStore) -> None:
    assert store.get_state("telegram.offset.1") is None
    store.put_state("telegram.offset.1", "17")
    store.put_state("telegram.offset.1", "18")
    store.put_state("telegram.offset.2", "5")
    assert (store.get_state("telegram.offset.1"), store.get_state("telegram.offset.2")) == ("18", "5")


def test_alerts_carry_their_items_labels_and_muting(store: SqlStore) -> None:
    it = item("a")
    store.put_story(Story("s1", it.uid, T0, T0, items=(it.uid,)))
    alert = store.record_alert(it, LIBYA, ["tg"], T0, story_id="s1")
    assert alert is not None
    store.put_label(Label(it.uid, "libya", False, "telegram", user="42"), T0)
    [label] = store.get_alert(alert.id).labels
    assert (label.topic, label.relevant, label.user) == ("libya", False, "42")
    assert store.get_alerts([alert.id])[alert.id].labels == (label,)
    assert store.mute_story("s1") and not store.mute_story("nope")
    assert store.get_alert(alert.id).muted


def test_a_muted_story_gets_no_more_alerts_or_edits(db: Db, store: SqlStore) -> None:
    first, second = item("1"), item("2", feed="tass")
    store.put_story(Story("s1", first.uid, T0, T0, items=(first.uid,), topics=("libya",)))
    alert = store.record_alert(first, LIBYA, ["tg"], T0, story_id="s1")
    assert alert is not None
    [(send, _)] = store.due_deliveries(T0)
    store.mark_sent(send.id, T0, "7")
    assert store.record_story_update(alert.id, second, ["tg"], T0) == 1  # queued before the mute
    assert store.mute_story("s1")
    assert store.due_deliveries(T0) == [], "the queued edit is dropped"
    assert store.record_story_update(alert.id, item("3"), ["tg"], T0) == 0
    assert store.record_alert(second, (Match("syria", 0.9, 0.5, True),), ["tg"], T0, story_id="s1") is None
    # A poll that read the story before the mute saves it afterwards: the mute stays.
    store.put_story(Story("s1", first.uid, T0, T0, items=(first.uid, second.uid), topics=("libya", "syria")))
    story = store.get_story("s1")
    assert story is not None and story.muted and story.items == (first.uid, second.uid)
    assert [s.muted for s in store.stories_since(T0)] == [True]
    assert db.scalar("SELECT count(*) FROM alerts") == 1
