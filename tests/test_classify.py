"""The topic model on small synthetic Russian/English texts: phrases, vetoes, passages, explanations, persistence."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from monitor.config import Topic
from monitor.errors import ModelError
from monitor.match.classify import TopicModel
from monitor.match.explain import explanation_json, format_explanation

TOPICS = [
    Topic(
        id="strategic",
        name="Стратегическая стабильность",
        description="Стратегическая стабильность, контроль над вооружениями, договоры ДСНВ и ДРСМД, ядерные ракеты.",
        keywords=["стратегическая стабильность", "контроль над вооружениями", "ДСНВ", "New START", "ДРСМД"],
    ),
    Topic(
        id="libya",
        name="Ливия",
        description="Ливия: конфликт, правительство в Триполи, армия Хафтара, прекращение огня.",
        keywords=["Ливия", "Триполи", "Хафтар"],
        exclude=["футбол"],
    ),
    Topic(
        id="grain",
        name="Grain",
        description="Grain markets: wheat and corn harvests, exports and tenders.",
        keywords=["wheat", "corn", "grain"],
    ),
]
EXAMPLES = {
    "strategic": (
        ("Переговоры о ДСНВ", "Россия и США обсудили продление договора ДСНВ и стратегическую стабильность."),
    ),
    "libya": (("Бои под Триполи", "Армия Хафтара продолжает наступление на Триполи, ООН призывает к перемирию."),),
    "grain": (("Wheat exports rise", "Wheat and corn exports rose as the harvest beat forecasts."),),
}
FILLER = [
    "Сборная провела тренировку перед матчем чемпионата, тренер доволен формой игроков.",
    "В Москве ожидается дождь и похолодание, синоптики советуют взять зонт.",
    "Театр представил премьеру спектакля по пьесе Чехова, зрители аплодировали стоя.",
    "Центральный банк сохранил ключевую ставку, инфляция замедлилась до четырех процентов.",
    "В городе открылась новая станция метро, пассажиропоток вырос.",
    "Выставка современного искусства открылась в галерее, художники показали инсталляции.",
    "The city council approved a new budget for schools and road repairs.",
    "Shares of technology companies rose on strong quarterly earnings.",
]
BACKGROUND = [f"{text} Выпуск {i}." for i in range(6) for text in FILLER]


@pytest.fixture(scope="module")
def model() -> TopicModel:
    return TopicModel.build(TOPICS, EXAMPLES, BACKGROUND)


def by_id(matches: list) -> dict:  # type: ignore[type-arg]
    return {m.topic: m for m in matches}


def test_one_match_per_topic_in_config_order(model: TopicModel) -> None:
    matches = model.classify("Погода", "В Москве ожидается дождь.")
    assert [m.topic for m in matches] == ["strategic", "libya", "grain"] == list(model.topic_ids)
    assert not any(m.matched for m in matches)


def test_keyword_phrase_matches_other_case_forms(model: TopicModel) -> None:
    m = by_id(
        model.classify("Кремль", "Стороны обсудили вопросы стратегической стабильности и контроля над вооружениями.")
    )
    assert m["strategic"].matched
    assert set(m["strategic"].keyword_hits) == {"стратегическая стабильность", "контроль над вооружениями"}
    assert not m["libya"].matched


def test_country_keyword_matches_its_adjective(model: TopicModel) -> None:
    m = by_id(model.classify("Переговоры", "Участники ливийского урегулирования встретились в Берлине."))
    assert m["libya"].keyword_hits == ("Ливия",)


def test_exclude_phrase_vetoes_the_topic(model: TopicModel) -> None:
    text = "Сборная Ливии по футболу сыграла вничью, матч прошёл в Триполи."
    m = by_id(model.classify("Футбол", text))["libya"]
    assert not m.matched
    assert m.vetoed_by == "футбол"
    assert m.keyword_hits  # the keywords were found, the exclude phrase won


def test_multi_topic_article_matches_through_its_passage(model: TopicModel) -> None:
    culture = " ".join(FILLER[2:6] * 6)  # a long readout about other things
    libya = "Лидеры выразили озабоченность продолжением боевых действий в Ливии и призвали к прекращению огня в Ливии."
    text = f"{culture} {libya} {culture}"
    m = by_id(model.classify("Итоги переговоров", text, "ru"))
    assert m["libya"].matched
    assert "Ливии" in m["libya"].passage
    assert not m["strategic"].matched and not m["grain"].matched


def test_english_item(model: TopicModel) -> None:
    m = by_id(model.classify("Wheat tender", "Egypt bought wheat in a tender; corn prices were steady.", "en"))
    assert m["grain"].matched
    assert not m["libya"].matched


def test_explanation_contents(model: TopicModel) -> None:
    m = by_id(model.classify("Армия Хафтара у Триполи", "Армия Хафтара возобновила наступление на Триполи."))["libya"]
    assert m.matched and 0.0 < m.threshold <= m.score < 1.0
    assert "хафтар" in m.terms
    assert set(m.keyword_hits) == {"Хафтар", "Триполи"}
    assert "Триполи" in m.passage
    assert m.vetoed_by is None


def test_explain_all_fills_every_topic_and_formats(model: TopicModel) -> None:
    matches = model.classify("Армия Хафтара", "Армия Хафтара у Триполи; цены на пшеницу.", explain_all=True)
    assert all(m.passage for m in matches)
    data = explanation_json(matches, TOPICS)
    assert [t["id"] for t in data["topics"]] == ["strategic", "libya", "grain"]
    assert set(data["topics"][1]) >= {"id", "name", "score", "threshold", "matched", "terms", "passage"}
    text = format_explanation(matches, TOPICS)
    assert text.splitlines()[0].startswith("MATCH") and "libya (Ливия)" in text


def test_topic_threshold_overrides_the_default(model: TopicModel) -> None:
    text = " ".join(FILLER[:6] * 4) + " Ливия."  # one passing mention in a long item
    default = by_id(model.classify("Новости дня", text))["libya"]
    assert 0.0 < default.threshold < 0.5 and default.score < 0.99  # derived from the calibration (C_det-optimal)
    strict = [t.model_copy(update={"threshold": 0.99}) if t.id == "libya" else t for t in TOPICS]
    m = by_id(TopicModel.build(strict, EXAMPLES, BACKGROUND).classify("Новости дня", text))["libya"]
    assert m.threshold == 0.99 and m.score == default.score and not m.matched


def test_deterministic(model: TopicModel) -> None:
    again = TopicModel.build(TOPICS, EXAMPLES, BACKGROUND)
    text = "Армия Хафтара и договор ДСНВ: стратегическая стабильность, wheat."
    assert model.classify("Заголовок", text, explain_all=True) == again.classify("Заголовок", text, explain_all=True)
    assert model.classify("Заголовок", text) == model.classify("Заголовок", text)


def test_cold_start_without_background() -> None:
    model = TopicModel.build(TOPICS, {}, [])
    m = by_id(model.classify("Ливия", "Переговоры по Ливии в Триполи."))
    assert m["libya"].matched and not m["grain"].matched


def test_refit_returns_a_new_model_and_keeps_the_old(model: TopicModel) -> None:
    newer = model.refit([*BACKGROUND, "Ливия: переговоры в Триполи продолжаются."])
    assert newer is not model
    text = "Армия Хафтара возобновила наступление на Триполи."
    assert by_id(model.classify("", text))["libya"].matched
    assert by_id(newer.classify("", text))["libya"].matched


def test_save_and_load_keep_scores_and_accept_changed_topics(model: TopicModel, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = TopicModel.load(path, TOPICS, EXAMPLES)
    text = "Стороны обсудили стратегическую стабильность и положение в Ливии."
    assert loaded.classify("", text, explain_all=True) == model.classify("", text, explain_all=True)
    dprk = Topic(id="dprk", name="КНДР", keywords=["КНДР", "Пхеньян"], description="Северная Корея, ракеты.")
    changed = TopicModel.load(path, [*TOPICS, dprk], EXAMPLES)
    assert changed.topic_ids[-1] == "dprk"
    assert by_id(changed.classify("Пхеньян", "КНДР провела пуск ракеты, сообщил Пхеньян."))["dprk"].matched


def test_load_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        TopicModel.load(path, TOPICS, EXAMPLES)


def test_edge_cases(model: TopicModel) -> None:
    assert [m.score for m in model.classify("", "")] == [pytest.approx(m.score) for m in model.classify("", "")]
    assert not any(m.matched for m in model.classify("", ""))
    assert not any(m.matched for m in model.classify("Ъыъ", "зщшщз ъыъ 12345"))
    assert TopicModel.build([], {}, []).classify("Ливия", "Триполи") == []
    bare = TopicModel.build([Topic(id="bare", name="Bare")], {}, BACKGROUND)
    assert not bare.classify("Ливия", "Триполи")[0].matched
    assert model.refit([]).classify("Ливия", "Переговоры по Ливии в Триполи.")[1].matched


def test_concurrent_classify_gives_the_same_answers(model: TopicModel) -> None:
    texts = [f"{FILLER[i % len(FILLER)]} Армия Хафтара у Триполи, договор ДСНВ, wheat {i}." for i in range(40)]
    expected = [model.classify("", t) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda t: model.classify("", t), texts))
    assert got == expected


def _stream(n: int) -> list[str]:
    """A small unlabelled stream: grain wires (keyword "wheat" with their usual company) among unrelated news."""
    grain = "Wheat harvest in Kansas: silos full, elevators report record tonnes, farmers sell early. Issue {i}."
    other = [f"{text} Issue {{i}}." for text in FILLER]
    return [(grain if i % 5 == 0 else other[i % len(other)]).format(i=i) for i in range(n)]


def test_self_training_learns_the_streams_words_for_a_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    # No keyword in the item, only the words that come with "wheat" in this stream: the self-trained model
    # (pseudo-labels from the prior probability on the background) raises its score; the rule alone cannot.
    item = ("Kansas elevators", "Silos are full and elevators report record tonnes as farmers sell early.")
    learned = TopicModel.build(TOPICS, EXAMPLES, _stream(400))
    monkeypatch.setattr("monitor.match.classify.SELF_TRAIN_MIN", 10**9)
    rule_only = TopicModel.build(TOPICS, EXAMPLES, _stream(400))
    assert by_id(learned.classify(*item))["grain"].score > by_id(rule_only.classify(*item))["grain"].score
    # Both ways: an item about something else scores lower with the stream's evidence than without it, and a grain
    # wire still matches.
    weather = ("Погода", "В Москве ожидается дождь.")
    assert by_id(learned.classify(*weather))["grain"].score <= by_id(rule_only.classify(*weather))["grain"].score
    assert by_id(learned.classify("Wheat", "Wheat exports rose as the harvest beat forecasts."))["grain"].matched


def _markets_stream(n: int) -> list[str]:
    """Grain wires (wheat in the lead) among stock reports that name wheat once, at the end, and other news."""
    grain = "Wheat harvest in Kansas: silos full, elevators report record tonnes, farmers sell early. Issue {i}."
    stocks = (
        "Stocks: shares of technology companies rose on strong quarterly earnings, the index gained, traders "
        "cited results of big banks and bond yields eased. Issue {i}. Wheat futures were little changed."
    )
    other = [f"{text} Issue {{i}}." for text in FILLER]
    return [(grain if i % 5 == 0 else stocks if i % 5 == 1 else other[i % len(other)]).format(i=i) for i in range(n)]


def test_a_passing_mention_scores_below_the_topics_items_and_scope_about_discounts_it_as_much() -> None:
    # The stream's own evidence (self-training) tells a stock report that names wheat once in passing from the grain
    # wires: it scores far below a wire, and with scope "about" (positives only from wires that lead with wheat) no
    # higher; the wire matches either way, and one topic's scope leaves the others alone.
    passing = (
        "Stocks rally",
        "Shares of technology companies rose on strong quarterly earnings and the index gained as traders cited "
        "results of big banks; bond yields eased. Wheat futures were little changed.",
    )
    wire = ("Kansas wheat", "Wheat harvest in Kansas: silos full, elevators report record tonnes, farmers sell early.")
    about = [t.model_copy(update={"scope": "about"}) if t.id == "grain" else t for t in TOPICS]
    mentions_model = TopicModel.build(TOPICS, EXAMPLES, _markets_stream(400))
    about_model = TopicModel.build(about, EXAMPLES, _markets_stream(400))
    told, discounted = by_id(mentions_model.classify(*passing))["grain"], by_id(about_model.classify(*passing))["grain"]
    assert told.keyword_hits == ("wheat",) and not told.matched
    assert told.score < by_id(mentions_model.classify(*wire))["grain"].score / 10
    assert discounted.score <= told.score + 1e-3
    assert by_id(mentions_model.classify(*wire))["grain"].matched
    assert by_id(about_model.classify(*wire))["grain"].matched
    for a, b in zip(mentions_model.classify(*passing), about_model.classify(*passing), strict=True):
        if a.topic != "grain":
            assert a.score == b.score


def test_the_opening_as_a_passage_is_trimmed_with_an_ellipsis() -> None:
    from monitor.match.classify import PASSAGE_CHARS, _passage
    from monitor.match.text import TermScan

    long = "Переговоры  о  перемирии в Ливии.\n" * 40
    opening = _passage(long, TermScan(long), [0, 20], 0)
    assert PASSAGE_CHARS - 2 <= len(opening) <= PASSAGE_CHARS and opening.endswith("…") and "  " not in opening
    short = "Перемирие в Ливии соблюдается."
    assert _passage(short, TermScan(short), [], 0) == short


def _varied() -> list[tuple[str, str]]:
    """Hand-written items of every kind the batch must score as one item alone does: Russian and English, keyword
    hits in the title or the text, vetoes, a long multi-topic readout, unseen names, empty and title-only items."""
    culture = " ".join(FILLER[2:6] * 6)
    return [
        ("Армия Хафтара у Триполи", "Армия Хафтара возобновила наступление на Триполи."),
        ("Футбол", "Сборная Ливии по футболу сыграла вничью, матч прошёл в Триполи."),  # vetoed
        ("Итоги переговоров", f"{culture} Лидеры обсудили положение в Ливии и договор ДСНВ. {culture}"),
        ("", ""),
        ("Wheat tender", "Egypt bought wheat in a tender; corn prices were steady."),
        ("Кремль", "Стороны обсудили вопросы стратегической стабильности и контроля над вооружениями."),
        ("Погода", ""),
        ("", "Зыхвуртский Кламбертон посетил Шмоглодию и Ливию; wheat, Хафтар, Квирдл."),  # unseen names
        ("Grain", " ".join(["Wheat and corn exports rose as the harvest beat forecasts."] * 80)),  # long
        ("Новости дня", " ".join(FILLER[:6] * 4) + " Ливия."),
        ("Ъыъ", "зщшщз ъыъ 12345"),
        ("ДСНВ", "New START: the treaty on strategic arms, стратегическая стабильность, wheat."),
    ]


@pytest.mark.parametrize("explain_all", [False, True])
def test_a_batch_scores_as_each_item_alone(model: TopicModel, explain_all: bool) -> None:
    from monitor.match.text import analyse

    items = _varied()
    alone = [model.classify(title, text, explain_all=explain_all) for title, text in items]
    batch = model.classify_texts([analyse(title, text) for title, text in items], explain_all=explain_all)
    assert batch == alone
    assert model.classify_texts([]) == []
    # any batch: reversed, and in twos
    again = model.classify_texts([analyse(t, x) for t, x in reversed(items)], explain_all=explain_all)[::-1]
    assert again == alone
    pairs = [model.classify_texts([analyse(*it) for it in items[i : i + 2]]) for i in range(0, len(items), 2)]
    assert [m for pair in pairs for m in pair] == [model.classify(t, x) for t, x in items]


def test_a_batch_with_labels_scores_as_each_item_alone(model: TopicModel) -> None:
    from monitor.match.text import analyse
    from monitor.models import Item, Label
    from tests.test_learn import T0

    items = _varied()
    labelled = []
    for n, (title, text) in enumerate(items[:3]):
        it = Item(feed="f", key=f"k{n}", title=title, link=None, published=T0, content=text)
        labelled.append((Label(item=it.uid, topic="libya", relevant=n != 1, source="cli"), it))
    taught = model.with_labels(labelled)
    alone = [taught.classify(title, text) for title, text in items]
    assert taught.classify_texts([analyse(t, x) for t, x in items]) == alone


def test_memory_is_linear_in_the_text(model: TopicModel) -> None:
    # Issue 12: a 5 MB description took 3.2 GB (dense passages × terms and passages × keyword hits). Read without
    # the cap (an AnalysedText made directly), an item of 40,000 words, 2,800 of them distinct, with a keyword hit
    # every 50 words: the dense blocks took 94 MB at their peak (2,000 passages × 2,800 terms); linear, ~30 MB.
    import random
    import tracemalloc

    from monitor.match.text import AnalysedText

    rng = random.Random(5)
    words = [f"слово{chr(1072 + i % 32)}{chr(1072 + i // 32 % 32)}{chr(1072 + i // 1024)}" for i in range(3000)]
    text = " ".join(rng.choice(words) if i % 50 else "Ливия" for i in range(40_000))
    analysed = AnalysedText("Ливия", text)
    assert len(analysed.text_scan.terms) == 40_000  # the text's terms, made before: not what is measured
    tracemalloc.start()
    try:
        matches = by_id(model.classify_texts([analysed])[0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert matches["libya"].keyword_hits == ("Ливия",) and matches["libya"].passage
    assert peak < 50e6


def test_a_huge_item_is_read_up_to_the_cap(model: TopicModel) -> None:
    import tracemalloc

    from monitor.match.text import READ_CHARS

    text = "Армия Хафтара у Триполи. Переговоры о перемирии продолжаются. " * 36_000  # ~2.2 MB, hits all along
    tracemalloc.start()
    try:
        m = by_id(model.classify("Ливия", text))["libya"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert m.keyword_hits and len(text) > 20 * READ_CHARS
    assert peak < 60e6  # the cap: what a 100,000-character item takes (all of it: ~2 GB of windows × hits before)
