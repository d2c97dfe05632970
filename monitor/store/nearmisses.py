"""Queries for near misses and the messages that offer them, each run inside a transaction the store opened."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, select, update

from ..delivery.nearmiss import Held, place
from ..models import Item, NearMiss, NearMissIntent, NearMissOffer
from .alerts import item_id
from .labels import is_muted
from .rows import chunks, to_item
from .schema import items, labels, near_miss_offers, near_misses

_LABELLED = select(labels.c.id).where(labels.c.item_id == bindparam("item"), labels.c.topic == bindparam("topic"))
_SAME_ITEM = select(near_misses.c.id).where(
    near_misses.c.item_id == bindparam("item"), near_misses.c.topic == bindparam("topic")
)
_SAME_STORY = (
    select(near_misses.c.id, near_misses.c.score, near_misses.c.status)
    .where(near_misses.c.story_id == bindparam("story"), near_misses.c.topic == bindparam("topic"))
    .order_by(near_misses.c.score.desc())
    .limit(1)
)
_SAME_DAY = (
    select(near_misses.c.id, near_misses.c.score, near_misses.c.status)
    .where(near_misses.c.topic == bindparam("topic"), near_misses.c.day == bindparam("day"))
    .order_by(near_misses.c.score, near_misses.c.id)
)
_DROP = delete(near_misses).where(near_misses.c.id == bindparam("b_id"))
# A near miss with its item and the verdict on (item, topic), if the analyst gave one.
_WITH_ITEM = select(items, *near_misses.c, labels.c.relevant.label("verdict")).select_from(
    near_misses.join(items, near_misses.c.item_id == items.c.id).outerjoin(
        labels, and_(labels.c.item_id == near_misses.c.item_id, labels.c.topic == near_misses.c.topic)
    )
)


def record(conn: Connection, item: Item, story_id: str, wanted: NearMissIntent, now: datetime) -> int:
    """Keep an item's near misses; the number kept.

    One per item and topic (an updated item offered before is not offered again), one per story and topic (three
    outlets' copies of one story are one question), none for a topic the item is labelled for already, and at most
    `wanted.per_topic_day` per topic and day. Within those caps the best score stays: a better near miss takes the
    place of the story's, or of the day's lowest, as long as that one still waits for its message (the pure rule
    is delivery.nearmiss.place, which `monitor eval --feedback` applies too)."""
    if is_muted(conn, story_id):
        return 0  # checked in the transaction too: a mute pressed while the item was processed
    item_pk, _ = item_id(conn, item, now)
    day = wanted.day.isoformat()
    kept = 0
    for match in wanted.matches:
        key = {"item": item_pk, "topic": match.topic}
        if conn.execute(_LABELLED, key).first() or conn.execute(_SAME_ITEM, key).first():
            continue
        same = conn.execute(_SAME_STORY, {"story": story_id, "topic": match.topic}).first()
        rows = conn.execute(_SAME_DAY, {"topic": match.topic, "day": day}).all()
        story = None if same is None else _held(same)
        keep, drop = place(match.score, story, [_held(r) for r in rows], wanted.per_topic_day)
        for b_id in drop:
            conn.execute(_DROP, {"b_id": b_id})
        if not keep:
            continue
        values = {
            "item_id": item_pk,
            "topic": match.topic,
            "story_id": story_id,
            "score": match.score,
            "threshold": match.threshold,
            "day": day,
            "status": "waiting",
            "created": now,
        }
        conn.execute(near_misses.insert(), values)
        kept += 1
    return kept


def _held(row: Row[Any, Any, Any]) -> Held:
    return Held(row.id, row.score, row.status == "waiting")


def _near_miss(row: Row[Any]) -> NearMiss:
    m = row._mapping
    return NearMiss(
        id=m[near_misses.c.id],
        item=to_item(row),
        topic=m[near_misses.c.topic],
        score=m[near_misses.c.score],
        threshold=m[near_misses.c.threshold],
        day=date.fromisoformat(m[near_misses.c.day]),
        story_id=m[near_misses.c.story_id],
        status=m[near_misses.c.status],
        verdict=m["verdict"],
    )


def waiting(conn: Connection, up_to: date) -> list[NearMiss]:
    """Near misses still waiting for their message whose day is `up_to` or earlier, oldest first."""
    query = _WITH_ITEM.where(near_misses.c.status == "waiting", near_misses.c.day <= up_to.isoformat())
    return [_near_miss(row) for row in conn.execute(query.order_by(near_misses.c.id))]


def by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, NearMiss]:
    found: dict[int, NearMiss] = {}
    for chunk in chunks(list(ids)):
        for row in conn.execute(_WITH_ITEM.where(near_misses.c.id.in_(chunk))):
            near = _near_miss(row)
            found[near.id] = near
    return found


def take(
    conn: Connection,
    offers: Sequence[tuple[str, date, tuple[int, ...]]],
    offered: Sequence[int],
    dropped: Sequence[int],
    now: datetime,
) -> int:
    """Record the messages of one offering run and mark their near misses taken: together, so a restart neither
    offers a near miss twice nor loses one. Returns the number of messages recorded."""
    for status, ids in (("offered", offered), ("dropped", dropped)):
        for chunk in chunks(list(ids)):
            conn.execute(update(near_misses).where(near_misses.c.id.in_(chunk)).values(status=status))
    rows = [
        {
            "channel": channel,
            "day": day.isoformat(),
            "near_misses": json.dumps(list(ids)),
            "status": "pending",
            "attempts": 0,
            "next_attempt": now,
            "created": now,
        }
        for channel, day, ids in offers
    ]
    if rows:
        conn.execute(near_miss_offers.insert(), rows)
    return len(rows)


def _offers(conn: Connection, rows: Sequence[Row[Any]]) -> list[NearMissOffer]:
    wanted = {row.id: json.loads(row.near_misses) for row in rows}
    found = by_ids(conn, sorted({i for ids in wanted.values() for i in ids}))
    return [
        NearMissOffer(
            id=row.id,
            channel=row.channel,
            day=date.fromisoformat(row.day),
            near_misses=tuple(found[i] for i in wanted[row.id] if i in found),  # pruned ones are left out
            status=row.status,
            attempts=row.attempts,
            created=row.created,
            message_ref=row.message_ref,
        )
        for row in rows
    ]


def due_offers(conn: Connection, now: datetime, limit: int) -> list[NearMissOffer]:
    query = (
        select(near_miss_offers)
        .where(near_miss_offers.c.status == "pending", near_miss_offers.c.next_attempt <= now)
        .order_by(near_miss_offers.c.next_attempt, near_miss_offers.c.id)
        .limit(limit)
    )
    return _offers(conn, conn.execute(query).all())


def offer_at(conn: Connection, channel: str, message_ref: str) -> NearMissOffer | None:
    """The offer sent to `channel` as message `message_ref` (where a button was pressed)."""
    query = select(near_miss_offers).where(
        near_miss_offers.c.channel == channel, near_miss_offers.c.message_ref == message_ref
    )
    found = _offers(conn, conn.execute(query.limit(1)).all())
    return found[0] if found else None


def mark_offer(
    conn: Connection,
    offer_id: int,
    status: str,
    now: datetime,
    *,
    message_ref: str | None = None,
    error: str | None = None,
    next_attempt: datetime | None = None,
    attempted: bool = True,
) -> None:
    values: dict[str, Any] = {"status": status}
    if attempted:
        values.update(attempts=near_miss_offers.c.attempts + 1, last_error=error)
    if status == "sent":
        values.update(sent_at=now, message_ref=message_ref)
    if next_attempt is not None:
        values["next_attempt"] = next_attempt
    conn.execute(update(near_miss_offers).where(near_miss_offers.c.id == offer_id).values(**values))


def counts(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per topic: (near misses offered, of those labelled since)."""
    labelled = (
        select(labels.c.id)
        .where(labels.c.item_id == near_misses.c.item_id, labels.c.topic == near_misses.c.topic)
        .exists()
    )
    query = (
        select(near_misses.c.topic, labelled.label("labelled"), func.count())
        .where(near_misses.c.status == "offered")
        .group_by(near_misses.c.topic, "labelled")
    )
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for topic, is_labelled, n in conn.execute(query):
        out[topic][0] += int(n)
        if is_labelled:
            out[topic][1] += int(n)
    return {topic: (offered, done) for topic, (offered, done) in out.items()}


def prune(conn: Connection, doomed: Any, before: datetime) -> None:
    """Before old items go: their near misses, and messages older than `before` that are no longer pending."""
    conn.execute(delete(near_misses).where(near_misses.c.item_id.in_(doomed)))
    conn.execute(
        delete(near_miss_offers).where(near_miss_offers.c.created < before, near_miss_offers.c.status != "pending")
    )
