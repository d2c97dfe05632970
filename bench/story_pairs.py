"""Pairwise precision/recall of the same-story decision on the labelled pairs.

    python3 bench/story_pairs.py [PAIRS] [--background streams|pairs|none|FILE.jsonl.gz ...] [--sweep] [--online]
                                 [--cv [--seeds N]] [--errors] [--influence] [--fit]

PAIRS defaults to ../shared/data/dev/story_pairs.jsonl.gz relative to the repository. The pairs carry no time and
no stream, so IDF needs a background in place of the daemon's 48 h window: by default ("streams") ~57k real news
texts (Lenta headlines and Telegram news posts from ../shared/data/background, plus the title and text of the
Reuters EN DEV stream for English); "pairs" = the pairs' own 458 distinct articles; or any corpus files in the
shared format. `--sweep` prints score distributions, a threshold sweep, the threshold chosen by the rule in
`best_threshold` and a 5-fold cross-validation of that choice; `--online` groups all articles with StoryGrouper.
`--cv` cross-validates the learnt weights (5 folds; `--seeds N` repeats it over N fold shuffles), `--errors` lists
the pairs it decides wrongly with their evidence, `--influence` refits without each pair in turn.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from monitor.models import Item
from monitor.stories import evidence as stories
from monitor.stories.features import DocumentFrequencies, featurise
from monitor.stories.group import StoryGrouper

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_PAIRS = DATA / "dev" / "story_pairs.jsonl.gz"
# Real news streams for IDF, as the grouper's window would give: Russian (Lenta headlines, Telegram news posts)
# and English (Reuters-21578 texts of the EN DEV stream; only title and text are read).
STREAMS = (
    DATA / "background" / "ru_lenta_2024_headlines.jsonl.gz",
    DATA / "background" / "ru_telegram_posts.jsonl.gz",
    DATA / "dev" / "en_dev.jsonl.gz",
)
_T0 = datetime(2019, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Pair:
    lang: str
    a: Item
    b: Item
    same: bool


def _item(side: dict[str, str], lang: str) -> Item:
    url = side["url"]
    return Item(
        feed=url.split("/")[2], key=url, title=side["title"], link=url, published=_T0, content=side["text"], lang=lang
    )


def load_pairs(path: Path) -> list[Pair]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [
        Pair(r["lang"], _item(r["first"], r["lang"]), _item(r["second"], r["lang"]), bool(r["same_story"]))
        for r in rows
    ]


def background_from(spec: Sequence[str], pairs: Sequence[Pair]) -> tuple[DocumentFrequencies | None, str]:
    if spec == ["none"]:
        return None, "none (the two items only)"
    if spec == ["streams"]:
        spec = [str(p) for p in STREAMS]
    elif spec == ["pairs"]:
        seen: dict[str, Item] = {}
        for p in pairs:
            seen.setdefault(p.a.uid, p.a)
            seen.setdefault(p.b.uid, p.b)
        df = DocumentFrequencies.of(stories.item_features(i) for i in seen.values())
        return df, f"the pairs' own texts ({df.docs} distinct articles)"
    df = DocumentFrequencies()
    for name in spec:
        with gzip.open(name, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                df.add(featurise(row.get("title", ""), row.get("text", "")).counts)
    return df, f"{df.docs} documents from {', '.join(Path(n).name for n in spec)}"


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def count(decisions: Iterable[tuple[bool, bool]]) -> Counts:
    tp = fp = fn = tn = 0
    for predicted, gold in decisions:
        tp += predicted and gold
        fp += predicted and not gold
        fn += gold and not predicted
        tn += not predicted and not gold
    return Counts(tp, fp, fn, tn)


def table(rows: Sequence[tuple[str, Counts]]) -> str:
    out = [
        "| set | pairs | tp | fp | fn | tn | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in rows:
        n = c.tp + c.fp + c.fn + c.tn
        out.append(
            f"| {name} | {n} | {c.tp} | {c.fp} | {c.fn} | {c.tn} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} |"
        )
    return "\n".join(out)


def evidence_of(p: Pair, background: DocumentFrequencies | None) -> stories.Evidence:
    outlets = (stories.outlet_of(p.a), stories.outlet_of(p.b))
    return stories.pair_evidence(stories.item_features(p.a), stories.item_features(p.b), background, outlets=outlets)


def folds_of(pairs: Sequence[Pair], seed: int = 0) -> list[int]:
    """5 folds stratified by (language, label), deterministic for a seed (0: the folds reported)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: (pairs[i].lang, pairs[i].same))
    fold = [0] * len(pairs)
    for k, i in enumerate(order):
        fold[i] = k % 5
    return fold


def fit(scored: Sequence[tuple[stories.Evidence, bool]]) -> tuple[tuple[float, ...], float]:
    """Logistic regression of the label on `Evidence.features` (weak L2, C=100: the features lie in 0..1).

    Fit on the pairs the rule does not settle (no dates conflict, not a near-duplicate), as `decide` applies it.
    """
    from sklearn.linear_model import LogisticRegression  # bench only: the package ships the weights

    rows = [(e.features, g) for e, g in scored if not e.dates_conflict and not _near(e)]
    model = LogisticRegression(C=100.0, max_iter=5000).fit([x for x, _ in rows], [g for _, g in rows])
    return tuple(round(float(w), 2) for w in model.coef_[0]), round(float(model.intercept_[0]), 2)


def _near(e: stories.Evidence) -> bool:
    return e.resemblance is not None and e.resemblance >= stories.NEAR_DUP_MIN_JACCARD


def _decide_with(e: stories.Evidence, weights: tuple[float, ...], intercept: float) -> bool:
    if e.dates_conflict:
        return False
    if _near(e):
        return True
    return intercept + sum(w * x for w, x in zip(weights, e.features, strict=True)) > 0.0


def cv_decisions(
    pairs: Sequence[Pair], scored: Sequence[tuple[stories.Evidence, bool]], seed: int = 0
) -> tuple[dict[int, bool], list[tuple[tuple[float, ...], float]], list[int]]:
    """Held-out decisions of a 5-fold CV (weights fit on four folds, applied to the fifth), the weights of each
    fold, and each pair's fold."""
    fold_of = folds_of(pairs, seed)
    pooled: dict[int, bool] = {}
    fits = []
    for fold in range(5):
        weights, intercept = fit([s for i, s in enumerate(scored) if fold_of[i] != fold])
        fits.append((weights, intercept))
        for i in range(len(scored)):
            if fold_of[i] == fold:
                pooled[i] = _decide_with(scored[i][0], weights, intercept)
    return pooled, fits, fold_of


def cross_validate(
    pairs: Sequence[Pair], scored: Sequence[tuple[stories.Evidence, bool]], seeds: int = 1, save: Path | None = None
) -> None:
    """5-fold CV: weights fit on four folds, decisions scored on the fifth; per fold and pooled, per language.

    With `seeds` > 1 the CV is repeated over that many shuffles of the folds and the pooled counts summed: a
    steadier figure for comparing variants (one split of 245 pairs moves a fold's F1 by ±0.07).
    """
    pooled, fits, fold_of = cv_decisions(pairs, scored)
    rows = []
    for fold, (weights, intercept) in enumerate(fits):
        held = [i for i in range(len(scored)) if fold_of[i] == fold]
        rows.append(
            (f"fold {fold + 1} (weights {weights}, {intercept})", count((pooled[i], scored[i][1]) for i in held))
        )
    for name, lang in (("ru", "ru"), ("en", "en"), ("all", None)):
        chosen = [(pooled[i], scored[i][1]) for i in range(len(scored)) if lang in (None, pairs[i].lang)]
        rows.append((f"{name}, 5-fold CV", count(chosen)))
    print("\n5-fold cross-validation (stratified by language and label; never scored on the fold fit on):\n")
    print(table(rows))
    runs = [pooled] + [cv_decisions(pairs, scored, seed)[0] for seed in range(1, seeds)]
    if save is not None:  # for `bench/story_variants.py --compare`: the held-out decisions of every fold shuffle
        rows = {"lang": [p.lang for p in pairs], "gold": [g for _, g in scored]}
        save.write_text(json.dumps({**rows, "runs": [[run[i] for i in range(len(pairs))] for run in runs]}))
    if seeds > 1:
        rows = []
        for name, lang in (("ru", "ru"), ("en", "en"), ("all", None)):
            chosen = [
                (run[i], scored[i][1]) for run in runs for i in range(len(scored)) if lang in (None, pairs[i].lang)
            ]
            rows.append((f"{name}, {seeds} x 5-fold CV (counts summed)", count(chosen)))
        print(f"\nRepeated over {seeds} shuffles of the folds (seeds 0..{seeds - 1}):\n")
        print(table(rows))


def errors(pairs: Sequence[Pair], scored: Sequence[tuple[stories.Evidence, bool]]) -> None:
    """Every pair the 5-fold CV (seed 0) decides wrongly: its evidence, titles and leads, to read for causes."""
    pooled, _, fold_of = cv_decisions(pairs, scored)
    for lang in ("ru", "en"):
        wrong = [i for i in range(len(pairs)) if pairs[i].lang == lang and pooled[i] != scored[i][1]]
        print(f"\n{lang}: {len(wrong)} pairs decided wrongly under 5-fold CV")
        for i in wrong:
            e, p = scored[i][0], pairs[i]
            kind = "FALSE MERGE" if pooled[i] else "SPLIT"
            values = ", ".join(f"{n}={v:.2f}" for n, v in zip(stories.FEATURES, e.features, strict=True))
            print(f"- pair {i} ({kind}, fold {fold_of[i] + 1}; {p.a.feed} | {p.b.feed}): {values}")
            for it in (p.a, p.b):
                lead = " ".join(it.text.split())[:160]
                print(f"    {it.title!r}\n      {lead}")


def influence(scored: Sequence[tuple[stories.Evidence, bool]]) -> None:
    """Does anything learnt hang on one pair? Refit without each pair in turn (the fit on all pairs as reference):
    the largest change of any weight, and how many decisions on the other pairs change."""
    full, b0 = fit(scored)
    worst, who, flips, flipped_by = 0.0, -1, 0, 0
    for j in range(len(scored)):
        weights, intercept = fit([s for i, s in enumerate(scored) if i != j])
        change = max(abs(x - y) for x, y in zip((*weights, intercept), (*full, b0), strict=True))
        if change > worst:
            worst, who = change, j
        n = sum(
            _decide_with(e, weights, intercept) != _decide_with(e, full, b0)
            for i, (e, _) in enumerate(scored)
            if i != j
        )
        flips += n
        flipped_by += n > 0
    print(
        f"\nLeave-one-out refits ({len(scored)}): largest change of a weight {worst:.2f} (without pair {who}); "
        f"{flipped_by} of the {len(scored)} refits change any other pair's decision, {flips} decisions in all"
    )


def sweep(pairs: Sequence[Pair], scored: Sequence[tuple[stories.Evidence, bool]]) -> None:
    print("\nShingle resemblance (MinHash) of gold-same / gold-different pairs, both >= MIN_SHINGLES shingles:")
    for label in (True, False):
        rs = sorted((e.resemblance for e, g in scored if g is label and e.resemblance is not None), reverse=True)
        print(f"  same={label}: n={len(rs)} largest={[round(r, 2) for r in rs[:8]]}")
    conflicts = [g for e, g in scored if e.dates_conflict]
    print(f"Dates conflict (veto): {len(conflicts)} pairs, {sum(conflicts)} of them gold-same")
    print("\nLogit threshold sweep (shipped weights; near-duplicate rule and dates veto included; shipped: 0):\n")
    print("| min logit | tp | fp | fn | tn | precision | recall | F1 |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0):
        c = count((stories.decide(e, min_logit=t)[0], g) for e, g in scored)
        print(f"| {t:+.1f} | {c.tp} | {c.fp} | {c.fn} | {c.tn} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="?", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument(
        "--background", nargs="+", default=["streams"], help="streams | pairs | none | corpus .jsonl.gz files"
    )
    parser.add_argument("--sweep", action="store_true", help="logit threshold sweep")
    parser.add_argument("--cv", action="store_true", help="5-fold cross-validation of the learnt weights")
    parser.add_argument("--fit", action="store_true", help="fit the weights on all pairs (to ship in group.py)")
    parser.add_argument("--online", action="store_true", help="also group all articles with StoryGrouper")
    parser.add_argument("--seeds", type=int, default=1, help="with --cv: repeat the CV over this many fold shuffles")
    parser.add_argument("--save", type=Path, default=None, help="with --cv: write the held-out decisions (JSON)")
    parser.add_argument("--errors", action="store_true", help="list the pairs the CV decides wrongly, with evidence")
    parser.add_argument("--influence", action="store_true", help="leave-one-out refits: does a weight hang on a pair?")
    args = parser.parse_args(argv)
    pairs = load_pairs(args.pairs)
    started = time.perf_counter()
    background, described = background_from(args.background, pairs)
    took = time.perf_counter() - started
    scored: list[tuple[stories.Evidence, bool]] = []
    reasons: dict[str, int] = {}
    for p in pairs:
        evidence = evidence_of(p, background)
        scored.append((evidence, p.same))
        ok, reason = stories.decide(evidence)
        reasons[reason] = reasons.get(reason, 0) + 1
        assert stories.same_story(p.a, p.b, background)[0] == ok  # the public API gives the same answer
    print(f"pairs: {args.pairs} ({len(pairs)}); background IDF: {described} (built in {took:.0f} s)")
    print(
        f"rule: different if the title/lead dates conflict, else near-duplicate if shingle resemblance >= "
        f"{stories.NEAR_DUP_MIN_JACCARD}, else same-event if the logit of {stories.WEIGHTS}, {stories.INTERCEPT} "
        f"> 0; decisions by reason: {reasons}\n"
    )
    rows = []
    for name, lang in (("ru", "ru"), ("en", "en"), ("all", None)):
        chosen = [(stories.decide(e)[0], g) for (e, g), p in zip(scored, pairs, strict=True) if lang in (None, p.lang)]
        rows.append((name, count(chosen)))
    print("(the shipped weights were fit on these very pairs: the held-out figures are those of --cv)")
    print(table(rows))
    if args.sweep:
        sweep(pairs, scored)
    if args.cv:
        cross_validate(pairs, scored, args.seeds, args.save)
    if args.errors:
        errors(pairs, scored)
    if args.influence:
        influence(scored)
    if args.fit:
        weights, intercept = fit(scored)
        print(f"\nweights fit on all {len(scored)} pairs: WEIGHTS = {weights}\nINTERCEPT = {intercept}")
    if args.online:
        online(pairs, background)
    return 0


def online(pairs: Sequence[Pair], background: DocumentFrequencies | None) -> None:
    """Every distinct article through one StoryGrouper (file order, same time); a pair is 'same' iff same story.

    Unlike the pairwise rule this includes chaining (A joins B's story, C joins A) and the choice of the best
    match among all items, as in the daemon.
    """
    grouper = StoryGrouper(background=background)
    story: dict[str, str] = {}
    for p in pairs:
        for it in (p.a, p.b):
            if it.uid not in story:
                story[it.uid] = grouper.assign(it).story_id
    rows = []
    for name, lang in (("ru", "ru"), ("en", "en"), ("all", None)):
        chosen = [(story[p.a.uid] == story[p.b.uid], p.same) for p in pairs if lang in (None, p.lang)]
        rows.append((f"{name} (online)", count(chosen)))
    print(f"\nOnline: {len(story)} articles through StoryGrouper, {len(set(story.values()))} stories:\n")
    print(table(rows))


if __name__ == "__main__":
    raise SystemExit(main())
