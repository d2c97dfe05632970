"""The analyst's labels outside Telegram: `monitor label` and `monitor labels` (list, export, import).

`monitor label` takes an alert's id (12), a near miss's id from the daily "just below the line" message (n12),
or, with --url, a page the monitor missed.

A label from here lands in the store like a button press; a running daemon notices it within seconds
(App.relearn) and decides the next item with a model that learned from it. Labels export as JSON lines
that carry the item too, so an import into another database gives the model the same evidence::

    {"item": "ТАСС\\u001fhttps://…", "topic": "libya", "relevant": false, "source": "telegram", "user": "7001",
     "at": "2026-11-25T09:00:00+00:00", "feed": "ТАСС", "key": "https://…", "title": "…", "link": "https://…",
     "published": "2026-11-25T08:55:00+00:00", "summary": "…", "content": "…", "lang": "ru"}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from ..config import Config
from ..delivery.nearmiss import LABEL_SOURCE
from ..errors import StoreError, UsageError
from ..feeds.fulltext import extract_article, page_title
from ..models import Item, Label
from ..ports import Fetcher, Store

MANUAL_FEED = "manual"  # the feed name of pages labelled with --url: never a configured feed's
VERDICTS = {"yes": True, "y": True, "no": False, "n": False}


def verdict(word: str) -> bool:
    """yes → relevant, no → not relevant."""
    try:
        return VERDICTS[word.lower()]
    except KeyError:
        raise UsageError(f"expected yes or no as the verdict, got {word!r}") from None


def topic_id(config: Config, given: str) -> str:
    """A configured topic's id, from its id or its name (any case)."""
    for topic in config.topics:
        if given == topic.id or given.casefold() == topic.name.casefold():
            return topic.id
    known = ", ".join(t.id for t in config.topics) or "none"
    raise UsageError(f"unknown topic {given!r}; topics are: {known}")


def label_alert(
    store: Store, config: Config, alert_id: int, topic: str, relevant: bool, now: datetime, user: str
) -> str:
    """Label the item of an alert for a topic (any configured topic, not only those it matched)."""
    try:
        alert = store.get_alert(alert_id)
    except StoreError:
        raise UsageError(f"no alert #{alert_id}; `monitor alerts` lists them") from None
    tid = topic_id(config, topic)
    store.put_label(Label(alert.item.uid, tid, relevant, "cli", user=user), now)
    return f"alert #{alert_id} ({alert.item.title[:80]}): marked {_word(relevant)} for {tid}"


def label_near_miss(
    store: Store, config: Config, near_miss_id: int, topic: str | None, relevant: bool, now: datetime, user: str
) -> str:
    """Label the item of a near miss, for its own topic unless another is given."""
    near = store.get_near_miss(near_miss_id)
    if near is None:
        raise UsageError(f'no near miss n{near_miss_id}; the daily "just below the line" message lists them')
    tid = topic_id(config, topic) if topic else near.topic
    store.put_label(Label(near.item.uid, tid, relevant, LABEL_SOURCE, user=user), now)
    return f"near miss n{near_miss_id} ({near.item.title[:80]}): marked {_word(relevant)} for {tid}"


def label_url(
    store: Store, fetcher: Fetcher, config: Config, url: str, topic: str, relevant: bool, now: datetime, user: str
) -> str:
    """Label a page found elsewhere: the stored item with that link, else the page fetched and stored as one."""
    tid = topic_id(config, topic)
    item = store.item_by_link(url)
    if item is None:
        page = fetcher.get_page(url)  # FetchError: a one-line "monitor: while fetching …"
        text = extract_article(page.body or b"", page.url)
        if not text:
            raise UsageError(f"no article text found at {url}; label an item the monitor stored instead")
        title = page_title(page.body or b"", page.content_type) or url
        item = Item(feed=MANUAL_FEED, key=url, title=title, link=url, published=now, content=text)
        store.add_items([item], now)
    store.put_label(Label(item.uid, tid, relevant, "url", user=user), now)
    return f"{item.title[:80]} ({item.feed}): marked {_word(relevant)} for {tid}"


def format_labels(labelled: Sequence[tuple[Label, Item]], names: Mapping[str, str], tz: tzinfo) -> str:
    """`monitor labels`: one line per label, oldest first, and the counts per topic."""
    if not labelled:
        return "no labels"
    lines = []
    counts: dict[str, list[int]] = {}
    for label, item in labelled:
        when = f"{label.at.astimezone(tz):%Y-%m-%d %H:%M}" if label.at else "-"
        who = f"{label.source}" + (f" ({label.user})" if label.user else "")
        title = " ".join(item.title.split())[:90]
        lines.append(f"{when}  {label.topic:<20} {_word(label.relevant):<13} {who:<24} {title} [{item.feed}]")
        counts.setdefault(label.topic, [0, 0])[0 if label.relevant else 1] += 1
    summary = ", ".join(f"{names.get(t, t)} {yes} ✓ {no} ✗" for t, (yes, no) in counts.items())
    return "\n".join([*lines, "", f"{len(labelled)} labels: {summary}"])


def export_labels(labelled: Iterable[tuple[Label, Item]], path: Path) -> int:
    """Write labels with their items as JSON lines; the number written."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for label, item in labelled:
            out.write(json.dumps(_line(label, item), ensure_ascii=False) + "\n")
            count += 1
    return count


def import_labels(store: Store, path: Path, now: datetime) -> int:
    """Read an export: every line is checked before anything is written; items are stored, labels recorded."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    parsed = [_parse(path, n, text) for n, text in enumerate(lines, 1) if text.strip()]
    for label, item in parsed:
        store.add_items([item], now)  # a stored item keeps its row (a changed text is updated)
        store.put_label(label, now)
    return len(parsed)


def _word(relevant: bool) -> str:
    return "relevant" if relevant else "not relevant"


def _line(label: Label, item: Item) -> dict[str, Any]:
    return {
        "item": label.item,
        "topic": label.topic,
        "relevant": label.relevant,
        "source": label.source,
        "user": label.user,
        "at": label.at.isoformat() if label.at else None,
        "feed": item.feed,
        "key": item.key,
        "title": item.title,
        "link": item.link,
        "published": item.published.isoformat(),
        "summary": item.summary,
        "content": item.content,
        "lang": item.lang,
    }


def _parse(path: Path, n: int, text: str) -> tuple[Label, Item]:
    where = f"{path}:{n}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a JSON object, as `monitor labels --export` writes")
    try:
        item = Item(
            feed=_text(data, "feed"),
            key=_text(data, "key"),
            title=_text(data, "title"),
            link=data.get("link") if isinstance(data.get("link"), str) else None,
            published=_time(data["published"]),
            summary=str(data.get("summary") or ""),
            content=str(data.get("content") or ""),
            lang=str(data.get("lang") or ""),
        )
        relevant = data["relevant"]
        if not isinstance(relevant, bool):
            raise ValueError("relevant: expected true or false")
        at = _time(data["at"]) if data.get("at") else None
        label = Label(item.uid, _text(data, "topic"), relevant, str(data.get("source") or "import"),
                      user=str(data.get("user") or ""), at=at)  # fmt: skip
    except KeyError as exc:
        raise UsageError(f"{where}: missing key {exc.args[0]!r}") from None
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return label, item


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 time, got {value!r}")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"expected a time with its UTC offset, got {value!r}")
    return when
