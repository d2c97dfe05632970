"""A labelled corpus (JSON lines, optionally gzipped): its lines, and each line as the Item the daemon stores."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError
from ..models import Item


def read_corpus(path: Path) -> Iterator[dict[str, Any]]:
    """Corpus lines as dicts, in file order (gzip when the name ends in .gz)."""
    try:
        fh: TextIO = (
            gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - closed by the `with` below
            if path.suffix == ".gz"
            else path.open(encoding="utf-8")
        )
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the corpus: {exc}") from exc
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{n}: not a JSON line: {exc}") from exc
            if not isinstance(obj, dict) or "id" not in obj:
                raise ConfigError(f'{path}:{n}: expected an object with "id", "title", "text"')
            yield obj


def item_text(item: dict[str, Any]) -> str:
    """How a stored item enters the background window: title and text."""
    return f"{item.get('title') or ''}\n{item.get('text') or ''}"


def corpus_item(record: dict[str, Any]) -> Item:
    """A corpus line as the Item the daemon would have stored."""
    raw = str(record.get("published") or "")
    try:
        published = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        published = datetime(1970, 1, 1, tzinfo=UTC)
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return Item(
        feed=str(record.get("source") or "corpus"),
        key=str(record["id"]),
        title=record.get("title") or "",
        link=None,
        published=published,
        content=record.get("text") or "",
        lang=record.get("lang") or "",
    )
