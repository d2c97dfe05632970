"""Labels' cost: this checkout's code against another's, each with and without labels.

    python bench/label_cost.py --reference /path/to/old/checkout [--dev en] [--passes 8]       # CPU time
    python bench/label_cost.py --instructions [--reference DIR] [--dev en] [--items 2000]     # instructions

Builds the models of bench/classify.py (synthetic, or `--dev en|ru`: 2,000 items, 8,000 background, 50 topics with
50 labels each, drawn as its default `--label-draw consistent`) with both codes on the same data and labels, and
measures a poll's batches of 30 and one item at a time (the whole `classify_texts` / `classify_text` call), and the
label step alone (`TopicModel._label_probabilities` on each batch's or item's evidence, computed beforehand).

CPU time (the default): in one process, checks that every Match is the same in both codes, then per batch of 30
items one untimed warm-up call and the four models (old / new, without / with labels) in an order that rotates;
each batch's best over the passes, summed. Prints µs per item and the labels' cost of each code. (Separate runs of
bench/classify.py differ by ±10 % on a shared machine; alternating in one process two copies of the same code still
differ by 1-7 points at load 2-9.)

`--instructions`: instruction counts, which repeat under any load: one fresh process per (code, labels off/on) under
`valgrind --tool=callgrind`, started with instrumentation off (the build runs ~5x slower instead of ~50x); once
the model is built and every item classified once, untimed (warm word and Match caches, as a running daemon has
them), the process switches instrumentation on (`callgrind_control -i on`) and runs each measured loop inside
`sys.call_tracing`, the one C function callgrind collects in (`--toggle-collect`) and dumps after
(`--dump-after`): one dump per loop, nothing of the build or the switch counted. Prints instructions per item and
the labels' cost: whole classify (labels on / off − 1) and the label step alone ((step on − step off) / classify
off). The processes run --jobs at a time (~3-5 min each); PYTHONHASHSEED is fixed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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

BATCH = 30
LOOPS = ("a poll's batch of 30", "one item at a time", "label step, batches", "label step, one item")


def models(cls, d, labelled=None):  # type: ignore[no-untyped-def]
    topics, examples, items, background, story_item = d
    model = cls.build(topics, examples, background).refit(background)
    for title, text in items[:200]:  # a warm word cache, as a running daemon has it
        model.classify(title, text)
    labelled = labelled or bench.labels_for(model, topics, 50, story_item)
    return model, model.with_labels(labelled), labelled


def data(a: argparse.Namespace):  # type: ignore[no-untyped-def]
    n = a.background
    return bench.dev(a.dev, 50, a.items, n) if a.dev else bench.synthetic(50, a.items, n, 1500)


def prepared(model, chunks):  # type: ignore[no-untyped-def]
    """Each chunk's and each item's evidence and prior log-odds, as classify_texts computes them before the label
    step (the input of `_label_probabilities`)."""
    score = sys.modules[type(model).__module__.rsplit(".", 1)[0] + ".score"]

    def of(analysed):  # type: ignore[no-untyped-def]
        ev = score.evidence(model._tables(), [(x.title_scan.terms, x.text_scan.terms) for x in analysed])
        return ev, model._log_odds_batch(ev)

    return [of(c) for c in chunks], [of([x]) for c in chunks for x in c]


def loops(model, chunks, batches, singles) -> list[Callable[[], object]]:  # type: ignore[no-untyped-def]
    """The measured loops, in LOOPS' order: each loop of _one_chunk over every chunk."""
    per_chunk = [[_one_chunk(li, model, c, ci, batches, singles) for ci, c in enumerate(chunks)] for li in range(4)]
    return [lambda runs=runs: [run() for run in runs] for runs in per_chunk]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", choices=["ru", "en"])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--background", type=int, default=8000, help="background items of the build (fewer: quicker)")
    ap.add_argument("--reference", type=Path, help="a checkout holding the code before (monitor/)")
    ap.add_argument("--instructions", action="store_true", help="count instructions (callgrind) instead of CPU time")
    ap.add_argument("--jobs", type=int, default=2, help="--instructions: processes at a time")
    ap.add_argument("--child", nargs=2, metavar=("CODE", "LABELS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a, a.child[0], a.child[1] == "on")
    if a.instructions:
        return instructions(a)
    if a.reference is None:
        ap.error("--reference is needed for CPU time (the same-process comparison)")
    with reference_package(a.reference) as package:
        return compare(a, importlib.import_module(f"{package}.match.classify").TopicModel)


def compare(a: argparse.Namespace, OldModel: type) -> int:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    d = data(a)
    new0, new1, labelled = models(TopicModel, d)
    old0, old1, _ = models(OldModel, d, labelled)
    runs = {"old, no labels": old0, "old, labels": old1, "new, no labels": new0, "new, labels": new1}
    analysed = [analyse(title, text) for title, text in d[2]]
    chunks = [analysed[i : i + BATCH] for i in range(0, len(analysed), BATCH)]
    same = [repr(m) for c in chunks for ms in old1.classify_texts(c) for m in ms] == [
        repr(m) for c in chunks for ms in new1.classify_texts(c) for m in ms
    ]
    print(f"every Match the same in both codes, with labels: {same}", flush=True)
    prep = {name: prepared(m, chunks) for name, m in runs.items()}
    us: dict[str, dict[str, float]] = {}
    for li, mode in enumerate(LOOPS):
        best = {name: [float("inf")] * len(chunks) for name in runs}
        for p in range(a.passes):
            for ci, chunk in enumerate(chunks):
                new0.classify_texts(chunk)  # untimed: the batch's data warm for whichever model comes first
                names = list(runs)
                turn = (p + ci) % len(names)
                for name in names[turn:] + names[:turn]:
                    run = _one_chunk(li, runs[name], chunk, ci, *prep[name])
                    c0 = time.process_time()
                    run()
                    best[name][ci] = min(best[name][ci], time.process_time() - c0)
        us[mode] = {name: 1e6 * sum(v) / len(analysed) for name, v in best.items()}
    for code in ("old", "new"):
        report(code, {mode: (us[mode][f"{code}, no labels"], us[mode][f"{code}, labels"]) for mode in LOOPS}, "µs")
    print(f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


def _one_chunk(li, model, chunk, ci, batches, singles) -> Callable[[], object]:  # type: ignore[no-untyped-def]
    """Loop li of LOOPS on chunk ci alone (the CPU-time form times chunk by chunk)."""
    step = model._label_probabilities
    if li == 0:
        return lambda: model.classify_texts(chunk)
    if li == 1:
        return lambda: [model.classify_text(x) for x in chunk]
    if li == 2:
        return lambda: step(*batches[ci])
    mine = singles[ci * BATCH : ci * BATCH + len(chunk)]
    return lambda: [step(ev, z0) for ev, z0 in mine]


def report(code: str, per_item: dict[str, tuple[float, float]], unit: str) -> None:
    """One code's figures: per item without / with labels, whole classify's cost, and the label step's."""
    for mode, step in zip(LOOPS[:2], LOOPS[2:], strict=True):
        (c0, c1), (s0, s1) = per_item[mode], per_item[step]
        print(
            f"{code}, {mode}: classify {c0:,.1f} / {c1:,.1f} {unit} an item without / with labels, "
            f"{100 * (c1 / c0 - 1):+.2f} %; label step {s0:,.1f} / {s1:,.1f}, "
            f"{100 * (s1 - s0) / c0:+.2f} % of classify",
            flush=True,
        )


# ------------------------------------------------------------------------------------------------ --instructions
def instructions(a: argparse.Namespace) -> int:
    codes = {"new": HERE.parent} | ({"old": a.reference.resolve()} if a.reference else {})
    runs = [(code, labels) for code in codes for labels in ("off", "on")]
    env = os.environ | {"PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as tmp:

        def run(code: str, labels: str) -> tuple[list[int], str]:
            out = Path(tmp) / f"{code}-{labels}.out"
            cmd = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--collect-atstart=no",
                "--toggle-collect=sys_call_tracing",
                "--dump-after=sys_call_tracing",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                str(codes[code]) if code == "old" else "new",
                labels,
                "--items",
                str(a.items),
                "--background",
                str(a.background),
                *(["--dev", a.dev] if a.dev else []),
            ]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{code}, labels {labels}: failed\n{done.stderr[-3000:]}")
            counts = [_total(Path(f"{out}.{k}")) for k in range(1, len(LOOPS) + 1)]
            return counts, done.stdout.strip()

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max(1, a.jobs)) as pool:
            results = dict(zip(runs, pool.map(lambda r: run(*r), runs), strict=True))
    digests = {r: out for r, (_, out) in results.items()}
    for r, out in digests.items():
        print(f"{r[0]}, labels {r[1]}: {out}")
    same = len({out for (_, labels), out in digests.items() if labels == "on"}) == 1
    if len(codes) > 1:
        print(f"every Match and label the same in both codes: {same}", flush=True)
    for code in codes:
        off, on = results[(code, "off")][0], results[(code, "on")][0]
        report(code, {mode: (off[i] / a.items, on[i] / a.items) for i, mode in enumerate(LOOPS)}, "instructions")
    print(f"({time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f})")
    return 0


def _total(path: Path) -> int:
    """The instructions of one callgrind dump (its `totals:` line)."""
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"{path}: no totals line")


def child(a: argparse.Namespace, code: str, labelled: bool) -> int:
    """One (code, labels) under callgrind: build and warm uncounted, then each loop of LOOPS as one dump."""
    if code == "new":
        return measure(a, TopicModel, labelled)
    with reference_package(Path(code)) as package:
        return measure(a, importlib.import_module(f"{package}.match.classify").TopicModel, labelled)


def measure(a: argparse.Namespace, cls: type, labelled: bool) -> int:
    d = data(a)
    model0, model1, labels = models(cls, d)
    model = model1 if labelled else model0
    analysed = [analyse(title, text) for title, text in d[2]]
    chunks = [analysed[i : i + BATCH] for i in range(0, len(analysed), BATCH)]
    batches, singles = prepared(model, chunks)
    measured = loops(model, chunks, batches, singles)
    out = [run() for run in measured]  # untimed: warm caches; what the digests read
    digest = hashlib.sha256()
    for label, item in labels:
        digest.update(f"{item.uid} {label.topic} {label.relevant}\n".encode())
    for matches in out[0]:
        digest.update(repr(matches).encode())
    print(f"labels and Matches {digest.hexdigest()[:16]}", flush=True)
    _instrument()
    for run in measured:
        sys.call_tracing(run, ())
    return 0


def _instrument() -> None:
    """Switch callgrind's instrumentation on for this process (started with --instr-atstart=no); spin meanwhile
    rather than block, so that callgrind's gdbserver polls without needing ptrace."""
    ctl = subprocess.Popen(["callgrind_control", "-i", "on", str(os.getpid())], stdout=subprocess.PIPE, text=True)
    while ctl.poll() is None:
        pass
    said = ctl.stdout.read() if ctl.stdout else ""
    if ctl.returncode or "not detected" in said:
        raise SystemExit(f"callgrind_control failed: {said}")


if __name__ == "__main__":
    sys.exit(main())
