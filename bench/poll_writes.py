"""A successful poll's writes to the store: `store_poll` (one transaction) against the sequence before it,
`add_items`, `count_items`, `put_feed` (two write transactions and a read), alternated in blocks of polls.

    python bench/poll_writes.py                      # SQLite in a temporary directory, 1,000 polls x 30 items
    python bench/poll_writes.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test   # fresh schemas

Each sequence writes to a fresh database of its own. Two phases: "new", every poll's 30 items new (the feed's
count is taken), and "seen", the same items again (a 200 with nothing new: no count). Both read the feed's state
first, as a poll does. Prints ms per poll for each and their ratio (issue 16).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.models import FeedState, Item
from monitor.store import SqlStore

T0 = datetime(2026, 12, 4, tzinfo=UTC)
BLOCK = 25  # polls of one sequence before the other's turn


def items(feed: str, count: int) -> list[Item]:
    return [
        Item(feed=feed, key=str(j), title=f"title {feed} {j}", link=f"https://{feed}.example/{j}",
             published=T0 + timedelta(minutes=j), summary="a sentence of the item's text. " * 40)
        for j in range(count)
    ]  # fmt: skip


def settled(state: FeedState, stored: bool, count: Callable[[], int]) -> FeedState:
    total = count() if stored or state.items_total == 0 else state.items_total
    return replace(state, last_fetch=T0, last_success=T0, status="ok", items_total=total)


def before(store: SqlStore, feed: str, batch: list[Item]) -> None:
    state = store.get_feed(feed) or FeedState(feed, f"https://{feed}.example/rss")
    new, changed = store.add_items(batch, T0)
    store.put_feed(settled(state, bool(new or changed), lambda: store.count_items(feed)))


def now(store: SqlStore, feed: str, batch: list[Item]) -> None:
    state = store.get_feed(feed) or FeedState(feed, f"https://{feed}.example/rss")
    store.store_poll(feed, batch, T0, lambda new, changed, count: settled(state, bool(new or changed), count))


def schema_sql(database: str, statement: str) -> None:
    engine = sa.create_engine(database)
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()


def open_store(database: str | None, directory: Path, name: str, schemas: list[str]) -> SqlStore:
    if database is None:
        return SqlStore(f"sqlite:///{directory / name}.db")
    schemas.append(f"bench_{secrets.token_hex(4)}")
    schema_sql(database, f'CREATE SCHEMA "{schemas[-1]}"')
    return SqlStore(database, schema=schemas[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=1000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--database", help="a PostgreSQL URL (schemas of their own, dropped after); default SQLite")
    args = parser.parse_args()
    sequences = {"before": before, "store_poll": now}
    with tempfile.TemporaryDirectory() as tmp:
        schemas: list[str] = []
        stores = {name: open_store(args.database, Path(tmp), name, schemas) for name in sequences}
        batches = [items(f"f{n}", args.items) for n in range(args.polls)]
        for phase in ("new", "seen"):
            spent = dict.fromkeys(sequences, 0.0)
            for start in range(0, args.polls, BLOCK):
                order = list(sequences) if start // BLOCK % 2 == 0 else list(reversed(sequences))
                for name in order:
                    began = time.perf_counter()
                    for batch in batches[start : start + BLOCK]:
                        sequences[name](stores[name], batch[0].feed, batch)
                    spent[name] += time.perf_counter() - began
            per = {name: 1000 * seconds / args.polls for name, seconds in spent.items()}
            print(
                f"{phase}: {args.polls} polls x {args.items} items: before {per['before']:.3f} ms/poll, "
                f"store_poll {per['store_poll']:.3f} ms/poll, ratio {per['store_poll'] / per['before']:.3f}"
            )
        for store in stores.values():
            store.close()
        for schema in schemas:
            schema_sql(str(args.database), f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
