"""Passages: the sliding windows an item is scored by, and the passage and terms shown to explain a match.

    windows(n)                  passage windows over n text terms (40 terms, stride 20, the last one flush with the end)
    shown_rows(...)             the row (0 = whole item, r = passage r) that explains each topic
    top_terms(...)              the terms that weigh most for a topic in that row
    passage(text, scan, ...)    the text of a row, trimmed to PASSAGE_CHARS

Everything here is linear in the item's length: an item of 10 MB once built a dense passages × keyword-hits matrix
to choose its passage (3.2 GB for 5 MB, issue 12); the windows that hold a hit are now found by binary search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import numpy as np

from .text import TermScan

WINDOW = 40  # content terms per passage, about 60-70 running words
STRIDE = 20
TOP_TERMS = 6
PASSAGE_CHARS = 600


@lru_cache(maxsize=4096)
def windows(n: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Passage windows over n text terms: first terms, flat positions, and each position's count row (window + 1)."""
    if n <= WINDOW:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = list(range(0, n - WINDOW + 1, STRIDE))
    if starts[-1] + WINDOW < n:
        starts.append(n - WINDOW)
    pos = (np.asarray(starts)[:, None] + np.arange(WINDOW)[None, :]).ravel()
    rows = np.repeat(np.arange(1, len(starts) + 1), WINDOW)
    pos.flags.writeable = False
    rows.flags.writeable = False
    return starts, pos, rows


def holding(starts: Sequence[int], at: Sequence[int]) -> np.ndarray:
    """The passage rows (1-based, ascending) whose window holds one of the text positions `at`.

    Window r covers [starts[r-1], starts[r-1] + WINDOW); starts ascend, so the windows holding a position are one
    contiguous run, found by two binary searches; the runs are merged with a difference array (linear, where a
    windows × positions comparison is quadratic in the item's length).
    """
    s = np.asarray(starts, dtype=np.int64)
    pos = np.asarray(at, dtype=np.int64)
    first = np.searchsorted(s, pos - WINDOW, side="right")  # windows starting after pos - WINDOW ...
    last = np.searchsorted(s, pos, side="right")  # ... and at or before pos
    marks = np.zeros(len(s) + 1, dtype=np.int64)
    np.add.at(marks, first, 1)
    np.add.at(marks, last, -1)
    return np.flatnonzero(np.cumsum(marks[:-1]) > 0) + 1


def shown_rows(
    best: Sequence[int],
    prof: np.ndarray,
    starts: Sequence[int],
    hit_at: Mapping[int, list[int]] | None,
    topics: Sequence[int],
) -> dict[int, int]:
    """The row (0 = whole item, r = passage r) whose text explains each of `topics` to the analyst.

    The best-scoring row (`best`), except when the topic's keyword phrases sit in the text: then the best-scoring
    passage (`prof`: [rows, topics] cosines) that holds one. Otherwise a topic that matched through one paragraph of a
    short multi-topic item, where the whole item happens to score a little higher than any passage, would show the
    item's opening, which says nothing about why it matched (a readout whose Libya paragraph comes last).
    """
    rows = {ti: best[ti] for ti in topics}
    if not hit_at or not starts:
        return rows
    for ti in topics:
        at = hit_at.get(ti)
        if not at:
            continue
        candidates = holding(starts, at)
        if rows[ti] not in candidates.tolist():
            rows[ti] = int(candidates[prof[candidates, ti].argmax()])
    return rows


def top_terms(
    row_weights: Callable[[int], np.ndarray],
    gathered: np.ndarray,
    uniq: np.ndarray,
    names: Mapping[int, str],
    rows: Mapping[int, int],
) -> dict[int, tuple[str, ...]]:
    """For each topic of `rows`: the terms with the largest weight × profile weight in its row."""
    u = len(uniq)
    if u == 0:
        return {ti: () for ti in rows}
    k = min(TOP_TERMS, u)
    out: dict[int, tuple[str, ...]] = {}
    for ti, row in rows.items():  # one topic at a time: an item explains one or two, and 1-D calls are cheaper
        contrib = row_weights(row) * gathered[:, ti]
        top = np.argpartition(-contrib, k - 1)[:k] if u > k else np.arange(u)
        vals = contrib[top]
        order = np.argsort(-vals, kind="stable")
        best = zip(uniq[top[order]].tolist(), vals[order].tolist(), strict=True)
        out[ti] = tuple(names.get(i, "?") for i, v in best if v > 0)
    return out


def passage(text: str, scan: TermScan, starts: Sequence[int], row: int) -> str:
    """The text of passage `row` (0 = the whole item: its opening), trimmed to PASSAGE_CHARS with "…" when cut.

    Only a passage other than row 0 asks `scan` where its terms start (it finds those offsets on demand).
    """
    begin, end = 0, len(text)
    if row > 0 and starts and scan.terms:
        first = starts[row - 1]
        begin = scan.start(first)
        if first + WINDOW < len(scan.terms):
            end = scan.start(first + WINDOW)
    snippet = ""
    if end - begin > 4 * PASSAGE_CHARS:  # the opening of a long text: split and join only what can be shown
        cut = text.find(" ", begin + 2 * PASSAGE_CHARS, end)
        if cut >= 0:  # the words up to a space are a prefix of the whole snippet's words
            snippet = " ".join(text[begin:cut].split())
    if len(snippet) <= PASSAGE_CHARS:
        snippet = " ".join(text[begin:end].split())
    return snippet if len(snippet) <= PASSAGE_CHARS else snippet[: PASSAGE_CHARS - 1].rstrip() + "…"
