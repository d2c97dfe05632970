"""Conversions between table rows and domain objects, and small helpers shared by the store's queries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Table
from sqlalchemy.dialects import postgresql, sqlite

from ..models import Delivery, FeedState, Item, Match

T = TypeVar("T")

# Bound parameters per statement stay well under SQLite's limit (32,766 since 3.32) and keep IN lists short.
CHUNK = 500

FEED_FIELDS = (
    "url", "etag", "last_modified", "last_fetch", "last_success", "next_poll", "status", "error_count",
    "last_error", "last_error_at", "redirected_to", "items_total", "last_new_item", "dead_reported",
)  # fmt: skip


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_for(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT, which knows ON CONFLICT (both spell it the same)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def content_hash(item: Item) -> str:
    """What decides 'changed': the title and the text that matching reads."""
    return hashlib.sha256(f"{item.title}\x1f{item.text}".encode()).hexdigest()


def item_values(item: Item, first_seen: datetime) -> dict[str, Any]:
    return {
        "feed": item.feed,
        "key": item.key,
        "uid": item.uid,
        "title": item.title,
        "link": item.link,
        "published": item.published,
        "summary": item.summary,
        "content": item.content,
        "author": item.author,
        "lang": item.lang,
        "first_seen": first_seen,
        "content_hash": content_hash(item),
    }


def to_item(row: Row[Any]) -> Item:
    m = row._mapping
    return Item(
        feed=m["feed"],
        key=m["key"],
        title=m["title"],
        link=m["link"],
        published=m["published"],
        summary=m["summary"],
        content=m["content"],
        author=m["author"],
        lang=m["lang"],
        first_seen=m["first_seen"],
    )


def feed_values(state: FeedState) -> dict[str, Any]:
    return {"name": state.name, **{name: getattr(state, name) for name in FEED_FIELDS}}


def to_feed(row: Row[Any]) -> FeedState:
    m = row._mapping
    return FeedState(name=m["name"], **{name: m[name] for name in FEED_FIELDS})


def match_values(match: Match) -> dict[str, Any]:
    return {
        "topic": match.topic,
        "score": match.score,
        "threshold": match.threshold,
        "matched": match.matched,
        "terms": json.dumps(list(match.terms), ensure_ascii=False),
        "passage": match.passage,
        "keyword_hits": json.dumps(list(match.keyword_hits), ensure_ascii=False),
        "vetoed_by": match.vetoed_by,
    }


def to_match(row: Row[Any]) -> Match:
    m = row._mapping
    return Match(
        topic=m["topic"],
        score=m["score"],
        threshold=m["threshold"],
        matched=m["matched"],
        terms=tuple(json.loads(m["terms"])),
        passage=m["passage"],
        keyword_hits=tuple(json.loads(m["keyword_hits"])),
        vetoed_by=m["vetoed_by"],
    )


def to_delivery(row: Row[Any]) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        alert_id=m["alert_id"],
        channel=m["channel"],
        status=m["status"],
        attempts=m["attempts"],
        next_attempt=m["next_attempt"],
        last_error=m["last_error"],
        sent_at=m["sent_at"],
        message_ref=m["message_ref"],
    )
