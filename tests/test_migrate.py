"""Migrations: a database built from the frozen version-1 DDL upgrades to the schema a new database gets.

On SQLite always, on PostgreSQL when MONITOR_TEST_DATABASE_URL is set (each database in a schema of its own).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor.models import Story
from monitor.store import SqlStore, v1
from monitor.store.migrate import LATEST, STEPS
from tests.storefixtures import PG_ENV, PG_SKIP, T0, item


def _admin(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


class Database:
    """An empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""

    def __init__(self, kind: str, tmp_path: Path, name: str) -> None:
        self.kind = kind
        self.schema: str | None = None
        self.opened: list[SqlStore] = []
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / f'{name}.db'}"
            self.engine = sa.create_engine(self.url)
            return
        url = os.environ.get(PG_ENV)
        if not url:
            pytest.skip(PG_SKIP)
        self.url = url
        self.schema = f"m_{name}_{secrets.token_hex(5)}"
        _admin(url, f'CREATE SCHEMA "{self.schema}"')
        self.engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={self.schema}"})

    def open(self) -> SqlStore:
        store = SqlStore(self.url, schema=self.schema)
        self.opened.append(store)
        return store

    def snapshot(self) -> dict[str, Any]:
        """Every table's columns, keys, indexes and constraints, as the database itself reports them."""
        insp = sa.inspect(self.engine)
        tables: dict[str, Any] = {}
        for table in sorted(insp.get_table_names()):
            tables[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"]) for c in insp.get_columns(table)],
                "primary key": insp.get_pk_constraint(table)["constrained_columns"],
                "foreign keys": sorted(
                    str((fk["constrained_columns"], fk["referred_table"], fk["referred_columns"], fk["options"]))
                    for fk in insp.get_foreign_keys(table)
                ),
                "indexes": sorted(str((i["name"], i["column_names"], i["unique"])) for i in insp.get_indexes(table)),
                "unique": sorted(str((u["name"], u["column_names"])) for u in insp.get_unique_constraints(table)),
                "checks": sorted(str((c["name"], c["sqltext"])) for c in insp.get_check_constraints(table)),
            }
        return tables

    def close(self) -> None:
        for store in self.opened:
            store.close()
        self.engine.dispose()
        if self.schema is not None:
            _admin(self.url, f'DROP SCHEMA "{self.schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def databases(kind: str, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """(one to build at version 1 and migrate, one to create new)."""
    old = Database(kind, tmp_path, "old")
    try:
        new = Database(kind, tmp_path, "new")
    except BaseException:
        old.close()
        raise
    yield old, new
    old.close()
    new.close()


def test_a_version_1_database_migrates_to_the_schema_of_a_new_one(databases: tuple[Database, Database]) -> None:
    old, new = databases
    with old.engine.begin() as conn:
        v1.create(conn)
    migrated = old.open()
    created = new.open()
    assert migrated.schema_versions == (1, LATEST)
    assert created.schema_versions == (0, LATEST)
    assert old.snapshot() == new.snapshot()
    assert "labels" in new.snapshot() and "state" in new.snapshot()
    assert old.open().schema_versions == (LATEST, LATEST)  # migrated once


def test_data_written_at_version_1_survives_the_migration(databases: tuple[Database, Database]) -> None:
    old, _ = databases
    with old.engine.begin() as conn:
        v1.create(conn)
        conn.exec_driver_sql(
            "INSERT INTO stories (id, first_item, first_seen, last_seen, topics) "
            "VALUES ('s1', 'ria\x1fk', '2026-03-01 12:00:00', '2026-03-01 12:00:00', '[\"libya\"]')"
        )
    store = old.open()
    story = store.get_story("s1")
    assert story is not None and story.topics == ("libya",) and story.muted is False
    store.add_items([item("k")], T0)
    store.put_story(Story("s2", "ria\x1fk", T0, T0, items=("ria\x1fk",), muted=True))
    assert store.get_story("s2") == Story("s2", "ria\x1fk", T0, T0, items=("ria\x1fk",), sources=("ria",), muted=True)


@pytest.mark.parametrize("version", range(2, LATEST))
def test_a_database_at_a_later_version_migrates_from_there(databases: tuple[Database, Database], version: int) -> None:
    """Version n as an older monitor left it: the frozen version-1 DDL and the steps up to n."""
    old, new = databases
    with old.engine.begin() as conn:
        v1.create(conn)
        for step in STEPS[: version - 1]:
            step(conn)
        conn.exec_driver_sql(f"UPDATE schema_version SET version = {version}")
    assert old.open().schema_versions == (version, LATEST)
    new.open()
    assert old.snapshot() == new.snapshot()
    assert "near_misses" in old.snapshot() and "near_miss_offers" in old.snapshot()
