"""Versioned schema: a new database is created at the latest version; an existing one runs the steps since its own.

As lemon24/reader does: ``schema_version`` holds one row with the version. A new database gets today's
tables from schema.py in one go and the latest version number; only a database written by an older monitor
runs migration steps, each explicit DDL frozen when it was released (so a step never meets a column that a
newer definition already created). Version 1 is the frozen DDL in v1.py, the starting point of the tests.

Each step runs in the opening transaction together with the version bump, so a crash leaves the old version
and the step is retried. Two processes opening at once are serialised: SQLite by the write lock that the
store's ``BEGIN IMMEDIATE`` takes, PostgreSQL by a transaction-scoped advisory lock (DDL is transactional on
both).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, inspect, select, text, update

from ..errors import StoreError
from .schema import STORY_LOG_DDL, metadata, schema_version

Migration = Callable[[Connection], None]

# Any constant will do; it only has to be the same for every process that opens this database.
_PG_LOCK_KEY = 0x6D6F6E69746F72  # "monitor"

# Column types that differ between the two dialects, as version 1 spelled them (see v1.py).
_TYPES = {
    "sqlite": {"id": "INTEGER", "ref": "INTEGER", "time": "DATETIME", "blob": "BLOB"},
    "postgresql": {"id": "BIGSERIAL", "ref": "BIGINT", "time": "TIMESTAMP WITH TIME ZONE", "blob": "BYTEA"},
}


def _v2_labels(conn: Connection) -> None:
    """Labels, the state table (Telegram update offsets) and muted stories."""
    t = _TYPES[conn.dialect.name]
    conn.exec_driver_sql(
        f"""CREATE TABLE labels (
            id {t["id"]} NOT NULL,
            item_id {t["ref"]} NOT NULL,
            topic TEXT NOT NULL,
            relevant BOOLEAN NOT NULL,
            source TEXT NOT NULL,
            labeller TEXT NOT NULL,
            labelled_at {t["time"]} NOT NULL,
            PRIMARY KEY (id),
            CONSTRAINT uq_labels_item_topic UNIQUE (item_id, topic),
            FOREIGN KEY(item_id) REFERENCES items (id)
        )"""
    )
    conn.exec_driver_sql("CREATE TABLE state (name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name))")
    conn.exec_driver_sql("ALTER TABLE stories ADD COLUMN muted BOOLEAN DEFAULT '0' NOT NULL")


def _v3_near_misses(conn: Connection) -> None:
    """Near misses kept to be offered for labelling, and the daily messages that offer them."""
    t = _TYPES[conn.dialect.name]
    conn.exec_driver_sql(
        f"""CREATE TABLE near_misses (
            id {t["id"]} NOT NULL,
            item_id {t["ref"]} NOT NULL,
            topic TEXT NOT NULL,
            story_id TEXT,
            score FLOAT NOT NULL,
            threshold FLOAT NOT NULL,
            day TEXT NOT NULL,
            status TEXT NOT NULL,
            created {t["time"]} NOT NULL,
            PRIMARY KEY (id),
            CONSTRAINT uq_near_misses_item_topic UNIQUE (item_id, topic),
            CONSTRAINT ck_near_misses_status CHECK (status IN ('waiting', 'offered', 'dropped')),
            FOREIGN KEY(item_id) REFERENCES items (id)
        )"""
    )
    conn.exec_driver_sql("CREATE INDEX ix_near_misses_topic_day ON near_misses (topic, day)")
    conn.exec_driver_sql("CREATE INDEX ix_near_misses_status_day ON near_misses (status, day)")
    conn.exec_driver_sql("CREATE INDEX ix_near_misses_story ON near_misses (story_id, topic)")
    conn.exec_driver_sql(
        f"""CREATE TABLE near_miss_offers (
            id {t["id"]} NOT NULL,
            channel TEXT NOT NULL,
            day TEXT NOT NULL,
            near_misses TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER DEFAULT '0' NOT NULL,
            next_attempt {t["time"]} NOT NULL,
            last_error TEXT,
            sent_at {t["time"]},
            message_ref TEXT,
            created {t["time"]} NOT NULL,
            PRIMARY KEY (id),
            CONSTRAINT ck_near_miss_offers_status CHECK (status IN ('pending', 'sent', 'failed'))
        )"""
    )
    conn.exec_driver_sql("CREATE INDEX ix_near_miss_offers_due ON near_miss_offers (status, next_attempt)")
    conn.exec_driver_sql("CREATE INDEX ix_near_miss_offers_message ON near_miss_offers (channel, message_ref)")


def _v4_replicas(conn: Connection) -> None:
    """Replicas, leases and the stored topic model (several daemons on one PostgreSQL database)."""
    t = _TYPES[conn.dialect.name]
    conn.exec_driver_sql(
        f"""CREATE TABLE replicas (
            id TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started {t["time"]} NOT NULL,
            heartbeat {t["time"]} NOT NULL,
            PRIMARY KEY (id)
        )"""
    )
    conn.exec_driver_sql(
        f"""CREATE TABLE leases (
            name TEXT NOT NULL,
            holder TEXT NOT NULL,
            expires {t["time"]} NOT NULL,
            taken {t["time"]} NOT NULL,
            PRIMARY KEY (name)
        )"""
    )
    conn.exec_driver_sql("CREATE INDEX ix_leases_holder ON leases (holder)")
    conn.exec_driver_sql(
        f"""CREATE TABLE models (
            name TEXT NOT NULL,
            revision INTEGER NOT NULL,
            data {t["blob"]} NOT NULL,
            saved {t["time"]} NOT NULL,
            PRIMARY KEY (name)
        )"""
    )
    now = "CURRENT_TIMESTAMP" if conn.dialect.name == "sqlite" else "now()"
    conn.exec_driver_sql(
        f"""CREATE TABLE story_log (
            seq {t["id"]} NOT NULL,
            item_uid TEXT NOT NULL,
            story_id TEXT NOT NULL,
            logged {t["time"]} DEFAULT {now} NOT NULL,
            PRIMARY KEY (seq)
        )"""
    )
    if conn.dialect.name == "postgresql":
        for statement in STORY_LOG_DDL:
            conn.exec_driver_sql(statement)


def _v5_story_size(conn: Connection) -> None:
    """The number of a story's members on its row: adding one appends, without reading the others (issue 16)."""
    conn.exec_driver_sql("ALTER TABLE stories ADD COLUMN size INTEGER DEFAULT '0' NOT NULL")
    conn.exec_driver_sql(
        "UPDATE stories SET size = (SELECT count(*) FROM story_items WHERE story_items.story_id = stories.id)"
    )


# Version n is reached by STEPS[n - 2] from version n - 1. Append only: a released step is never edited,
# since databases out there already ran it.
STEPS: tuple[Migration, ...] = (_v2_labels, _v3_near_misses, _v4_replicas, _v5_story_size)
LATEST = 1 + len(STEPS)


def migrate(conn: Connection, schema: str | None = None) -> tuple[int, int]:
    """Create or upgrade the schema inside the caller's (write) transaction; return (before, after) versions.

    `before` is 0 for a new database."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        if schema is not None:
            # `schema` was checked to be a plain identifier by the store before it reached SQL.
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    current = None
    if inspect(conn).has_table(schema_version.name):
        current = conn.execute(select(schema_version.c.version).where(schema_version.c.id == 1)).scalar()
    now = datetime.now(UTC)
    if current is None:
        metadata.create_all(conn)
        conn.execute(insert(schema_version).values(id=1, version=LATEST, applied=now))
        return 0, LATEST
    if current > LATEST:
        raise StoreError(
            f"the database schema is at version {current}, newer than this monitor knows ({LATEST}); "
            "upgrade the monitor or point it at another database"
        )
    if current < 1:
        raise StoreError(f"the database schema is at version {current}, which no monitor ever wrote")
    for version in range(current + 1, LATEST + 1):
        STEPS[version - 2](conn)
    if current < LATEST:
        conn.execute(update(schema_version).where(schema_version.c.id == 1).values(version=LATEST, applied=now))
    return current, LATEST
