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

The corpus is read by corpus.py, the analyst is analyst.py's SimulatedAnalyst, and the figures are report.py's,
with the conventions of shared/tools/keyword_baseline.py, so both report the same figures for one decisions file.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..models import Match
from .analyst import SimulatedAnalyst
from .classify import TopicModel
from .corpus import item_text, read_corpus
from .report import EvalReport, ratio, score_topics

# The daemon refits every settings.refit_every (6 h by default). At a watchlist's typical 1,500-2,500 new items a
# day that is roughly 400-600 items, so the replay refits every 500 scored items.
REFIT_EVERY = 500


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
        items_per_second=ratio(len(items) - n_warm, classify_seconds),
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
