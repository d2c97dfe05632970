"""Story features alone (`features_of`), this checkout against another one's, in one process, alternated.

    python3 bench/features.py --reference /path/to/other/checkout [--items 1000] [--rounds 10]

The other checkout's `monitor` package is imported beside this one's (bench/reference.py). The same texts are
analysed by each package (the analysis is the topic model's, outside the timing) and featurised, rounds alternated;
prints min / median ms an item per package and their ratio, and how many items' features differ in anything but the
MinHash values (terms in order, title terms, dates, names, numbers, subject, whether there is a signature). Texts:
the first `--items` of each dev corpus (../shared/data/dev/{ru,en}_dev.jsonl.gz) when present, and 3,000 items of
bench/stories.py's synthetic stream.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reference import reference_package  # noqa: E402
from stories import Stream  # noqa: E402

Texts = list[tuple[str, str]]


def dev_texts(limit: int) -> Texts:
    out: Texts = []
    for name in ("ru_dev", "en_dev"):
        path = ROOT.parent / "shared" / "data" / "dev" / f"{name}.jsonl.gz"
        if not path.exists():
            continue
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= limit:
                    break
                row = json.loads(line)
                out.append((row["title"], row["text"]))
    return out


def same(a: Any, b: Any) -> bool:
    return (
        list(a.counts.items()) == list(b.counts.items())
        and list(a.title_counts.items()) == list(b.title_counts.items())
        and (a.dates, a.entities, a.numbers, a.title_numbers, a.subject)
        == (b.dates, b.entities, b.numbers, b.title_numbers, b.subject)
        and (a.signature is None) == (b.signature is None)
    )


def per_item_ms(text: ModuleType, features: ModuleType, texts: Texts) -> float:
    analysed = [text.analyse(t, b) for t, b in texts]
    for a in analysed:
        a.title_scan, a.text_scan  # noqa: B018  # the topic model's part, made before the clock starts
    started = time.thread_time()
    for a in analysed:
        features.features_of(a)
    return (time.thread_time() - started) / len(texts) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, type=Path, help="a checkout holding the other monitor/")
    parser.add_argument("--items", type=int, default=1000, help="items of each dev corpus")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    with reference_package(args.reference) as ref:
        packages = {
            name: (importlib.import_module(f"{pkg}.match.text"), importlib.import_module(f"{pkg}.stories.features"))
            for name, pkg in (("this", "monitor"), ("reference", ref))
        }
        stream = Stream(6000, 1)
        sets = {"dev ru+en": dev_texts(args.items), "synthetic": [stream.text() for _ in range(3000)]}
        for label, texts in sets.items():
            if not texts:
                continue
            (t1, f1), (t2, f2) = packages["this"], packages["reference"]
            differ = sum(not same(f1.features_of(t1.analyse(*x)), f2.features_of(t2.analyse(*x))) for x in texts)
            times: dict[str, list[float]] = {"this": [], "reference": []}
            for r in range(args.rounds):
                order = ("this", "reference") if r % 2 else ("reference", "this")
                for name in order:
                    times[name].append(per_item_ms(*packages[name], texts))
            this, ref = times["this"], times["reference"]
            print(
                f"{label}, {len(texts)} items, {args.rounds} rounds alternated: this {min(this):.3f} / "
                f"{statistics.median(this):.3f} ms (min / median), reference {min(ref):.3f} / "
                f"{statistics.median(ref):.3f} ms; ratio {min(this) / min(ref):.2f} / "
                f"{statistics.median(this) / statistics.median(ref):.2f}; items whose features differ: {differ}"
            )
    print("load average", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
