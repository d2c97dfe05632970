"""extract_article: the article body of a page, with trafilatura or the lxml fallback."""

from __future__ import annotations

import pytest

from monitor.feeds import fulltext
from monitor.feeds.fulltext import extract_article, extract_with_lxml

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
