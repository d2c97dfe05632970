"""Rendering: content of an alert, escaping of hostile feed text, safe splitting under 4,096 characters."""

from __future__ import annotations

import io
import random
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor import config as cfg
from monitor.delivery import message
from monitor.delivery.channels import build_notifiers
from monitor.delivery.console import ConsoleNotifier
from monitor.delivery.highlight import highlight_spans, snippet
from monitor.delivery.markup import BOLD, ITALIC, Run, split_html, units
from monitor.delivery.message import (
    render_digest_telegram,
    render_html,
    render_subject,
    render_telegram,
    render_telegram_text,
    render_text,
    why_terms,
)
from monitor.delivery.untrusted import safe_link
from monitor.models import Alert, Item, Match
from tests.tgstub import LIMIT, utf16_len, visible_text

MSK = ZoneInfo("Europe/Moscow")
TOPICS = {"strategic": "Стратегическая стабильность", "iran": "Иран"}
T0 = datetime(2026, 11, 25, 11, 5, tzinfo=UTC)


def make_alert(
    title: str = "Лавров: Россия готова к диалогу по стратегической стабильности",
    *,
    link: str | None = "https://ria.ru/20261125/dsnv.html",
    summary: str = "Москва готова обсуждать вопросы стратегической стабильности и продление ДСНВ, заявил министр.",
    also: tuple[tuple[str, str | None], ...] = (),
    feed: str = "РИА Новости",
    alert_id: int = 1,
    matches: tuple[Match, ...] | None = None,
) -> Alert:
    item = Item(feed=feed, key=f"k{alert_id}", title=title, link=link, published=T0, summary=summary)
    default = (
        Match("strategic", 0.82, 0.5, True, terms=("стратегическ* стабильност*",), keyword_hits=("ДСНВ",)),
        Match("iran", 0.41, 0.4, True, terms=("иран",)),
        Match("dprk", 0.10, 0.5, False),
    )
    return Alert(id=alert_id, item=item, matches=matches or default, created=T0, also=also)


def check_chunks(chunks: list[str], limit: int = LIMIT) -> list[str]:
    """Every chunk as Telegram would take it: parseable, balanced, within the limit; their visible texts."""
    assert chunks
    texts = []
    for chunk in chunks:
        assert units(chunk) <= limit
        assert utf16_len(chunk) <= limit
        text = visible_text(chunk)  # raises on unbalanced tags, bare '&' or '<'
        assert text.strip()
        texts.append(text)
    return texts


# --- content -----------------------------------------------------------------------------------------


def test_alert_shows_every_part() -> None:
    also = (("ТАСС", "https://tass.ru/1"), ("РБК", None), ("ТАСС", "https://tass.ru/2"), ("Интерфакс", None),
            ("Коммерсантъ", None))  # fmt: skip
    [chunk] = render_telegram(make_alert(also=also), topics=TOPICS, tz=MSK)
    lines = chunk.split("\n")
    assert lines[0] == (
        '<b><a href="https://ria.ru/20261125/dsnv.html">'
        "Лавров: Россия готова к диалогу по стратегической стабильности</a></b>"
    )
    assert lines[1] == "<i>РИА Новости</i> · 25.11.2026 14:05 MSK"
    assert lines[2] == "🏷 Стратегическая стабильность 0.82 · Иран 0.41"  # unmatched topics are left out
    assert lines[3].startswith("<b>Стратегическая стабильность: </b>")  # each topic's own passage (issue 14)
    assert "вопросы <b>стратегической стабильности</b> и продление <b>ДСНВ</b>" in lines[3]
    # the analyst's keywords first, then words as the text has them (no stems); "иран" is not in the text
    assert lines[4] == "<i>why: ДСНВ, стратегической стабильности</i>"
    assert lines[5] == 'also: <a href="https://tass.ru/1">ТАСС</a>, РБК (+2)'
    check_chunks([chunk])


def test_each_matched_topic_shows_its_own_passage_and_why_line() -> None:
    # issue 14 §3: a readout matching several topics showed one passage and one why-line for the first two
    summary = (
        "Путин и Макрон обсудили по телефону ход урегулирования на Украине и выполнение Минских договоренностей. "
        "Отдельно президенты затронули иранскую ядерную программу и работу инспекторов МАГАТЭ в Иране. "
        "Глава государства сообщил, что стороны договорились продолжить контакты."
    )
    first, second, _ = summary.split(". ")
    matches = (
        Match("ukraine", 0.9, 0.5, True, terms=("урегулирован*", "сообщ*", "defenc*"),
              keyword_hits=("Минские договоренности",), passage=first + "."),
        Match("iran", 0.7, 0.5, True, terms=("ядерн*", "магатэ", "глава"), passage=second + "."),
    )  # fmt: skip
    topics = {"ukraine": "Украина: урегулирование", "iran": "Иран"}
    alert = make_alert(title="Путин и Макрон поговорили по телефону", summary=summary, matches=matches)
    [chunk] = render_telegram(alert, topics=topics, tz=MSK, high={"iran"})
    lines = chunk.split("\n")
    assert lines[2] == "🏷 Украина: урегулирование 0.90 · ‼ Иран 0.70"  # a priority: high topic is marked
    assert lines[3].startswith("<b>Украина: урегулирование: </b>Путин и Макрон")
    assert lines[4] == "<i>why: Минские договоренности, урегулирования</i>"  # no stems, no generic words
    assert lines[5].startswith("<b>‼ Иран: </b>Отдельно президенты") and "<b>МАГАТЭ</b>" in lines[5]
    assert lines[6] == "<i>why: ядерную, МАГАТЭ</i>"
    check_chunks([chunk])


def test_text_and_html_carry_the_same_parts() -> None:
    alert = make_alert(also=(("ТАСС", "https://tass.ru/1"),))
    text = render_text(alert, topics=TOPICS, tz=MSK)
    assert text.splitlines()[:3] == [
        "Лавров: Россия готова к диалогу по стратегической стабильности",
        "https://ria.ru/20261125/dsnv.html",
        "РИА Новости · 25.11.2026 14:05 MSK",
    ]
    assert "*стратегической стабильности*" in text and "why: ДСНВ, стратегической стабильности" in text
    assert "also: ТАСС <https://tass.ru/1>" in text
    page = render_html(alert, topics=TOPICS, tz=MSK)
    assert '<meta charset="utf-8">' in page and "<b>ДСНВ</b>" in page


def test_subject() -> None:
    assert render_subject(make_alert(), topics=TOPICS) == (
        "[Стратегическая стабильность, Иран] Лавров: Россия готова к диалогу по стратегической стабильности"
    )


# --- highlighting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "text", "found"),
    [
        ("стратегическ* стабильност*", "о Стратегической  стабильности мира", ["Стратегической  стабильности"]),
        ("ДСНВ", "продление ДСНВ-3 и ДСНВ.", ["ДСНВ", "ДСНВ"]),
        ("ДСНВ", "ОДСНВ", []),
        ("ракета", "пуск ракеты и ракетами", ["ракеты", "ракетами"]),
        ("ежик*", "Ёжики в тумане", ["Ёжики"]),
        ("a.b (c)", "x a.b (c) y axb c", ["a.b (c)"]),  # regex metacharacters are literal
        ("iran", "Iran and Iranian", ["Iran"]),
    ],
)
def test_highlight(term: str, text: str, found: list[str]) -> None:
    assert [text[s:e] for s, e in highlight_spans(text, [term])] == found


def test_snippet_starts_at_the_sentence_of_the_first_hit_and_ends_at_a_sentence() -> None:
    # issue 14: passages start and end at sentence boundaries (they were cut mid-sentence, with "…")
    text = "Вступление. " * 100 + "Речь шла о стратегической стабильности. " + "Хвост. " * 100
    window, spans = snippet(text, ["стратегическ* стабильност*"], width=200)
    assert window.startswith("Речь шла о ") and window.endswith("Хвост.") and len(window) <= 200
    assert [window[s:e] for s, e in spans] == ["стратегической стабильности"]


def test_snippet_of_one_long_sentence_is_a_window_of_words() -> None:
    text = "слово " * 300 + "о стабильности " + "слово " * 300
    window, spans = snippet(text, ["стабильност*"], width=200)
    assert window.startswith("…слово") and window.endswith("…") and len(window) <= 202
    assert [window[s:e] for s, e in spans] == ["стабильности"]


def test_highlights_cover_whole_words_and_stop_at_quotes() -> None:
    text = 'Переговоры в "нормандском" формате прошли на юго-западе; ДСНВ-3 и ДСНВ.'
    found = [text[s:e] for s, e in highlight_spans(text, ["нормандск* формат*", "запад*", "ДСНВ"])]
    assert found == ["нормандском", "формате", "юго-западе", "ДСНВ", "ДСНВ"]


# --- hostile text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        '<b>bold</b> & </a> <a href="javascript:alert(1)">x</a> &amp; &#0; &',
        "Ж" * 10_000,
        "שלום עולם مرحبا بالعالم — RTL \u202eevil\u202c text",
        "🚀🇷🇺👩‍👩‍👧 emoji " * 500,
        "control\x00\x01\x07\x08\x0b\x0c\x1b[31m\x7f\x85 chars",
        "CR\r\nLF\nInjected: header\r\n\r\nbody",
        "",
    ],
)
def test_hostile_titles(title: str) -> None:
    alert = make_alert(title, summary=title + " стратегической стабильности " + title, link="javascript:alert(1)")
    chunks = render_telegram(alert, topics=TOPICS, tz=MSK)
    texts = check_chunks(chunks)
    joined = "\n".join(chunks)
    assert "javascript:" not in re.sub(r">[^<]*<", "><", joined)  # never inside a tag
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", "".join(texts))
    assert len(chunks) == 1  # every field is bounded: an alert is always one message
    plain = render_text(alert, topics=TOPICS, tz=MSK)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", plain)
    assert "\n" not in render_subject(alert, topics=TOPICS)


def test_markup_in_a_title_is_shown_not_obeyed() -> None:
    [chunk] = render_telegram(make_alert('<b>x</b> & </a> "q"'), topics=TOPICS, tz=MSK)
    assert visible_text(chunk).split("\n")[0] == '<b>x</b> & </a> "q"'


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://ria.ru/a?b=1&c=2", True),
        ("http://tass.ru", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:text/html,<b>", False),
        ("//evil.example/x", False),
        ("https://x.ru/\nfoo", False),
        ("https://x.ru/" + "a" * 5000, False),
        (None, False),
    ],
)
def test_safe_link(url: str | None, ok: bool) -> None:
    assert (safe_link(url) is not None) is ok


def test_quotes_in_a_link_cannot_leave_the_attribute() -> None:
    [chunk] = render_telegram(make_alert(link='https://x.ru/"><b>boom'), topics=TOPICS, tz=MSK)
    assert '<a href="https://x.ru/&quot;&gt;&lt;b&gt;boom">' in chunk
    check_chunks([chunk])


# --- splitting -------------------------------------------------------------------------------------

ALPHABET = ["a", "Ж", " ", " ", "\n", "&", "<", ">", '"', "🚀", "ש", "&amp;", "</b>", "word "]


def random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


@pytest.mark.parametrize("seed", range(25))
def test_split_html_properties(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([80, 300, 1000, LIMIT])
    lines = []
    for _ in range(rng.randint(1, 60)):
        runs = []
        for _ in range(rng.randint(1, 6)):
            tags = rng.choice([(), (BOLD,), (ITALIC,), (BOLD, ("a", "https://x.ru/?a=1&b=<2>")), (("a", "http://y"),)])
            runs.append(Run(random_text(rng, rng.choice([0, 5, 50, 400, 3000])).replace("\n", " "), tags))
        lines.append(tuple(runs))
    chunks = split_html(lines, limit)
    texts = check_chunks(chunks, limit)
    expected = "".join(r.text for line in lines for r in line)
    assert re.sub(r"\s", "", "".join(texts)) == re.sub(r"\s", "", expected)  # nothing lost, nothing added


def test_split_prefers_line_boundaries() -> None:
    lines = [(Run(f"line {i} " + "x" * 50),) for i in range(200)]
    chunks = split_html(lines, 1000)
    assert len(chunks) > 5
    for chunk in chunks:
        assert all(re.fullmatch(r"line \d+ x{50}", line) for line in chunk.split("\n"))


def test_long_run_is_split_between_words_with_tags_reopened() -> None:
    run = Run("слово " * 2000, (BOLD, ("a", "https://x.ru")))
    chunks = split_html([(run,)], LIMIT)
    assert len(chunks) == 3
    for chunk in check_chunks(chunks):
        assert "слов " not in chunk
    assert all(c.startswith('<b><a href="https://x.ru">') and c.endswith("</a></b>") for c in chunks)


def test_entities_are_never_cut() -> None:
    chunks = split_html([(Run("&" * 5000),)], 100)
    check_chunks(chunks, 100)
    assert sum(len(visible_text(c)) for c in chunks) == 5000


def test_plain_text_message() -> None:
    chunks = render_telegram_text("<hello> & goodbye\n\n" + "строка\n" * 2000)
    texts = check_chunks(chunks)
    assert len(chunks) == 4 and texts[0].startswith("<hello> & goodbye")


def test_digest_groups_by_topic_and_splits() -> None:
    alerts = [make_alert(f"Новость {i} " + "длинный заголовок " * 5, alert_id=i) for i in range(150)]
    alerts += [make_alert(f"Иран {i}", alert_id=1000 + i, matches=(Match("iran", 0.9, 0.4, True),)) for i in range(3)]
    chunks = render_digest_telegram(alerts, "Digest: 153 alerts", topics=TOPICS, tz=MSK)
    texts = check_chunks(chunks)
    assert len(chunks) > 1
    joined = "\n".join(texts)
    assert texts[0].startswith("Digest: 153 alerts\n\nСтратегическая стабильность (150)\n• Новость 0 ")
    assert "Иран (3)\n• Иран 0 — РИА Новости, 25.11 14:05" in joined
    assert all(f"Новость {i} " in joined for i in range(150))
    assert message.group_by_topic(alerts, TOPICS)[0][0] == "Стратегическая стабильность"


def test_a_megabyte_of_text_renders_quickly() -> None:
    body = ("слово " * 200_000) + "о стратегической стабильности"
    started = time.perf_counter()
    [chunk] = render_telegram(make_alert(summary=body), topics=TOPICS, tz=MSK)
    assert time.perf_counter() - started < 1.0
    check_chunks([chunk])


def test_why_line_leads_with_keywords_and_skips_terms_they_already_say() -> None:
    match = Match(
        "strategic", 0.9, 0.5, True,
        terms=("стратегический", "стабильность", "вооружение"), keyword_hits=("стратегическая стабильность",),
    )  # fmt: skip
    libya = Match("libya", 0.8, 0.5, True, terms=("ливия", "огонь"), keyword_hits=("Ливия",))
    assert why_terms([match, libya]) == ["стратегическая стабильность", "вооружение", "Ливия", "огонь"]


def test_an_edit_tells_the_topics_a_story_gained_and_a_later_alert_says_it_continues_one() -> None:
    topics = {**TOPICS, "ukraine": "Ukraine settlement"}
    [edited] = render_telegram(replace(make_alert(also=(("ТАСС", None),)), gained=("ukraine",)), topics=topics, tz=MSK)
    assert edited.split("\n")[-2:] == ["<b>+ Ukraine settlement</b>", "also: ТАСС"]
    later_alert = replace(make_alert(), continues="Путин и Макрон поговорили по телефону")
    [later] = render_telegram(later_alert, topics=topics, tz=MSK)
    assert later.split("\n")[2] == "<i>↪ continues a story already sent: Путин и Макрон поговорили по телефону</i>"
    check_chunks([edited, later])


def test_priority_high_topics_are_marked_in_every_channel() -> None:
    config = cfg.Config.model_validate(
        {
            "topics": [{"id": "alarm", "name": "Тревога", "priority": "high"}, {"id": "iran", "name": "Иран"}],
            "feeds": [{"name": "Interfax", "url": "https://interfax.example/rss"}],
        }
    )
    notifiers = build_notifiers(config)
    try:
        console = notifiers["console"]
        assert isinstance(console, ConsoleNotifier)
        assert console.topics == {"alarm": "‼ Тревога", "iran": "Иран"}
    finally:
        for notifier in notifiers.values():
            notifier.close()


def test_a_digest_line_lists_the_storys_other_sources() -> None:
    also = (("ТАСС", "https://tass.ru/1"), ("РБК", None), ("Интерфакс", None))
    text = message.render_digest_text([make_alert(also=also)], "Digest", topics=TOPICS, tz=MSK)
    assert "— РИА Новости, 25.11 14:05, also ТАСС, РБК (+1) · #1" in text


def test_the_console_shows_a_story_update_as_one_short_line() -> None:
    out = io.StringIO()
    console = ConsoleNotifier(stream=out, topics={"strategic": "Стратегическая стабильность", "iran": "Иран"})
    alert = make_alert(also=(("TASS", "https://tass.example/1"), ("RIA", None), ("KOI", None)), alert_id=7)
    console.edit("", replace(alert, gained=("iran",)))
    line = out.getvalue()
    assert line.count("\n") == 1
    assert line.startswith("↺ Лавров: Россия готова")
    assert "+ Иран" in line
    assert "also: TASS, RIA (+1)" in line
    assert "alert #7" in line
