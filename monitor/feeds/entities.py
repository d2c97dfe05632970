"""Hostile XML refused before any parser sees it: entity declarations (billion laughs, XXE) and encodings
in which that check could not see the markup."""

from __future__ import annotations

import codecs
import re
from functools import cache

from ..errors import ParseError

# Declarations we tolerate: a character reference or a short literal (<!ENTITY nbsp "&#160;">, seen in real
# feeds). Anything else (SYSTEM/PUBLIC, parameter entities, references to other entities, long values) is how
# entity-expansion and external-entity attacks are built, and no honest feed needs it.
_ENTITY_DECL = re.compile(rb"<!ENTITY\b([^>]*)>?")
_SAFE_ENTITY = re.compile(rb"""\s+\w+\s+(?:"(?:&\#\w{1,8};|[^&%"<]{0,16})"|'(?:&\#\w{1,8};|[^&%'<]{0,16})')\s*$""")
_MAX_ENTITIES = 64


def check_entities(body: bytes, content_type: str | None = None) -> None:
    """Raise ParseError when the document declares entities that could expand or read files, or names an
    encoding in which this check cannot see its markup.

    The whole document is searched, not just the part before the root element: "<!-- <a -->" inside the
    DOCTYPE fools that kind of prolog detection (feedparser's own included), measured to let a billion-laughs
    document reach expat, which then spent 1.5 s before its amplification limit tripped. The search is on
    bytes, which is right for every encoding feedparser may decode with that reads ASCII bytes as ASCII, and
    for UTF-16/32 once the zero bytes are gone; any other encoding the document names is refused (a cp037
    billion laughs passed this check and cost 0.8 s of CPU in expat; UTF-7 and unicode_escape did the same).
    """
    for name in _named_encodings(body, content_type):
        if not _ascii_compatible(name):
            raise ParseError(
                f"refused: the document is in {name}, an encoding that is not ASCII-compatible, so its markup "
                "cannot be checked for entity attacks (set the feed's `encoding` to read it anyway)"
            )
    if b"\x00" in body:
        body = body.replace(b"\x00", b"")  # UTF-16/32: the markup we look for is ASCII
    if b"<!ENTITY" not in body:  # XML keywords are case-sensitive; expat ignores "<!entity"
        return
    declarations = _ENTITY_DECL.findall(body)
    if len(declarations) > _MAX_ENTITIES or not all(_SAFE_ENTITY.match(d) for d in declarations):
        raise ParseError(
            "refused: the document declares XML entities (external or expanding) in its DOCTYPE, "
            "which is how billion-laughs and external-entity attacks work"
        )


# feedparser's own pattern for the encoding in a leading processing instruction (feedparser/encodings.py),
# so that we see the same name it will decode with.
_PI_ENCODING = re.compile(rb"""^<\?.*encoding=['"](.*?)['"].*\?>""")
_EBCDIC_MARKER = b"\x4c\x6f\xa7\x94"  # "<?xm" in cp037, which feedparser then decodes the document with
_UTF16_32 = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
# Printable ASCII without the backslash, then the escapes that make a codec read ASCII bytes as other text.
_PROBE = bytes(range(0x20, 0x5C)) + bytes(range(0x5D, 0x7F)) + b"\t\n\r\\u0041\\x41+AEE-"


def _named_encodings(body: bytes, content_type: str | None) -> set[str]:
    """Every encoding feedparser may decode `body` with, besides UTF-8, windows-1252 and ISO-8859-2."""
    names = set()
    for param in (content_type or "").split(";")[1:]:  # as feedparser.encodings.parse_content_type reads it
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            names.add(value.strip().strip("\"'"))
    if body.startswith(_EBCDIC_MARKER):
        names.add("cp037")
    if _unmarked(body[:16]).startswith(b"<?"):  # the pattern needs a leading "<?": don't copy the line otherwise
        declared = _PI_ENCODING.match(_unmarked(body.split(b"\n", 1)[0]))
        if declared is not None:
            names.add(declared.group(1).decode("latin-1"))
    return names - {""}


def _unmarked(data: bytes) -> bytes:
    """Without the zero bytes of UTF-16/32 and a leading byte order mark."""
    data = data.replace(b"\x00", b"")
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        data = data.removeprefix(bom)
    return data


@cache
def _ascii_compatible(name: str) -> bool:
    """Whether `name` reads ASCII bytes as the same ASCII text and no other byte as ASCII (UTF-16/32 count too)."""
    try:
        if codecs.lookup(name).name in _UTF16_32:
            return True
        same = _PROBE.decode(name) == _PROBE.decode("ascii")
        return same and not any(bytes([b]).decode(name, "replace").isascii() for b in range(0x80, 0x100))
    except LookupError:
        return True  # unknown, or not a text encoding (base64): feedparser cannot decode with it either
    except (UnicodeError, ValueError):
        return False
