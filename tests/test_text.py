"""Normalisation, tokens and morphology (Russian cases and adjectives, English plurals, codes)."""

from __future__ import annotations

import Stemmer  # type: ignore[import-untyped]

from monitor.match.text import (
    TermScan,
    _morph,
    _ru_term,
    derived_from,
    normalise,
    normalised_terms,
    term_spans,
    terms,
    tokens,
)


def test_normalise_folds_case_yo_dashes_and_compatibility_forms() -> None:
    assert normalise("Ёлка — ЕЩЁ") == "елка - еще"
    assert normalise("ﬁle") == "file"


def test_tokens_keep_codes_and_abbreviations() -> None:
    toks = tokens("СНВ-3, ДРСМД, С-400, New START, F-16 и U.S. — а также российско-французский")
    assert toks[:7] == ["снв-3", "дрсмд", "с-400", "new", "start", "f-16", "и"]
    assert "u.s" in toks
    assert toks[-2:] == ["российско", "французский"]  # alphabetic compounds split, codes kept whole


def test_russian_noun_cases_share_a_term() -> None:
    assert terms("Ливия") == terms("Ливии") == terms("Ливией") == ["ливия"]
    assert terms("санкции") == terms("санкций") == terms("санкциями")


def test_russian_adjectives_share_a_term_and_place_adjectives_point_to_the_noun() -> None:
    assert terms("стратегическая стабильность") == terms("стратегической стабильности")
    assert terms("ливийского") == ["ливийский"]
    assert "ливия" in derived_from("ливийский")
    assert "сирия" in derived_from("сирийский")
    assert "корея" in derived_from("корейский")
    assert "ливан" not in derived_from("ливийский")  # no over-stemming: Libya is not Lebanon
    assert terms("Ливия") != terms("Ливан")


def test_unknown_names_are_stemmed_consistently() -> None:
    assert terms("Хафтар") == terms("Хафтара") == terms("Хафтаром")


def test_a_word_outside_the_dictionary_is_stemmed_without_being_parsed() -> None:
    # _ru_term asks the dictionary before parsing: the answer must be the one the best parse would give.
    morph = _morph()
    known = ["ливия", "переговорах", "домов", "песков", "заявил", "стабильности", "ракетами", "нетаньяху"]
    unknown = ["хафтара", "сараджа", "бивуакаптер", "вагнеровцы", "зеленского", "ооновский"]
    for word in known + unknown:
        assert morph.word_is_known(word) == (word in known) == morph.parse(word)[0].is_known, word
    stem = Stemmer.Stemmer("russian").stemWord
    assert [_ru_term(word) for word in unknown] == [stem(word) for word in unknown]
    assert _ru_term("переговорах") == "переговоры"


def test_english_plurals_and_demonyms() -> None:
    assert terms("prices") == terms("price")
    assert terms("sanctions") == terms("sanction")
    assert "syria" in derived_from(terms("Syrian")[0])


def test_stop_words_are_dropped_in_both_languages() -> None:
    assert terms("и в на по the of and") == []
    assert terms("Контроль над вооружениями") == ["контроль", "вооружение"]


def test_codes_survive_as_terms() -> None:
    assert terms("поставки С-400 и F-16") == ["поставка", "с-400", "f-16"]


def test_term_spans_point_into_the_original_text() -> None:
    text = "Документ № 5: переговоры по Ливии"
    got, starts = term_spans(text)
    assert got == terms(text)
    assert text[starts[got.index("ливия")] :].startswith("Ливии")


def test_the_model_reads_the_first_read_chars_of_a_title_and_a_text() -> None:
    from monitor.match.text import READ_CHARS, analyse, readable

    long = "Ливия " * (READ_CHARS // 3)
    assert readable(long) == long[:READ_CHARS]
    analysed = analyse(long, long + "Триполи")
    assert len(analysed.title) == len(analysed.text) == READ_CHARS
    assert "триполи" not in analysed.text_scan.terms  # past the cap: not read
    assert readable("Перемирие в Ливии.") == "Перемирие в Ливии."


def test_a_scans_head_is_the_normalised_prefix_split_and_made_into_terms() -> None:
    # Story features read the body's first characters through TermScan.head instead of analysing them again.
    texts = [
        "Российско-французские переговоры прошли в Париже; стороны обсудили поставки С-400 и СНВ-3.\n\n" * 30,
        "U.S. and Japan agreed on the US-Japan trade deal, officials said.  Tariffs  on F-16 parts fell." * 20,
        "ливии, «снв-3» нефть/газ —  ... " * 10,
        "   leading and trailing   ",
        "",
    ]
    for text in texts:
        scan = TermScan(text)
        for n in sorted({0, 1, 2, 5, 17, 100, 299, 300, 301, 1499, 1500, len(text) - 1, len(text), len(text) + 5}):
            if n < 0:
                continue
            chunks, found = scan.head(n)
            assert list(chunks) == scan.norm[:n].split(), (text[:20], n)
            assert found == normalised_terms(scan.norm[:n]) == terms(text[:n]), (text[:20], n)
