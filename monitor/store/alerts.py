"""Queries for alerts and their outbox rows, each run inside a transaction the store opened."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import StoreError
from ..models import Alert, Delivery, Item, Match
from .labels import is_muted, labels_of
from .rows import chunks, insert_for, item_values, match_values, to_delivery, to_item, to_match
from .schema import alerts, items, matches, outbox, stories, story_items


def topics_key(matches_: Sequence[Match]) -> str:
    """The idempotency key of an alert: its matched topic ids, sorted, joined by ','."""
    return ",".join(sorted({m.topic for m in matches_ if m.matched}))


# Built once: record_alert runs for every matching item, and building statements per call cost a third of it.
_ITEM_ID = select(items.c.id, items.c.first_seen).where(items.c.uid == bindparam("uid"))
# ON CONFLICT DO NOTHING makes the check and the insert one step, so two workers recording the same alert at
# once still write it once.
_ADD_ALERT = {
    name: dialect.insert(alerts).on_conflict_do_nothing().returning(alerts.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_ADD_MATCHES = matches.insert()
_ADD_OUTBOX = outbox.insert()


def item_id(conn: Connection, item: Item, now: datetime) -> tuple[int, datetime]:
    """The row id and first-seen time of a stored item (stored now if the caller skipped add_items)."""
    row = conn.execute(_ITEM_ID, {"uid": item.uid}).first()
    if row is None:
        insert = insert_for(conn, items).values(item_values(item, now)).on_conflict_do_nothing()
        new_id = conn.execute(insert.returning(items.c.id)).scalar()
        if new_id is not None:
            return new_id, now
        row = conn.execute(_ITEM_ID, {"uid": item.uid}).one()  # stored meanwhile by another writer (PostgreSQL)
    return row.id, row.first_seen


def record_alert(
    conn: Connection,
    item: Item,
    matches_: Sequence[Match],
    channels: Sequence[str],
    now: datetime,
    story_id: str | None,
    hold_until: dict[str, datetime],
) -> Alert | None:
    if is_muted(conn, story_id):
        return None  # checked here too, in the transaction, for a mute pressed while the item was processed
    item_pk, first_seen = item_id(conn, item, now)
    values = {"item_id": item_pk, "topics_key": topics_key(matches_), "story_id": story_id, "created": now}
    alert_id = conn.execute(_ADD_ALERT[conn.dialect.name], values).scalar()
    if alert_id is None:
        return None
    if matches_:
        conn.execute(
            _ADD_MATCHES,
            [
                {**match_values(m), "item_id": item_pk, "alert_id": alert_id, "position": i, "matched_at": now}
                for i, m in enumerate(matches_)
            ],
        )
    wanted = list(dict.fromkeys(channels))
    if wanted:
        conn.execute(
            _ADD_OUTBOX,
            [
                {
                    "alert_id": alert_id,
                    "channel": channel,
                    "kind": "send",
                    "item_uid": "",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt": hold_until.get(channel, now),
                    "created": now,
                }
                for channel in wanted
            ],
        )
    # The caller's copy (it may carry fetched full text the stored row does not), with the stored first_seen.
    alerted = replace(item, first_seen=first_seen)
    return Alert(id=alert_id, item=alerted, matches=tuple(matches_), created=now, story_id=story_id)


_STORY_MUTED = (
    select(stories.c.muted)
    .select_from(alerts.join(stories, alerts.c.story_id == stories.c.id))
    .where(alerts.c.id == bindparam("alert"))
)
_SENT_TO = select(outbox.c.channel).where(outbox.c.alert_id == bindparam("alert"), outbox.c.kind == "send")
# RETURNING counts the rows written: rowcount is not reliable for ON CONFLICT on every driver.
_ADD_EDIT = {
    name: dialect.insert(outbox).on_conflict_do_nothing().returning(outbox.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


def record_story_update(conn: Connection, alert_id: int, item: Item, channels: Sequence[str], now: datetime) -> int:
    if conn.execute(_STORY_MUTED, {"alert": alert_id}).scalar():
        return 0
    sent_to = set(conn.execute(_SENT_TO, {"alert": alert_id}).scalars())
    written = 0
    for channel in dict.fromkeys(channels):
        if channel not in sent_to:
            continue  # the alert never went to this channel (config changed since): nothing to edit
        row = {
            "alert_id": alert_id,
            "channel": channel,
            "kind": "edit",
            "item_uid": item.uid,
            "status": "pending",
            "attempts": 0,
            "next_attempt": now,
            "created": now,
        }
        written += len(conn.execute(_ADD_EDIT[conn.dialect.name], row).all())
    return written


_ALERTS = select(
    alerts.c.id.label("alert_id"), alerts.c.story_id, alerts.c.created, stories.c.muted, *items.c
).select_from(alerts.join(items, alerts.c.item_id == items.c.id).outerjoin(stories, alerts.c.story_id == stories.c.id))


def build_alerts(conn: Connection, rows: Sequence[Row[Any]]) -> list[Alert]:
    """Alerts from `_ALERTS` rows, with their matches, their items' labels and their stories' other items."""
    ids = [row.alert_id for row in rows]
    by_alert: dict[int, list[Match]] = defaultdict(list)
    for chunk in chunks(ids):
        query = select(matches).where(matches.c.alert_id.in_(chunk)).order_by(matches.c.alert_id, matches.c.position)
        for mrow in conn.execute(query):
            by_alert[mrow.alert_id].append(to_match(mrow))
    story_ids = sorted({row.story_id for row in rows if row.story_id is not None})
    by_story: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    for chunk in chunks(story_ids):
        query = (
            select(story_items.c.story_id, story_items.c.item_uid, story_items.c.feed, story_items.c.link)
            .where(story_items.c.story_id.in_(chunk))
            .order_by(story_items.c.story_id, story_items.c.position)
        )
        for srow in conn.execute(query):
            by_story[srow.story_id].append((srow.item_uid, srow.feed, srow.link))
    told = _story_alerts(conn, story_ids)
    verdicts = labels_of(conn, [row.id for row in rows])
    result = []
    for row in rows:
        also = tuple((feed, link) for uid, feed, link in by_story.get(row.story_id or "", []) if uid != row.uid)
        earlier = told.get(row.story_id or "", [])
        own = {topic for alert_id, _, topic in earlier if alert_id == row.alert_id}
        gained = tuple(dict.fromkeys(t for a, _, t in earlier if a > row.alert_id and t not in own))
        continues = next((title for a, title, _ in earlier if a < row.alert_id), "")
        result.append(
            Alert(
                id=row.alert_id,
                item=to_item(row),
                matches=tuple(by_alert.get(row.alert_id, [])),
                created=row.created,
                story_id=row.story_id,
                also=also,
                labels=verdicts.get(row.id, ()),
                muted=bool(row.muted),
                gained=gained,
                continues=continues,
            )
        )
    return result


def _story_alerts(conn: Connection, story_ids: Sequence[str]) -> dict[str, list[tuple[int, str, str]]]:
    """Per story, (alert id, item title, topic) of each of its alerts' matched topics, oldest alert first: what
    a story's later alerts added to an earlier one (issue 14 §2) and the title a later one continues."""
    told: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    query = (
        select(alerts.c.story_id, alerts.c.id, items.c.title, matches.c.topic)
        .select_from(alerts.join(items, alerts.c.item_id == items.c.id))
        .join(matches, matches.c.alert_id == alerts.c.id)
        .order_by(alerts.c.story_id, alerts.c.id, matches.c.position)
    )
    for chunk in chunks(list(story_ids)):
        for srow in conn.execute(query.where(alerts.c.story_id.in_(chunk))):
            told[srow.story_id].append((srow.id, srow.title, srow.topic))
    return told


def get_alerts(conn: Connection, alert_ids: Sequence[int]) -> dict[int, Alert]:
    rows: list[Row[Any]] = []
    for chunk in chunks(list(alert_ids)):
        rows.extend(conn.execute(_ALERTS.where(alerts.c.id.in_(chunk))).all())
    return {alert.id: alert for alert in build_alerts(conn, rows)}


def get_alert(conn: Connection, alert_id: int) -> Alert:
    row = conn.execute(_ALERTS.where(alerts.c.id == alert_id)).first()
    if row is None:
        raise StoreError(f"no alert with id {alert_id}")
    return build_alerts(conn, [row])[0]


def alerts_since(conn: Connection, since: datetime) -> list[tuple[Alert, list[Delivery]]]:
    rows = conn.execute(
        _ALERTS.where(alerts.c.created >= since).order_by(alerts.c.created.desc(), alerts.c.id.desc())
    ).all()
    built = build_alerts(conn, rows)
    deliveries: dict[int, list[Delivery]] = defaultdict(list)
    for chunk in chunks([a.id for a in built]):
        query = (
            select(outbox)
            .where(outbox.c.alert_id.in_(chunk), outbox.c.kind == "send")
            .order_by(outbox.c.alert_id, outbox.c.id)
        )
        for orow in conn.execute(query):
            deliveries[orow.alert_id].append(to_delivery(orow))
    return [(alert, deliveries.get(alert.id, [])) for alert in built]
