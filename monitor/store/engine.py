"""Engines for the two supported databases, SQLite and PostgreSQL, set up for many short transactions.

SQLite runs in WAL mode so readers never wait for the writer, with a busy timeout so writers wait for
each other instead of failing. Write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction
that reads and then writes fails at once with SQLITE_BUSY when another writer committed in between (the
busy handler is not called for that case, see https://www.sqlite.org/isolation.html and
https://www.sqlite.org/rescode.html#busy_snapshot). pysqlite's own transaction handling is switched off so
the store can say which kind of BEGIN it wants (the recipe in SQLAlchemy's pysqlite dialect docs,
"Serializable isolation / Savepoints / Transactional DDL").
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from ..errors import StoreError

BUSY_TIMEOUT_S = 30.0
WRITE_OPTION = "monitor_write"  # execution option: this transaction will write

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def describe(exc: SQLAlchemyError) -> str:
    """The driver's message, for a StoreError."""
    # The driver's message, without SQLAlchemy's echo of the statement and its (possibly long) parameters.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).strip()
    return str(exc).split("\n", 1)[0]


def is_memory(url: URL) -> bool:
    """An in-memory SQLite database, which exists once per connection."""
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def make_engine(url_text: str, schema: str | None = None) -> Engine:
    """An engine for a `sqlite:///path` or `postgresql://...` URL; `schema` is PostgreSQL's search_path."""
    url = make_url(url_text)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise StoreError("a schema can only be given for PostgreSQL databases")
        return _sqlite_engine(url)
    if backend == "postgresql":
        return _postgres_engine(url, schema)
    raise StoreError(f"unsupported database {backend!r}: use sqlite:///path or postgresql+psycopg://...")


def _sqlite_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    if is_memory(url):
        # One shared connection, or every pool connection would see its own empty database; the store
        # serialises its transactions on it with a lock.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args=connect_args)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see the module docstring
    cursor = dbapi_connection.cursor()
    try:
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        # In WAL mode NORMAL cannot corrupt the database; a power cut may lose the last commits, a process
        # crash loses nothing (https://www.sqlite.org/pragma.html#pragma_synchronous).
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch a new database to WAL (the mode persists in the file, so later opens only read it).

    The switch needs the database to itself and may fail with SQLITE_BUSY without calling the busy
    handler when several processes open a new database at once; retry until the busy timeout runs out.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _postgres_engine(url: URL, schema: str | None) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship and test
    # The same durability as SQLite's synchronous=NORMAL: a commit does not wait for its WAL flush, so a
    # server crash or power cut may lose the last few hundred milliseconds of commits, never consistency
    # (https://www.postgresql.org/docs/current/wal-async-commit.html). Losing them means at worst an item
    # seen again as new or a message sent twice; waiting for a flush per delivery capped the outbox at a few
    # hundred rows per second on a busy disk.
    options = ["-csynchronous_commit=off"]
    given = url.query.get("options")  # e.g. ?options=-csearch_path%3Dmonitor: kept, not replaced by ours
    if given:
        options.extend(given if isinstance(given, tuple) else [given])
        url = url.difference_update_query(["options"])
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise StoreError(f"schema name {schema!r}: expected lowercase letters, digits and _")
        options.append(f"-csearch_path={schema}")
    connect_args: dict[str, Any] = {"options": " ".join(options)}
    # pre_ping: a daemon keeps connections for days, across server restarts.
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)
