"""Styled lines (runs of text with their tags) serialised as Telegram's HTML and split into messages.

Messages are built as lines of styled runs and serialised late, so a long message can be split between lines (or,
for one huge line, between words) with every chunk's tags balanced and no entity cut in half. Pure, no I/O.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Bot API sendMessage: "Text of the message to be sent, 1-4096 characters after entities parsing".
TELEGRAM_LIMIT = 4096

Tag = tuple[str, str | None]  # ("b", None), ("i", None), ("a", "https://…")
BOLD: Tag = ("b", None)
ITALIC: Tag = ("i", None)


@dataclass(frozen=True)
class Run:
    """A piece of plain text and the tags around it, outermost first."""

    text: str
    tags: tuple[Tag, ...] = ()


Line = tuple[Run, ...]


def _open(tag: Tag) -> str:
    name, href = tag
    # Bot API "HTML style": inside an attribute the quote must be escaped too, so quote=True there.
    return f'<a href="{html.escape(href, quote=True)}">' if name == "a" and href else f"<{name}>"


def _close(tag: Tag) -> str:
    return f"</{tag[0]}>"


def _wrap(run: Run, body: str) -> str:
    return "".join(map(_open, run.tags)) + body + "".join(map(_close, reversed(run.tags)))


def escape(text: str) -> str:
    # Bot API "HTML style": "All <, > and & symbols that are not a part of a tag or an HTML entity must be
    # replaced with the corresponding HTML entities"; quotes may stay as they are in text.
    return html.escape(text, quote=False)


def render_run(run: Run) -> str:
    return _wrap(run, escape(run.text))


def render_line(line: Line) -> str:
    return "".join(map(render_run, line))


# --- splitting ------------------------------------------------------------------------------------


def units(text: str) -> int:
    """Length in UTF-16 code units, the way Telegram counts (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


_COST = {"&": 5, "<": 4, ">": 4}  # &amp; &lt; &gt;


def _cut(text: str, budget: int) -> int:
    """How many characters of `text` fit in `budget` units once escaped, ending at a break when one is near."""
    used = 0
    end = len(text)
    for i, ch in enumerate(text):
        used += _COST.get(ch, 2 if ord(ch) > 0xFFFF else 1)
        if used > budget:
            end = i
            break
    if end == len(text):
        return end
    for sep in ("\n", " "):
        pos = text.rfind(sep, 0, end)
        if pos >= end // 2:
            return pos + 1
    return end


def _split_line(line: Line, limit: int) -> list[str]:
    """One line too long for a message, as pieces of at most `limit` units, each with its tags closed."""
    pieces: list[str] = []
    cur, cur_units = "", 0
    for run in line:
        text = run.text
        overhead = units(_wrap(run, ""))
        while text:
            budget = limit - cur_units - overhead
            # Every character costs at least one unit: only a short enough rest can fit whole.
            body = escape(text) if len(text) <= budget else ""
            if body and units(body) <= budget:
                cur += _wrap(run, body)
                cur_units += overhead + units(body)
                break
            if budget < 64 and cur:
                pieces.append(cur)
                cur, cur_units = "", 0
                continue
            n = max(1, _cut(text, budget))
            part = _wrap(run, escape(text[:n]))
            pieces.append(cur + part)
            cur, cur_units = "", 0
            text = text[n:]
    if cur:
        pieces.append(cur)
    return pieces


_TAG = re.compile(r"<[^>]*>")


def split_html(lines: Sequence[Line], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Serialise lines into messages of at most `limit` units, breaking between lines when possible.

    A chunk never ends inside a tag or an entity and every chunk's tags are balanced, because
    breaks happen between runs, or inside a run's plain text before it is escaped and re-wrapped.
    """
    chunks: list[str] = []
    cur: list[str] = []
    cur_units = 0

    def flush() -> None:
        nonlocal cur, cur_units
        if cur:
            chunks.append("\n".join(cur))
        cur, cur_units = [], 0

    for line in lines:
        text = render_line(line)
        size = units(text)
        sep = 1 if cur else 0
        if cur_units + sep + size <= limit:
            cur.append(text)
            cur_units += sep + size
            continue
        flush()
        if size <= limit:
            cur, cur_units = [text], size
            continue
        *full, last = _split_line(line, limit)
        chunks.extend(full)
        cur, cur_units = [last], units(last)
    flush()
    # Telegram rejects a message that is empty after entity parsing ("message text is empty").
    return [c.strip("\n") for c in chunks if html.unescape(_TAG.sub("", c)).strip()]
