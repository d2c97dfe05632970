"""Speed and memory of story grouping against a full 48 h window.

    python3 bench/stories.py [--window 20000] [--measure 2000] [--vocabulary 6000] [--seed 1]

Synthetic stream, one core: Russian-like words made of Cyrillic syllables, Zipf-distributed (s = 1.1) over a
vocabulary of several thousand words, ~1,000 characters and a 6-10 word title per item, 10 % of items rewriting
an earlier item (same rare words, reordered and partly replaced) so that stories exist. The window is filled with
`--window-items` items spread evenly over 48 h, then `--measure` further items are assigned one by one at the same
rate (the window slides, so eviction is part of the time). Times are per `StoryGrouper.assign` call, text
featurisation included; featurisation alone is reported too. RSS is read from /proc/self/status.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.models import Item
from monitor.stories.evidence import item_features
from monitor.stories.group import StoryGrouper

_CONSONANTS = "бвгдзклмнпрстфхцчшщ"
_VOWELS = "аеиоуыэюя"
_ENDINGS = ["", "а", "ы", "ов", "ом", "ами", "ах", "е", "ой", "ий", "ая", "ого", "ому", "ть", "ет", "ют", "ил", "ила"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice((2, 2, 3, 3, 3, 4))
        stem = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
        words.add(stem + rng.choice(_CONSONANTS))
    return sorted(words)


class Stream:
    """Deterministic synthetic news items."""

    def __init__(self, vocab_size: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(vocab_size, self.rng)
        weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(self.words))]
        total = sum(weights)
        self.cum = list(_accumulate([w / total for w in weights]))
        self.recent: list[tuple[str, str]] = []

    def _words(self, n: int) -> list[str]:
        picks = self.rng.choices(self.words, cum_weights=self.cum, k=n)
        return [w + self.rng.choice(_ENDINGS) for w in picks]

    def text(self) -> tuple[str, str]:
        if self.recent and self.rng.random() < 0.1:  # another outlet's rewrite of a recent story
            title, body = self.rng.choice(self.recent)
            words = body.split()
            for i in self.rng.sample(range(len(words)), k=len(words) // 3):
                words[i] = self._words(1)[0]
            self.rng.shuffle(words)
            return " ".join(title.split()[::-1]).capitalize(), " ".join(words)
        title = " ".join(self._words(self.rng.randint(6, 10))).capitalize()
        body_words: list[str] = []
        while sum(len(w) + 1 for w in body_words) < 1000:
            sentence = self._words(self.rng.randint(6, 14))
            sentence[-1] += "."
            body_words += sentence
        body = " ".join(body_words)
        self.recent = ([*self.recent, (title, body)])[-200:]
        return title, body


def _accumulate(xs: Sequence[float]) -> list[float]:
    out, acc = [], 0.0
    for x in xs:
        acc += x
        out.append(acc)
    return out


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", "--window-items", dest="window_items", type=int, default=20_000)
    parser.add_argument("--measure", type=int, default=2_000)
    parser.add_argument("--vocabulary", type=int, default=6_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    window = 48 * 3600.0
    step = timedelta(seconds=window / args.window_items)
    stream = Stream(args.vocabulary, args.seed)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    total = args.window_items + args.measure
    items = []
    for i in range(total):
        title, body = stream.text()
        when = t0 + i * step
        items.append(Item(feed=f"feed{i % 40}", key=str(i), title=title, link=None, published=when, content=body))
    chars = statistics.mean(len(it.title) + len(it.content) for it in items)
    rss_start = rss_mb()

    grouper = StoryGrouper(window_seconds=window)
    started = time.perf_counter()
    for it in items[: args.window_items]:
        grouper.assign(it)
    fill = time.perf_counter() - started
    rss_full = rss_mb()
    stats_full = grouper.stats()

    gc.collect()
    wall, cpu = [], []
    new = 0
    for it in items[args.window_items :]:
        w0, c0 = time.perf_counter(), time.thread_time()
        decision = grouper.assign(it)
        c1, w1 = time.thread_time(), time.perf_counter()
        wall.append((w1 - w0) * 1000)
        cpu.append((c1 - c0) * 1000)
        new += decision.is_new
    rss_end = rss_mb()
    feats = []
    for it in items[args.window_items :]:
        c0 = time.thread_time()
        item_features(it)
        feats.append((time.thread_time() - c0) * 1000)

    print(
        f"synthetic stream: vocabulary {args.vocabulary} words (Zipf 1.1), {chars:.0f} chars per item on average, "
        f"{args.window_items} items per 48 h window, seed {args.seed}"
    )
    print(f"window fill: {args.window_items} assigns in {fill:.1f} s ({fill / args.window_items * 1000:.2f} ms each)")
    print(f"items held after the run: {len(grouper)} (window bound); new stories among measured: {new}/{len(wall)}")
    print(f"assign() of {len(wall)} items against a full window (featurise + match + index + evict), one thread:")
    print("| clock | median ms | p99 ms | mean ms | max ms |\n|---|---:|---:|---:|---:|")
    for name, xs in (("CPU (thread_time)", cpu), ("wall (perf_counter)", wall), ("featurise alone, CPU", feats)):
        xs = sorted(xs)
        p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
        print(f"| {name} | {statistics.median(xs):.3f} | {p99:.3f} | {statistics.mean(xs):.3f} | {xs[-1]:.3f} |")
    print(f"RSS: {rss_start:.0f} MB before, {rss_full:.0f} MB with a full window, {rss_end:.0f} MB after sliding")
    print(f"index with a full window: {stats_full}; after sliding: {grouper.stats()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
