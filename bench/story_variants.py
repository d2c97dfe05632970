"""Candidate evidence and learners for the same-event decision, each against the six-feature rule on the same folds.

    python3 bench/story_variants.py [PAIRS] [--seeds 20] [--boot 2000] [--only NAME ...] [--list]
    python3 bench/story_variants.py --compare BASE.json NEW.json   # two `story_pairs.py --cv --seeds N --save` runs

Issue 14's untried ideas, built here to be measured, not shipped (docs/stories.md, "Tried, not kept"):
- the event's **kind**: a small lexicon of event classes (launch/test, talks, strike/attack, statement, sanctions,
  election/vote, accident, crime/court, death toll, appointment/dismissal, deal/purchase, congratulation/award,
  epidemic, law/bill, rates/prices, weather) in Russian and English terms; "both name a kind and share one" /
  "both name kinds, none shared", from the title or the title and lead;
- the title's **subject**: its first name (the opening word too, when the item's lead or text writes it
  capitalised inside a sentence, so "Лукашенко поздравил ..." counts), and whether the other item names it;
- other **learners** over the shipped features: pairwise products in the logistic regression, a shallow tree,
  boosted stumps and depth-2 trees with strong shrinkage.

Every variant is cross-validated exactly as `bench/story_pairs.py --cv --seeds N` is (the same stratified folds
for seeds 0..N-1, fit on four folds, scored on the fifth; the dates veto and the near-duplicate rule settle their
pairs first). The noise: a paired bootstrap over the pairs (the same resampled pairs for the rule and the variant,
all N fold shuffles kept) gives a 95 % interval for the change of F1; a change beats the noise when the interval
lies above zero.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import story_pairs  # bench/story_pairs.py: the pairs, the background, the folds

from monitor.match.text import adjectives_of, analyse, derived_from, normalise, normalised_tokens, terms, word_term
from monitor.models import Item
from monitor.stories import evidence as stories
from monitor.stories.features import _CAPITALISED, LEAD_CHARS, TEXT_CHARS, DocumentFrequencies, entities_of

# Event classes, as surface words of both languages; their terms are what an item's title (and lead) is matched
# against. General news vocabulary, written before reading any pair's decision, not grown from the errors.
KINDS = {
    "launch": "запуск запустить пуск испытание испытать стартовать launch launched test tested fired missile",
    "talks": "переговоры встреча встретиться саммит визит посетить разговор беседа обсудить созвониться talks "
    "meeting meet summit visit visited call phoned discussed",
    "attack": "удар атака атаковать обстрел обстрелять бомбардировка взрыв теракт сбить уничтожить strike attack "
    "attacked shelling bombing explosion blast shot downed",
    "statement": "прокомментировать комментарий призвать раскритиковать осудить назвать возмутиться опровергнуть "
    "statement comment commented urged criticised condemned denied",
    "sanctions": "санкция запрет запретить ограничение эмбарго пошлина sanctions ban banned embargo tariff tariffs "
    "restrictions",
    "election": "выборы голосование проголосовать избрать референдум кандидат election vote voted ballot "
    "referendum candidate elected",
    "accident": "авария катастрофа дтп пожар загореться крушение столкновение обрушение взрыв землетрясение "
    "наводнение извержение crash accident fire blaze collision collapse earthquake flood eruption",
    "crime": "задержать арест арестовать суд приговор приговорить обвинение похитить угнать убийство мошенничество "
    "arrested arrest court sentenced charged convicted kidnapped murder fraud police",
    "deaths": "погибнуть умереть скончаться гибель смерть погибший died dead death killed deaths",
    "office": "назначить назначение отставка уволить исключить освободить appointed appointment resigned "
    "resignation dismissed sacked expelled",
    "deal": "соглашение договор подписать сделка закупить купить приобрести контракт поставка agreement deal "
    "signed contract bought acquire purchase",
    "award": "поздравить поздравление наградить награда премия конкурс congratulated award prize contest",
    "epidemic": "коронавирус заражение заразиться заболеть выздороветь вакцина инфекция covid coronavirus "
    "infections infected cases vaccine recovered",
    "law": "законопроект закон поправка принять указ подписать bill law amendment decree legislation",
    "prices": "ставка инфляция курс цена подорожать подешеветь снизить повысить rate inflation prices price cut raised",
    "weather": "погода прогноз температура мороз снег дождь weather forecast temperature snow rain",
}


def _kind_terms() -> dict[str, frozenset[str]]:
    return {kind: frozenset(terms(words)) for kind, words in KINDS.items()}


KIND_TERMS = _kind_terms()


def kinds_of(text: str) -> frozenset[str]:
    """The event classes a text's terms name."""
    found = set(terms(text))
    return frozenset(kind for kind, words in KIND_TERMS.items() if found & words)


def subject_of(title: str, text: str, *, confirmed: bool = False) -> str | None:
    """The title's first name: acronyms and capitalised words inside it, and its opening word when the item's
    own text writes that word capitalised inside a sentence (a name, not just the headline's first word)."""
    names = entities_of(title)
    known = entities_of(text[:TEXT_CHARS])
    for m in _CAPITALISED.finditer(title):
        for word in normalised_tokens(normalise(m.group())):
            term = word_term(word)
            in_title = term in names and (not confirmed or not text.strip() or _acronym(word, m.group()))
            if term and (term in known or in_title):
                return term
    return None


def _acronym(word: str, raw: str) -> bool:
    return len(raw) >= 2 and raw.isupper()


@dataclass(frozen=True)
class Extra:
    kinds_title: frozenset[str]
    kinds_lead: frozenset[str]
    subject: str | None
    subject_confirmed: str | None  # the same, counting only words the item's text writes capitalised (or acronyms)
    read: frozenset[str]  # every term of the title and the read text, and the names: where a subject is looked for


def extra_of(item: Item) -> Extra:
    analysed = analyse(item.title, item.text)
    features = stories.item_features(item, analysed)
    lead = item.text[:LEAD_CHARS]
    return Extra(
        kinds_of(item.title),
        kinds_of(item.title + " . " + lead),
        subject_of(item.title, item.text),
        subject_of(item.title, item.text, confirmed=True),
        frozenset(features.counts) | features.entities,
    )


def _found(subject: str | None, other: Extra, prefix: bool = False) -> bool:
    if subject is None:
        return True
    forms = (subject, *adjectives_of(subject), *derived_from(subject))
    if any(f in other.read for f in forms):
        return True
    # a lemma beside a stem of the same unknown word ("минкультуры" / "минкульт"): one a prefix of the other
    return prefix and any(
        min(len(t), len(subject)) >= 5 and (t.startswith(subject) or subject.startswith(t)) for t in other.read
    )


def extra_features(a: Extra, b: Extra) -> dict[str, float]:
    def kinds(ka: frozenset[str], kb: frozenset[str]) -> tuple[float, float]:
        if not ka or not kb:
            return 0.0, 0.0
        return float(bool(ka & kb)), float(not ka & kb)

    same_t, other_t = kinds(a.kinds_title, b.kinds_title)
    same_l, other_l = kinds(a.kinds_lead, b.kinds_lead)
    fa, fb = _found(a.subject, b), _found(b.subject, a)
    ca, cb = _found(a.subject_confirmed, b), _found(b.subject_confirmed, a)
    pa, pb = _found(a.subject_confirmed, b, True), _found(b.subject_confirmed, a, True)
    qa, qb = _found(a.subject, b, True), _found(b.subject, a, True)
    return {
        "subject_confirmed_missing_both": float(not ca and not cb),
        "subject_confirmed_missing_any": float(not (ca and cb)),
        "subject_confirmed_missing_sides": float(not ca) + float(not cb),
        "subject_confirmed_prefix_missing_both": float(not pa and not pb),
        "subject_prefix_missing_both": float(not qa and not qb),
        "kind_same_title": same_t,
        "kind_other_title": other_t,
        "kind_same_lead": same_l,
        "kind_other_lead": other_l,
        "subject_missing_any": float(not (fa and fb)),
        "subject_missing_both": float(not fa and not fb),
        "subjects_differ_unconfirmed": float(
            a.subject is not None and b.subject is not None and a.subject != b.subject and not (fa or fb)
        ),
    }


Learner = Callable[[list[list[float]], list[bool]], Callable[[list[float]], bool]]


def logistic(c: float = 100.0, products: bool = False) -> Learner:
    from sklearn.linear_model import LogisticRegression

    def expand(x: list[float]) -> list[float]:
        if not products:
            return x
        return x + [x[i] * x[j] for i in range(len(x)) for j in range(i + 1, len(x))]

    def learn(xs: list[list[float]], ys: list[bool]) -> Callable[[list[float]], bool]:
        model = LogisticRegression(C=c, max_iter=5000).fit([expand(x) for x in xs], ys)
        # rounded to two decimals as story_pairs.fit ships them, so the "rule" row reproduces --cv exactly
        w = [round(float(v), 2) for v in model.coef_[0]]
        b = round(float(model.intercept_[0]), 2)
        return lambda x: b + sum(wi * xi for wi, xi in zip(w, expand(x), strict=True)) > 0.0

    return learn


def sklearn_model(make: Callable[[], object]) -> Learner:
    def learn(xs: list[list[float]], ys: list[bool]) -> Callable[[list[float]], bool]:
        model = make()
        model.fit(xs, ys)  # type: ignore[attr-defined]
        return lambda x: bool(model.predict([x])[0])  # type: ignore[attr-defined]

    return learn


def tree(depth: int, leaf: int) -> Learner:
    from sklearn.tree import DecisionTreeClassifier

    return sklearn_model(lambda: DecisionTreeClassifier(max_depth=depth, min_samples_leaf=leaf, random_state=0))


def boosting(depth: int, n: int, rate: float) -> Learner:
    from sklearn.ensemble import GradientBoostingClassifier

    return sklearn_model(
        lambda: GradientBoostingClassifier(
            max_depth=depth, n_estimators=n, learning_rate=rate, subsample=0.8, min_samples_leaf=10, random_state=0
        )
    )


# The rule before the title subjects were added (its six features): what every variant is measured against.
BASE = [f for f in stories.FEATURES if f != "subjects_differ"]
VARIANTS: dict[str, tuple[list[str], Learner]] = {
    "rule before (six features, LR C=100)": (BASE, logistic()),
    "shipped: + subjects differ (the package's own evidence)": ([*BASE, "subjects_differ"], logistic()),
    "+ kind same/other (title)": ([*BASE, "kind_same_title", "kind_other_title"], logistic()),
    "+ kind same/other (title + lead)": ([*BASE, "kind_same_lead", "kind_other_lead"], logistic()),
    "+ kind other (title + lead)": ([*BASE, "kind_other_lead"], logistic()),
    "+ subject missing (either side)": ([*BASE, "subject_missing_any"], logistic()),
    "+ subject missing (both sides)": ([*BASE, "subject_missing_both"], logistic()),
    "+ subjects differ": ([*BASE, "subjects_differ_unconfirmed"], logistic()),
    "+ subject (text-confirmed) missing (both sides)": ([*BASE, "subject_confirmed_missing_both"], logistic()),
    "+ subject (text-confirmed) missing (either side)": ([*BASE, "subject_confirmed_missing_any"], logistic()),
    "+ subject (text-confirmed) missing, sides counted (0-2)": ([*BASE, "subject_confirmed_missing_sides"], logistic()),
    "+ subject (text-confirmed) missing, either and both": (
        [*BASE, "subject_confirmed_missing_any", "subject_confirmed_missing_both"],
        logistic(),
    ),
    "+ subject (text-confirmed, prefix match) missing (both)": (
        [*BASE, "subject_confirmed_prefix_missing_both"],
        logistic(),
    ),
    "+ subject (prefix match) missing (both sides)": ([*BASE, "subject_prefix_missing_both"], logistic()),
    "+ kind (title + lead) + subject missing": (
        [*BASE, "kind_same_lead", "kind_other_lead", "subject_missing_any"],
        logistic(),
    ),
    "LR with pairwise products, C=100": (BASE, logistic(100.0, products=True)),
    "LR with pairwise products, C=1": (BASE, logistic(1.0, products=True)),
    "tree, depth 2, leaf >= 10": (BASE, tree(2, 10)),
    "tree, depth 3, leaf >= 10": (BASE, tree(3, 10)),
    "boosted stumps (100, rate 0.05)": (BASE, boosting(1, 100, 0.05)),
    "boosted depth-2 trees (50, rate 0.05)": (BASE, boosting(2, 50, 0.05)),
    "boosted stumps + kind + subject": (
        [*BASE, "kind_same_lead", "kind_other_lead", "subject_missing_any"],
        boosting(1, 100, 0.05),
    ),
}


def cv_runs(
    pairs: Sequence[story_pairs.Pair],
    rows: Sequence[dict[str, float]],
    settled: Sequence[bool | None],
    names: list[str],
    learner: Learner,
    seeds: int,
) -> list[list[bool]]:
    """Held-out decisions, one list per fold shuffle (seed), as story_pairs.cv_decisions makes them."""
    labels = [p.same for p in pairs]
    runs = []
    for seed in range(seeds):
        fold_of = story_pairs.folds_of(pairs, seed)
        out = [False] * len(pairs)
        for fold in range(5):
            train = [i for i in range(len(pairs)) if fold_of[i] != fold and settled[i] is None]
            predict = learner([[rows[i][n] for n in names] for i in train], [labels[i] for i in train])
            for i in range(len(pairs)):
                if fold_of[i] == fold:
                    rule = settled[i]
                    out[i] = rule if rule is not None else predict([rows[i][n] for n in names])
        runs.append(out)
    return runs


def counts(runs: list[list[bool]], labels: Sequence[bool], chosen: Sequence[int]) -> story_pairs.Counts:
    return story_pairs.count((run[i], labels[i]) for run in runs for i in chosen)


def paired_bootstrap(
    base: list[list[bool]], variant: list[list[bool]], labels: Sequence[bool], chosen: Sequence[int], boot: int
) -> tuple[float, float]:
    """95 % interval of F1(variant) - F1(rule) over pairs resampled with replacement (the same for both)."""

    # per pair: (tp, fp, fn) summed over the fold shuffles, for the rule and the variant
    def per_pair(runs: list[list[bool]], i: int) -> tuple[int, int, int]:
        tp = sum(run[i] and labels[i] for run in runs)
        fp = sum(run[i] and not labels[i] for run in runs)
        fn = sum((not run[i]) and labels[i] for run in runs)
        return tp, fp, fn

    pb = {i: per_pair(base, i) for i in chosen}
    pv = {i: per_pair(variant, i) for i in chosen}

    def f1(sample: list[int], table: dict[int, tuple[int, int, int]]) -> float:
        tp = sum(table[i][0] for i in sample)
        fp = sum(table[i][1] for i in sample)
        fn = sum(table[i][2] for i in sample)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    rnd = random.Random(0)
    diffs = sorted(f1(s, pv) - f1(s, pb) for s in ([rnd.choice(chosen) for _ in chosen] for _ in range(boot)))
    return diffs[int(0.025 * boot)], diffs[int(0.975 * boot) - 1]


def _background(pairs: Sequence[story_pairs.Pair]) -> tuple[DocumentFrequencies | None, str]:
    import os
    import pickle

    cache = os.environ.get("STORY_BG_CACHE")
    if cache and os.path.exists(cache):
        with open(cache, "rb") as fh:
            return pickle.load(fh), "streams (cached)"
    df, described = story_pairs.background_from(["streams"], pairs)
    if cache:
        with open(cache, "wb") as fh:
            pickle.dump(df, fh)
    return df, described


def compare(base_file: Path, new_file: Path, boot: int) -> int:
    """The paired bootstrap of two saved `story_pairs.py --cv --save` runs (the shipped code, before and after)."""
    import json

    base, new = (json.loads(f.read_text()) for f in (base_file, new_file))
    labels = base["gold"]
    print("| run | RU P / R / F1 | RU F1 per shuffle (min-max) | RU ΔF1, 95 % | EN P / R / F1 | EN ΔF1, 95 % |")
    print("|---|---|---|---|---|---|")
    for name, data in ((base_file.name, base), (new_file.name, new)):
        cells = [name]
        for lang in ("ru", "en"):
            chosen = [i for i, x in enumerate(base["lang"]) if x == lang]
            c = counts(data["runs"], labels, chosen)
            cells.append(f"{c.precision:.3f} / {c.recall:.3f} / {c.f1:.3f}")
            if lang == "ru":
                per = [counts([run], labels, chosen).f1 for run in data["runs"]]
                cells.append(f"{min(per):.3f}-{max(per):.3f}")
            lo, hi = paired_bootstrap(base["runs"], data["runs"], labels, chosen, boot)
            cells.append(f"{lo:+.3f} .. {hi:+.3f}")
        print("| " + " | ".join(cells) + " |")
    return 0


def evidence_rows(
    pairs: Sequence[story_pairs.Pair],
    background: DocumentFrequencies | None,
    extra: Callable[[story_pairs.Pair], dict[str, float]],
) -> tuple[list[dict[str, float]], list[bool | None]]:
    """Each pair's shipped features plus `extra(pair)`, and what the dates veto and near-duplicate rule settle."""
    rows: list[dict[str, float]] = []
    settled: list[bool | None] = []
    for p in pairs:
        e = story_pairs.evidence_of(p, background)
        row = dict(zip(stories.FEATURES, e.features, strict=True))
        row.update(extra(p))
        rows.append(row)
        settled.append(False if e.dates_conflict else True if story_pairs._near(e) else None)
    return rows, settled


def variants_table(
    pairs: Sequence[story_pairs.Pair],
    rows: list[dict[str, float]],
    settled: list[bool | None],
    variants: Mapping[str, tuple[list[str], Learner]],
    seeds: int,
    boot: int,
    only: Sequence[str] | None,
) -> None:
    """One table row per variant: pooled P / R / F1 per language over the fold shuffles, and the paired bootstrap
    of its F1 change against the first variant (the shipped rule)."""
    labels = [p.same for p in pairs]
    print("| variant | RU P / R / F1 | RU F1 per shuffle (min-max) | RU ΔF1, 95 % | EN P / R / F1 | EN ΔF1, 95 % |")
    print("|---|---|---|---|---|---|")
    base_runs: list[list[bool]] | None = None
    for name, (names, learner) in variants.items():
        if base_runs is not None and only and not any(o in name for o in only):
            continue
        runs = cv_runs(pairs, rows, settled, names, learner, seeds)
        if base_runs is None:
            base_runs = runs
        cells = [name]
        for lang in ("ru", "en"):
            chosen = [i for i, p in enumerate(pairs) if p.lang == lang]
            c = counts(runs, labels, chosen)
            cells.append(f"{c.precision:.3f} / {c.recall:.3f} / {c.f1:.3f}")
            if lang == "ru":
                per = [counts([run], labels, chosen).f1 for run in runs]
                cells.append(f"{min(per):.3f}-{max(per):.3f}")
            lo, hi = paired_bootstrap(base_runs, runs, labels, chosen, boot)
            cells.append(f"{lo:+.3f} .. {hi:+.3f}")
        print("| " + " | ".join(cells) + " |", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="?", type=Path, default=story_pairs.DEFAULT_PAIRS)
    parser.add_argument("--seeds", type=int, default=20, help="fold shuffles (seeds 0..N-1)")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples of the pairs")
    parser.add_argument("--only", nargs="+", default=None, help="variants whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="print each pair's extra evidence")
    parser.add_argument("--compare", nargs=2, type=Path, default=None, help="two story_pairs.py --save files")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare, boot=args.boot)
    pairs = story_pairs.load_pairs(args.pairs)
    background, described = _background(pairs)
    rows, settled = evidence_rows(pairs, background, lambda p: extra_features(extra_of(p.a), extra_of(p.b)))
    if args.list:
        for i, (p, row) in enumerate(zip(pairs, rows, strict=True)):
            ea, eb = extra_of(p.a), extra_of(p.b)
            print(
                f"{i} {p.lang} same={p.same} {sorted(ea.kinds_lead)}|{sorted(eb.kinds_lead)} "
                f"subj {ea.subject}|{eb.subject} missing_any={row['subject_missing_any']:.0f}"
            )
    print(f"pairs: {len(pairs)}; background IDF: {described}; {args.seeds} fold shuffles, {args.boot} resamples\n")
    variants_table(pairs, rows, settled, VARIANTS, args.seeds, args.boot, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
