"""A database per test: SQLite in tmp_path always, PostgreSQL in a fresh schema when MONITOR_TEST_DATABASE_URL
is set. Import `db_fixture` and `store_fixture` into a test module to get the `db` and `store` fixtures."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from monitor.models import Item
from monitor.store import SqlStore

PG_ENV = "MONITOR_TEST_DATABASE_URL"
PG_SKIP = f"set {PG_ENV} to run the store tests on PostgreSQL"

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Db:
    """One empty test database; `open()` gives a new SqlStore on it (several may be open at once)."""

    kind: str  # "sqlite" | "postgresql"
    url: str
    schema: str | None = None
    opened: list[SqlStore] = field(default_factory=list)

    def open(self) -> SqlStore:
        store = SqlStore(self.url, schema=self.schema)
        self.opened.append(store)
        return store

    def scalar(self, sql: str) -> object:
        """Run one statement outside the store (committed), to look at or tamper with what it wrote."""
        engine = sa.create_engine(self.url, connect_args=self._connect_args())
        try:
            with engine.begin() as conn:
                result = conn.exec_driver_sql(sql)
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()

    def _connect_args(self) -> dict[str, str]:
        return {"options": f"-csearch_path={self.schema}"} if self.schema else {}


@pytest.fixture(name="db", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        handle = Db("sqlite", f"sqlite:///{tmp_path / 'data' / 'monitor.db'}")
        yield handle
        for store in handle.opened:
            store.close()
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_SKIP)
    # A schema of its own per test, so parallel runs and earlier failures cannot collide.
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    handle = Db("postgresql", url, schema)
    try:
        yield handle
    finally:
        for store in handle.opened:
            store.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@contextmanager
def schema_url(url: str, prefix: str) -> Iterator[str]:
    """A fresh schema of its own on the PostgreSQL database at `url`, as a URL whose connections use it (for
    processes that take only a URL: `monitor run` replicas, the delivery child); dropped afterwards."""
    schema = f"{prefix}_{secrets.token_hex(5)}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(name="store")
def store_fixture(db: Db) -> SqlStore:
    return db.open()


def item(key: str, feed: str = "ria", *, title: str | None = None, text: str = "text", minutes: int = 0) -> Item:
    """An item published `minutes` after T0."""
    return Item(
        feed=feed,
        key=key,
        title=title if title is not None else f"title {key}",
        link=f"https://{feed}.example/{key}",
        published=T0 + timedelta(minutes=minutes),
        summary=text,
    )
