"""parse_feed: formats, encodings, hostile XML, item normalisation; html_to_text."""

from __future__ import annotations

import gzip
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from monitor.errors import ParseError
from monitor.feeds.encoding import choose_encoding
from monitor.feeds.htmltext import html_to_text
from monitor.feeds.http import DEFAULT_USER_AGENT, HttpFetcher
from monitor.feeds.links import normalise_link
from monitor.feeds.parse import parse_feed
from monitor.models import ParsedFeed
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401 - fixture

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
URL = "https://news.example.org/rss/world.xml"

# Invented news-like sentences (not taken from any outlet).
RU_TITLE = "Переговоры в Триполи: стороны договорились о прекращении огня"
RU_TEXT = "Делегации Ливии встретились в Триполи и обсудили вывод иностранных сил из страны."
RU_TITLE_2 = "В Ливии возобновила работу крупнейшая нефтяная гавань"


def rss(items: str, *, decl: str | None = "utf-8", extra: str = "") -> str:
    encoding = f' encoding="{decl}"' if decl else ""
    return (
        f'<?xml version="1.0"{encoding}?>\n<rss version="2.0"><channel><title>Мировые новости</title>'
        f"<link>https://news.example.org/</link>{extra}{items}</channel></rss>"
    )


def item(title: str = RU_TITLE, *, guid: str | None = "n-1", link: str | None = "/world/1", **extra: str) -> str:
    parts = [f"<title>{title}</title>"]
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if link is not None:
        parts.append(f"<link>{link}</link>")
    parts.extend(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return "<item>" + "".join(parts) + "</item>"


RU_FEED = rss(
    item(description=RU_TEXT, pubDate="Tue, 24 Nov 2026 15:30:00 +0300")
    + item(RU_TITLE_2, guid="n-2", link="/world/2", description="Нефтяная гавань Эс-Сидр снова принимает танкеры.")
)


def parse(body: bytes | str, **kwargs: object) -> ParsedFeed:
    data = body.encode() if isinstance(body, str) else body
    return parse_feed(data, feed="world", url=URL, now=NOW, **kwargs)  # type: ignore[arg-type]


def served(server: FeedServer, body: bytes, content_type: str | None = None) -> ParsedFeed:
    """`body` served by the local feed server, fetched and parsed as a poll does."""
    server.route("/feed.xml", body, headers={"Content-Type": content_type} if content_type else {})
    fetcher = HttpFetcher(user_agent=DEFAULT_USER_AGENT, read_timeout=5)
    try:
        result = fetcher.fetch(server.url("/feed.xml"))
    finally:
        fetcher.close()
    assert result.body == body and result.content_type == content_type
    return parse_feed(result.body, feed="world", url=result.url, now=NOW, content_type=result.content_type)


# --- formats -----------------------------------------------------------------------------------------------


def test_rss2_items_are_normalised() -> None:
    parsed = parse(
        rss(item(description=f"<p>{RU_TEXT}</p>", pubDate="Tue, 24 Nov 2026 15:30:00 +0300"), extra="<ttl>30</ttl>")
    )
    assert parsed.title == "Мировые новости"
    assert parsed.ttl == 1800
    assert parsed.warning is None
    (it,) = parsed.items
    assert it.feed == "world"
    assert it.key == "n-1"
    assert it.title == RU_TITLE
    assert it.link == "https://news.example.org/world/1"
    assert it.published == datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    assert it.summary == RU_TEXT
    assert it.lang == "ru"


def test_atom_entries() -> None:
    atom = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Tripoli desk</title><id>urn:x</id>
<updated>2026-11-24T10:00:00Z</updated>
<entry><id>tag:example.org,2026:1</id><title type="html">Ceasefire &lt;b&gt;holds&lt;/b&gt;</title>
<link rel="alternate" href="https://example.org/a/1"/><updated>2026-11-24T09:00:00+01:00</updated>
<author><name>Desk Editor</name></author>
<summary>Short summary</summary>
<content type="html">&lt;p&gt;Talks in Tripoli went on.&lt;/p&gt;&lt;p&gt;Second paragraph.&lt;/p&gt;</content></entry>
</feed>"""
    (it,) = parse(atom, content_type="application/atom+xml").items
    assert it.key == "tag:example.org,2026:1"
    assert it.title == "Ceasefire holds"
    assert it.link == "https://example.org/a/1"
    assert it.published == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert it.author == "Desk Editor"
    assert it.summary == "Short summary"
    assert it.content == "Talks in Tripoli went on.\n\nSecond paragraph."
    assert it.lang == "en"


def test_rss1_rdf() -> None:
    rdf = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://example.org/"><title>RDF news</title><link>https://example.org/</link></channel>
<item rdf:about="https://example.org/r/1"><title>Oil port reopens</title><link>https://example.org/r/1</link>
<description>Tankers return.</description><dc:date>2026-11-24T06:00:00Z</dc:date></item>
</rdf:RDF>"""
    (it,) = parse(rdf).items
    assert (it.title, it.link, it.summary) == ("Oil port reopens", "https://example.org/r/1", "Tankers return.")
    assert it.published == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def test_atom_xml_base_resolves_against_the_feed_url() -> None:
    atom = """<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/news/"><title>t</title>
<entry><id>1</id><title>T</title><link href="item/1"/></entry></feed>"""
    assert parse(atom).items[0].link == "https://news.example.org/news/item/1"


def test_valid_empty_feed_has_no_items() -> None:
    parsed = parse(rss(""))
    assert parsed.items == ()
    assert parsed.warning is None


# --- encodings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "decl", "content_type"),
    [
        ("cp1251", "windows-1251", None),
        ("cp1251", None, None),  # undeclared
        ("cp1251", None, "text/xml"),  # RFC 3023 would say us-ascii
        ("cp1251", "windows-1251", "application/rss+xml; charset=utf-8"),  # HTTP mislabels
        ("cp1251", "utf-8", None),  # the declaration lies
        ("koi8_r", "koi8-r", None),
        ("koi8_r", None, None),
        ("koi8_r", "windows-1251", None),  # decodes without error into mojibake unless we look closer
        ("koi8_r", None, "text/xml; charset=windows-1251"),
        ("utf-8", "utf-8", "text/xml; charset=windows-1251"),
        ("utf-8", None, None),
        ("utf-16", "utf-16", None),  # with BOM
        ("utf-16", "utf-16", "text/xml; charset=windows-1251"),  # the BOM outranks the label
        ("utf-8-sig", None, "text/html; charset=koi8-r"),
        ("gb18030", "gb18030", None),  # not ASCII bytes for Cyrillic, but ASCII-compatible: not refused
        ("cp866", "cp866", None),
    ],
)
def test_russian_feeds_decode_right(codec: str, decl: str | None, content_type: str | None) -> None:
    body = rss(
        item(description=RU_TEXT) + item(RU_TITLE_2, guid="n-2", description="Танкеры снова в гавани."), decl=decl
    ).encode(codec)
    parsed = parse(body, content_type=content_type)
    assert [i.title for i in parsed.items] == [RU_TITLE, RU_TITLE_2]
    assert parsed.items[0].summary == RU_TEXT
    assert parsed.title == "Мировые новости"


def test_encoding_override_wins() -> None:
    body = rss(item(description=RU_TEXT), decl="utf-8").encode("koi8_r")
    parsed = parse(body, content_type="text/xml; charset=utf-8", encoding="koi8-r")
    assert parsed.items[0].title == RU_TITLE
    # An override is obeyed even against the evidence: the user knows the feed.
    assert parse(RU_FEED.encode("cp1251"), encoding="koi8-r").items[0].title != RU_TITLE


def test_unknown_encoding_override_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="unknown text encoding"):
        parse(RU_FEED, encoding="klingon-8")


@pytest.mark.parametrize("content_type", [None, "application/rss+xml; charset=utf-8", "text/xml"])
def test_one_stray_byte_does_not_turn_a_utf8_feed_into_mojibake(
    feed_server: FeedServer, content_type: str | None
) -> None:
    # Seen: one \xff in one title flipped the guess to windows-1251 (or ISO-8859-2): every item mojibake, no alert.
    body = RU_FEED.encode().replace("гавань".encode(), "гав".encode() + b"\xff" + "ань".encode(), 1)
    parsed = served(feed_server, body, content_type)
    assert [i.title for i in parsed.items] == [RU_TITLE, RU_TITLE_2.replace("гавань", "гав\ufffdань")]
    assert parsed.items[0].summary == RU_TEXT
    assert parsed.warning == "1 byte sequence not valid utf-8, replaced with U+FFFD"
    assert choose_encoding(body, content_type) == "utf-8"


def test_a_windows_1251_feed_with_a_few_utf8_looking_pairs_stays_windows_1251() -> None:
    # "Рё" in windows-1251 is the UTF-8 for "и": a little of that must not make a 1251 feed UTF-8.
    body = rss(item("Рёв моторов: " + RU_TITLE) + item(RU_TITLE_2, guid="n-2"), decl=None).encode("cp1251")
    assert choose_encoding(body, None) == "cp1251"
    assert parse(body).items[0].title == "Рёв моторов: " + RU_TITLE


def test_choose_encoding_leaves_ordinary_documents_to_feedparser() -> None:
    assert choose_encoding(b"<rss/>", None) is None
    assert choose_encoding(RU_FEED.encode(), "text/xml; charset=utf-8") is None
    latin = '<?xml version="1.0" encoding="iso-8859-1"?><rss><channel><title>Café crème</title></channel></rss>'
    assert choose_encoding(latin.encode("latin-1"), None) is None
    assert choose_encoding(RU_FEED.encode("cp1251"), None) == "cp1251"


# --- hostile and broken input -------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">\n' for i in range(1, 10))
    + ']>\n<rss version="2.0"><channel><title>t</title><item><title>&lol9;</title></item></channel></rss>'
)


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(ParseError, match="declares XML entities"):
        parse(BILLION_LAUGHS)
    assert time.perf_counter() - started < 0.5


def test_quadratic_blowup_is_refused() -> None:
    # A 50 kB entity used 20,000 times: measured 28 s inside feedparser alone (expat's amplification limit
    # trips late), so the guard must catch it before parsing.
    doc = rss(item("&a;" * 20000)).replace("<rss", '<!DOCTYPE rss [<!ENTITY a "' + "a" * 50000 + '">]>\n<rss', 1)
    started = time.perf_counter()
    with pytest.raises(ParseError, match="declares XML entities"):
        parse(doc)
    assert time.perf_counter() - started < 0.5


def test_billion_laughs_hidden_behind_a_fake_root_element_is_refused() -> None:
    # "<a" inside a comment ends a naive prolog search (feedparser's too) before the declarations.
    with pytest.raises(ParseError, match="declares XML entities"):
        parse(BILLION_LAUGHS.replace("<!DOCTYPE rss [", "<!DOCTYPE rss [<!-- <a -->", 1))


def test_billion_laughs_in_utf16_is_refused() -> None:
    with pytest.raises(ParseError, match="declares XML entities"):
        parse(BILLION_LAUGHS.replace('version="1.0"', 'version="1.0" encoding="utf-16"').encode("utf-16"))


def billion_laughs_in(codec: str) -> bytes:
    """BILLION_LAUGHS with its declarations hidden from prolog detection, in `codec`; for the escaping codecs
    the declaration stays readable and no "<" is left as a byte after it."""
    doc = BILLION_LAUGHS.replace('version="1.0"', f'version="1.0" encoding="{codec}"', 1)
    doc = doc.replace("<!DOCTYPE rss [", "<!DOCTYPE rss [<!-- <a -->", 1)
    if codec in ("cp037", "cp500"):
        return doc.encode(codec)
    declaration, rest = doc.split("?>", 1)
    return declaration.encode() + b"?>" + rest.encode().replace(b"<", b"+ADw-" if codec == "utf-7" else b"\\x3c")


@pytest.mark.parametrize("codec", ["cp037", "cp500", "utf-7", "unicode_escape"])
def test_billion_laughs_in_an_encoding_that_hides_its_markup_is_refused(feed_server: FeedServer, codec: str) -> None:
    # Seen: each passed the byte check and reached expat, which spent 0.8 s of CPU before its limit tripped.
    started = time.process_time()
    with pytest.raises(ParseError, match=r"refused: the document is in (cp037|utf-7|unicode_escape), an encoding"):
        served(feed_server, billion_laughs_in(codec), "application/xml")
    assert time.process_time() - started < 0.5


def test_an_ebcdic_feed_is_read_when_the_user_names_its_encoding() -> None:
    body = rss(item(description=RU_TEXT), decl="cp037").replace("Мировые новости", "World news")
    ebcdic = body.replace(RU_TITLE, "Talks in Tripoli").replace(RU_TEXT, "Both sides met.").encode("cp037")
    parsed = parse(ebcdic, encoding="cp037")
    assert (parsed.title, parsed.items[0].title) == ("World news", "Talks in Tripoli")
    assert parsed.items[0].summary == "Both sides met."
    with pytest.raises(ParseError, match="declares XML entities"):  # checked on the text it decodes to
        parse(billion_laughs_in("cp037"), encoding="cp037")


def test_feedparser_alone_does_not_expand_billion_laughs() -> None:
    # Defence in depth, measured: feedparser drops unsafe entity declarations before expat sees them.
    result = feedparser.parse(io.BytesIO(BILLION_LAUGHS.encode()))
    assert all(len(e.get("title", "")) < 100 for e in result.entries)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOPSECRET-LOCAL-FILE-CONTENT")
    return path


def _everything(parsed: ParsedFeed) -> str:
    return repr(parsed)


def test_external_entity_is_refused(secret: Path) -> None:
    doc = rss(item("x &xxe; y", description="&xxe;")).replace(
        "<rss", f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n<rss', 1
    )
    with pytest.raises(ParseError) as info:
        parse(doc)
    assert "TOPSECRET" not in str(info.value)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE rss SYSTEM "{dtd}">',  # external DTD that declares the entity
        '<!DOCTYPE rss [<!ENTITY % ext SYSTEM "{dtd}"> %ext;]>',  # parameter entity
    ],
)
def test_external_dtd_never_leaks_a_local_file(secret: Path, tmp_path: Path, doctype: str) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY xxe SYSTEM "{secret.as_uri()}">')
    doc = rss(item("x &xxe; y", description="&xxe;")).replace("<rss", doctype.format(dtd=dtd.as_uri()) + "\n<rss", 1)
    try:
        parsed = parse(doc)
    except ParseError as exc:
        assert "TOPSECRET" not in str(exc)
    else:
        assert "TOPSECRET" not in _everything(parsed)


def test_simple_entity_declarations_are_tolerated() -> None:
    doc = rss(item("Триполи&nbsp;сегодня")).replace("<rss", '<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]>\n<rss', 1)
    assert parse(doc).items[0].title == "Триполи сегодня"


def test_a_file_name_as_body_is_not_opened(secret: Path) -> None:
    # feedparser.parse(bytes) tries open(bytes) first; we must hand it a stream.
    with pytest.raises(ParseError):
        parse(str(secret).encode())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty document"),
        (b"  \r\n\t ", "empty document"),
        (b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>Not a feed</p></body></html>", "HTML page"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": []}', "JSON"),
        (b"<?xml version='1.0'?><config><a>1</a></config>", "no rss, feed or rdf root"),
        (bytes(range(256)) * 8, "not an RSS or Atom feed"),
        (b'<?xml version="1.0"?><rsx', "not an RSS or Atom feed"),
        (b"\x1f\x8b\x08\x00garbage", "inflate"),
    ],
)
def test_non_feeds_are_parse_errors(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(body)


def test_feed_truncated_before_any_item_is_an_empty_feed_with_a_warning() -> None:
    # Rule: reject only when there are no entries AND no recognisable feed version.
    parsed = parse(b'<?xml version="1.0"?><rss version="2.0"><chan')
    assert parsed.items == ()
    assert parsed.warning and "without entries" in parsed.warning


def test_truncated_feed_keeps_complete_items_with_a_warning() -> None:
    body = RU_FEED.encode("cp1251")
    cut = body[: body.index("Нефтяная гавань".encode("cp1251"))]
    parsed = parse(cut)
    assert parsed.items[0].title == RU_TITLE
    assert parsed.warning and "ill-formed" in parsed.warning


def test_ill_formed_feed_with_entries_is_accepted_with_warning() -> None:
    parsed = parse(rss(item("Нефть & газ") + item("Вторая", guid="n-2")))
    assert [i.title for i in parsed.items] == ["Нефть & газ", "Вторая"]
    assert parsed.warning and parsed.warning.startswith("ill-formed feed, read leniently")


def test_surrogate_character_references_do_not_lose_the_feed() -> None:
    # expat rejects them, and feedparser's lenient parser crashed on them (found by fuzzing).
    parsed = parse(rss(item("Смайлик &#xD83D;&#xDE00; и &#55357;") + item("Вторая", guid="n-2")))
    assert [i.title for i in parsed.items] == ["Смайлик \ufffd\ufffd и \ufffd", "Вторая"]


def test_feedparser_crashes_become_parse_errors() -> None:
    # A stray </width> inside <image>: feedparser raises TypeError from int(None) (found by fuzzing).
    with pytest.raises(ParseError, match=r"the parser failed \(TypeError"):
        parse(b'<rss version="2.0"><channel><image></width></image></channel></rss>')


def test_gzip_without_content_encoding_is_inflated_and_capped() -> None:
    assert parse(gzip.compress(RU_FEED.encode())).items[0].title == RU_TITLE
    with pytest.raises(ParseError, match="inflates past"):
        parse(gzip.compress(b"\0" * (11 << 20)))


# --- items ---------------------------------------------------------------------------------------------------


def test_html_descriptions_become_plain_text() -> None:
    html = (
        "&lt;style&gt;p{color:red}&lt;/style&gt;&lt;p&gt;Триполи &amp;amp; Бенгази:&lt;br&gt;"
        "  переговоры\n  продолжаются&lt;/p&gt;&lt;script&gt;alert('x')&lt;/script&gt;&lt;p&gt;Конец&lt;/p&gt;"
    )
    (it,) = parse(rss(item(description=html))).items
    assert it.summary == "Триполи & Бенгази:\nпереговоры продолжаются\n\nКонец"


def test_content_encoded_is_content() -> None:
    doc = rss(
        item(description="Кратко", **{"content:encoded": "<![CDATA[<p>Полный текст</p><p>о Ливии</p>]]>"})
    ).replace('<rss version="2.0">', '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">')
    (it,) = parse(doc).items
    assert (it.summary, it.content, it.text) == ("Кратко", "Полный текст\n\nо Ливии", "Полный текст\n\nо Ливии")


def test_key_falls_back_to_link_without_tracking_parameters() -> None:
    link = "https://News.Example.org/a/1?id=7&utm_source=rss&utm_medium=feed&fbclid=x&yclid=9#comments"
    (it,) = parse(rss(item(guid=None, link=link.replace("&", "&amp;")))).items
    assert it.key == "https://news.example.org/a/1?id=7"
    assert it.link == link


def test_huge_guid_is_hashed() -> None:
    key = parse(rss(item(guid="x" * 5000))).items[0].key
    assert key.startswith("sha1:")
    assert len(key) == 45


def test_key_falls_back_to_title_and_date_hash_and_is_stable() -> None:
    doc = rss(item("Без ссылки", guid=None, link=None, pubDate="Tue, 24 Nov 2026 10:00:00 GMT"))
    first = parse(doc).items[0]
    again = parse_feed(doc.encode(), feed="world", url=URL, now=NOW + timedelta(hours=1)).items[0]
    assert first.key.startswith("sha1:")
    assert first.key == again.key
    undated = rss(item("Без даты", guid=None, link=None))
    assert (
        parse(undated).items[0].key
        == parse_feed(undated.encode(), feed="w", url=URL, now=NOW - timedelta(1)).items[0].key
    )


def test_missing_date_is_now_and_future_dates_are_clamped() -> None:
    parsed = parse(rss(item(guid="a") + item(guid="b", pubDate="Sat, 01 Jan 2039 00:00:00 GMT")))
    assert [i.published for i in parsed.items] == [NOW, NOW]


def test_updated_is_used_when_published_is_missing() -> None:
    atom = """<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
<entry><id>1</id><title>T</title><updated>2026-11-20T00:00:00Z</updated></entry></feed>"""
    assert parse(atom).items[0].published == datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("javascript:alert(1)", None),
        ("mailto:desk@example.org", None),
        ("ftp://example.org/file", None),
        ("/world/3", "https://news.example.org/world/3"),
        ("world/4", "https://news.example.org/rss/world/4"),
        ("http://example.org/x", "http://example.org/x"),
    ],
)
def test_only_http_links_are_kept(link: str, expected: str | None) -> None:
    assert parse(rss(item(link=link))).items[0].link == expected


def test_entries_without_title_text_or_link_are_skipped() -> None:
    parsed = parse(rss('<item><guid isPermaLink="false">empty</guid></item>' + item()))
    assert [i.key for i in parsed.items] == ["n-1"]


def test_duplicate_guids_keep_the_first() -> None:
    parsed = parse(rss(item("Первая", guid="dup") + item("Вторая", guid="dup") + item("Третья", guid="other")))
    assert [i.title for i in parsed.items] == ["Первая", "Третья"]


def test_double_escaped_plain_title_is_unescaped() -> None:
    assert parse(rss(item("Заявление &amp;quot;ПНЕ&amp;quot;"))).items[0].title == 'Заявление "ПНЕ"'


def test_bad_ttl_is_ignored() -> None:
    assert parse(rss(item(), extra="<ttl>soon</ttl>")).ttl is None


def test_normalise_link() -> None:
    assert normalise_link("HTTPS://Example.ORG?utm_campaign=x&gclid=1&q=a+b#top") == "https://example.org/?q=a+b"
    assert normalise_link("https://example.org/p?b=2&a=1") == "https://example.org/p?b=2&a=1"


# --- html_to_text -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("AT&amp;T &lt;b&gt;", "AT&T <b>"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("line<br>break<br/><br/>again", "line\nbreak\nagain"),
        ("<div>  lots \n\t of   <b>space</b>\u00a0here </div>", "lots of space here"),
        ("<script>var x = '<p>';</script><style>.a{}</style>Text", "Text"),
        ("before<!-- hidden <p>comment</p> -->after", "beforeafter"),
        ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
        ("<p>unclosed <b>bold <i>both", "unclosed bold both"),
        ("<", "<"),
        ("x < y and y > z", "x < y and y > z"),
        ("<p>&laquo;Ливия&raquo; &mdash; &#1058;&#x440;</p>", "«Ливия» — Тр"),
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text
