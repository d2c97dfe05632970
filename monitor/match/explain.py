"""What `monitor explain` prints: every topic's score, threshold, verdict, top terms and best passage, and what the
analyst's labels did to the score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import Topic
from ..models import LabelEffect, Match


def _names(topics: Sequence[Topic]) -> dict[str, str]:
    return {t.id: t.name for t in topics}


def _effect_json(effect: LabelEffect) -> dict[str, Any]:
    return {
        "relevant": effect.relevant,
        "not_relevant": effect.not_relevant,
        "score_without_labels": effect.prior_score,
        "score": effect.score,
        "weighed_most": [{"title": t, "relevant": r, "log_odds": w} for t, r, w in effect.weighed],
    }


def explanation_json(
    matches: Sequence[Match], topics: Sequence[Topic], labels: Mapping[str, LabelEffect] | None = None
) -> dict[str, Any]:
    """{"topics": [{"id", "name", "score", "threshold", "matched", "terms", "passage", ..., "labels"}]} in config
    order; "labels" only for topics with labels."""
    names = _names(topics)
    labels = labels or {}
    out = []
    for m in matches:
        entry = {
            "id": m.topic,
            "name": names.get(m.topic, m.topic),
            "score": m.score,
            "threshold": m.threshold,
            "matched": m.matched,
            "terms": list(m.terms),
            "passage": m.passage,
            "keyword_hits": list(m.keyword_hits),
            "vetoed_by": m.vetoed_by,
        }
        if m.topic in labels:
            entry["labels"] = _effect_json(labels[m.topic])
        out.append(entry)
    return {"topics": out}


def format_explanation(
    matches: Sequence[Match], topics: Sequence[Topic], labels: Mapping[str, LabelEffect] | None = None
) -> str:
    """A readable report, matched topics first, then the rest by score."""
    names = _names(topics)
    labels = labels or {}
    lines: list[str] = []
    for m in sorted(matches, key=lambda m: (not m.matched, -m.score)):
        verdict = "MATCH" if m.matched else ("vetoed" if m.vetoed_by else "no")
        lines.append(f"{verdict:6s} {m.score:.3f} / {m.threshold:.3f}  {m.topic} ({names.get(m.topic, m.topic)})")
        if m.vetoed_by:
            lines.append(f"       vetoed by exclude phrase: {m.vetoed_by}")
        if m.keyword_hits:
            lines.append(f"       keywords: {', '.join(m.keyword_hits)}")
        if m.terms:
            lines.append(f"       terms: {', '.join(m.terms)}")
        if m.passage:
            lines.append(f"       passage: {m.passage}")
        effect = labels.get(m.topic)
        if effect is not None:
            lines.append(
                f"       labels: {effect.relevant} relevant, {effect.not_relevant} not; score without them "
                f"{effect.prior_score:.3f}, with them {effect.score:.3f}"
            )
            for title, relevant, weight in effect.weighed:
                lines.append(f"         {'✓' if relevant else '✗'} {weight:+.2f} log-odds  {title}")
    return "\n".join(lines)
