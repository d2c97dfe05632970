"""Queries for stories and their items, each run inside a transaction the store opened."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select

from ..models import Story
from .rows import chunks, insert_for
from .schema import items, stories, story_items


def put_story(conn: Connection, story: Story) -> None:
    values = {
        "first_item": story.first_item,
        "first_seen": story.first_seen,
        "last_seen": story.last_seen,
        "topics": json.dumps(list(story.topics), ensure_ascii=False),
    }
    upsert = insert_for(conn, stories).values(id=story.id, **values)
    conn.execute(upsert.on_conflict_do_update(index_elements=[stories.c.id], set_=values))
    # Keep what is known about items already in the story (their item rows may be pruned by now) and look
    # up link and first-seen time of the newcomers; then rewrite the list in the story's order.
    known = {
        row.item_uid: (row.link, row.added)
        for row in conn.execute(
            select(story_items.c.item_uid, story_items.c.link, story_items.c.added).where(
                story_items.c.story_id == story.id
            )
        )
    }
    uids = list(dict.fromkeys(story.items))
    newcomers = [uid for uid in uids if uid not in known]
    for chunk in chunks(newcomers):
        query = select(items.c.uid, items.c.link, items.c.first_seen).where(items.c.uid.in_(chunk))
        known.update({row.uid: (row.link, row.first_seen) for row in conn.execute(query)})
    conn.execute(delete(story_items).where(story_items.c.story_id == story.id))
    if uids:
        rows = []
        for position, uid in enumerate(uids):
            link, added = known.get(uid, (None, story.last_seen))
            feed = story.sources[position] if position < len(story.sources) else uid.partition("\x1f")[0]
            rows.append(
                {
                    "story_id": story.id,
                    "item_uid": uid,
                    "position": position,
                    "feed": feed,
                    "link": link,
                    "added": added,
                }
            )
        conn.execute(story_items.insert(), rows)


def _build(conn: Connection, rows: Sequence[Row[Any]]) -> list[Story]:
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for chunk in chunks([row.id for row in rows]):
        query = (
            select(story_items.c.story_id, story_items.c.item_uid, story_items.c.feed)
            .where(story_items.c.story_id.in_(chunk))
            .order_by(story_items.c.story_id, story_items.c.position)
        )
        for srow in conn.execute(query):
            members[srow.story_id].append((srow.item_uid, srow.feed))
    return [
        Story(
            id=row.id,
            first_item=row.first_item,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            items=tuple(uid for uid, _ in members.get(row.id, [])),
            sources=tuple(feed for _, feed in members.get(row.id, [])),
            topics=tuple(json.loads(row.topics)),
        )
        for row in rows
    ]


def get_story(conn: Connection, story_id: str) -> Story | None:
    row = conn.execute(select(stories).where(stories.c.id == story_id)).first()
    return None if row is None else _build(conn, [row])[0]


def stories_since(conn: Connection, since: datetime) -> list[Story]:
    query = select(stories).where(stories.c.last_seen >= since).order_by(stories.c.last_seen, stories.c.id)
    return _build(conn, conn.execute(query).all())
