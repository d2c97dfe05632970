"""Queries for stories and their items, each run inside a transaction the store opened."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..models import Item, Story
from .rows import chunks
from .schema import alerts, items, stories, story_items

# Built once: saving stories runs for every new item, and building statements per call cost more than running them.
_STORY_FIELDS = ("first_item", "first_seen", "last_seen", "topics")


def _upsert(dialect_insert: Any, *, grow: bool) -> Any:
    stmt = dialect_insert(stories)
    excluded: dict[str, Any] = {name: stmt.excluded[name] for name in _STORY_FIELDS}
    # Never cleared by a save: a mute pressed while a poll held the story must survive that poll's write.
    excluded["muted"] = stories.c.muted | stmt.excluded.muted
    # grow: `size` is the number of members this save appended (another writer may have appended meanwhile);
    # otherwise the story's whole member list was written and `size` is its length.
    excluded["size"] = stories.c.size + stmt.excluded.size if grow else stmt.excluded.size
    return stmt.on_conflict_do_update(index_elements=[stories.c.id], set_=excluded)


_UPSERT = {name: _upsert(d.insert, grow=False) for name, d in (("sqlite", sqlite), ("postgresql", postgresql))}
_GROW = {name: _upsert(d.insert, grow=True) for name, d in (("sqlite", sqlite), ("postgresql", postgresql))}
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
# By item (ix_story_items_uid): which of these items are members of which story, whatever the stories' sizes.
_MEMBERSHIPS = (
    select(story_items.c.story_id, story_items.c.item_uid, story_items.c.feed)
    .where(story_items.c.item_uid.in_(bindparam("uids", expanding=True)))
    .order_by(story_items.c.story_id, story_items.c.position)
)
_ROWS = select(stories).where(stories.c.id.in_(bindparam("ids", expanding=True)))
_SIZES = select(stories.c.id, stories.c.size).where(stories.c.id.in_(bindparam("ids", expanding=True)))
_ADD_MEMBERS = story_items.insert()
_FIRST_ALERTS = (
    select(alerts.c.story_id, func.min(alerts.c.created, type_=alerts.c.created.type))
    .where(alerts.c.story_id.in_(bindparam("ids", expanding=True)))
    .group_by(alerts.c.story_id)
)


def _row(story: Story, size: int) -> dict[str, Any]:
    return {
        "id": story.id,
        "first_item": story.first_item,
        "first_seen": story.first_seen,
        "last_seen": story.last_seen,
        "topics": json.dumps(list(story.topics), ensure_ascii=False),
        "muted": story.muted,
        "size": size,
    }


def put_story(conn: Connection, story: Story) -> None:
    """Upsert the story with exactly its items: new ones added (link and time looked up now: item rows may be pruned
    later), others moved to their place, dropped ones removed. Reads every member: for a regrouping, not per item
    (that is `append_members`)."""
    uids = list(dict.fromkeys(story.items))
    conn.execute(_UPSERT[conn.dialect.name], _row(story, len(uids)))
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
    conn.execute(_ADD_MEMBERS, rows)


def append_members(conn: Connection, saves: Sequence[tuple[Story, Item]]) -> None:
    """Save stories as processing items left them: each story's row (topics, last seen, muted, size), and each item
    appended to its story's members unless it is one already. Other members are neither read nor rewritten, so a
    save costs the same whatever the story's size (issue 16). `saves` are in processing order; a story may come
    more than once, its last state wins."""
    uids = sorted({item.uid for _, item in saves})
    ids = sorted({story.id for story, _ in saves})
    members: set[tuple[str, str]] = set()
    for chunk in chunks(uids):
        members.update((row.story_id, row.item_uid) for row in conn.execute(_MEMBERSHIPS, {"uids": list(chunk)}))
    sizes: dict[str, int] = {}
    for chunk in chunks(ids):
        sizes.update({row.id: row.size for row in conn.execute(_SIZES, {"ids": list(chunk)})})
    last: dict[str, Story] = {}
    added: dict[str, int] = dict.fromkeys(ids, 0)
    rows = []
    for story, item in saves:
        last[story.id] = story
        key = (story.id, item.uid)
        if item.uid not in story.items or key in members:
            continue
        members.add(key)
        rows.append(
            {
                "story_id": story.id,
                "item_uid": item.uid,
                "position": sizes.get(story.id, 0) + added[story.id],
                "feed": item.feed,
                "link": item.link,
                "added": item.first_seen or story.last_seen,
            }
        )
        added[story.id] += 1
    # In id order: two writers saving the same stories lock their rows in the same order (no deadlock on PostgreSQL).
    rows_by_id = [_row(last[story_id], added[story_id]) for story_id in sorted(last)]
    conn.execute(_GROW[conn.dialect.name], rows_by_id)
    if rows:
        conn.execute(_ADD_MEMBERS, rows)


def story_heads(conn: Connection, story_ids: Sequence[str], members: Sequence[str]) -> dict[str, Story]:
    """The stories by id, each with of its members only those among `members` (what deciding those items needs:
    is the item in its story already?). Reads a fixed number of rows per item, whatever the stories' sizes."""
    ids = sorted(set(story_ids))
    rows: list[Row[Any]] = []
    for chunk in chunks(ids):
        rows.extend(conn.execute(_ROWS, {"ids": list(chunk)}))
    held: dict[str, list[tuple[str, str]]] = defaultdict(list)
    wanted = set(ids)
    uids = sorted(set(members))
    for chunk in chunks(uids):
        for row in conn.execute(_MEMBERSHIPS, {"uids": list(chunk)}):
            if row.story_id in wanted:
                held[row.story_id].append((row.item_uid, row.feed))
    first: dict[str, datetime] = {}
    for chunk in chunks(ids):
        first.update((sid, at) for sid, at in conn.execute(_FIRST_ALERTS, {"ids": list(chunk)}))
    return {row.id: replace(_story(row, held.get(row.id, [])), first_alert_at=first.get(row.id)) for row in rows}


def _story(row: Row[Any], members: Sequence[tuple[str, str]]) -> Story:
    return Story(
        id=row.id,
        first_item=row.first_item,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        items=tuple(uid for uid, _ in members),
        sources=tuple(feed for _, feed in members),
        topics=tuple(json.loads(row.topics)),
        muted=row.muted,
    )


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
    return [_story(row, members.get(row.id, [])) for row in rows]


_STORY = select(stories).where(stories.c.id == bindparam("id"))
_STORY_MEMBERS = (
    select(story_items.c.item_uid, story_items.c.feed)
    .where(story_items.c.story_id == bindparam("id"))
    .order_by(story_items.c.position)
)


def get_story(conn: Connection, story_id: str) -> Story | None:
    """The story with all its members (`story_heads` reads only some)."""
    row = conn.execute(_STORY, {"id": story_id}).first()
    if row is None:
        return None
    members = conn.execute(_STORY_MEMBERS, {"id": story_id}).all()
    return _story(row, [(m.item_uid, m.feed) for m in members])


def stories_since(conn: Connection, since: datetime) -> list[Story]:
    query = select(stories).where(stories.c.last_seen >= since).order_by(stories.c.last_seen, stories.c.id)
    return _build(conn, conn.execute(query).all())
