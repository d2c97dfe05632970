"""Joins lost to the candidate cut: the grouper's index against an exhaustive comparison, on a real stream.

    python3 bench/story_recall.py [CORPUS] [--items 6000] [--window-days 60]

For each item, in stream order and against the same window, two decisions are made: the grouper's own (candidates
from the inverted index: QUERY_TERMS heaviest terms, the newest POSTING_SCAN entries of each posting, RERANK
compared exactly) and an exhaustive one (every item of the window that shares a term compared exactly, the same
`decide`). The item is
then assigned as the grouper decides, so both always see the same state. Reported: joins the exhaustive comparison
makes that the index also makes (to any item of the same story), and decisions that are identical (same matched
item, or both new). CORPUS defaults to the Telegram news posts of ../shared/data/background (source = outlet).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.models import Item
from monitor.stories import group as stories
from monitor.stories.evidence import item_features, item_time, outlet_of

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "background" / "ru_telegram_posts.jsonl.gz"


class _Exhaustive(stories.StoryGrouper):
    """A grouper whose candidates are every item it holds that shares a term with the item (whole postings, no
    cut): a pair sharing no term has cosine 0, which neither the near-duplicate rule nor the logit can pass."""

    def _candidates(self, vector: Mapping[str, float], exclude: int) -> list[int]:
        slots = {slot for term in vector for slot in self._postings.get(term, ())}
        slots.discard(exclude)
        return sorted(slots)


def load(path: Path, limit: int) -> list[Item]:
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            when = datetime.fromisoformat(row["published"].replace("Z", "+00:00"))
            items.append(
                Item(
                    feed=row["source"],
                    key=row["id"],
                    title=row["title"],
                    link=row["id"],
                    published=when,
                    content=row["text"],
                )
            )
            if len(items) >= limit:
                break
    return sorted(items, key=lambda it: it.published or when)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--window-days", type=float, default=60.0)
    args = parser.parse_args(argv)
    items = load(args.corpus, args.items)
    grouper = _Exhaustive(window_seconds=args.window_days * 86400)
    index = stories.StoryGrouper._candidates
    exhaustive_joins = found = same = held = 0
    started = time.perf_counter()
    for item in items:
        features = item_features(item)
        t = item_time(item).timestamp()
        grouper._advance(t)  # evict first, so that both decisions see the window the assignment sees
        held = max(held, len(grouper))
        full = grouper._assign(item.uid, t, features, outlet_of(item), keep=False)
        grouper._candidates = lambda vector, exclude: index(grouper, vector, exclude)  # type: ignore[method-assign]
        try:
            got = grouper._assign(item.uid, t, features, outlet_of(item))
        finally:
            del grouper._candidates
        if not full.is_new:
            exhaustive_joins += 1
            found += got.story_id == full.story_id
        same += got.matched_uid == full.matched_uid
    took = time.perf_counter() - started
    print(
        f"{len(items)} items of {args.corpus.name}, window {args.window_days:g} days (at most {held} items held), "
        f"{took:.0f} s\nQUERY_TERMS={stories.QUERY_TERMS} RERANK={stories.RERANK} POSTING_SCAN={stories.POSTING_SCAN}\n"
        f"joins the exhaustive comparison makes: {exhaustive_joins}; made by the index too (same story): {found} "
        f"({found / max(exhaustive_joins, 1):.1%})\nidentical decisions (same matched item, or both new): {same} of "
        f"{len(items)} ({same / len(items):.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
