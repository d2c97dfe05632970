"""Which encoding a feed's bytes are in (the order is in parse.py's docstring), transcoding to UTF-8, and
.gz files served without Content-Encoding."""

from __future__ import annotations

import re
import zlib

from ..errors import ParseError

# UTF-32 first: its little-endian BOM starts with UTF-16's.
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?>", re.IGNORECASE)
_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_UTF8 = frozenset({"utf-8", "utf8", "utf_8", "u8"})


def choose_encoding(body: bytes, content_type: str | None) -> str | None:
    """The encoding to transcode from, or None to let feedparser decide (see the module docstring)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec  # a BOM outranks any label (WHATWG encoding sniffing); labels often lie, BOMs don't
    if body.isascii():
        return None
    declared = _declared(body, content_type)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        if _mostly_utf8(body):
            return "utf-8"
    else:
        return None if declared in (None, *_UTF8) else "utf-8"
    if declared not in (None, *_UTF8, "cp1251", "windows-1251", "koi8-r", "koi8_r"):
        return None
    return _guess_cyrillic(body)


def _mostly_utf8(body: bytes) -> bool:
    """At least four valid multi-byte UTF-8 characters per invalid sequence (windows-1251 and KOI-8 text has
    next to none: their letters are lead bytes followed by lead bytes)."""
    text = body.decode("utf-8", "replace")
    bad = text.count("\ufffd") - body.count("\ufffd".encode())
    wide = len(text) - len(text.encode("ascii", "ignore"))
    return wide - bad >= 4 * bad


def _declared(body: bytes, content_type: str | None) -> str | None:
    """The charset named by HTTP, else by the XML declaration, lower-cased."""
    if content_type and (charset := _CHARSET.search(content_type)):
        return charset.group(1).lower()
    decl = _XML_DECL.match(body)
    if decl and (named := _DECL_ENCODING.search(decl.group(0))):
        return named.group(1).decode("ascii").lower()
    return None


def _guess_cyrillic(body: bytes) -> str | None:
    """windows-1251 or KOI8-R, whichever reads as mostly lower-case Cyrillic; None when it doesn't look Russian.

    The two are mirror images: bytes 0xE0-0xFF are lower case in windows-1251 and upper case in KOI8-R, bytes
    0xC0-0xDF the reverse; 0x80-0xBF are mostly punctuation in both, but common in CJK multi-byte text.
    Counting bytes beats decoding twice and counting letters (measured 6 ms → 0.1 ms on a 25 kB feed).
    """
    high = _count(body, 0xE0, 0x100)
    low = _count(body, 0xC0, 0xE0)
    other = _count(body, 0x80, 0xC0)
    if high + low < 20 or other * 4 > high + low or high == low:
        return None
    return "cp1251" if high > low else "koi8_r"


def _count(body: bytes, start: int, stop: int) -> int:
    """How many bytes of `body` are in range(start, stop)."""
    return len(body.translate(None, _OUTSIDE[start, stop]))


_OUTSIDE = {
    (start, stop): bytes(range(start)) + bytes(range(stop, 0x100))
    for start, stop in ((0xE0, 0x100), (0xC0, 0xE0), (0x80, 0xC0))
}


def transcode(body: bytes, encoding: str) -> tuple[bytes, int]:
    """Decode with `encoding`, re-encode as UTF-8 and make the XML declaration say so; also how many byte
    sequences were not valid in `encoding` (each is U+FFFD now, where it was)."""
    try:
        try:
            text, bad = body.decode(encoding), 0
        except UnicodeDecodeError:
            text = body.decode(encoding, errors="replace")
            bad = max(1, text.count("\ufffd") - _count_literal_replacements(body, encoding))
    except LookupError as exc:  # config validates names; this guards other callers
        raise ParseError(f"unknown text encoding {encoding!r}") from exc
    data = text.lstrip("\ufeff").encode("utf-8", errors="replace")  # a lone surrogate (unicode_escape) → "?"
    decl = _XML_DECL.match(data)
    if decl:
        data = _DECL_ENCODING.sub(b'encoding="utf-8"', decl.group(0), count=1) + data[decl.end() :]
    return data, bad


def _count_literal_replacements(body: bytes, encoding: str) -> int:
    """U+FFFD characters the document itself holds (not ours to report)."""
    try:
        return body.count("\ufffd".encode(encoding))
    except (UnicodeError, LookupError):
        return 0  # the encoding has no U+FFFD


GZIP_MAGIC = b"\x1f\x8b"
MAX_GUNZIPPED = 10 * 1024 * 1024


def gunzip(body: bytes, limit: int = MAX_GUNZIPPED) -> bytes:
    """A .gz file served without Content-Encoding (seen in the wild): inflate it, at most `limit` bytes."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, limit)
    except zlib.error as exc:
        raise ParseError(f"not a feed: gzip data that does not inflate ({exc})") from exc
    if inflater.unconsumed_tail:
        raise ParseError(f"not a feed: gzip data inflates past {limit // (1024 * 1024)} MB")
    return data


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip() or "application/xml"
