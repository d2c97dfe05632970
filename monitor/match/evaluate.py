"""Replay a labelled corpus through the daemon's classification path and score it.

    corpus (JSONL[.gz], stream order)
      → first `warmup` fraction: background only (the model's initial rolling window, not scored)
      → each later item: TopicModel.classify → decision; then appended to the rolling window
      → every `refit_every` scored items: model = model.refit(window), as the daemon's scheduled refit
      → per-topic tp/fp/fn, P/R/F1, TDT C_det = P_miss + 4.9·P_fa; macro/micro; items/s
      → alerts per day per topic (over the calendar days the scored items' `published` dates cover): the alert
        volume an analyst would get, the one figure a background stream without gold can give
    with feedback K (the analyst simulated, prequentially; issue 11):
      → each item is decided first; then every alert it raised for a topic reveals the item's gold label for that
        topic with probability P, until the topic has K labels
      → its near misses (TopicModel.is_near_miss) are kept as the daemon keeps them (delivery.nearmiss.place: the
        best NEAR_MISSES_PER_TOPIC_DAY per topic and offer day) and offered at settings.near_misses in
        settings.timezone: their labels (probability P, same cap) are revealed when the stream's item time
        (`published`) passes that offer, before the next item is decided
      → the labels reach the model as button presses do: model = base.with_labels(all labels so far)

The scoring conventions are those of shared/tools/keyword_baseline.py (precision 0 without alerts; topics without
scored positives are reported but left out of the averages), so both report the same figures for one decisions file.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, tzinfo
from datetime import time as dtime
from pathlib import Path
from typing import Any, TextIO

from ..config import Config
from ..delivery.nearmiss import Held, due_day, offer_day, place
from ..errors import ConfigError
from ..models import Item, Label, Match
from .calibrate import FA_WEIGHT
from .classify import NEAR_MISSES_PER_TOPIC_DAY, TopicModel

# The daemon refits every settings.refit_every (6 h by default). At a watchlist's typical 1,500-2,500 new items a
# day that is roughly 400-600 items, so the replay refits every 500 scored items.
REFIT_EVERY = 500


@dataclass(frozen=True)
class TopicStats:
    """Counts and rates for one topic over the scored items."""

    topic: str
    positives: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float | None
    f1: float | None
    p_miss: float | None
    p_fa: float
    c_det: float | None
    alerts_per_day: float | None = None  # (tp + fp) / calendar days of the scored part; None without dates
    labels_from_alerts: int = 0  # --feedback: labels revealed by the topic's alerts
    labels_from_near_misses: int = 0  # ... and by the near misses offered for it
    near_misses_offered: int = 0


@dataclass(frozen=True)
class EvalReport:
    """The outcome of one replay."""

    corpus: str
    items: int
    warmup_items: int
    scored_items: int
    topics: tuple[TopicStats, ...]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    macro_c_det: float
    micro_tp: int
    micro_fp: int
    micro_fn: int
    micro_precision: float
    micro_recall: float
    micro_f1: float
    topics_averaged: int
    refits: int
    days: int  # distinct calendar days among the scored items' `published` dates (0: none dated)
    seconds: float  # wall time of the scored part, refits included
    items_per_second: float  # scored items / time spent in classify alone
    feedback: int = 0  # labels per topic the simulated analyst gives at most (0: none)
    feedback_rate: float = 1.0
    seed: int = 0
    label_updates: int = 0  # with_labels calls (one per scored item that brought new labels)
    label_seconds: float = 0.0  # time spent in them


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def read_corpus(path: Path) -> Iterator[dict[str, Any]]:
    """Corpus lines as dicts, in file order (gzip when the name ends in .gz)."""
    try:
        fh: TextIO = (
            gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - closed by the `with` below
            if path.suffix == ".gz"
            else path.open(encoding="utf-8")
        )
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the corpus: {exc}") from exc
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{n}: not a JSON line: {exc}") from exc
            if not isinstance(obj, dict) or "id" not in obj:
                raise ConfigError(f'{path}:{n}: expected an object with "id", "title", "text"')
            yield obj


def item_text(item: dict[str, Any]) -> str:
    """How a stored item enters the background window: title and text."""
    return f"{item.get('title') or ''}\n{item.get('text') or ''}"


def score_topics(
    topic_ids: Sequence[str], gold: Sequence[set[str]], got: Sequence[set[str]], days: int = 0
) -> tuple[list[TopicStats], dict[str, float]]:
    """Per-topic stats and the macro/micro summary (keyword_baseline.py's conventions)."""
    stats: list[TopicStats] = []
    for t in topic_ids:
        tp = fp = fn = tn = 0
        for g, d in zip(gold, got, strict=True):
            if t in g:
                tp, fn = (tp + 1, fn) if t in d else (tp, fn + 1)
            elif t in d:
                fp += 1
            else:
                tn += 1
        pos, neg = tp + fn, fp + tn
        p, r = _div(tp, tp + fp), _div(tp, pos)
        f = _div(2 * p * r, p + r)
        pmiss = _div(fn, pos) if pos else None
        pfa = _div(fp, neg)
        stats.append(
            TopicStats(
                t,
                pos,
                tp,
                fp,
                fn,
                tn,
                p,
                r if pos else None,
                f if pos else None,
                pmiss,
                pfa,
                pmiss + FA_WEIGHT * pfa if pmiss is not None else None,
                (tp + fp) / days if days else None,
            )
        )
    used = [s for s in stats if s.positives]
    n = len(used)
    tp = sum(s.tp for s in used)
    fp = sum(s.fp for s in used)
    fn = sum(s.fn for s in used)
    mp, mr = _div(tp, tp + fp), _div(tp, tp + fn)
    summary = {
        "macro_precision": _div(sum(s.precision for s in used), n),
        "macro_recall": _div(sum(s.recall or 0.0 for s in used), n),
        "macro_f1": _div(sum(s.f1 or 0.0 for s in used), n),
        "macro_c_det": _div(sum(s.c_det or 0.0 for s in used), n),
        "micro_tp": tp,
        "micro_fp": fp,
        "micro_fn": fn,
        "micro_precision": mp,
        "micro_recall": mr,
        "micro_f1": _div(2 * mp * mr, mp + mr),
        "topics_averaged": n,
    }
    return stats, summary


@dataclass(frozen=True)
class _Waiting:
    """A near miss the simulated daemon keeps for its day's offer."""

    held: Held
    topic: str
    day: date
    item: Item
    relevant: bool


class SimulatedAnalyst:
    """The analyst of `monitor eval --feedback`: labels alerts and offered near misses from the gold, K per topic.

    Each alert for a topic reveals the item's gold label for it with probability `rate`, at once (its buttons).
    Near misses go the daemon's way: kept per topic and offer day by delivery.nearmiss.place (the best
    `per_topic_day` scores; the corpus has no stories, so each item is its own), offered once a day at
    `offer_at` in `tz` (settings.near_misses, settings.timezone; None: offering off), and their labels revealed,
    with probability `rate`, only once the stream's item time passes that offer (`offer_due`). A topic stops at
    `k` labels. Near misses are offered for labelling, never counted as alerts.
    """

    def __init__(
        self,
        topic_ids: Sequence[str],
        k: int,
        rate: float,
        seed: int,
        *,
        offer_at: dtime | None = dtime(17),
        tz: tzinfo = UTC,
        per_topic_day: int = NEAR_MISSES_PER_TOPIC_DAY,
        routed: Callable[[str], bool] = lambda topic: True,
    ) -> None:
        self.k, self.rate = k, rate
        self.offer_at, self.tz, self.per_topic_day, self.routed = offer_at, tz, per_topic_day, routed
        self._rng = random.Random(seed)
        self._order = {t: i for i, t in enumerate(topic_ids)}
        self.labels: list[tuple[Label, Item]] = []
        self.from_alerts = dict.fromkeys(topic_ids, 0)
        self.from_near_misses = dict.fromkeys(topic_ids, 0)
        self.offered = dict.fromkeys(topic_ids, 0)
        self._waiting: dict[tuple[str, date], list[_Waiting]] = {}
        self._ids = 0
        self.clock: datetime | None = None  # the latest item time seen: the stream's "now"

    def _full(self, topic: str) -> bool:
        return self.from_alerts[topic] + self.from_near_misses[topic] >= self.k

    def _give(self, topic: str, item: Item, relevant: bool, near: bool) -> bool:
        if self._rng.random() >= self.rate:
            return False
        self.labels.append((Label(item.uid, topic, relevant, "eval", at=item.published), item))
        (self.from_near_misses if near else self.from_alerts)[topic] += 1
        return True

    def tick(self, record: dict[str, Any]) -> int:
        """Move the stream's clock to `record`'s time (never back) and reveal the labels of the near misses whose
        offer time has come by then; returns how many labels that gave."""
        published = corpus_item(record).published
        self.clock = published if self.clock is None else max(self.clock, published)
        if self.offer_at is None or not self._waiting:
            return 0
        due = due_day(self.clock, self.offer_at, self.tz)
        ready = [w for key, held in self._waiting.items() if key[1] <= due for w in held]
        if not ready:
            return 0
        self._waiting = {key: held for key, held in self._waiting.items() if key[1] > due}
        ready.sort(key=lambda w: (w.day, self._order[w.topic], -w.held.score, w.held.id))  # as plan_offers shows them
        given = 0
        for w in ready:
            if self._full(w.topic):
                continue
            self.offered[w.topic] += 1
            given += self._give(w.topic, w.item, w.relevant, near=True)
        return given

    def react(self, record: dict[str, Any], matches: Sequence[Match]) -> int:
        """The labels one decided item's alerts bring at once (appended to `labels`; returns how many); its near
        misses are kept for their day's offer (`tick`)."""
        gold = set(record.get("topics") or ())
        item = corpus_item(record)
        now = self.clock or item.published
        given = 0
        for m in matches:
            if m.matched and not self._full(m.topic):
                given += self._give(m.topic, item, m.topic in gold, near=False)
        if self.offer_at is None:
            return given
        day = offer_day(now, self.offer_at, self.tz)
        for m in matches:
            # decide._near_misses' filter: below the line, not vetoed, a topic the item (its own story) did not
            # alert, routed to a channel
            if m.matched or m.vetoed_by is not None or not TopicModel.is_near_miss(m) or not self.routed(m.topic):
                continue
            held = self._waiting.setdefault((m.topic, day), [])
            lowest_first = sorted((w.held for w in held), key=lambda h: (h.score, h.id))
            keep, drop = place(m.score, None, lowest_first, self.per_topic_day)
            held[:] = [w for w in held if w.held.id not in drop]
            if keep:
                self._ids += 1
                held.append(_Waiting(Held(self._ids, m.score, True), m.topic, day, item, m.topic in gold))
        return given


def corpus_item(record: dict[str, Any]) -> Item:
    """A corpus line as the Item the daemon would have stored."""
    raw = str(record.get("published") or "")
    try:
        published = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        published = datetime(1970, 1, 1, tzinfo=UTC)
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return Item(
        feed=str(record.get("source") or "corpus"),
        key=str(record["id"]),
        title=record.get("title") or "",
        link=None,
        published=published,
        content=record.get("text") or "",
        lang=record.get("lang") or "",
    )


def run_eval(
    config: Config,
    corpus: Path,
    *,
    warmup: float = 0.2,
    decisions: Path | None = None,
    refit_every: int = REFIT_EVERY,
    on_item: Callable[[dict[str, Any], list[Match]], None] | None = None,
    feedback: int = 0,
    feedback_rate: float = 1.0,
    seed: int = 0,
) -> EvalReport:
    """Replay `corpus` in file order through TopicModel as the daemon runs it, and score the decisions.

    With `feedback` > 0 a simulated analyst labels alerts and near misses (SimulatedAnalyst) and the model learns
    from the labels as the daemon does from button presses.
    """
    if not 0 <= warmup < 1:
        raise ConfigError(f"--warmup must be in [0, 1), got {warmup}")
    if feedback < 0:
        raise ConfigError(f"--feedback must be 0 or more, got {feedback}")
    if not 0 < feedback_rate <= 1:
        raise ConfigError(f"--feedback-rate must be in (0, 1], got {feedback_rate}")
    items = list(read_corpus(corpus))
    n_warm = int(len(items) * warmup)
    window: deque[str] = deque((item_text(it) for it in items[:n_warm]), maxlen=config.settings.background_size)
    model = TopicModel.build(config.topics, config.example_texts, list(window))
    topic_ids = model.topic_ids
    analyst = (
        SimulatedAnalyst(
            topic_ids,
            feedback,
            feedback_rate,
            seed,
            offer_at=config.settings.near_miss_time,
            tz=config.settings.tz,
            # a topics file for eval routes nowhere; the analyst reading it is taken to get every topic
            routed=(lambda t: bool(config.channels_for([t]))) if config.channels else (lambda t: True),
        )
        if feedback
        else None
    )
    timing: list[float] = [0, 0.0]  # with_labels calls, seconds in them
    gold: list[set[str]] = []
    got: list[set[str]] = []
    dates: set[str] = set()
    refits = 0
    classify_seconds = 0.0
    started = time.perf_counter()
    out = decisions.open("w", encoding="utf-8") if decisions is not None else None
    try:
        for n, item in enumerate(items[n_warm:], 1):
            if analyst is not None and analyst.tick(item):  # the day's near-miss offer, answered before this item
                model = _learn(model, analyst, timing)
            t0 = time.perf_counter()
            matches = model.classify(item.get("title") or "", item.get("text") or "", item.get("lang") or None)
            classify_seconds += time.perf_counter() - t0
            matched = [m.topic for m in matches if m.matched]
            gold.append(set(item.get("topics") or ()))
            dates.add(str(item.get("published") or "")[:10])
            got.append(set(matched))
            if out is not None:
                line = {"id": item["id"], "matched": matched, "scores": {m.topic: m.score for m in matches}}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            if on_item is not None:
                on_item(item, matches)
            if analyst is not None and analyst.react(item, matches):
                model = _learn(model, analyst, timing)
            window.append(item_text(item))
            if refit_every > 0 and n % refit_every == 0:
                model = model.refit(list(window))
                refits += 1
    finally:
        if out is not None:
            out.close()
    seconds = time.perf_counter() - started
    days = len(dates - {""})
    stats, summary = score_topics(topic_ids, gold, got, days)
    if analyst is not None:
        stats = [
            replace(
                st,
                labels_from_alerts=analyst.from_alerts[st.topic],
                labels_from_near_misses=analyst.from_near_misses[st.topic],
                near_misses_offered=analyst.offered[st.topic],
            )
            for st in stats
        ]
    return EvalReport(
        corpus=str(corpus),
        items=len(items),
        warmup_items=n_warm,
        scored_items=len(items) - n_warm,
        topics=tuple(stats),
        refits=refits,
        days=days,
        seconds=seconds,
        items_per_second=_div(len(items) - n_warm, classify_seconds),
        feedback=feedback,
        feedback_rate=feedback_rate,
        seed=seed,
        label_updates=int(timing[0]),
        label_seconds=timing[1],
        **summary,  # type: ignore[arg-type]
    )


def _learn(model: TopicModel, analyst: SimulatedAnalyst, timing: list[float]) -> TopicModel:
    """The model after the analyst's labels so far, by the path of a button press (the daemon swaps models)."""
    t0 = time.perf_counter()
    model = model.with_labels(analyst.labels)
    timing[0] += 1
    timing[1] += time.perf_counter() - t0
    return model


def _fmt(x: float | None) -> str:
    return f"{'-':>6s}" if x is None else f"{x:6.3f}"


def format_report(report: EvalReport) -> str:
    """A readable table like keyword_baseline.py's."""
    lines = [
        f"corpus {report.corpus}: {report.items} items, warmup {report.warmup_items}, scored {report.scored_items}; "
        f"C_det = P_miss + {FA_WEIGHT:.1f} * P_fa",
        f"{'topic':22s} {'pos':>5s} {'tp':>5s} {'fp':>5s} {'fn':>5s} {'prec':>6s} {'rec':>6s} {'F1':>6s} "
        f"{'Pmiss':>6s} {'Pfa':>6s} {'Cdet':>6s} {'alerts/day':>10s}",
    ]
    for s in report.topics:
        lines.append(
            f"{s.topic:22s} {s.positives:5d} {s.tp:5d} {s.fp:5d} {s.fn:5d} {_fmt(s.precision)} {_fmt(s.recall)} "
            f"{_fmt(s.f1)} {_fmt(s.p_miss)} {_fmt(s.p_fa)} {_fmt(s.c_det)} "
            f"{'-' if s.alerts_per_day is None else f'{s.alerts_per_day:.1f}':>10s}"
        )
    if report.topics_averaged:
        lines.append(
            f"{'MACRO':22s} {'':5s} {'':5s} {'':5s} {'':5s} {_fmt(report.macro_precision)} "
            f"{_fmt(report.macro_recall)} {_fmt(report.macro_f1)} {'':6s} {'':6s} {_fmt(report.macro_c_det)}"
        )
        lines.append(
            f"{'MICRO':22s} {'':5s} {report.micro_tp:5d} {report.micro_fp:5d} {report.micro_fn:5d} "
            f"{_fmt(report.micro_precision)} {_fmt(report.micro_recall)} {_fmt(report.micro_f1)}"
        )
    else:  # a background stream: nothing to be right or wrong about, only how many alerts it would raise
        lines.append("no gold topics in this corpus: tp/fp count alerts, not errors (see alerts/day)")
    if report.feedback:
        lines.append(
            f"feedback: at most {report.feedback} labels per topic, each alert or offered near miss labelled with "
            f"probability {report.feedback_rate:g} (seed {report.seed}); labels per topic (from alerts + from near "
            "misses, near misses offered):"
        )
        lines.append(
            "  "
            + ", ".join(
                f"{s.topic} {s.labels_from_alerts}+{s.labels_from_near_misses} ({s.near_misses_offered})"
                for s in report.topics
            )
        )
        per_call = _div(report.label_seconds, report.label_updates) * 1000
        lines.append(f"  {report.label_updates} model updates (with_labels), {per_call:.1f} ms each on average")
    lines.append(
        f"{report.items_per_second:,.0f} items/s in classify; {report.seconds:.1f} s for the scored part "
        f"with {report.refits} refits" + (f"; {report.days} calendar days scored" if report.days else "")
    )
    return "\n".join(lines)


def report_to_json(report: EvalReport) -> dict[str, Any]:
    """The report as plain JSON-able data."""
    data = asdict(report)
    data["topics"] = {s["topic"]: {k: v for k, v in s.items() if k != "topic"} for s in data["topics"]}
    data["fa_weight"] = FA_WEIGHT
    return data
