"""What `monitor eval` reports: per-topic counts and rates, macro and micro figures, as text or JSON.

The conventions are those of shared/tools/keyword_baseline.py (precision 0 without alerts; topics without scored
positives are reported but left out of the averages), so both report the same figures for one decisions file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .calibrate import FA_WEIGHT


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


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


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
        p, r = ratio(tp, tp + fp), ratio(tp, pos)
        f = ratio(2 * p * r, p + r)
        pmiss = ratio(fn, pos) if pos else None
        pfa = ratio(fp, neg)
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
    mp, mr = ratio(tp, tp + fp), ratio(tp, tp + fn)
    summary = {
        "macro_precision": ratio(sum(s.precision for s in used), n),
        "macro_recall": ratio(sum(s.recall or 0.0 for s in used), n),
        "macro_f1": ratio(sum(s.f1 or 0.0 for s in used), n),
        "macro_c_det": ratio(sum(s.c_det or 0.0 for s in used), n),
        "micro_tp": tp,
        "micro_fp": fp,
        "micro_fn": fn,
        "micro_precision": mp,
        "micro_recall": mr,
        "micro_f1": ratio(2 * mp * mr, mp + mr),
        "topics_averaged": n,
    }
    return stats, summary


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
        per_call = ratio(report.label_seconds, report.label_updates) * 1000
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
