"""What `monitor explain` prints: every topic's score, threshold, verdict, top terms and best passage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import Topic
from ..models import Match


def _names(topics: Sequence[Topic]) -> dict[str, str]:
    return {t.id: t.name for t in topics}


def explanation_json(matches: Sequence[Match], topics: Sequence[Topic]) -> dict[str, Any]:
    """{"topics": [{"id", "name", "score", "threshold", "matched", "terms", "passage", ...}]} in config order."""
    names = _names(topics)
    return {
        "topics": [
            {
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
            for m in matches
        ]
    }


def format_explanation(matches: Sequence[Match], topics: Sequence[Topic]) -> str:
    """A readable report, matched topics first, then the rest by score."""
    names = _names(topics)
    lines: list[str] = []
    for m in sorted(matches, key=lambda m: (not m.matched, -m.score)):
        verdict = "MATCH" if m.matched else ("vetoed" if m.vetoed_by else "no")
        lines.append(f"{verdict:6s} {m.score:.3f} / {m.threshold:.2f}  {m.topic} ({names.get(m.topic, m.topic)})")
        if m.vetoed_by:
            lines.append(f"       vetoed by exclude phrase: {m.vetoed_by}")
        if m.keyword_hits:
            lines.append(f"       keywords: {', '.join(m.keyword_hits)}")
        if m.terms:
            lines.append(f"       terms: {', '.join(m.terms)}")
        if m.passage:
            lines.append(f"       passage: {m.passage}")
    return "\n".join(lines)
