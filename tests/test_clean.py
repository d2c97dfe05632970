"""Page-script residue is dropped from item text; prose, lists, scores and links stay (match/clean.py)."""

from __future__ import annotations

from monitor.match.clean import strip_code
from monitor.match.text import terms

PROSE = (
    "Министр обороны провёл переговоры с коллегой из соседней страны.\n"
    "Стороны обсудили поставки зерна; вопросы транзита; сроки поставок."
)
# A video player's setup call as a news site might leave it in the page text (written for this test).
PLAYER = (
    '  mediaplayer.key="Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==";\n'
    '  mediaplayer("js-player-5f3a9c").setup({ advertising: (function() {\n'
    "  if(window.location.pathname.indexOf('/preview/') + 1 > 0) { return {}; }\n"
    "  return { client: \"vast\", tag: 'https://ads.example.org/meta/1?rnd=' + Date.now(), } })(),\n"
    '  file:        "https://cdn.example.org/video/clip.mp4",\n'
    '  // title:       "\\u041F\\u0440\\u0438\\u043C\\u0435\\u0440\\x20\\u0432\\u0438\\u0434\\u0435\\u043E",\n'
    '  width: "100%", aspectratio: "16:9", skin: { name: "five" } });'
)
WIDGET = (
    "(function(d, s, id) { var js, fjs = d.getElementsByTagName(s)[0]; if (d.getElementById(id)) return; "
    'js = d.createElement(s); js.id = id; js.src = "//widgets.example.org/api.js"; }(document, "script", "w"));'
)
CSS = ".article-embed { position: relative; padding-bottom: 56.25%; }\n.article-embed iframe { width: 100%; }"
JSON_BLOB = 'renderChart("TIMESERIES", {"items":[{"keyword":"grain","geo":"","time":"all"}],"category":0});'


def test_prose_without_code_comes_back_unchanged() -> None:
    assert strip_code(PROSE) is PROSE
    text = "Курс: 1 доллар = 90 рублей. Счёт матча 2:1, время 11:05."  # one marker alone is prose
    assert strip_code(text) == text


def test_a_player_script_between_paragraphs_is_dropped_and_the_paragraphs_kept() -> None:
    text = f"{PROSE}\n\n{PLAYER}\nПосле паузы переговоры продолжились."
    out = strip_code(text)
    assert PROSE in out and "После паузы переговоры продолжились." in out
    for residue in ("mediaplayer", "window", "vast", "aspectratio", "mp4", "u041f", "x20"):
        assert residue not in out.lower()
    assert set(terms(out)) == set(terms(PROSE + "\nПосле паузы переговоры продолжились."))


def test_widget_loader_css_and_json_blobs_are_dropped() -> None:
    for code in (WIDGET, CSS, JSON_BLOB):
        out = strip_code(f"Первый абзац статьи о торговле.\n{code}\nВторой абзац.")
        assert out.split("\n") == ["Первый абзац статьи о торговле.", "Второй абзац."], code


def test_escaped_unicode_runs_are_dropped_inside_prose_too() -> None:
    text = "Подпись к видео: \\u0421\\u0438\\u0440\\u0438\\u044F\\x20 конец подписи"
    assert strip_code(text) == "Подпись к видео:   конец подписи"
    assert "u0421" not in terms(strip_code(text))
    assert strip_code("путь C:\\x1 в тексте") == "путь C:\\x1 в тексте"  # one escape alone is not a run


def test_links_with_query_strings_and_lists_with_semicolons_stay() -> None:
    text = (
        "Подробнее в отчёте (https://example.org/report?utm_source=feed&utm_medium=rss&id=7) и на сайте.\n"
        "Меры: запрет экспорта; ограничения для банков; заморозка активов (см. список)."
    )
    assert strip_code(text) == text


def test_english_code_and_prose() -> None:
    text = "Oil prices rose on Tuesday.\nvar config = { autoplay: true, muted: false };\nTraders said supply was tight."
    assert strip_code(text) == "Oil prices rose on Tuesday.\nTraders said supply was tight."
