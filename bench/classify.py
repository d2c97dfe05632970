"""Speed and memory of the topic model, on one core.

    python bench/classify.py [--items 5000] [--topics 50] [--background 20000] [--chars 1500] [--dev ru|en]
                             [--labels 50] [--label-draw consistent|alerts] [--batch 30] [--runs 5]
    python bench/classify.py --huge [1 5 10]        # peak RSS of one item of 1, 5 and 10 MB, a fresh process each

Synthetic by default (needs no data files): Russian items of about 1,500 characters drawn with a Zipf law from the
inflected forms of a few hundred news lemmas (pymorphy3 generates the forms) plus made-up names, 50 topics with
keywords, a description and 3 example articles each. Prints classify items/s (passages, keyword phrases and
explanations included: the full `TopicModel.classify` call), the refit time on the background, and the resident
memory of the process before and after loading the saved model. `--dev ru` uses the real dev stream instead
(/work/shared/data/dev), its topics replicated to reach --topics. With `--labels N` (default 50) every topic also
gets N analyst labels (half relevant on items of its story that the model matches, half not relevant on items of
other stories that it does not match) and classify is timed with and without them, in alternating runs, one item at
a time and in batches as a poll classifies, and the label step alone; the time of `with_labels` is printed too
(issue 11: labels must not slow classification by more than 10 %). `--label-draw alerts` draws them instead as the
analyst gives them: each topic's alerts and near misses in stream order, with their gold verdict.

Batches and the scikit-learn reference (issue 11 §5): the items, analysed once beforehand (as the daemon shares the
analysis with story grouping), are classified in batches of --batch (a poll's new items) with
`TopicModel.classify_texts`, alternating --runs times with a plain scikit-learn reference on the same analysed
terms: `TfidfVectorizer` (sublinear TF, fitted on the background's terms; analyzer = the item's terms), one
batched `transform` of each batch's items (title twice, text) and their 40-term passages (stride 20, as ours),
cosines (`linear_kernel` of the L2-normalised rows) against 50 topic centroids (the mean of each topic's
description-and-keywords and example vectors) and the best passage per item. Printed: items/s of both and their
ratio per run, CPU time on one core.

`--huge`: a fresh process per size builds a model (the synthetic topics, 2,000 background items) and classifies
one item of that many MB whose text names a topic all along; prints its peak RSS (ru_maxrss) after the build and
after the item (`MONITOR_CODE=/path/to/checkout` and that checkout's interpreter: the figures before a change).
"""

from __future__ import annotations

import os

# One core: BLAS/OpenMP pools would otherwise spread numpy's matrix products over every CPU.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import bisect  # noqa: E402
import gzip  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pymorphy3  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.metrics.pairwise import linear_kernel  # noqa: E402
from sklearn.preprocessing import normalize  # noqa: E402

# MONITOR_CODE=/path/to/another/checkout: measure that checkout's code (its interpreter, e.g. for the figures before
# a change); by default the checkout this script is in.
sys.path.insert(0, os.environ.get("MONITOR_CODE") or str(Path(__file__).resolve().parent.parent))

from monitor.config import Topic, loads  # noqa: E402
from monitor.match import score  # noqa: E402
from monitor.match.classify import TopicModel  # noqa: E402
from monitor.match.text import analyse, terms  # noqa: E402

try:  # older checkouts (run with their interpreter for the --huge figures before the cap) have no `readable`
    from monitor.match.text import readable
except ImportError:  # pragma: no cover
    from monitor.match.clean import strip_code as readable
from monitor.models import Item, Label  # noqa: E402

T0 = datetime(2024, 3, 1, tzinfo=UTC)

LEMMAS = """
президент правительство министр министерство власть государство страна россия сша европа китай украина сирия ливия
корея иран турция германия франция британия япония индия израиль египет ирак афганистан пакистан венесуэла война
конфликт переговоры соглашение договор санкция экономика рынок нефть газ цена рубль доллар евро банк кредит инфляция
бюджет налог закон суд прокурор дело расследование полиция армия войско оружие ракета самолет корабль флот граница
безопасность оборона наступление удар обстрел атака террорист боевик оппозиция выборы партия депутат парламент дума
сенатор губернатор мэр город область регион район столица народ население беженец мигрант кризис помощь поддержка
решение заявление встреча визит саммит делегация посол дипломат МИД ООН НАТО союз альянс сотрудничество партнер
проект программа развитие строительство завод компания предприятие производство экспорт импорт торговля тариф
пошлина квота урожай зерно пшеница кукуруза поставка контракт сделка акция биржа индекс ядерный ракетный военный
политический экономический международный российский американский европейский китайский украинский сирийский
ливийский иранский турецкий новый главный последний крупный важный сложный серьезный заявить сообщить отметить
подчеркнуть провести начать продолжить подписать обсудить ввести отменить продлить усилить поддержать осудить
потребовать предложить решить получить передать направить вернуть запустить стратегический стабильность контроль
вооружение испытание угроза мир урегулирование прекращение огонь режим
""".split()  # noqa: SIM905 - a word list reads better as text
NAMES = [
    "Хафтар",
    "Асад",
    "Макрон",
    "Меркель",
    "Трамп",
    "Байден",
    "Эрдоган",
    "Нетаньяху",
    "Моди",
    "Си Цзиньпин",
    "Лавров",
    "Шойгу",
    "Песков",
    "Захарова",
    "Кудрин",
    "Набиуллина",
    "Сечин",
    "Миллер",
    "Дворкович",
    "Медведев",
]
STOP = "и в на с по о что как для от за не это к из у же также при до после".split()  # noqa: SIM905


def vocabulary(seed: int) -> tuple[list[str], list[str]]:
    """(general forms, story forms): inflected forms of news lemmas and made-up names, split by lemma."""
    morph = pymorphy3.MorphAnalyzer()
    groups: list[list[str]] = []
    for lemma in LEMMAS:
        parse = morph.parse(lemma)[0]
        groups.append(sorted({f.word for f in parse.lexeme})[:24])
    rng = random.Random(seed)
    syllables = ["ка", "ро", "ми", "на", "тов", "ски", "лев", "ар", "зан", "мур", "ден", "ко", "вич", "ан", "ес"]
    names = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(3, 4))) for _ in range(6000)})
    groups.extend([base.capitalize(), base.capitalize() + "а", base.capitalize() + "у"] for base in names)
    rng.shuffle(groups)
    cut = len(groups) // 4
    general = [w for g in groups[:cut] for w in g]
    story = [w for g in groups[cut:] for w in g]
    rng.shuffle(general)
    return general, story


class Writer:
    """Zipf-distributed Russian-looking text."""

    def __init__(self, forms: list[str], seed: int) -> None:
        self.forms = forms
        self.rng = random.Random(seed)
        weights = [1.0 / (rank + 1) for rank in range(len(forms))]
        self.cum = list(itertools.accumulate(weights))

    def text(self, chars: int, focus: list[str] | None = None) -> str:
        words: list[str] = []
        length = 0
        while length < chars:
            if self.rng.random() < 0.3:
                word = self.rng.choice(STOP)
            elif focus and self.rng.random() < 0.15:
                word = self.rng.choice(focus)
            else:
                word = self.forms[bisect.bisect(self.cum, self.rng.random() * self.cum[-1])]
            words.append(word)
            length += len(word) + 1
            if self.rng.random() < 0.07:
                words[-1] += "."
        return " ".join(words)[:chars]


def synthetic(n_topics: int, n_items: int, n_background: int, chars: int, seed: int = 1):  # type: ignore[no-untyped-def]
    """Items each tell one of 400 stories: general Zipf vocabulary plus 15 % words of the story's own vocabulary."""
    # General vocabulary (Zipf) and story vocabulary are disjoint: a story's words, like real topical words
    # ("Хафтар", "Идлиб"), occur in the stories about it, not at random everywhere.
    general, rare = vocabulary(seed)
    writer = Writer(general, seed)
    rng = random.Random(seed + 1)
    stories = [rng.sample(rare, 40) for _ in range(400)]
    topics, examples = [], {}
    for i in range(n_topics):
        words = stories[i]
        keywords = [words[0], words[1], f"{words[2]} {words[3]}", NAMES[i % len(NAMES)]]
        topic = Topic(id=f"t{i:02d}", name=words[0], description=" ".join(words[:15]), keywords=keywords)
        topics.append(topic)
        examples[topic.id] = tuple((" ".join(words[:4]), writer.text(chars, words)) for _ in range(3))

    def item() -> tuple[str, str]:
        words = stories[rng.randrange(len(stories))]
        return writer.text(80, words), writer.text(chars, words)

    items = [item() for _ in range(n_items)]
    background = ["\n".join(item()) for _ in range(n_background)]
    return topics, examples, items, background, lambda i: (writer.text(80, stories[i]), writer.text(chars, stories[i]))


def labels_for(model: TopicModel, topics: list[Topic], per_topic: int, story_item):  # type: ignore[no-untyped-def]
    """per_topic labels for every topic: half "relevant" on items of its story that the model matches for it, half
    "not relevant" on items of other stories that it does not match (a consistent analyst: labels that contradict
    the model change its decisions, and the timing would then measure the extra matches explained, not the labels)."""
    rng = random.Random(7)
    out = []
    for i, topic in enumerate(topics):
        n = tries = 0
        while n < per_topic and tries < 50 * per_topic:
            tries += 1
            relevant = n % 2 == 0
            title, text = story_item(i if relevant else rng.randrange(len(topics), 400))
            matched = any(m.topic == topic.id and m.matched for m in model.classify(title, text, "ru"))
            if matched != relevant:
                continue
            it = Item(feed="bench", key=f"{topic.id}-{n}", title=title, link=None, published=T0, content=text)
            out.append((Label(item=it.uid, topic=topic.id, relevant=relevant, source="cli"), it))
            n += 1
    return out


def alert_labels(model: TopicModel, topics: list[Topic], per_topic: int, stream):  # type: ignore[no-untyped-def]
    """per_topic labels for every topic as the analyst gives them (`--label-draw alerts`): on the alerts the model
    raises for the topic and the near misses it offers, in stream order, each with its gold verdict, as `monitor eval
    --feedback` reveals them (here all from the model without labels). `stream` yields (title, text, gold topic ids)."""
    need = {t.id: per_topic for t in topics}
    out = []
    chunk: list[tuple[str, str, set[str]]] = []
    for row in itertools.chain(stream, [None]):
        if row is not None:
            chunk.append(row)
            if len(chunk) < 64:
                continue
        analysed = [analyse(t, x) for t, x, _ in chunk]
        for (title, text, gold), matches in zip(chunk, model.classify_texts(analysed), strict=True):
            for m in matches:
                if need[m.topic] and (m.matched or model.is_near_miss(m)):
                    need[m.topic] -= 1
                    key = f"{m.topic}-{per_topic - need[m.topic]}"
                    it = Item(feed="bench", key=key, title=title, link=None, published=T0, content=text)
                    out.append((Label(item=it.uid, topic=m.topic, relevant=m.topic in gold, source="cli"), it))
        chunk = []
        if not any(need.values()) or row is None:
            break
    return out


def synthetic_stream(topics: list[Topic], story_item, n: int = 40_000, seed: int = 11):  # type: ignore[no-untyped-def]
    """Items of random stories (as the bench's items), gold: topic i is story i."""
    rng = random.Random(seed)
    for _ in range(n):
        story = rng.randrange(400)
        yield (*story_item(story), {topics[story].id} if story < len(topics) else set())


def dev_stream(lang: str, topics: list[Topic], n_items: int):  # type: ignore[no-untyped-def]
    """The dev stream before the timed items, in order; gold: the copies of each topic the item is labelled with."""
    with gzip.open(Path("/work/shared/data/dev") / f"{lang}_dev.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    for r in rows[: len(rows) - n_items]:
        yield r["title"], r["text"], {t.id for t in topics if t.id.rsplit("-", 1)[0] in r["topics"]}


def dev(lang: str, n_topics: int, n_items: int, n_background: int):  # type: ignore[no-untyped-def]
    root = Path("/work/shared/data/dev")
    cfg_text = (root / f"{lang}_dev_topics.yaml").read_text(encoding="utf-8")
    cfg = loads(cfg_text, name=str(root / f"{lang}_dev_topics.yaml"))
    topics, examples = [], {}
    for i in range(n_topics):
        base = cfg.topics[i % len(cfg.topics)]
        topic = base.model_copy(update={"id": f"{base.id}-{i}"})
        topics.append(topic)
        examples[topic.id] = cfg.example_texts[base.id]
    with gzip.open(root / f"{lang}_dev.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    items = [(r["title"], r["text"]) for r in rows[-n_items:]]
    background = [f"{r['title']}\n{r['text']}" for r in (rows * 5)[:n_background]]
    pool = rows[: len(rows) - n_items]
    rng = random.Random(3)
    return topics, examples, items, background, lambda i: (lambda r: (r["title"], r["text"]))(rng.choice(pool))


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--topics", type=int, default=50)
    ap.add_argument("--background", type=int, default=20000)
    ap.add_argument("--chars", type=int, default=1500)
    ap.add_argument("--dev", choices=["ru", "en"], help="use the dev stream instead of synthetic text")
    ap.add_argument("--labels", type=int, default=50, help="analyst labels per topic for the labelled run (0: none)")
    ap.add_argument(
        "--label-draw",
        choices=["consistent", "alerts"],
        default="consistent",
        help="consistent: half relevant on matched items of the topic's story, half not relevant on unmatched items "
        "of other stories; alerts: the topic's alerts and near misses in stream order, with their gold verdict",
    )
    ap.add_argument("--batch", type=int, default=30, help="items per classify_texts call (a poll's new items)")
    ap.add_argument("--runs", type=int, default=5, help="alternating runs of ours and the scikit-learn reference")
    ap.add_argument("--huge", type=float, nargs="*", metavar="MB", help="peak RSS for items of these sizes")
    ap.add_argument("--huge-one", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--measure-load", nargs=2, metavar=("MODEL", "TOPICS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure_load:
        measure_load(Path(a.measure_load[0]), Path(a.measure_load[1]))
        return 0
    if a.huge_one:
        huge_one(a.huge_one)
        return 0
    if a.huge is not None:
        for mb in a.huge or [1, 5, 10]:
            out = subprocess.run([sys.executable, __file__, "--huge-one", str(mb)], capture_output=True, text=True)
            print(out.stdout.strip() or f"{mb:g} MB item: failed ({out.stderr.strip().splitlines()[-1:]})", flush=True)
        return 0
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    t0 = time.perf_counter()
    if a.dev:
        topics, examples, items, background, story_item = dev(a.dev, a.topics, a.items, a.background)
    else:
        topics, examples, items, background, story_item = synthetic(a.topics, a.items, a.background, a.chars)
    avg = sum(len(t) + len(x) for t, x in items) / len(items)
    print(
        f"data: {len(items)} items (avg {avg:.0f} chars), {len(topics)} topics, {len(background)} background "
        f"({time.perf_counter() - t0:.1f} s to generate)"
    )

    t0, c0 = time.perf_counter(), time.process_time()
    model = TopicModel.build(topics, examples, background)
    print(f"build (cold word cache): {time.perf_counter() - t0:.2f} s wall, {time.process_time() - c0:.2f} s CPU")
    t0, c0 = time.perf_counter(), time.process_time()
    model = model.refit(background)
    print(
        f"refit on {len(background)} background items (warm word cache): {time.perf_counter() - t0:.2f} s wall, "
        f"{time.process_time() - c0:.2f} s CPU"
    )

    for title, text in items[:200]:  # warm the word cache, as a running daemon has it
        model.classify(title, text)
    against_reference(model, topics, examples, items, background, a.batch, a.runs)
    runs = {"no labels": model}
    if a.labels:
        if a.label_draw == "alerts":
            stream = dev_stream(a.dev, topics, a.items) if a.dev else synthetic_stream(topics, story_item)
            labelled = alert_labels(model, topics, a.labels, stream)
        else:
            labelled = labels_for(model, topics, a.labels, story_item)
        rel = sum(lab.relevant for lab, _ in labelled)
        print(f"{len(labelled)} labels ({a.label_draw}): {rel} relevant, {len(labelled) - rel} not")
        t0, c0 = time.perf_counter(), time.process_time()
        taught = model.with_labels(labelled)
        first = time.process_time() - c0
        c0 = time.process_time()
        taught = taught.with_labels(labelled[:-1])  # one label less: the items' evidence is cached by now
        again = time.process_time() - c0
        print(
            f"with_labels, {len(labelled)} labels ({a.labels} per topic): {first:.2f} s CPU the first time "
            f"(evidence of every labelled item), {again * 1000:.0f} ms CPU after one more label"
        )
        runs[f"{a.labels} labels per topic"] = taught
    analysed = [analyse(title, text) for title, text in items]
    chunks = [analysed[i : i + a.batch] for i in range(0, len(analysed), a.batch)]
    modes = {
        "one item at a time (classify)": lambda m: sum(
            x.matched for title, text in items for x in m.classify(title, text, "ru")
        ),
        f"in batches of {a.batch}, analysed beforehand (classify_texts, as a poll)": lambda m: sum(
            x.matched for chunk in chunks for matches in m.classify_texts(chunk) for x in matches
        ),
    }
    for mode, run in modes.items():
        best = dict.fromkeys(runs, float("inf"))
        matched = dict.fromkeys(runs, 0)
        for _ in range(3):  # best of three, the runs alternating: the machine may be shared
            for name, m in runs.items():
                c0 = time.process_time()
                matched[name] = run(m)
                best[name] = min(best[name], time.process_time() - c0)
        for name, cpu in best.items():
            print(
                f"classify {mode}, {name}: {len(items) / cpu:,.0f} items/s per CPU second on one core; "
                f"{matched[name] / len(items):.2f} matches per item"
            )
        if len(best) == 2:
            base_cpu, labelled_cpu = best.values()
            print(f"labels cost {100 * (labelled_cpu / base_cpu - 1):+.1f} % classify CPU time, {mode}")
    if len(runs) == 2:
        # The label step alone (a batch's prior log-odds → corrected probabilities, the seam classify_texts calls),
        # against the whole unlabelled batch classify: what labels cost apart from explaining the extra matches.
        base, taught = runs.values()
        tables = base._tables()
        evidence = [score.evidence(tables, [(x.title_scan.terms, x.text_scan.terms) for x in c]) for c in chunks]
        z0 = [base._log_odds_batch(ev) for ev in evidence]
        step = []
        for _ in range(3):
            c0 = time.process_time()
            for ev, z in zip(evidence, z0, strict=True):
                taught._label_probabilities(ev, z)
            step.append(time.process_time() - c0)
        print(
            f"the label step alone: {1e6 * min(step) / len(items):.1f} µs per item, "
            f"{100 * min(step) / base_cpu:.1f} % of the unlabelled batch classify (the last mode above)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        model.save(path)
        spec = Path(tmp) / "topics.json"
        spec.write_text(
            json.dumps({"topics": [t.model_dump() for t in topics], "examples": examples, "probe": items[0]}),
            encoding="utf-8",
        )
        size = path.stat().st_size / 1e6
        # A fresh process, as the daemon starts: RSS after imports, then after loading the saved model.
        out = subprocess.run(
            [sys.executable, __file__, "--measure-load", str(path), str(spec)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"saved model {size:.1f} MB; {out.stdout.strip()}")
    return 0


class Reference:
    """Plain scikit-learn: TF-IDF of the analysed terms, cosines to topic centroids at item and passage level."""

    WINDOW, STRIDE = 40, 20  # as the topic model's passages

    def __init__(self, topics: list[Topic], examples, background: list[str]) -> None:  # type: ignore[no-untyped-def]
        self.vectorizer = TfidfVectorizer(analyzer=_same, sublinear_tf=True, dtype=np.float32)
        self.vectorizer.fit([terms(readable(text)) for text in background])
        rows = []
        for topic in topics:
            docs = [terms(f"{topic.name}\n{topic.description}\n" + "\n".join(topic.keywords))]
            docs += [terms(readable(f"{title}\n{text}")) for title, text in examples.get(topic.id, ())]
            rows.append(np.asarray(self.vectorizer.transform(docs).mean(axis=0)).ravel())
        self.centroids = normalize(np.vstack(rows)).astype(np.float32)

    def score(self, batch) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
        """([items, topics] cosine of each item, [items, topics] of its best passage) for analysed items."""
        docs, passages, owner = [], [], []
        for i, analysed in enumerate(batch):
            title, text = analysed.title_scan.terms, analysed.text_scan.terms
            docs.append(title + title + text)
            n = len(text)
            if n > self.WINDOW:
                starts = list(range(0, n - self.WINDOW + 1, self.STRIDE))
                if starts[-1] + self.WINDOW < n:
                    starts.append(n - self.WINDOW)
                passages.extend(text[s : s + self.WINDOW] for s in starts)
                owner.extend([i] * len(starts))
        cos = linear_kernel(self.vectorizer.transform(docs + passages), self.centroids)
        best = np.zeros((len(batch), cos.shape[1]), dtype=cos.dtype)
        if passages:
            rows = np.asarray(owner)
            first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            best[rows[first]] = np.maximum.reduceat(cos[len(batch) :], first, axis=0)
        return cos[: len(batch)], best


def _same(terms: list[str]) -> list[str]:
    return terms


def against_reference(model, topics, examples, items, background, batch: int, runs: int) -> None:  # type: ignore[no-untyped-def]
    """Items/s of classify_texts in batches against the scikit-learn reference, alternating, CPU time."""
    reference = Reference(topics, examples, background)
    analysed = [analyse(title, text) for title, text in items]
    # analysed before, for both (the daemon shares the analysis with story grouping)
    n_terms = sum(len(it.title_scan.terms) + len(it.text_scan.terms) for it in analysed)
    print(f"{len(analysed)} items analysed beforehand ({n_terms / len(analysed):.0f} terms each)")
    chunks = [analysed[i : i + batch] for i in range(0, len(analysed), batch)]
    ratios = []
    for run in range(runs):
        c0 = time.process_time()
        for chunk in chunks:
            model.classify_texts(chunk)
        ours = len(analysed) / (time.process_time() - c0)
        c0 = time.process_time()
        for chunk in chunks:
            reference.score(chunk)
        ref = len(analysed) / (time.process_time() - c0)
        ratios.append(ours / ref)
        print(
            f"run {run + 1}: classify_texts in batches of {batch}: {ours:,.0f} items/s; scikit-learn reference: "
            f"{ref:,.0f} items/s; ratio {ours / ref:.2f}",
            flush=True,
        )
    c0 = time.process_time()
    for it in analysed:
        model.classify_text(it)
    one = len(analysed) / (time.process_time() - c0)
    print(
        f"ratio ours / reference over {runs} runs: median {sorted(ratios)[len(ratios) // 2]:.2f}, "
        f"range {min(ratios):.2f}-{max(ratios):.2f}; one item at a time (classify_text): {one:,.0f} items/s"
    )


def huge_one(mb: float) -> None:
    topics, examples, _, background, story_item = synthetic(50, 1, 2000, 1500)
    model = TopicModel.build(topics, examples, background)
    built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    title, _ = story_item(0)
    parts, size = [], 0
    while size < mb * 1e6:  # topic t00's story, written anew paragraph after paragraph: its keywords all along
        parts.append(story_item(0)[1])
        size += len(parts[-1]) + 1
    text = "\n".join(parts)
    del parts
    t0 = time.process_time()
    matches = model.classify(title, text)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(text) / 1e6:.1f} MB item: peak RSS {peak:,.0f} MB ({built:,.0f} MB after building the model), "
        f"{time.process_time() - t0:.2f} s CPU to classify, {sum(m.matched for m in matches)} topics matched"
    )


def measure_load(path: Path, spec: Path) -> None:
    data = json.loads(spec.read_text(encoding="utf-8"))
    topics = [Topic(**t) for t in data["topics"]]
    examples = {k: tuple(tuple(e) for e in v) for k, v in data["examples"].items()}
    TopicModel.build([], {}, [])  # imports and the word analyser loaded
    before = rss_mb()
    model = TopicModel.load(path, topics, examples)
    model.classify(*data["probe"])
    after = rss_mb()
    print(
        f"fresh process RSS {before:.0f} MB after imports, {after:.0f} MB with the model loaded "
        f"(model ≈ {after - before:.0f} MB)"
    )


if __name__ == "__main__":
    sys.exit(main())
