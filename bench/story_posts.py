"""Joins on real untitled posts: how many items a grouper puts in an earlier story, and which, against another
checkout's code.

    python3 bench/story_posts.py [CORPUS] [--items 3000] [--window-days 60] [--code DIR] [--save F.json]
    python3 bench/story_posts.py --diff BASE.json NEW.json [--show 15] [--seed 0]

CORPUS defaults to the Telegram news posts of ../shared/data/background (no titles; source = outlet), read as
`bench/story_recall.py` reads them, in time order, through one StoryGrouper with a 60-day window and no
background. `--code DIR` groups with the package of another checkout (e.g. main's), so two rules' joins can be
compared on the same posts; `--save` writes each item's decision (reason, matched item). `--diff` counts the
joins each file makes that the other does not and prints a random sample of the new ones and of the lost ones,
both texts' openings, to read whether they are the same event: the posts carry no gold stories.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "background" / "ru_telegram_posts.jsonl.gz"


def group(corpus: Path, items: int, window_days: float, code: Path | None) -> dict[str, object]:
    sys.path.insert(0, str(code.resolve() if code else Path(__file__).resolve().parents[1]))
    from monitor.models import Item
    from monitor.stories import group as stories

    posts = []
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:  # as bench/story_recall.py reads them
        for line in fh:
            row = json.loads(line)
            when = datetime.fromisoformat(row["published"].replace("Z", "+00:00"))
            posts.append(
                Item(
                    feed=row["source"],
                    key=row["id"],
                    title=row["title"],
                    link=row["id"],
                    published=when,
                    content=row["text"],
                )
            )
            if len(posts) >= items:
                break
    posts.sort(key=lambda it: it.published or when)
    grouper = stories.StoryGrouper(window_seconds=window_days * 86400)
    decisions = {}
    for item in posts:
        d = grouper.assign(item)
        decisions[item.uid] = (d.reason, d.matched_uid)
    texts = {item.uid: " ".join(item.text.split())[:240] for item in posts}
    return {"code": str(code or "this checkout"), "decisions": decisions, "texts": texts}


def diff(base: dict, new: dict, show: int, seed: int) -> None:
    for name, run in (("base", base), ("new", new)):
        reasons = Counter(reason for reason, _ in run["decisions"].values())
        joins = sum(n for r, n in reasons.items() if r != "new")
        print(
            f"{name} ({run['code']}): {joins} joins, {reasons['same-event']} same-event, "
            f"{reasons['near-duplicate']} near-duplicate"
        )
    old = {uid: m for uid, (r, m) in base["decisions"].items() if r != "new"}
    added = {uid: (r, m) for uid, (r, m) in new["decisions"].items() if r != "new" and uid not in old}
    lost = [uid for uid in old if new["decisions"][uid][0] == "new"]
    moved = [uid for uid, (r, m) in new["decisions"].items() if r != "new" and uid in old and old[uid] != m]
    print(f"joins only in new: {len(added)}; only in base: {len(lost)}; joined elsewhere: {len(moved)}")
    texts = new["texts"]
    for uid in random.Random(seed).sample(sorted(added), min(show, len(added))):
        reason, matched = added[uid]
        print(f"\n- {reason}: {uid} -> {matched}\n    {texts[uid]!r}\n    {texts[matched]!r}")
    for uid in random.Random(seed).sample(lost, min(show, len(lost))):
        was = base["decisions"][uid][0]
        print(f"\n- lost ({was}): {uid} -> {old[uid]}\n    {texts[uid]!r}\n    {texts[old[uid]]!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--window-days", type=float, default=60.0)
    parser.add_argument("--code", type=Path, default=None, help="a checkout whose monitor package groups")
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--diff", nargs=2, type=Path, default=None, help="two --save files: base, new")
    parser.add_argument("--show", type=int, default=15, help="with --diff: new joins to print")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.diff:
        base, new = (json.loads(p.read_text(encoding="utf-8")) for p in args.diff)
        diff(base, new, args.show, args.seed)
        return 0
    run = group(args.corpus, args.items, args.window_days, args.code)
    reasons = Counter(reason for reason, _ in run["decisions"].values())  # type: ignore[union-attr]
    print(f"{args.items} posts, window {args.window_days:g} days, code {run['code']}: {dict(reasons)}")
    if args.save:
        args.save.write_text(json.dumps(run, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
