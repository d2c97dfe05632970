"""Versioned schema: an ordered list of migrations, applied when the store opens.

``schema_version`` holds one row with the number of migrations applied. Each migration runs in the
opening transaction together with the version bump, so a crash leaves the old version and the migration
is retried. Two processes opening at once are serialised: SQLite by the write lock that the store's
``BEGIN IMMEDIATE`` takes, PostgreSQL by a transaction-scoped advisory lock (DDL is transactional on both).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, select, text, update

from ..errors import StoreError
from .schema import V1_TABLES, metadata, schema_version

Migration = Callable[[Connection], None]

# Any constant will do; it only has to be the same for every process that opens this database.
_PG_LOCK_KEY = 0x6D6F6E69746F72  # "monitor"


def _v1_tables(conn: Connection) -> None:
    metadata.create_all(conn, tables=list(V1_TABLES))


# Append only: a released migration is never edited, since databases out there already ran it.
MIGRATIONS: tuple[Migration, ...] = (_v1_tables,)
LATEST = len(MIGRATIONS)


def migrate(conn: Connection, schema: str | None = None) -> tuple[int, int]:
    """Apply pending migrations inside the caller's (write) transaction; return (before, after) versions."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        if schema is not None:
            # `schema` was checked to be a plain identifier by the store before it reached SQL.
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(select(schema_version.c.version).where(schema_version.c.id == 1)).scalar()
    before = 0 if current is None else current
    if before > LATEST:
        raise StoreError(
            f"the database schema is at version {before}, newer than this monitor knows ({LATEST}); "
            "upgrade the monitor or point it at another database"
        )
    for version in range(before + 1, LATEST + 1):
        MIGRATIONS[version - 1](conn)
    if before < LATEST:
        now = datetime.now(UTC)
        if current is None:
            conn.execute(insert(schema_version).values(id=1, version=LATEST, applied=now))
        else:
            conn.execute(update(schema_version).where(schema_version.c.id == 1).values(version=LATEST, applied=now))
    return before, LATEST
