"""Labels' cost, the same process: this checkout's code against another's, each with and without labels.

    python bench/label_cost.py --reference /path/to/old/checkout [--dev en] [--passes 8]

Builds the models of bench/classify.py (synthetic, or `--dev en|ru`: 2,000 items, 8,000 background, 50 topics with
50 labels each, drawn as its default `--label-draw consistent`) with both codes on the same data and labels, checks
that every Match is the same, then times a poll's batches of 30 and one item at a time: per batch of 30 items, one
untimed warm-up call, then the four models (old / new, without / with labels) in an order that rotates, CPU time;
each batch's best over the passes, summed. Prints µs per item and the labels' cost of each code. (Separate runs of
bench/classify.py differ by ±10 % on a shared machine; alternating in one process they differ by ~3 %.)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
_spec = importlib.util.spec_from_file_location("bench_classify", HERE / "classify.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

from reference import reference_package  # noqa: E402

from monitor.match.classify import TopicModel  # noqa: E402
from monitor.match.text import analyse  # noqa: E402


def models(cls, d, labelled=None):  # type: ignore[no-untyped-def]
    topics, examples, items, background, story_item = d
    model = cls.build(topics, examples, background).refit(background)
    for title, text in items[:200]:  # a warm word cache, as a running daemon has it
        model.classify(title, text)
    labelled = labelled or bench.labels_for(model, topics, 50, story_item)
    return model, model.with_labels(labelled), labelled


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", choices=["ru", "en"])
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--reference", required=True, type=Path, help="a checkout holding the code before (monitor/)")
    a = ap.parse_args()
    with reference_package(a.reference) as package:
        return compare(a, importlib.import_module(f"{package}.match.classify").TopicModel)


def compare(a: argparse.Namespace, OldModel: type) -> int:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    d = bench.dev(a.dev, 50, 2000, 8000) if a.dev else bench.synthetic(50, 2000, 8000, 1500)
    new0, new1, labelled = models(TopicModel, d)
    old0, old1, _ = models(OldModel, d, labelled)
    runs = {"old, no labels": old0, "old, labels": old1, "new, no labels": new0, "new, labels": new1}
    analysed = [analyse(title, text) for title, text in d[2]]
    chunks = [analysed[i : i + 30] for i in range(0, len(analysed), 30)]
    same = [repr(m) for c in chunks for ms in old1.classify_texts(c) for m in ms] == [
        repr(m) for c in chunks for ms in new1.classify_texts(c) for m in ms
    ]
    print(f"every Match the same in both codes, with labels: {same}", flush=True)
    modes = {
        "a poll's batch of 30": lambda m, c: m.classify_texts(c),
        "one item at a time": lambda m, c: [m.classify_text(x) for x in c],
    }
    for mode, run in modes.items():
        best = {name: [float("inf")] * len(chunks) for name in runs}
        for p in range(a.passes):
            for ci, chunk in enumerate(chunks):
                run(new0, chunk)  # untimed: the batch's data warm for whichever model comes first
                names = list(runs)
                turn = (p + ci) % len(names)
                for name in names[turn:] + names[:turn]:
                    c0 = time.process_time()
                    run(runs[name], chunk)
                    best[name][ci] = min(best[name][ci], time.process_time() - c0)
        us = {name: 1e6 * sum(v) / len(analysed) for name, v in best.items()}
        old_cost = 100 * (us["old, labels"] / us["old, no labels"] - 1)
        new_cost = 100 * (us["new, labels"] / us["new, no labels"] - 1)
        print(
            f"{mode}: " + ", ".join(f"{k} {v:.1f}" for k, v in us.items()) + " µs an item; labels cost "
            f"{old_cost:+.1f} % (old), {new_cost:+.1f} % (new); load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
