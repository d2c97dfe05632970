"""Feed text made safe to show: control and bidi-override characters removed, one line, bounded length, safe links.

Everything that comes from a feed is untrusted; every channel's rendering goes through these. Pure, no I/O.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LINK_MAX = 2048  # longer "links" are shown as text: a 10 kB href would not fit a tag into a chunk

# C0/C1 controls except \t and \n (terminal escapes, NUL, form feeds), and the bidi embedding, override
# and isolate controls, which would reorder the text after them (Unicode TR9 "Trojan Source" spoofing).
# Plain right-to-left text stays as it is.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean(text: str) -> str:
    """Feed text made safe to show: line breaks normalised, control and bidi-override characters removed."""
    return _UNSAFE.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n"))


def one_line(text: str) -> str:
    """Cleaned text on one line: every run of whitespace (CR, LF, U+2028, …) becomes one space."""
    return " ".join(clean(text).split())


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip() + "…"


def safe_link(url: str | None) -> str | None:
    """The URL if it may become a link (absolute http or https, no spaces or controls), else None."""
    if not url or len(url) > LINK_MAX or _UNSAFE.search(url) or any(ch.isspace() for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url
