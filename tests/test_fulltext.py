"""extract_article: the article body of a page, with trafilatura or the lxml fallback; full text in a poll,
against the local feed server (pages on private addresses refused unless allowed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor import config as cfg
from monitor.app import open_app
from monitor.feeds import fulltext
from monitor.feeds.fulltext import extract_article, extract_with_lxml
from tests.fakes import FakeClock
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401 - fixture

PARAGRAPHS = [
    "Делегации Ливии встретились в Триполи и обсудили вывод иностранных сил из страны до конца года.",
    "По словам участников, стороны договорились о создании совместной комиссии по контролю за перемирием.",
    "Следующий раунд переговоров запланирован на декабрь; место встречи пока не объявлено.",
]
PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Переговоры в Триполи</title>"
    "<style>body{font:14px sans-serif}</style><script>var tracker = 'ЧУЖОЙ-СКРИПТ';</script></head><body>"
    "<header><nav><a href='/'>Главная</a> <a href='/world'>Мир</a> МЕНЮ-САЙТА</nav></header>"
    "<article><h1>Переговоры в Триполи</h1>"
    + "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    + "</article><aside><p>Читайте также: РЕКЛАМНЫЙ-БЛОК</p></aside>"
    "<footer><p>© Новости, 2026. ПОДВАЛ-САЙТА</p></footer></body></html>"
).encode()


def _check(text: str | None) -> None:
    assert text is not None
    for paragraph in PARAGRAPHS:
        assert paragraph in text
    for noise in ("ЧУЖОЙ-СКРИПТ", "МЕНЮ-САЙТА", "ПОДВАЛ-САЙТА", "font:14px"):
        assert noise not in text


def test_extract_article_finds_the_body() -> None:
    _check(extract_article(PAGE, "https://news.example.org/world/1"))


def test_lxml_fallback_finds_the_body() -> None:
    text = extract_with_lxml(PAGE)
    _check(text)
    assert text is not None and "РЕКЛАМНЫЙ-БЛОК" not in text


def test_fallback_is_used_when_trafilatura_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fulltext, "_trafilatura", lambda: None)
    _check(extract_article(PAGE, "https://news.example.org/world/1"))


def test_windows_1251_page_is_decoded() -> None:
    page = PAGE.decode().replace("charset='utf-8'", "charset='windows-1251'").encode("cp1251")
    _check(extract_article(page, "https://news.example.org/world/1"))


@pytest.mark.parametrize(
    "page",
    [
        b"",
        b"   ",
        b"<html><body><p>Too short.</p></body></html>",
        b"\x00\x01\x02 binary",
        b"<<<>>>",
        b"{}",
        b"<?xml encoding='x'?><body><script>a</script> \xef\xbf\xbfx",  # U+FFFF: lxml raised ValueError
    ],
)
def test_no_article_is_none(page: bytes) -> None:
    assert extract_article(page, "https://news.example.org/x") is None
    assert extract_with_lxml(page) is None or len(extract_with_lxml(page) or "") < fulltext.MIN_CHARS


def poll_full_text(tmp_path: Path, server: FeedServer, *, settings: str = "", feed: str = "") -> str:
    """One poll of a `full_text: true` feed whose item links to /article.html; the stored item's text."""
    server.route("/article.html", PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    link = server.url("/article.html")
    server.route(
        "/wire.xml",
        f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Wire</title><item>
        <guid>1</guid><title>Переговоры в Триполи</title><link>{link}</link><description>Коротко.</description>
        </item></channel></rss>""".encode(),
    )
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            settings:
              data_dir: {tmp_path / "data"}
            {settings}
            feeds:
              - {{name: Wire, url: "{server.url("/wire.xml")}", full_text: true{feed}}}
            topics:
              - {{id: libya, name: Ливия, keywords: [Ливия]}}
            """),
        encoding="utf-8",
    )
    app = open_app(cfg.load(str(path), env={}), clock=FakeClock())
    try:
        _, [item], _ = app.pipeline.ingest(app.config.feeds[0])
    finally:
        app.close()
    return item.text


def test_full_text_refuses_a_page_on_a_private_address(tmp_path: Path, feed_server: FeedServer) -> None:
    # Item links are written by whoever writes the feed: http://127.0.0.1:…/ is someone's internal service.
    text = poll_full_text(tmp_path, feed_server)
    assert "Коротко." in text and PARAGRAPHS[0] not in text  # the feed's own text kept
    assert feed_server.requests_to("/article.html") == []


@pytest.mark.parametrize(
    ("settings", "feed"), [("  allow_private_fetch: true", ""), ("", ", allow_private_fetch: true")]
)
def test_full_text_from_a_private_address_when_allowed(
    tmp_path: Path, feed_server: FeedServer, settings: str, feed: str
) -> None:
    text = poll_full_text(tmp_path, feed_server, settings=settings, feed=feed)
    assert all(paragraph in text for paragraph in PARAGRAPHS)
