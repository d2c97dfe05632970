"""A delivery pass's connection on PostgreSQL: its outcome marks, the 'sent' one sent without waiting.

    SqlStore.delivery_pass()            → one autocommit connection held for the pass (HeldMarks)
    begin_sent(row, now, ref) → wait    the UPDATE goes out (libpq's asynchronous PQsendQueryPrepared, prepared
                                        once per connection); the caller renders the next message meanwhile
    wait()                              its answer: stored (autocommitted), or StoreError
    execute(other mark)                 waits for the one in flight first: one statement at a time on a connection

A mark is one round trip to the server, ~0.2-1 ms with the scheduler's wake-ups on a busy machine, against an
in-process SQLite commit. The deliverer still waits for it before the next message goes out, so the exactly-once
rule is unchanged (docs/daemon.md, Delivery): only the rendering of that next message, which changes nothing, runs
during the round trip. https://www.postgresql.org/docs/current/libpq-async.html

Only SqlStore.delivery_pass imports this module, on PostgreSQL: psycopg is the optional `postgres` extra.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Connection, Executable
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from .engine import describe
from .schema import outbox

_PREPARED = "monitor_mark_sent"  # key in the pool entry's info: this connection has the statement
_NAME = b"monitor_mark_sent"
# sql.py's _MARK["sent"], in the server's own parameter syntax; the types come from the columns.
_SENT = (
    f"UPDATE {outbox.name} SET status = 'sent', attempts = attempts + 1, last_attempt = $1, sent_at = $1, "
    "message_ref = $2 WHERE id = $3"
).encode()


@dataclass
class _InFlight:
    delivery_id: int
    done: bool = False
    error: StoreError | None = None


class HeldMarks:
    """One autocommit connection for a delivery pass's outcome marks; at most one statement in flight."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.broken = False  # a failure left the connection unusable: it is invalidated, not pooled again
        raw: Any = conn.connection.driver_connection
        self._pg: pq.abc.PGconn = raw.pgconn
        self._flight: _InFlight | None = None
        self._selector: selectors.BaseSelector | None = None
        if not conn.connection.info.get(_PREPARED):
            result = self._pg.prepare(_NAME, _SENT)  # one round trip, once per connection
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise StoreError(f"while preparing the 'sent' mark: {_message(result.error_message)}")
            conn.connection.info[_PREPARED] = True

    def execute(self, statement: Executable, params: dict[str, Any], doing: str) -> int:
        """Run one UPDATE (after the mark in flight, if any); its row count."""
        self.settle()
        try:
            return int(self.conn.execute(statement, params).rowcount)
        except SQLAlchemyError as exc:
            self._break()
            reason = describe(exc)
            raise StoreError(f"while {doing}: {reason}", reason=reason) from exc

    def begin_sent(self, delivery_id: int, now: datetime, message_ref: str | None) -> Callable[[], None]:
        """Send the 'sent' mark of a row without waiting for its answer; the call that waits for it."""
        self.settle()
        if now.tzinfo is None:  # as UTCDateTime refuses it
            raise StoreError(f"while marking sent delivery {delivery_id}: naive datetime {now.isoformat()}")
        ref = None if message_ref is None else message_ref.replace("\x00", "").encode()
        params = [now.astimezone(UTC).isoformat().encode(), ref, str(delivery_id).encode()]
        flight = _InFlight(delivery_id)
        try:
            self._pg.send_query_prepared(_NAME, params)
            while self._pg.flush():  # psycopg's connections are non-blocking: the rest once the socket takes it
                self._wait(selectors.EVENT_WRITE)
        except psycopg.Error as exc:
            self._break()
            raise StoreError(f"while marking sent delivery {delivery_id}: {exc}", reason=str(exc)) from exc
        self._flight = flight
        return lambda: self._finish(flight)

    def settle(self) -> None:
        """Wait for the statement in flight; StoreError if it failed (its own wait raises it too)."""
        if self._flight is not None:
            self._finish(self._flight)

    def close(self) -> None:
        """Wait for what is in flight, then give the connection back (or drop it when broken)."""
        try:
            self.settle()
        except StoreError:
            pass  # the mark's own wait() reports it
        finally:
            if self._selector is not None:
                self._selector.close()
            if self.broken:
                self.conn.invalidate()
            self.conn.close()

    def _finish(self, flight: _InFlight) -> None:
        if not flight.done:
            flight.done = True
            self._flight = None
            flight.error = self._result(flight.delivery_id)
        if flight.error is not None:
            raise flight.error

    def _result(self, delivery_id: int) -> StoreError | None:
        doing = f"while marking sent delivery {delivery_id}"
        rows: int | None = None
        error: str | None = None
        try:
            while True:
                self._pg.consume_input()
                if not self._pg.is_busy():
                    break
                self._wait(selectors.EVENT_READ)
            while (result := self._pg.get_result()) is not None:
                if result.status == pq.ExecStatus.COMMAND_OK:
                    rows = result.command_tuples
                else:
                    error = _message(result.error_message)
        except psycopg.Error as exc:
            error = str(exc).strip()
        if error is not None:
            self._break()
            return StoreError(f"{doing}: {error}", reason=error)
        if not rows:
            return StoreError(f"no delivery with id {delivery_id}")
        return None

    def _wait(self, event: int) -> None:
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._pg.socket, event)
        else:
            self._selector.modify(self._pg.socket, event)
        self._selector.select()

    def _break(self) -> None:
        self.broken = True


def _message(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()
