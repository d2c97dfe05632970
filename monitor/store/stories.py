"""Queries for stories and their items, each run inside a transaction the store opened."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..models import Story
from .rows import chunks
from .schema import items, stories, story_items

# Built once: put_story runs for every new item, and building statements per call cost more than running them.
_STORY_FIELDS = ("first_item", "first_seen", "last_seen", "topics")


def _upsert(dialect_insert: Any) -> Any:
    stmt = dialect_insert(stories)
    excluded: dict[str, Any] = {name: stmt.excluded[name] for name in _STORY_FIELDS}
    # Never cleared by a save: a mute pressed while a poll held the story must survive that poll's write.
    excluded["muted"] = stories.c.muted | stmt.excluded.muted
    return stmt.on_conflict_do_update(index_elements=[stories.c.id], set_=excluded)


_UPSERT = {"sqlite": _upsert(sqlite.insert), "postgresql": _upsert(postgresql.insert)}
_MEMBERS = select(story_items.c.item_uid, story_items.c.position).where(story_items.c.story_id == bindparam("story"))
_LOOKUP = select(items.c.uid, items.c.link, items.c.first_seen).where(
    items.c.uid.in_(bindparam("uids", expanding=True))
)
_MOVE = (
    update(story_items)
    .where(story_items.c.story_id == bindparam("story"), story_items.c.item_uid == bindparam("uid"))
    .values(position=bindparam("pos"))
)
_DROP = delete(story_items).where(
    story_items.c.story_id == bindparam("story"), story_items.c.item_uid.in_(bindparam("uids", expanding=True))
)


def put_story(conn: Connection, story: Story) -> None:
    """Upsert the story; add its new items (link and time looked up now: item rows may be pruned later)."""
    topics = json.dumps(list(story.topics), ensure_ascii=False)
    row = {
        "id": story.id,
        "first_item": story.first_item,
        "first_seen": story.first_seen,
        "topics": topics,
        "muted": story.muted,
    }
    conn.execute(_UPSERT[conn.dialect.name], {**row, "last_seen": story.last_seen})
    uids = list(dict.fromkeys(story.items))
    wanted = {uid: position for position, uid in enumerate(uids)}
    existing = {row.item_uid: row.position for row in conn.execute(_MEMBERS, {"story": story.id})}
    gone = [uid for uid in existing if uid not in wanted]
    if gone:
        conn.execute(_DROP, {"story": story.id, "uids": gone})
    moved = [
        {"story": story.id, "uid": uid, "pos": wanted[uid]}
        for uid, position in existing.items()
        if uid in wanted and position != wanted[uid]
    ]
    if moved:
        conn.execute(_MOVE, moved)
    newcomers = [uid for uid in uids if uid not in existing]
    if not newcomers:
        return
    known: dict[str, tuple[str | None, datetime]] = {}
    for chunk in chunks(newcomers):
        known.update({row.uid: (row.link, row.first_seen) for row in conn.execute(_LOOKUP, {"uids": list(chunk)})})
    rows = []
    for uid in newcomers:
        position = wanted[uid]
        link, added = known.get(uid, (None, story.last_seen))
        feed = story.sources[position] if position < len(story.sources) else uid.partition("\x1f")[0]
        rows.append(
            {"story_id": story.id, "item_uid": uid, "position": position, "feed": feed, "link": link, "added": added}
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
            muted=row.muted,
        )
        for row in rows
    ]


_STORY = select(stories).where(stories.c.id == bindparam("id"))
_STORY_MEMBERS = (
    select(story_items.c.item_uid, story_items.c.feed)
    .where(story_items.c.story_id == bindparam("id"))
    .order_by(story_items.c.position)
)


def get_story(conn: Connection, story_id: str) -> Story | None:
    row = conn.execute(_STORY, {"id": story_id}).first()
    if row is None:
        return None
    members = conn.execute(_STORY_MEMBERS, {"id": story_id}).all()
    return Story(
        id=row.id,
        first_item=row.first_item,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        items=tuple(m.item_uid for m in members),
        sources=tuple(m.feed for m in members),
        topics=tuple(json.loads(row.topics)),
        muted=row.muted,
    )


def stories_since(conn: Connection, since: datetime) -> list[Story]:
    query = select(stories).where(stories.c.last_seen >= since).order_by(stories.c.last_seen, stories.c.id)
    return _build(conn, conn.execute(query).all())
