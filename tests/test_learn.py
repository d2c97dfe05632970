"""Learning from the analyst's labels (match/learn.py through TopicModel.with_labels) and scores that rank."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pytest

from monitor.config import Topic
from monitor.match import learn, nearlabels
from monitor.match.classify import TopicModel
from monitor.match.explain import explanation_json, format_explanation
from monitor.match.score import ItemTerms
from monitor.match.text import terms
from monitor.models import Item, Label, Match
from tests.test_classify import BACKGROUND, EXAMPLES, TOPICS, by_id

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def item(key: str, title: str, text: str) -> Item:
    return Item(feed="test", key=key, title=title, link=None, published=T0, content=text)


def label(it: Item, topic: str, relevant: bool) -> tuple[Label, Item]:
    return Label(item=it.uid, topic=topic, relevant=relevant, source="cli"), it


@pytest.fixture(scope="module")
def model() -> TopicModel:
    return TopicModel.build(TOPICS, EXAMPLES, BACKGROUND)


LIBYA_TALKS = item(
    "talks",
    "Переговоры по Ливии",
    "Правительство в Триполи и армия Хафтара договорились о прекращении огня, ООН продолжит переговоры по Ливии.",
)
# One story told twice: an agency wire and its slightly edited reprint.
STORY = item(
    "wire",
    "Ливия закупит зерно",
    "Государственная компания Ливии объявила тендер на закупку пшеницы, поставки начнутся весной, сообщили в порту.",
)
REPRINT = item(
    "reprint",
    "Ливия закупит зерно у поставщиков",
    "Государственная компания Ливии объявила тендер на закупку пшеницы, поставки начнутся весной, сообщили в порту "
    "агентству.",
)


def score(m: TopicModel, it: Item, topic: str) -> Match:
    return by_id(m.classify(it.title, it.text))[topic]


def test_no_labels_change_nothing(model: TopicModel) -> None:
    same = model.with_labels([])
    for it in (LIBYA_TALKS, STORY):
        assert same.classify(it.title, it.text, explain_all=True) == model.classify(it.title, it.text, explain_all=True)
    assert same.labels == () and same.label_effects(STORY.title, STORY.text) == {}


def test_a_not_relevant_label_silences_the_same_story_and_leaves_the_topic_alone(model: TopicModel) -> None:
    assert score(model, STORY, "libya").matched and score(model, REPRINT, "libya").matched
    taught = model.with_labels([label(STORY, "libya", False)])
    assert not score(taught, REPRINT, "libya").matched  # the reprint inherits the verdict
    talks_before, talks_after = score(model, LIBYA_TALKS, "libya"), score(taught, LIBYA_TALKS, "libya")
    assert talks_after.matched and talks_after.score == pytest.approx(talks_before.score, abs=0.05)
    assert score(model, REPRINT, "libya").matched  # the old model is untouched (swapped, not mutated)


def test_five_labels_cannot_wreck_a_topic(model: TopicModel) -> None:
    # Five different passing mentions marked not relevant: the topic still alerts on an item about it.
    passing = [
        item(f"p{i}", title, text)
        for i, (title, text) in enumerate(
            [
                ("Погода", "В Москве дождь. Синоптики напомнили, что в Ливии сейчас жарко."),
                ("Театр", "Премьера спектакля собрала полный зал; среди гостей был посол Ливии."),
                ("Метро", "Открылась новая станция метро. В Триполи метро пока нет."),
                ("Банк", "Центральный банк сохранил ставку; экспорт нефти из Ливии не изменился."),
                ("Выставка", "Художники из Ливии и Туниса показали инсталляции в галерее."),
            ]
        )
    ]
    taught = model.with_labels([label(it, "libya", False) for it in passing])
    assert score(taught, LIBYA_TALKS, "libya").matched
    fitted = taught._labels[1]
    assert abs(fitted.w[0]) < 1.0  # a shift the prior keeps small


def passing_mentions(n: int, seed: int) -> list[Item]:
    """Items that name Libya once among other words, no two alike (so no label acts through the kernel)."""
    words = sorted({w for text in BACKGROUND for w in text.replace(",", " ").replace(".", " ").split() if len(w) > 3})
    rng = random.Random(seed)
    return [item(f"{seed}-{i}", "", " ".join([*rng.sample(words, 6), "и Ливия."])) for i in range(n)]


def test_many_labels_move_the_topic(model: TopicModel) -> None:
    # Forty different items that mention Libya only in passing, all marked not relevant: the topic's own labels now
    # dominate, and a new passing mention (not a copy of any of them) scores lower than before.
    labelled = passing_mentions(41, seed=1)
    taught = model.with_labels([label(it, "libya", False) for it in labelled[:40]])
    assert np.mean(taught._labels[1].phi[:, 2] > 0) < 0.2  # few labelled items are near-duplicates of another
    assert taught._labels[1].w[0] < -0.5  # the topic's calibration moved down
    new = labelled[40]
    assert score(taught, new, "libya").score < score(model, new, "libya").score - 0.05


def test_a_relevant_label_on_a_missed_item_brings_its_copies(model: TopicModel) -> None:
    missed = item("m", "Порт Мисураты", "Порт Мисураты принял танкер, власти Мисураты обещают новые рейсы.")
    copy = item("c", "Порт Мисураты открыт", "Порт Мисураты принял танкер, власти Мисураты обещают новые рейсы судам.")
    assert not score(model, copy, "libya").matched  # no Libya keyword: the model alone misses it
    taught = model.with_labels([label(missed, "libya", True)])
    assert score(taught, copy, "libya").matched


def test_the_last_label_wins_unknown_topics_are_ignored_and_refit_keeps_labels(model: TopicModel) -> None:
    taught = model.with_labels(
        [label(STORY, "libya", True), label(STORY, "nosuch", False), label(STORY, "libya", False)]
    )
    assert [(lab.topic, lab.relevant) for lab, _ in taught.labels] == [("libya", False)]
    assert not score(taught, REPRINT, "libya").matched
    refitted = taught.refit([*BACKGROUND, "Ливия: переговоры в Триполи продолжаются."])
    assert refitted.labels == taught.labels and not score(refitted, REPRINT, "libya").matched


def test_explain_says_how_much_the_labels_moved_the_score_and_which_weighed_most(model: TopicModel) -> None:
    taught = model.with_labels([label(STORY, "libya", False), label(LIBYA_TALKS, "libya", True)])
    effect = taught.label_effects(REPRINT.title, REPRINT.text)["libya"]
    assert (effect.relevant, effect.not_relevant) == (1, 1)
    assert effect.prior_score > effect.score
    title, relevant, moved = effect.weighed[0]
    assert title == STORY.title and not relevant and moved < -1.0
    effects = taught.label_effects(REPRINT.title, REPRINT.text)
    assert set(effects) == {"libya"}
    matches = taught.classify(REPRINT.title, REPRINT.text, explain_all=True)
    text = format_explanation(matches, TOPICS, effects)
    assert "labels: 1 relevant, 1 not; score without them" in text and f"✗ {moved:+.2f} log-odds  {STORY.title}" in text
    data = explanation_json(matches, TOPICS, effects)["topics"]
    assert data[1]["labels"]["weighed_most"][0]["title"] == STORY.title and "labels" not in data[0]


def test_labels_threshold_follows_the_topic_calibration() -> None:
    # Thirty passing mentions marked relevant: this analyst wants every mention, so more of the stream is expected to
    # be relevant to Libya and its cut (the C_det-optimal one for that prevalence) moves; other topics keep theirs.
    stream = BACKGROUND * 5 + [it.text for it in passing_mentions(30, seed=3)]  # the stream names Libya now and then
    model = TopicModel.build(TOPICS, EXAMPLES, stream)
    taught = model.with_labels([label(it, "libya", True) for it in passing_mentions(30, seed=2)])
    before, after = model.classify("", ""), taught.classify("", "")
    assert after[1].threshold > before[1].threshold
    assert (after[0].threshold, after[2].threshold) == (before[0].threshold, before[2].threshold)


def test_near_miss_rule() -> None:
    assert TopicModel.is_near_miss(Match(topic="t", score=0.06, threshold=0.1, matched=False))
    assert not TopicModel.is_near_miss(Match(topic="t", score=0.04, threshold=0.1, matched=False))
    assert not TopicModel.is_near_miss(Match(topic="t", score=0.2, threshold=0.1, matched=True))
    assert not TopicModel.is_near_miss(Match(topic="t", score=0.08, threshold=0.1, matched=False, vetoed_by="x"))


def test_fit_weights_sum_to_the_move() -> None:
    rng = np.random.default_rng(0)
    examples = [
        learn.Example(
            f"u{i}", f"t{i}", bool(i % 3 == 0), float(rng.normal()), np.array([i, 100 + i % 4]), np.array([0.8, 0.6])
        )
        for i in range(12)
    ]
    fitted = learn.fit_topic(examples)
    sims = fitted.similarities(np.array([3, 101]), np.array([0.6, 0.8]))
    kp, kn = fitted.kernel(sims)
    moved = fitted.weights(sims)
    assert moved.sum() == pytest.approx(np.array([1.0, kp, kn]) @ fitted.w, abs=1e-6)


# Scores that rank: an item about a topic above one that names it in passing, above one that does not (issue 11).
RANKING_TOPICS = [
    Topic(
        id="syria",
        name="Сирия",
        description="Сирия: гражданская война, переговоры об урегулировании, Дамаск, оппозиция, гуманитарная помощь.",
        keywords=["Сирия", "Дамаск", "Башар Асад", "Алеппо"],
    ),
    Topic(
        id="grain",
        name="Grain",
        description="Grain markets: wheat and corn harvests, crop estimates, exports and tenders.",
        keywords=["wheat", "corn", "grain"],
    ),
]
RANKING_EXAMPLES = {
    "syria": (("Переговоры по Сирии", "Делегации Дамаска и оппозиции обсудили перемирие и гуманитарные коридоры."),),
    "grain": (("Wheat crop forecast", "Analysts raised the wheat crop forecast as exports and tenders picked up."),),
}
RU_ABOUT = (
    "Путин и Эрдоган обсудили Сирию",
    "Президенты обсудили положение в Сирии: прекращение огня в Идлибе, работу гуманитарных коридоров и переговоры "
    "правительства в Дамаске с оппозицией. Стороны договорились продолжить консультации по сирийскому урегулированию "
    "и возвращению беженцев в Сирию.",
)
RU_PASSING = ("Сборная Сирии по футболу сыграет с Россией в Казани", "Матч пройдёт в субботу, билеты уже в продаже.")
RU_NONE = ("Сборная России сыграет в Казани", "Матч пройдёт в субботу, билеты уже в продаже.")
EN_ABOUT = (
    "Wheat exports climb as harvest beats forecasts",
    "Wheat exports rose for a third month as the winter wheat harvest beat forecasts; corn and grain shipments "
    "also climbed and Egypt bought wheat in a tender.",
)
EN_PASSING = (
    "Stocks rally on bank earnings",
    "Shares of technology companies rose on strong quarterly earnings and the index gained as traders cited "
    "results of big banks; bond yields eased and the dollar was steady. Wheat futures were little changed.",
)
EN_NONE = ("Stocks rally on bank earnings", "Shares of technology companies rose on strong quarterly earnings.")


@pytest.mark.parametrize("with_stream", [False, True])
def test_an_item_about_a_topic_scores_above_a_passing_mention_in_both_languages(with_stream: bool) -> None:
    background = BACKGROUND * 5 if with_stream else BACKGROUND  # with 240 items the model also self-trains
    ranking = TopicModel.build(RANKING_TOPICS, RANKING_EXAMPLES, background)
    for topic, cases in (("syria", (RU_ABOUT, RU_PASSING, RU_NONE)), ("grain", (EN_ABOUT, EN_PASSING, EN_NONE))):
        scores = [by_id(ranking.classify(title, text))[topic].score for title, text in cases]
        assert scores[0] > scores[1] > scores[2], (topic, scores)
        assert scores[0] < 1.0  # a probability, not a saturated squash


def test_the_batch_form_of_the_label_correction_matches_the_per_item_one(model: TopicModel) -> None:
    # The batch classification path corrects a poll's items at once (_label_logits_batch, nearlabels.py): the same
    # log-odds as one item at a time, and as the rule itself computed item by item against every labelled item
    # (learn.py: the shift, plus the kernel of the nearest labelled items; the reprint is close to a labelled
    # item, the talks are not).
    taught = model.with_labels([label(STORY, "libya", False), label(LIBYA_TALKS, "libya", True)])
    evidence = [taught._evidence(*(terms(t) for t in (it.title, it.text))) for it in (REPRINT, LIBYA_TALKS, STORY)]
    z0 = np.stack([taught._log_odds(s) for s in evidence])
    one_by_one = np.stack([taught._label_logits(s, z) for s, z in zip(evidence, z0, strict=True)])
    assert np.array_equal(taught._label_logits_batch(evidence, z0), one_by_one)
    # From nearlabels.BATCH_HEAVY items on, the heavy terms come from one cut for the batch: the same again
    assert len(evidence * 2) >= nearlabels.BATCH_HEAVY
    assert np.array_equal(taught._label_logits_batch(evidence * 2, np.vstack([z0, z0])), np.vstack([one_by_one] * 2))
    expected = z0 + taught._w0[None, :]
    for i, s in enumerate(evidence):
        ids, vec = taught._item_vector(s)
        for ti, fitted in taught._labels.items():
            kp, kn = fitted.kernel(fitted.similarities(*taught._topic_view(ti, ids, vec)))
            expected[i, ti] += taught._w[ti, 1] * kp + taught._w[ti, 2] * kn
    np.testing.assert_allclose(one_by_one, expected, rtol=0, atol=1e-9)
    assert one_by_one[0, 1] < z0[0, 1] - 3  # the reprint's Libya log-odds went down through the kernel
    assert np.array_equal(model._label_logits_batch(evidence, z0), z0)  # no labels: the prior as it is


def test_a_batch_finds_each_items_heavy_terms_ties_and_unseen_terms_included() -> None:
    # heavy_terms takes a batch's terms at or above each item's KEY_TERMS-th weight and partitions one by one only
    # the items with more terms tied at that weight than places (argpartition breaks the tie): the same (row, id)
    # pairs as a partition per item, for items with few terms, ties at the cut and out-of-vocabulary terms.
    rng = np.random.default_rng(3)
    oov = 1000
    items = []
    for n in range(40):
        u = [0, 2, 3, 8, 9, 12, 60][n % 7]
        unseen = tuple(f"name{n}-{k}" for k in range(n % 3)) if u >= 3 else ()
        ids = np.sort(rng.choice(oov, u - len(unseen), replace=False)).astype(np.int64)
        ids = np.concatenate([ids, oov + 1 + np.arange(len(unseen))])
        weights = rng.choice([0.5, 1.0, 1.5, 2.0, 3.0], size=u).astype(np.float32)  # few values: many ties
        items.append(ItemTerms(ids, weights[None, :], unseen))
    batch = nearlabels.Batch.of(items)
    assert len(batch) >= nearlabels.BATCH_HEAVY
    rows, heavy = nearlabels.heavy_terms(batch, oov)
    one_rows, one_heavy = nearlabels._heavy_one_by_one(batch, oov, range(len(batch)))
    assert sorted(zip(rows.tolist(), heavy.tolist(), strict=True)) == sorted(
        zip(one_rows.tolist(), one_heavy.tolist(), strict=True)
    )
    assert (heavy > oov).any() and len(set(rows.tolist())) < len(items)  # unseen terms met; short items have none


def test_one_items_look_up_on_bit_masks_finds_the_array_forms_candidates(model: TopicModel) -> None:
    # A batch of one counts shared heavy terms on bit masks (LabelIndex.near), a batch on arrays (candidates)
    labelled = [label(it, "libya", n % 2 == 0) for n, it in enumerate((STORY, LIBYA_TALKS, REPRINT))]
    labelled += [label(it, "grain", True) for it in (STORY, LIBYA_TALKS)]
    index = model.with_labels(labelled)._label_index
    pool = [*index.keys.tolist(), 7, 11, 13]
    rng = random.Random(5)
    for _ in range(300):
        heavy = rng.sample(pool, min(len(pool), rng.randint(0, nearlabels.KEY_TERMS)))
        _, owners = index.candidates(np.zeros(len(heavy), dtype=np.int64), np.asarray(heavy, dtype=np.int64))
        assert index.near(heavy) == owners.tolist()
    key_of = np.repeat(index.keys, np.diff(index.key_ptr))  # each posting's key
    assert all(g in index.near(key_of[index.key_owner == g].tolist()) for g in range(len(index.topic)))


def test_one_items_pairs_give_the_same_bits_at_once_as_one_by_one(
    model: TopicModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of one computes the dot products of its pairs in one look-up from PAIRS_AT_ONCE pairs, one by one below
    labelled = [label(it, "libya", n % 2 == 0) for n, it in enumerate((STORY, LIBYA_TALKS, REPRINT))]
    labelled += [label(it, "grain", n % 2 == 1) for n, it in enumerate((STORY, REPRINT))]
    taught = model.with_labels(labelled)
    evidence = [taught._evidence(*(terms(t) for t in (it.title, it.text))) for it in (REPRINT, LIBYA_TALKS, STORY)]
    index = taught._label_index
    pairs = [len(index.near(nearlabels._heavy(nearlabels.Batch.of([s]), 0, taught._oov))) for s in evidence]
    assert max(pairs) >= 3  # several pairs in one item, of two topics
    out = {}
    for at_once in (1, 10**9):
        monkeypatch.setattr(nearlabels, "PAIRS_AT_ONCE", at_once)
        out[at_once] = [taught._label_logits(s, taught._log_odds(s)) for s in evidence]
    assert all(np.array_equal(a, b) for a, b in zip(out[1], out[10**9], strict=True))
    assert any((a != taught._log_odds(s) + taught._w0).any() for a, s in zip(out[1], evidence, strict=True))


def test_a_batchs_items_tied_at_the_cut_find_the_same_labelled_items_as_their_heavy_terms(model: TopicModel) -> None:
    # LabelIndex.pairs looks an item tied at its cut up with all its terms at or above the cut first and partitions
    # it only if that finds a labelled item: the same pairs as the heavy terms' `candidates`, ties and all
    labelled = [label(it, "libya", n % 2 == 0) for n, it in enumerate((STORY, LIBYA_TALKS, REPRINT))]
    labelled += [label(it, "grain", True) for it in (STORY, LIBYA_TALKS)]
    taught = model.with_labels(labelled)
    index, oov = taught._label_index, taught._oov
    pool = sorted(set(index.keys[index.keys <= oov].tolist()) | set(range(0, oov, max(1, oov // 20))))
    rng = np.random.default_rng(11)
    redone = 0
    for _ in range(40):
        items = []
        for n in range(rng.integers(nearlabels.BATCH_HEAVY, 12)):
            u = int(rng.integers(0, min(len(pool), 20) + 1))
            unseen = tuple(f"name{n}-{k}" for k in range(n % 2)) if u else ()
            ids = np.sort(rng.choice(pool, u, replace=False)).astype(np.int64)
            ids = np.concatenate([ids, oov + 1 + np.arange(len(unseen))])
            weights = rng.choice([1.0, 2.0, 3.0], size=len(ids)).astype(np.float32)  # few values: many ties
            items.append(ItemTerms(ids, weights[None, :], unseen))
        batch = nearlabels.Batch.of(items)
        rows, owners = index.pairs(batch, oov)
        want_rows, want_owners = index.candidates(*nearlabels.heavy_terms(batch, oov))
        assert rows.tolist() == want_rows.tolist() and owners.tolist() == want_owners.tolist()
        at_rows, at_ids, tied = nearlabels._at_cut(batch, oov)
        redone += len(set(tied) & set(index.candidates(at_rows, at_ids)[0].tolist()))
    assert redone  # items tied at the cut that meet a labelled item were met (and partitioned)
