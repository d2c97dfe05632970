"""Queries for labels, the state table and muting, each run inside a transaction the store opened."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, RowMapping, String, bindparam, cast, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import StoreError
from ..models import Item, Label
from .rows import chunks, to_item
from .schema import alerts, items, labels, outbox, state, stories

# Bumped in the transaction of every label written: `labels_revision` is how a daemon notices labels that
# another process (`monitor label`) wrote, with one cheap read. A verdict replaced in place changes neither
# the row count nor the highest id, so those cannot tell.
LABELS_REVISION = "labels.revision"


def _upsert_label(dialect_insert: Any) -> Any:
    stmt = dialect_insert(labels)
    changed = {name: stmt.excluded[name] for name in ("relevant", "source", "labeller", "labelled_at")}
    return stmt.on_conflict_do_update(index_elements=[labels.c.item_id, labels.c.topic], set_=changed)


def _bump(dialect_insert: Any) -> Any:
    stmt = dialect_insert(state).values(name=LABELS_REVISION, value="1")
    # In SQL, so that two writers at once both count (a read-then-write in Python could lose one).
    plus_one = cast(cast(state.c.value, Integer) + 1, String)
    return stmt.on_conflict_do_update(index_elements=[state.c.name], set_={"value": plus_one})


def _put_state(dialect_insert: Any) -> Any:
    stmt = dialect_insert(state)
    return stmt.on_conflict_do_update(index_elements=[state.c.name], set_={"value": stmt.excluded.value})


_DIALECTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_UPSERT_LABEL = {name: _upsert_label(insert) for name, insert in _DIALECTS.items()}
_BUMP = {name: _bump(insert) for name, insert in _DIALECTS.items()}
_PUT_STATE = {name: _put_state(insert) for name, insert in _DIALECTS.items()}
_ITEM_ID = select(items.c.id).where(items.c.uid == bindparam("uid"))
_LABEL_FIELDS = (labels.c.topic, labels.c.relevant, labels.c.source, labels.c.labeller, labels.c.labelled_at)


def to_label(m: RowMapping) -> Label:
    return Label(
        item=m["uid"],
        topic=m["topic"],
        relevant=m["relevant"],
        source=m["source"],
        user=m["labeller"],
        at=m["labelled_at"],
    )


def put_label(conn: Connection, label: Label, now: datetime) -> None:
    item_id = conn.execute(_ITEM_ID, {"uid": label.item}).scalar()
    if item_id is None:
        raise StoreError(f"no stored item {label.item!r} to label")
    row = {
        "item_id": item_id,
        "topic": label.topic,
        "relevant": label.relevant,
        "source": label.source,
        "labeller": label.user,
        "labelled_at": label.at or now,
    }
    conn.execute(_UPSERT_LABEL[conn.dialect.name], row)
    conn.execute(_BUMP[conn.dialect.name])


_LABELLED = select(items, *_LABEL_FIELDS).select_from(labels.join(items, labels.c.item_id == items.c.id))


def labelled_items(conn: Connection, topic: str | None = None) -> list[tuple[Label, Item]]:
    """Every label with its item, oldest label first."""
    query = _LABELLED.order_by(labels.c.labelled_at, labels.c.id)
    if topic is not None:
        query = query.where(labels.c.topic == topic)
    return [(to_label(row._mapping), to_item(row)) for row in conn.execute(query)]


def labels_of(conn: Connection, item_ids: Sequence[int]) -> dict[int, tuple[Label, ...]]:
    """The labels of several items, by item row id (for alerts)."""
    found: dict[int, list[Label]] = defaultdict(list)
    for chunk in chunks(list(item_ids)):
        query = (
            select(labels.c.item_id, items.c.uid, *_LABEL_FIELDS)
            .select_from(labels.join(items, labels.c.item_id == items.c.id))
            .where(labels.c.item_id.in_(chunk))
            .order_by(labels.c.item_id, labels.c.topic)
        )
        for row in conn.execute(query):
            found[row.item_id].append(to_label(row._mapping))
    return {item_id: tuple(found_) for item_id, found_ in found.items()}


def label_counts(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per topic: (labelled relevant, labelled not relevant)."""
    query = select(labels.c.topic, labels.c.relevant, func.count()).group_by(labels.c.topic, labels.c.relevant)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for topic, relevant, n in conn.execute(query):
        counts[topic][0 if relevant else 1] += int(n)
    return {topic: (yes, no) for topic, (yes, no) in counts.items()}


_GET_STATE = select(state.c.value).where(state.c.name == bindparam("name"))


def get_state(conn: Connection, name: str) -> str | None:
    value = conn.execute(_GET_STATE, {"name": name}).scalar()
    return None if value is None else str(value)


def put_state(conn: Connection, name: str, value: str) -> None:
    conn.execute(_PUT_STATE[conn.dialect.name], {"name": name, "value": value})


def mute_story(conn: Connection, story_id: str) -> bool:
    """Mute a story and drop its queued edits; False when no such story is stored."""
    if conn.execute(update(stories).where(stories.c.id == story_id).values(muted=True)).rowcount == 0:
        return False
    of_story = select(alerts.c.id).where(alerts.c.story_id == story_id)
    conn.execute(
        delete(outbox).where(outbox.c.alert_id.in_(of_story), outbox.c.kind == "edit", outbox.c.status == "pending")
    )
    return True


_MUTED = select(stories.c.muted).where(stories.c.id == bindparam("story"))


def is_muted(conn: Connection, story_id: str | None) -> bool:
    return story_id is not None and bool(conn.execute(_MUTED, {"story": story_id}).scalar())
