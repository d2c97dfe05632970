"""Queries for replicas, leases, the story lock and the stored model; PostgreSQL only (service/leases.py).

Every time here is the database's `now()`, never a replica's clock: a lease taken on one host and checked on
another means the same instant on both, whatever their clocks say.

    heartbeat(conn, me)             upsert my row in `replicas`; rows silent for long are deleted
    renew(conn, me, names, ttl)     push the expiry of the leases I still hold; returns those
    claim(conn, me, names, ttl, n)  take up to n of `names` that are free (no row, or expired)
    release(conn, me, names)        delete my leases (a stop, or a rebalance), free at once for the others
    story_lock(conn)                pg_advisory_xact_lock: story grouping is one item at a time over all replicas
    story_rows(conn, after)         (seq, uid, story) of the memberships written after seq (a trigger's log)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..models import Item, Replica
from .rows import chunks, to_item
from .schema import items, leases, models, replicas, story_items, story_log

# pg_advisory_xact_lock(key1, key2): key2 is the schema's hash, so tests in schemas of one database (and
# monitors sharing a database in two schemas) do not serialise each other.
STORY_LOCK_KEY = 0x6D6F6E01  # "mon" + 1


def heartbeat(conn: Connection, replica_id: str, host: str, pid: int, forget_after: timedelta) -> None:
    now = func.now()
    stmt = pg_insert(replicas).values(id=replica_id, host=host, pid=pid, started=now, heartbeat=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=[replicas.c.id], set_={"heartbeat": now}))
    # A replica that died long ago is no news: forget it, and the leases it left.
    conn.execute(delete(replicas).where(replicas.c.heartbeat < now - forget_after))
    conn.execute(delete(leases).where(leases.c.expires < now - forget_after))
    conn.execute(delete(story_log).where(story_log.c.logged < now - STORY_LOG_KEPT))


def live_replicas(conn: Connection, within: timedelta) -> list[str]:
    """Ids of the replicas whose heartbeat is at most `within` old, in id order."""
    query = select(replicas.c.id).where(replicas.c.heartbeat >= func.now() - within).order_by(replicas.c.id)
    return list(conn.execute(query).scalars())


def all_replicas(conn: Connection) -> list[Replica]:
    """Every replica row with its lease count and duties, newest heartbeat first."""
    age = func.extract("epoch", func.now() - replicas.c.heartbeat)
    rows = conn.execute(select(replicas, age.label("age")).order_by(replicas.c.heartbeat.desc())).all()
    held: dict[str, list[str]] = {}
    live = select(leases.c.holder, leases.c.name).where(leases.c.expires >= func.now())
    for holder, name in conn.execute(live):
        held.setdefault(holder, []).append(name)
    return [
        Replica(
            row.id,
            row.host,
            row.pid,
            row.started,
            row.heartbeat,
            float(row.age),
            len(held.get(row.id, [])),
            tuple(sorted(n for n in held.get(row.id, []) if not n.startswith("poll:"))),
        )
        for row in rows
    ]


def renew(conn: Connection, holder: str, ttl: timedelta) -> set[str]:
    """Extend every lease `holder` still holds; the names renewed (one it lost to expiry is not among them)."""
    stmt = (
        update(leases)
        .where(leases.c.holder == holder, leases.c.expires >= func.now())
        .values(expires=func.now() + ttl)
        .returning(leases.c.name)
    )
    return set(conn.execute(stmt).scalars())


def taken(conn: Connection, names: Collection[str]) -> set[str]:
    """Which of `names` some replica holds now (an unexpired lease)."""
    found: set[str] = set()
    for chunk in chunks(sorted(names)):
        query = select(leases.c.name).where(leases.c.name.in_(chunk), leases.c.expires >= func.now())
        found.update(conn.execute(query).scalars())
    return found


def claim(conn: Connection, holder: str, names: Sequence[str], ttl: timedelta) -> dict[str, bool]:
    """Take each of `names` that is free: no row, or an expired one (its holder died or lost it). Returns the
    names taken, True for those taken over from an expired lease (their holder may have left work undone).

    One statement: two replicas claiming the same name at once both run it, and the row's lock makes the
    second see the first one's unexpired lease, so it takes nothing."""
    won: dict[str, bool] = {}
    now = func.now()
    for chunk in chunks(list(names)):
        rows = [{"name": name, "holder": holder, "expires": now + ttl, "taken": now} for name in chunk]
        insert = pg_insert(leases).values(rows)
        stmt = insert.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"holder": insert.excluded.holder, "expires": insert.excluded.expires, "taken": insert.excluded.taken},
            where=leases.c.expires < now,
        ).returning(leases.c.name, literal_column("xmax") != 0)  # xmax <> 0: an existing row was updated
        for name, updated in conn.execute(stmt):
            won[name] = bool(updated)
    return won


def release(conn: Connection, holder: str, names: Collection[str] | None = None) -> int:
    """Delete `holder`'s leases (all of them when `names` is None); free for the others at once."""
    if names is None:
        return int(conn.execute(delete(leases).where(leases.c.holder == holder)).rowcount)
    count = 0
    for chunk in chunks(sorted(names)):
        count += int(conn.execute(delete(leases).where(leases.c.holder == holder, leases.c.name.in_(chunk))).rowcount)
    return count


def forget(conn: Connection, replica_id: str) -> None:
    conn.execute(delete(replicas).where(replicas.c.id == replica_id))


def lease_rows(conn: Connection) -> list[tuple[str, str, float]]:
    """(name, holder, seconds left) of every unexpired lease."""
    left = func.extract("epoch", leases.c.expires - func.now())
    query = select(leases.c.name, leases.c.holder, left).where(leases.c.expires >= func.now()).order_by(leases.c.name)
    return [(name, holder, float(rest)) for name, holder, rest in conn.execute(query)]


# --- story grouping across replicas ----------------------------------------------------------------

_STORY_LOCK = select(func.pg_advisory_xact_lock(STORY_LOCK_KEY, func.hashtext(func.current_schema())))
_STORY_ROWS = (
    select(story_log.c.seq, story_log.c.item_uid, story_log.c.story_id)
    .where(story_log.c.seq > bindparam("after"))
    .order_by(story_log.c.seq)
)
STORY_LOG_KEPT = timedelta(days=1)  # a replica further behind than this restarts (its window is rebuilt then)


def story_lock(conn: Connection) -> None:
    """Wait for the story lock; the transaction's end releases it, also when its process dies."""
    conn.execute(_STORY_LOCK)


def story_rows(conn: Connection, after: int) -> list[tuple[int, str, str]]:
    """(seq, item uid, story id) of the memberships written after `after`, in the order written."""
    return [(seq, uid, story) for seq, uid, story in conn.execute(_STORY_ROWS, {"after": after})]


def story_seq(conn: Connection) -> int:
    """The last membership written so far."""
    return int(conn.execute(select(func.coalesce(func.max(story_log.c.seq), 0))).scalar_one())


def items_by_uid(conn: Connection, uids: Sequence[str]) -> dict[str, Item]:
    found: dict[str, Item] = {}
    for chunk in chunks(list(uids)):
        for row in conn.execute(select(items).where(items.c.uid.in_(chunk))):
            found[row.uid] = to_item(row)
    return found


def unfinished(conn: Connection, feeds: Collection[str], since: datetime) -> list[Item]:
    """Items of these feeds first seen since a time that are in no story: stored by a poll whose process died
    before it matched them. Oldest first."""
    member = select(story_items.c.item_uid).where(story_items.c.item_uid == items.c.uid).exists()
    found: list[Item] = []
    for chunk in chunks(sorted(feeds)):
        query = (
            select(items)
            .where(and_(items.c.feed.in_(chunk), items.c.first_seen >= since, ~member))
            .order_by(items.c.first_seen, items.c.id)
        )
        found.extend(to_item(row) for row in conn.execute(query))
    return found


# --- the fitted topic model ------------------------------------------------------------------------


def model_revision(conn: Connection, name: str) -> int | None:
    return conn.execute(select(models.c.revision).where(models.c.name == name)).scalar()


def load_model(conn: Connection, name: str) -> tuple[int, bytes] | None:
    row = conn.execute(select(models.c.revision, models.c.data).where(models.c.name == name)).first()
    return None if row is None else (int(row.revision), bytes(row.data))


def save_model(conn: Connection, name: str, data: bytes) -> int:
    """Store the model's bytes under a revision one above the last; return it."""
    now = func.now()
    insert = pg_insert(models).values(name=name, revision=1, data=data, saved=now)
    stmt = insert.on_conflict_do_update(
        index_elements=[models.c.name],
        set_={"revision": models.c.revision + 1, "data": insert.excluded.data, "saved": now},
    ).returning(models.c.revision)
    return int(conn.execute(stmt).scalar_one())
