"""How far a per-topic threshold could take our scores: the best threshold per topic, chosen WITH the gold labels.

    python bench/ceiling.py --topics ../shared/data/dev/ru_dev_topics.yaml --corpus ../shared/data/dev/ru_dev.jsonl.gz \
        --decisions /tmp/ru.jsonl

Reads a decisions file of `monitor eval` (its per-topic scores), the corpus's gold topics of the scored part, and the
stemmed keyword baseline's recall per topic (shared/tools/keyword_baseline.py --json). For every topic it finds the
threshold with the best F1 among those whose recall stays within --slack (0.10) of the baseline's (issue 11's
recall bound), and prints that F1 beside the F1 at the topic's actual decisions. No real rule can beat this line:
it is an upper bound for any per-topic threshold rule on these scores, learned or calibrated, because it peeks at
the answers. It says whether a quality target is reachable by moving thresholds alone or needs better evidence.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.match.corpus import read_corpus

BASELINE = Path(__file__).resolve().parents[2] / "shared" / "tools" / "keyword_baseline.py"
SLACK = 0.10  # issue 11's bound: recall at most this far below the stemmed baseline's (issue 10's was 0.05)


def best_f1(scores: list[float], gold: list[bool], bound: float) -> tuple[float, float]:
    """(F1, threshold) of the best threshold whose recall is at least `bound`."""
    pos = sum(gold)
    ranked = sorted(zip(scores, gold, strict=True), key=lambda sg: -sg[0])
    best, at, tp = 0.0, 1.0, 0
    for k, (score, g) in enumerate(ranked, 1):
        tp += g
        # only where the next item scores lower: a threshold cannot split tied scores
        if k < len(ranked) and ranked[k][0] == score:
            continue
        recall, precision = tp / pos, tp / k
        if recall >= bound and precision + recall:
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best:
                best, at = f1, score
    return best, at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--decisions", required=True, help="a monitor eval --decisions file")
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--slack", type=float, default=SLACK, help="recall may be this far below the stemmed baseline's")
    args = ap.parse_args()
    baseline = json.loads(
        subprocess.run(
            [
                sys.executable,
                str(BASELINE),
                "--topics",
                args.topics,
                "--corpus",
                args.corpus,
                "--baseline",
                "stemmed",
                "--warmup",
                str(args.warmup),
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )["systems"]["stemmed"]["per_topic"]
    items = list(read_corpus(Path(args.corpus)))
    gold = {it["id"]: set(it.get("topics") or ()) for it in items[int(len(items) * args.warmup) :]}
    decisions = [json.loads(line) for line in Path(args.decisions).read_text(encoding="utf-8").splitlines()]
    if {d["id"] for d in decisions} != set(gold):
        sys.exit("the decisions file does not cover exactly the scored part of the corpus")
    print(f"{'topic':14s} {'bound':>6s} {'F1 now':>7s} {'best F1':>8s} {'at':>6s}")
    now_all, best_all = [], []
    for topic, base in baseline.items():
        truth = [topic in gold[d["id"]] for d in decisions]
        matched = [topic in d["matched"] for d in decisions]
        tp = sum(t and m for t, m in zip(truth, matched, strict=True))
        now = 2 * tp / (sum(truth) + sum(matched)) if tp else 0.0
        bound = base["recall"] - args.slack
        best, at = best_f1([d["scores"][topic] for d in decisions], truth, bound)
        now_all.append(now)
        best_all.append(best)
        print(f"{topic:14s} {bound:6.3f} {now:7.3f} {best:8.3f} {at:6.3f}")
    print(f"{'MACRO':14s} {'':6s} {sum(now_all) / len(now_all):7.3f} {sum(best_all) / len(best_all):8.3f}")


if __name__ == "__main__":
    main()
