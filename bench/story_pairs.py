"""Pairwise precision/recall of the same-story decision on the labelled pairs.

    python3 bench/story_pairs.py [PAIRS] [--background pairs|none|FILE.jsonl.gz ...] [--sweep]

PAIRS defaults to ../shared/data/dev/story_pairs.jsonl.gz relative to the repository. The pairs carry no time and
no stream, so IDF needs a background: by default the pairs' own texts (each distinct article once), or corpus
files in the shared format (e.g. ../shared/data/background/*.jsonl.gz). `--sweep` prints the score distribution,
the F1-maximising threshold and a 5-fold cross-validation of that choice.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from monitor import stories
from monitor.models import Item

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PAIRS = REPO.parent / "shared" / "data" / "dev" / "story_pairs.jsonl.gz"
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


def background_from(spec: Sequence[str], pairs: Sequence[Pair]) -> tuple[stories.DocumentFrequencies | None, str]:
    if spec == ["none"]:
        return None, "none (the two items only)"
    if spec == ["pairs"]:
        seen: dict[str, Item] = {}
        for p in pairs:
            seen.setdefault(p.a.uid, p.a)
            seen.setdefault(p.b.uid, p.b)
        df = stories.DocumentFrequencies.of(stories.item_features(i) for i in seen.values())
        return df, f"the pairs' own texts ({df.docs} distinct articles)"
    df = stories.DocumentFrequencies()
    for name in spec:
        with gzip.open(name, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                df.add(stories.featurise(row.get("title", ""), row.get("text", "")).counts)
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


def _rule(cos: float, resemblance: float | None, threshold: float) -> bool:
    near = resemblance is not None and resemblance >= stories.NEAR_DUP_MIN_JACCARD
    return near or cos >= threshold


def best_threshold(scored: Sequence[tuple[float, float | None, bool]]) -> float:
    """The cosine threshold maximising F1 (ties: the higher threshold), candidates = midpoints of scores."""
    values = sorted({round(s[0], 4) for s in scored})
    candidates = [(x + y) / 2 for x, y in itertools.pairwise(values)] or [0.5]
    best = max(candidates, key=lambda t: (count((_rule(c, d, t), g) for c, d, g in scored).f1, t))
    return round(best, 3)


def sweep(pairs: Sequence[Pair], scored: Sequence[tuple[float, float | None, bool]]) -> None:
    print("\nShingle resemblance (MinHash) of gold-same / gold-different pairs, both >= MIN_SHINGLES shingles:")
    for label in (True, False):
        rs = sorted((r for _, r, g in scored if g is label and r is not None), reverse=True)
        print(f"  same={label}: n={len(rs)} largest={rs[:10]}")
    print("\nCosine threshold sweep (with the near-duplicate rule):")
    print("| threshold | tp | fp | fn | tn | precision | recall | F1 |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i in range(10, 61, 5):
        t = i / 100
        c = count((_rule(cos, d, t), g) for cos, d, g in scored)
        print(f"| {t:.2f} | {c.tp} | {c.fp} | {c.fn} | {c.tn} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} |")
    print(f"\nF1-maximising threshold on all pairs: {best_threshold(scored)}")
    # 5-fold CV, folds stratified by (lang, label); threshold picked on 4 folds, scored on the fifth.
    order = list(range(len(scored)))
    random.Random(0).shuffle(order)
    order.sort(key=lambda i: (pairs[i].lang, scored[i][2]))
    fold_of = {i: k % 5 for k, i in enumerate(order)}
    pooled: list[tuple[bool, bool]] = []
    chosen = []
    for fold in range(5):
        train = [scored[i] for i in range(len(scored)) if fold_of[i] != fold]
        t = best_threshold(train)
        chosen.append(t)
        pooled += [(_rule(c, d, t), g) for i, (c, d, g) in enumerate(scored) if fold_of[i] == fold]
    c = count(pooled)
    print(f"5-fold CV: thresholds per fold {chosen}; pooled held-out figures:")
    print(table([("all (CV)", c)]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="?", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--background", nargs="+", default=["pairs"], help="pairs | none | corpus .jsonl.gz files")
    parser.add_argument("--sweep", action="store_true", help="threshold sweep and cross-validation")
    args = parser.parse_args(argv)
    pairs = load_pairs(args.pairs)
    background, described = background_from(args.background, pairs)
    scored: list[tuple[float, float | None, bool]] = []
    reasons: dict[str, int] = {}
    for p in pairs:
        cos, resemblance = stories.pair_scores(stories.item_features(p.a), stories.item_features(p.b), background)
        scored.append((cos, resemblance, p.same))
        ok, reason = stories.decide(cos, resemblance)
        reasons[reason] = reasons.get(reason, 0) + 1
        same, _, _ = stories.same_story(p.a, p.b, background)  # the public API gives the same answer
        assert same == ok
    print(f"pairs: {args.pairs} ({len(pairs)}); background IDF: {described}")
    print(
        f"rule: near-duplicate if shingle resemblance >= {stories.NEAR_DUP_MIN_JACCARD}, "
        f"else same-event if cosine >= {stories.SAME_EVENT_MIN_COSINE}; decisions by reason: {reasons}\n"
    )
    rows = []
    for name, lang in (("ru", "ru"), ("en", "en"), ("all", None)):
        rows.append(
            (
                name,
                count(
                    (stories.decide(c, d)[0], g)
                    for (c, d, g), p in zip(scored, pairs, strict=True)
                    if lang is None or p.lang == lang
                ),
            )
        )
    print(table(rows))
    if args.sweep:
        sweep(pairs, scored)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
