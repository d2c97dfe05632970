"""Replay a labelled corpus through the daemon's classification path and score it.

    corpus (JSONL[.gz], stream order)
      → first `warmup` fraction: background only (the model's initial rolling window, not scored)
      → each later item: TopicModel.classify → decision; then appended to the rolling window
      → every `refit_every` scored items: model = model.refit(window), as the daemon's scheduled refit
      → per-topic tp/fp/fn, P/R/F1, TDT C_det = P_miss + 4.9·P_fa; macro/micro; items/s
      → alerts per day per topic (over the calendar days the scored items' `published` dates cover): the alert
        volume an analyst would get, the one figure a background stream without gold can give

The scoring conventions are those of shared/tools/keyword_baseline.py (precision 0 without alerts; topics without
scored positives are reported but left out of the averages), so both report the same figures for one decisions file.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from ..config import Config
from ..errors import ConfigError
from ..models import Match
from .classify import TopicModel

C_MISS, C_FA, P_TARGET = 1.0, 0.1, 0.02
FA_WEIGHT = C_FA * (1 - P_TARGET) / (C_MISS * P_TARGET)  # 4.9, TDT normalised detection cost
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


def run_eval(
    config: Config,
    corpus: Path,
    *,
    warmup: float = 0.2,
    decisions: Path | None = None,
    refit_every: int = REFIT_EVERY,
    on_item: Callable[[dict[str, Any], list[Match]], None] | None = None,
) -> EvalReport:
    """Replay `corpus` in file order through TopicModel as the daemon runs it, and score the decisions."""
    if not 0 <= warmup < 1:
        raise ConfigError(f"--warmup must be in [0, 1), got {warmup}")
    items = list(read_corpus(corpus))
    n_warm = int(len(items) * warmup)
    window: deque[str] = deque((item_text(it) for it in items[:n_warm]), maxlen=config.settings.background_size)
    model = TopicModel.build(config.topics, config.example_texts, list(window))
    topic_ids = model.topic_ids
    gold: list[set[str]] = []
    got: list[set[str]] = []
    dates: set[str] = set()
    refits = 0
    classify_seconds = 0.0
    started = time.perf_counter()
    out = decisions.open("w", encoding="utf-8") if decisions is not None else None
    try:
        for n, item in enumerate(items[n_warm:], 1):
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
        **summary,  # type: ignore[arg-type]
    )


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
