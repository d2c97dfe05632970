"""A delivery pass's connection on SQLite: its 'sent' marks, each one autocommitted UPDATE on the driver itself.

    SqlStore.delivery_pass()      → one pooled connection held for the pass (LiteMarks)
    sent(row, now, ref)           under the store's write lock: UPDATE … WHERE id = ?, stored when it returns

A mark in a transaction of its own through SQLAlchemy (pool checkout, BEGIN IMMEDIATE, UPDATE, COMMIT, the pool's
rollback on return) is about ten calls into SQLite, each of which lets go of the GIL; under `monitor run` the poll
threads hold it, and each time the delivery thread waits up to the switch interval (5 ms) to take it back. Here
it is one statement, prepared once per connection (sqlite3's statement cache), in SQLite's own implicit
transaction: durable (synchronous=NORMAL, as every commit of the store) before `sent` returns, so the exactly-once
rule is unchanged (docs/daemon.md, Delivery). The other outcome marks (retry, defer, failed) are rare and keep
their transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update

from ..errors import StoreError


class LiteMarks:
    """One pooled SQLite connection for a delivery pass's 'sent' marks (`statement`: sql.py's _MARK["sent"])."""

    def __init__(self, conn: Connection, statement: Update, write_lock: AbstractContextManager[Any]) -> None:
        self.conn = conn
        self._raw: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        self._lock = write_lock  # threads of this process queue for SQLite's one writer here (sql.py)
        compiled = statement.compile(dialect=conn.dialect)
        self._sql = compiled.string
        # The columns' own conversions (UTCDateTime, SafeText), so a row reads back as one marked by SQLAlchemy.
        # The statement's literals ('sent', attempts + 1) are parameters too: their values are fixed here.
        binds = [compiled.binds[name] for name in compiled.positiontup or []]
        self._params: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (bind.key, bind.value, bind.type.bind_processor(conn.dialect)) for bind in binds
        ]

    def sent(self, delivery_id: int, now: datetime, message_ref: str | None) -> None:
        """Mark a row sent; stored when this returns, or StoreError."""
        doing = f"while marking sent delivery {delivery_id}"
        values = {"b_id": delivery_id, "b_now": now, "b_ref": message_ref}
        try:
            params = []
            for name, fixed, convert in self._params:
                value = values.get(name, fixed)
                params.append(value if convert is None else convert(value))
            with self._lock:
                done = self._raw.execute(self._sql, params).rowcount
        except ValueError as exc:  # a naive datetime, refused by UTCDateTime
            raise StoreError(f"{doing}: {exc}", reason=str(exc)) from exc
        except sqlite3.Error as exc:
            raise StoreError(f"{doing}: {exc}", reason=str(exc)) from exc
        if done == 0:
            raise StoreError(f"no delivery with id {delivery_id}")

    def close(self) -> None:
        self.conn.close()
