"""What the text analysis of one item costs when its words are new to the word cache, and when they are not.

    python bench/analysis.py [--items 500] [--runs 8] [--corpus ../shared/data/dev/ru_dev.jsonl.gz]
    python bench/analysis.py --code /path/to/other/checkout    # the same, another checkout's monitor package

Items: `bench/daemon.py`'s burst items (18 made-up words of their own each, besides the topic's "в Ливии" and a
town), or the first --items of a corpus. Each run analyses the items as a poll does (`analyse`, title and text
terms), once with the word cache cleared (every word seen for the first time: a new surname, place or
transliteration, or the cold cache after a start) and once more on the warm cache; CPU time of this thread, ms an
item, min and median over --runs (each run on new burst items). One core, this process only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def burst_items(n: int, seed: int) -> list[tuple[str, str]]:
    sys.path.insert(0, str(HERE))
    from daemon import matching_item

    rng = random.Random(seed)
    return [matching_item(i, rng)[1:] for i in range(n)]


def corpus_items(path: Path, n: int) -> list[tuple[str, str]]:
    items = []
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            items.append((row.get("title") or "", row.get("text") or ""))
            if len(items) == n:
                break
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--corpus", type=Path, help="a JSON-lines corpus (title, text) instead of the burst items")
    parser.add_argument("--code", type=Path, default=HERE.parent, help="the checkout whose monitor package runs")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.code.resolve()))
    from monitor.match import text

    def analyse_all(items: list[tuple[str, str]]) -> float:
        started = time.thread_time()
        for title, body in items:
            analysed = text.analyse(title, body)
            _ = analysed.title_scan.terms, analysed.text_scan.terms
        return (time.thread_time() - started) / len(items) * 1e3

    cold: list[float] = []
    warm: list[float] = []
    for run in range(args.runs):
        items = corpus_items(args.corpus, args.items) if args.corpus else burst_items(args.items, 100 + run)
        text._cache.clear()
        cold.append(analyse_all(items))
        warm.append(analyse_all(items))
    print(f"monitor from {Path(text.__file__).resolve().parents[2]}; {args.items} items, {args.runs} runs")
    print("| word cache | min ms an item | median ms an item |")
    print("|---|---:|---:|")
    for name, times in (("cleared (new words)", cold), ("warm", warm)):
        print(f"| {name} | {min(times):.3f} | {statistics.median(times):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
