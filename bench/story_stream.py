"""B-cubed cluster precision/recall of StoryGrouper on the hand-written stream set.

    python3 bench/story_stream.py [STREAM] [--background streams|none] [--show]

STREAM defaults to tests/data/story_stream.jsonl: 76 short reports written for this set (no article text copied),
35 gold stories, 32 of them carried by 2-5 outlets in different words (RU and EN), among them same-day
same-actor different events: two unrelated MFA statements, two North Korean launches a day apart, two Pentagon
announcements, two Peskov comments, drone attacks on two regions, one outlet's weather template for two cities.
Items go through one grouper in time order; `--show` lists the wrongly merged and the split gold stories.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitor.models import Item
from monitor.stories.group import StoryGrouper
from monitor.stories.metrics import bcubed

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STREAM = REPO / "tests" / "data" / "story_stream.jsonl"


def load(path: Path) -> list[tuple[Item, str]]:
    """(item, gold story) in time order."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for i, r in enumerate(rows):
        link = f"https://{r['outlet']}/news/{i}"
        when = datetime.fromisoformat(r["time"])
        item = Item(feed=r["outlet"], key=link, title=r["title"], link=link, published=when, content=r["text"])
        out.append((item, r["story"]))
    return sorted(out, key=lambda pair: pair[0].published)


def group(stream: Sequence[tuple[Item, str]], grouper: StoryGrouper) -> dict[str, str]:
    """uid -> predicted story id."""
    return {item.uid: grouper.assign(item).story_id for item, _ in stream}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stream", nargs="?", type=Path, default=DEFAULT_STREAM)
    parser.add_argument("--background", default="streams", help="streams (as bench/story_pairs.py) | none")
    parser.add_argument("--show", action="store_true", help="list wrong merges and splits")
    args = parser.parse_args(argv)
    stream = load(args.stream)
    background = None
    if args.background == "streams":
        import story_pairs  # bench/story_pairs.py: the same ~57k-text IDF background

        background, _ = story_pairs.background_from(["streams"], [])
    predicted = group(stream, StoryGrouper(background=background))
    gold = {item.uid: story for item, story in stream}
    lang_of = {item.uid: ("en" if story.startswith("en-") else "ru") for item, story in stream}
    print(
        f"stream: {args.stream.name}, {len(stream)} items, {len(set(gold.values()))} gold stories; background: "
        f"{args.background}\n"
    )
    print("| set | items | gold stories | predicted stories | B-cubed precision | B-cubed recall | F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("ru", "en", "all"):
        uids = [u for u in gold if name == "all" or lang_of[u] == name]
        g = {u: gold[u] for u in uids}
        p = {u: predicted[u] for u in uids}
        bp, br = bcubed(g, p)
        f1 = 2 * bp * br / (bp + br) if bp + br else 0.0
        print(
            f"| {name} | {len(uids)} | {len(set(g.values()))} | {len(set(p.values()))} | {bp:.3f} | {br:.3f} | "
            f"{f1:.3f} |"
        )
    if args.show:
        title = {item.uid: item.title for item, _ in stream}
        by_pred: dict[str, set[str]] = {}
        by_gold: dict[str, set[str]] = {}
        for uid, story in predicted.items():
            by_pred.setdefault(story, set()).add(uid)
            by_gold.setdefault(gold[uid], set()).add(uid)
        print("\nwrong merges:")
        for uids in by_pred.values():
            if len({gold[u] for u in uids}) > 1:
                print("  " + " | ".join(f"[{gold[u]}] {title[u]}" for u in sorted(uids)))
        print("splits:")
        for story, uids in by_gold.items():
            if len({predicted[u] for u in uids}) > 1:
                print(f"  {story}: {len({predicted[u] for u in uids})} predicted stories")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
