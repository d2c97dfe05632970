"""Pairwise precision/recall of the same-story decision on the labelled pairs.

    python3 bench/story_pairs.py [PAIRS] [--background streams|pairs|none|FILE.jsonl.gz ...] [--sweep] [--online]

PAIRS defaults to ../shared/data/dev/story_pairs.jsonl.gz relative to the repository. The pairs carry no time and
no stream, so IDF needs a background in place of the daemon's 48 h window: by default ("streams") ~57k real news
texts (Lenta headlines and Telegram news posts from ../shared/data/background, plus the title and text of the
Reuters EN DEV stream for English); "pairs" = the pairs' own 458 distinct articles; or any corpus files in the
shared format. `--sweep` prints score distributions, a threshold sweep, the threshold chosen by the rule in
`best_threshold` and a 5-fold cross-validation of that choice; `--online` groups all articles with StoryGrouper.
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
from monitor.stories import group as stories

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_PAIRS = DATA / "dev" / "story_pairs.jsonl.gz"
# Real news streams for IDF, as the grouper's window would give: Russian (Lenta headlines, Telegram news posts)
# and English (Reuters-21578 texts of the EN DEV stream; only title and text are read).
SMOOTH = 0.025
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


def background_from(spec: Sequence[str], pairs: Sequence[Pair]) -> tuple[stories.DocumentFrequencies | None, str]:
    if spec == ["none"]:
        return None, "none (the two items only)"
    if spec == ["streams"]:
        spec = [str(p) for p in STREAMS]
    elif spec == ["pairs"]:
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


def _rule(e: stories.Evidence, threshold: float) -> bool:
    """`stories.decide` with another cosine threshold."""
    return stories.decide(e, min_cosine=threshold)[0]


def best_threshold(scored: Sequence[tuple[stories.Evidence, bool]]) -> float:
    """The cosine threshold with the best F1 averaged over ±SMOOTH around it (grid step 0.005).

    Plain F1-maximisation lands just below the lowest-scoring positive pair, i.e. on one pair's score; averaging
    over a neighbourhood picks the middle of a plateau instead, which moves less from sample to sample.
    """
    grid = [i / 200 for i in range(10, 141)]  # 0.05 .. 0.70
    f1 = {t: count((_rule(e, t), g) for e, g in scored).f1 for t in grid}
    k = round(SMOOTH * 200)

    def smoothed(i: int) -> float:
        window = grid[max(0, i - k) : i + k + 1]
        return sum(f1[t] for t in window) / len(window)

    best = max(range(len(grid)), key=lambda i: (round(smoothed(i), 6), grid[i]))
    return grid[best]


def sweep(pairs: Sequence[Pair], scored: Sequence[tuple[stories.Evidence, bool]]) -> None:
    print("\nShingle resemblance (MinHash) of gold-same / gold-different pairs, both >= MIN_SHINGLES shingles:")
    for label in (True, False):
        rs = sorted((e.resemblance for e, g in scored if g is label and e.resemblance is not None), reverse=True)
        print(f"  same={label}: n={len(rs)} largest={[round(r, 2) for r in rs[:8]]}")
    conflicts = [g for e, g in scored if e.dates_conflict]
    print(f"Dates conflict (veto): {len(conflicts)} pairs, {sum(conflicts)} of them gold-same")
    print("\nCosine threshold sweep (with the near-duplicate rule and the dates veto):\n")
    print("| threshold | tp | fp | fn | tn | precision | recall | F1 |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i in range(10, 61, 5):
        t = i / 100
        c = count((_rule(e, t), g) for e, g in scored)
        print(f"| {t:.2f} | {c.tp} | {c.fp} | {c.fn} | {c.tn} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} |")
    print(f"\nThreshold with the best F1 smoothed over ±{SMOOTH}, all pairs: {best_threshold(scored)}")
    # 5-fold CV, folds stratified by (lang, label); the threshold is picked on 4 folds and applied to the fifth.
    order = list(range(len(scored)))
    random.Random(0).shuffle(order)
    order.sort(key=lambda i: (pairs[i].lang, scored[i][1]))
    fold_of = {i: k % 5 for k, i in enumerate(order)}
    pooled: list[tuple[bool, bool]] = []
    chosen = []
    for fold in range(5):
        t = best_threshold([scored[i] for i in range(len(scored)) if fold_of[i] != fold])
        chosen.append(t)
        pooled += [(_rule(e, t), g) for i, (e, g) in enumerate(scored) if fold_of[i] == fold]
    print(f"5-fold cross-validation: thresholds chosen per fold {chosen}; pooled held-out decisions:\n")
    print(table([("all (CV)", count(pooled))]))
    decisions = [(stories.decide(e)[0], g) for e, g in scored]
    boot = random.Random(1)
    samples = sorted(
        (c.precision, c.recall, c.f1) for c in (count(boot.choice(decisions) for _ in decisions) for _ in range(1000))
    )
    lo, hi = ([sorted(x[k] for x in samples)[int(q * (len(samples) - 1))] for k in range(3)] for q in (0.025, 0.975))
    print(
        f"\nBootstrap (1000 resamples of the 245 pairs), 95 % intervals at the shipped threshold: precision "
        f"{lo[0]:.2f}-{hi[0]:.2f}, recall {lo[1]:.2f}-{hi[1]:.2f}, F1 {lo[2]:.2f}-{hi[2]:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="?", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument(
        "--background", nargs="+", default=["streams"], help="streams | pairs | none | corpus .jsonl.gz files"
    )
    parser.add_argument("--sweep", action="store_true", help="threshold sweep and cross-validation")
    parser.add_argument("--online", action="store_true", help="also group all articles with StoryGrouper")
    args = parser.parse_args(argv)
    pairs = load_pairs(args.pairs)
    started = time.perf_counter()
    background, described = background_from(args.background, pairs)
    took = time.perf_counter() - started
    scored: list[tuple[stories.Evidence, bool]] = []
    reasons: dict[str, int] = {}
    for p in pairs:
        evidence = stories.pair_evidence(stories.item_features(p.a), stories.item_features(p.b), background)
        scored.append((evidence, p.same))
        ok, reason = stories.decide(evidence)
        reasons[reason] = reasons.get(reason, 0) + 1
        assert stories.same_story(p.a, p.b, background)[0] == ok  # the public API gives the same answer
    print(f"pairs: {args.pairs} ({len(pairs)}); background IDF: {described} (built in {took:.0f} s)")
    print(
        f"rule: different if the title/lead dates conflict, else near-duplicate if shingle resemblance >= "
        f"{stories.NEAR_DUP_MIN_JACCARD}, else same-event if cosine >= {stories.SAME_EVENT_MIN_COSINE}; "
        f"decisions by reason: {reasons}\n"
    )
    rows = []
    for name, lang in (("ru", "ru"), ("en", "en"), ("all", None)):
        chosen = [(stories.decide(e)[0], g) for (e, g), p in zip(scored, pairs, strict=True) if lang in (None, p.lang)]
        rows.append((name, count(chosen)))
    print(table(rows))
    if args.sweep:
        sweep(pairs, scored)
    if args.online:
        online(pairs, background)
    return 0


def online(pairs: Sequence[Pair], background: stories.DocumentFrequencies | None) -> None:
    """Every distinct article through one StoryGrouper (file order, same time); a pair is 'same' iff same story.

    Unlike the pairwise rule this includes chaining (A joins B's story, C joins A) and the choice of the best
    match among all items, as in the daemon.
    """
    grouper = stories.StoryGrouper(background=background)
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
