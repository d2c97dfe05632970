"""Article text from a fetched page, for feeds with `full_text: true`.

The page is fetched by HttpFetcher.get_page (same timeouts and size cap as feeds); this module never touches
the network: trafilatura only gets the bytes. When trafilatura cannot be imported (it needs the separate
lxml_html_clean package since lxml 5.2), a small lxml extractor takes over: the <article>, else the element
holding the most paragraph text. None means "keep the feed's own text".
"""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs
from lxml import html as lxml_html  # type: ignore[import-untyped]

from .htmltext import html_to_text

log = logging.getLogger(__name__)

_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([\w.-]+)""", re.I)
MIN_CHARS = 200  # shorter "articles" are cookie banners and paywall teasers, not better than the summary
_NOISE = "//script|//style|//noscript|//nav|//header|//footer|//aside|//form|//iframe|//template"


def extract_article(html: bytes, url: str) -> str | None:
    """The main text of an article page, or None when none can be found."""
    if not html.strip():
        return None
    extract = _trafilatura()
    text = _with_trafilatura(extract, html, url) if extract else extract_with_lxml(html)
    return text if text and len(text) >= MIN_CHARS else None


@cache
def _trafilatura() -> Any:
    """trafilatura.extract, or None when it cannot be imported (logged once)."""
    try:
        import trafilatura  # heavy optional extra, imported on first use only
    except ImportError as exc:
        log.warning("trafilatura unavailable (%s); using the simple lxml article extractor", exc)
        return None
    return trafilatura.extract


def _with_trafilatura(extract: Any, html: bytes, url: str) -> str | None:
    try:
        text = extract(
            html, url=url, include_comments=False, include_tables=False, favor_precision=True, deduplicate=False
        )
    except (ValueError, TypeError, etree.LxmlError, RecursionError) as exc:
        log.info("trafilatura failed on %s: %s", url, exc)
        return None
    return str(text).strip() or None if isinstance(text, str) else None


def extract_with_lxml(html: bytes) -> str | None:
    """The fallback: paragraphs of <article>, else of the element with the most paragraph text."""
    try:
        doc = lxml_html.document_fromstring(html)
        return _article_paragraphs(doc)
    except (etree.ParserError, ValueError):
        # ValueError: lxml refuses to re-set text holding control characters (found by fuzzing).
        return None


def _article_paragraphs(doc: Any) -> str | None:
    """Noise removed, the paragraphs of the element (inside <article>, when there is one) with the most text."""
    for noise in doc.xpath(_NOISE):
        noise.drop_tree()
    scope = doc.xpath("//article") or [doc]
    parents = dict.fromkeys(p.getparent() for root in scope for p in root.iter("p"))  # once each: no O(n²)
    best = max(parents, key=lambda parent: sum(len(p.text_content()) for p in parent.findall("p")), default=None)
    if best is None:
        return None
    paragraphs = (html_to_text(lxml_html.tostring(p, encoding="unicode")) for p in best.findall("p"))
    return "\n\n".join(p for p in paragraphs if p) or None


def page_title(html: bytes, content_type: str | None = None) -> str:
    """A page's headline: og:title, else <title>; "" when it has neither (`monitor label --url`)."""
    if not html.strip():
        return ""
    # Decoded here: lxml reads undeclared bytes as Latin-1, and the charset is often only in the HTTP header.
    declared = re.search(r"charset=[\"']?([\w.-]+)", content_type or "", re.I) or _META_CHARSET.search(html[:4096])
    charset = declared.group(1) if declared else "utf-8"
    charset = charset.decode("ascii") if isinstance(charset, bytes) else charset
    try:
        text = html.decode(charset, "replace")
    except LookupError:
        text = html.decode("utf-8", "replace")
    try:
        doc = lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return ""
    for found in (doc.xpath("//meta[@property='og:title']/@content"), doc.xpath("//title/text()")):
        title = " ".join(str(found[0]).split()) if found else ""
        if title:
            return title
    return ""
