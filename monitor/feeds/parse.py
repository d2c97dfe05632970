"""Feed bytes → ParsedFeed: hostile input refused, encodings fixed, entries normalised to Items.

    parse_feed(body, content_type, encoding)
      ├─ empty → ParseError; gzip magic without Content-Encoding → inflated (capped)
      ├─ choose the encoding (below); transcode to UTF-8 when we know better than feedparser
      │  bytes not valid in it → replaced with U+FFFD where they are, ParsedFeed.warning says how many
      ├─ DOCTYPE with unsafe <!ENTITY> → ParseError       (billion laughs, XXE: never handed to a parser)
      │  checked on the bytes feedparser gets; a document naming an encoding in which those bytes are not
      │  the text (EBCDIC, UTF-7, unicode_escape: not ASCII-compatible, other than UTF-16/32) → ParseError
      ├─ feedparser.parse(BytesIO, response_headers)      (sanitising off: html_to_text strips HTML anyway)
      ├─ bozo and no entries and no version → ParseError  (HTML page, JSON, garbage, truncated header)
      │  bozo with entries → accepted, ParsedFeed.warning says why
      └─ entries → Items (stable key, plain text, UTC dates); duplicates by key keep the first

Encoding, in order:
1. the feed's `encoding` override;
2. a BOM, even against the HTTP charset;
3. bytes that are valid UTF-8 (with some non-ASCII) are UTF-8, whatever the labels say; so are bytes that are
   mostly UTF-8 (at least four valid multi-byte characters per invalid sequence: one stray byte in a UTF-8
   feed must not make the whole feed mojibake, issue 12);
4. bytes that are not UTF-8 and are labelled UTF-8, windows-1251, KOI8-R or nothing are tried as windows-1251
   and KOI8-R: Russian text is mostly lower case, and each of the two reads the other's lower case as upper
   case (so KOI8-R mislabelled windows-1251, which decodes without error, is caught too);
5. anything else is left to feedparser (HTTP charset, then the XML declaration, RFC 3023).
chardet is not installed, so feedparser alone would read undeclared Cyrillic as windows-1252.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from ..errors import ParseError
from ..models import Item, ParsedFeed
from .encoding import GZIP_MAGIC, choose_encoding, gunzip, media_type, transcode
from .entities import check_entities
from .htmltext import fold, html_to_text
from .language import guess_language
from .links import clean_link, normalise_link

# --- the feed -----------------------------------------------------------------------------------------


def parse_feed(
    body: bytes,
    *,
    feed: str,
    url: str,
    now: datetime,
    content_type: str | None = None,
    encoding: str | None = None,
) -> ParsedFeed:
    """Parse one fetched document into Items; raise ParseError when it is not a usable feed."""
    if not body.strip():
        raise ParseError("empty document: the server sent no feed")
    if body.startswith(GZIP_MAGIC):
        body = gunzip(body)
        if not body.strip():
            raise ParseError("empty document: gzip data that inflates to nothing")
    codec = encoding or choose_encoding(body, content_type)
    replaced = 0
    if codec:
        body, replaced = transcode(body, codec)
        content_type = f"{media_type(content_type)}; charset=utf-8"
    check_entities(body, content_type)  # on what feedparser gets, in the encoding it is told
    # No content-location header: it would make feedparser urljoin every URI it meets (measured +25 % parse
    # time); clean_link resolves the one link we keep against the feed URL instead.
    headers = {"content-type": content_type} if content_type else {}
    parsed = _feedparser(body, headers)
    damaged = None
    if replaced:
        damaged = f"{replaced} byte sequence{'s' * (replaced > 1)} not valid {codec}, replaced with U+FFFD"
    warning = "; ".join(w for w in (damaged, _verdict(parsed, body)) if w) or None
    items = tuple(_unique(_item(entry, feed, url, now) for entry in parsed.entries))
    return ParsedFeed(items=items, title=_plain(parsed.feed, "title"), ttl=_ttl(parsed.feed), warning=warning)


# Character references to UTF-16 surrogates (broken CMSs write emoji as "&#xD83D;&#xDE00;"): expat rejects
# them, and feedparser's lenient parser then crashes on them (UnicodeEncodeError), losing the whole feed.
_SURROGATE_REF = re.compile(
    rb"&#(?:[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2}"  # hex D800-DFFF
    rb"|0*5(?:5(?:29[6-9]|[3-9]\d\d)|6\d{3}|7(?:[0-2]\d\d|3[0-3]\d|34[0-3])));"  # decimal 55296-57343
)


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    """feedparser.parse, with its crashes on hostile input turned into ParseError."""
    if b"&#" in body:
        body = _SURROGATE_REF.sub(b"&#xFFFD;", body)
    try:
        # A BytesIO, never bytes: given bytes, feedparser first tries open(body) as a local file name.
        return feedparser.parse(
            io.BytesIO(body), response_headers=headers, sanitize_html=False, resolve_relative_uris=False
        )
    except (ValueError, TypeError, LookupError, AttributeError) as exc:
        # Measured by fuzzing: UnicodeDecodeError on a mangled BOM, TypeError on an empty <width>.
        raise ParseError(f"not a usable feed: the parser failed ({type(exc).__name__}: {exc})") from exc


def _verdict(parsed: Any, body: bytes) -> str | None:
    """None for a clean feed, a warning for a usable ill-formed one; ParseError for anything else."""
    version = parsed.get("version")  # absent when feedparser had nothing to read
    if parsed.entries or (version and not parsed.bozo):
        return f"ill-formed feed, read leniently: {_exception(parsed)}" if parsed.bozo else None
    if version:
        return f"ill-formed feed without entries: {_exception(parsed)}"
    raise ParseError(f"not an RSS or Atom feed: {_what_is_it(body, parsed)}")


def _exception(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}" if exc else "unknown problem"


def _what_is_it(body: bytes, parsed: Any) -> str:
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if start.startswith((b"{", b"[")):
        return "got JSON"
    if any(tag in start for tag in (b"<html", b"<!doctype html", b"<head", b"<body")):
        return "got an HTML page"
    if not parsed.bozo:
        return "well-formed XML, but no rss, feed or rdf root element"
    return _exception(parsed)


def _ttl(meta: Mapping[str, Any]) -> float | None:
    """RSS <ttl> is minutes (RSS 2.0 spec); we keep seconds."""
    value = str(meta.get("ttl") or "").strip()
    return float(value) * 60 if value.isdigit() and int(value) > 0 else None


def _unique(items: Iterable[Item | None]) -> Iterable[Item]:
    seen: set[str] = set()
    for item in items:
        if item is not None and item.key not in seen:
            seen.add(item.key)
            yield item


# --- one entry ------------------------------------------------------------------------------------------

_FUTURE_SLACK = timedelta(days=1)
_MAX_KEY = 512


def _item(entry: Mapping[str, Any], feed: str, url: str, now: datetime) -> Item | None:
    """An Item, or None when the entry has nothing to show (no title, no text, no link)."""
    title = _plain(entry, "title")
    summary = _plain(entry, "summary")
    content = _content(entry)
    link = clean_link(entry.get("link"), url)
    if not (title or summary or content or link):
        return None
    if content == summary:
        content = ""
    return Item(
        feed=feed,
        key=_key(entry, link, title),
        title=title,
        link=link,
        published=_published(entry, now),
        summary=summary,
        content=content,
        author=fold(str(entry.get("author") or "")),
        # 500 characters tell Russian from English as well as 2,000 do, at a quarter of the cost.
        lang=guess_language(f"{title} {(content or summary)[:500]}"),
    )


def _key(entry: Mapping[str, Any], link: str | None, title: str) -> str:
    """GUID, else the link without tracking parameters, else a hash of title and the feed's date."""
    guid = str(entry.get("id") or "").strip()
    if len(guid) > _MAX_KEY:  # some feeds put the whole item text in <guid>; keep keys index-friendly
        return "sha1:" + hashlib.sha1(guid.encode()).hexdigest()
    if guid:
        return guid
    if link:
        return normalise_link(link)
    date = str(entry.get("published") or entry.get("updated") or "")
    return "sha1:" + hashlib.sha1(f"{title}\x1f{date}".encode()).hexdigest()


def _published(entry: Mapping[str, Any], now: datetime) -> datetime:
    """published, else updated, in UTC; `now` when missing, invalid or more than a day in the future."""
    for name in ("published_parsed", "updated_parsed"):
        parsed = entry.get(name)
        if parsed:
            # feedparser normalises dates to UTC struct_time: calendar.timegm, not time.mktime.
            try:
                when = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (OverflowError, ValueError, OSError, TypeError):
                continue
            return now if when > now + _FUTURE_SLACK else when
    return now


def _plain(entry: Mapping[str, Any], name: str) -> str:
    """A text construct as plain text: HTML stripped when the feed says it is HTML."""
    value = entry.get(name)
    if not value:
        return ""
    detail = entry.get(f"{name}_detail") or {}
    return _as_text(str(value), str(detail.get("type") or ""))


def _content(entry: Mapping[str, Any]) -> str:
    parts = [_as_text(str(c.get("value") or ""), str(c.get("type") or "")) for c in entry.get("content") or ()]
    return "\n\n".join(dict.fromkeys(p for p in parts if p))


def _as_text(value: str, mime: str) -> str:
    if "html" in mime:
        return html_to_text(value)
    # Plain-text constructs still arrive double-escaped from many feeds ("&amp;quot;" → "&quot;").
    return fold(html.unescape(value) if "&" in value else value)


__all__ = ["parse_feed"]
