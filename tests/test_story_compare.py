"""The grouper's batched comparisons equal the pairwise ones they replace (issue 16: the same decisions, cheaper)."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.models import Item
from monitor.stories import evidence as rule
from monitor.stories import minhash
from monitor.stories.features import DocumentFrequencies, cosine
from monitor.stories.group import StoryGrouper
from tests.test_stories import stream_sides

ROWS = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "story_stream.jsonl").read_text(encoding="utf-8").splitlines()
]


def test_judged_keeps_the_evidence_of_a_pair_and_drops_only_pairs_decide_rejects() -> None:
    sides, weight = stream_sides(11)
    dropped = kept = 0
    for a in sides:
        for b in sides:
            evidence = rule.evidence_of(a, b, weight)
            resemblance = None if a.signature is None or b.signature is None else evidence.resemblance
            got = rule.judged(a, b, weight, evidence.cosine, resemblance)
            if got is None:
                assert rule.decide(evidence) == (False, "new")
                dropped += 1
            else:
                assert got == evidence
                kept += 1
    assert dropped > 4000 and kept > 100  # both paths taken: most pairs dropped, each story's pairs kept


def test_similarities_of_rows_are_the_pairwise_similarities() -> None:
    rng = random.Random(3)
    sigs = [minhash.signature(minhash.shingles(minhash.word_hashes(rng.choices("abcdefgh", k=30)))) for _ in range(9)]
    rows = minhash.np.stack(sigs)
    assert minhash.similarities(sigs[0], rows) == [minhash.similarity(sigs[0], s) for s in sigs]


@pytest.mark.parametrize("hours", [1000.0, 3.0])  # 3 h: items leave the window, their rows and term ids are reused
def test_the_grouper_compares_an_item_with_its_candidates_as_cosine_and_similarity_do(hours: float) -> None:
    grouper = StoryGrouper(window_seconds=hours * 3600)
    t0 = datetime(2026, 11, 2, tzinfo=UTC)
    for i, r in enumerate(ROWS * 3):  # three rounds, 20 minutes between items
        item = Item(feed=r["outlet"], key=str(i), title=r["title"], link=None, content=r["text"],
                    published=t0 + timedelta(minutes=20 * i))  # fmt: skip
        grouper.assign(item)
        entries = list(grouper._entries.values())
        side = entries[-1].side
        cosines, resemblances = grouper._compare(side, [e.row for e in entries])
        for e, cos, resemblance in zip(entries, cosines, resemblances, strict=True):
            assert cos == pytest.approx(cosine(side.vector, e.side.vector), abs=1e-12)
            both = side.signature is not None and e.side.signature is not None
            assert resemblance == (minhash.similarity(side.signature, e.side.signature) if both else None)  # type: ignore[arg-type]
    reused = grouper._rows < 3 * len(ROWS)
    assert reused if hours < 1000 else len(grouper) == grouper._rows == 3 * len(ROWS)
    assert not grouper._query.any()  # the dense query is zeroed after each comparison


def test_document_frequencies_count_and_forget_as_a_loop_would() -> None:
    rng = random.Random(7)
    df, expected, docs = DocumentFrequencies(), Counter[str](), []
    for _ in range(300):
        if docs and rng.random() < 0.4:
            doc = docs.pop(rng.randrange(len(docs)))
            df.remove(doc)
            expected.subtract(doc)
        else:
            doc = tuple(rng.sample("abcdefghijklmnopqrstuvwxyz", k=rng.randint(0, 8)))
            docs.append(doc)
            df.add(doc)
            expected.update(doc)
        assert df.counts == {t: n for t, n in expected.items() if n} and df.docs == len(docs)
