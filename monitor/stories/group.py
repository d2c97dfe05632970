"""Group items into stories online: one alert per story, however many outlets carry it.

    assign(item, analysed):
        f = featurise(analysed)    # from the text the topic model analysed: stemmed terms (title ×3, and the title
                                   # alone), MinHash of word 3-shingles, dates, names and numbers of the lead
        evict items older than (newest time seen - window)
        df += terms(item)          # document frequencies over the window: boilerplate ("МИД России") weighs little
        q = tfidf(f)               # L2-normalised, top MAX_TERMS terms
        candidates = items sharing most of q's heaviest (rarest) terms, via an inverted index (each term's newest
                     POSTING_SCAN entries)
        cosines, resemblances with all candidates at once (the window's vectors and signatures also held as rows
                     of NumPy arrays)
        best = the candidate that passes `evidence.decide` (near-duplicate first, then the highest logit)
        join best's story, or start a new one; index the item

The pair rule itself is `evidence.py`; this module is the window, its index and the story ids.

Pure: no I/O. `StoryGrouper` serialises `assign`/`restore` under one lock, so threads may share it.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, repeat

import numpy as np

from ..match.text import AnalysedText
from ..models import Item
from . import minhash
from .evidence import Reason, Side, decide, item_features, item_time, judged, outlet_of, side_of
from .features import MAX_TERMS, DocumentFrequencies, ItemFeatures, idf

__all__ = ["DocumentFrequencies", "StoryDecision", "StoryGrouper", "story_id_for"]

QUERY_TERMS = 12  # heaviest query terms whose postings are scanned for candidates
RERANK = 30  # candidates compared exactly
# Only the newest POSTING_SCAN entries of a term's postings are counted: a frequent term's list grows with the
# window, and its older entries rarely decide (a rarer shared term finds the same item). Keeps the scan flat.
POSTING_SCAN = 400
DEFAULT_WINDOW = 48 * 3600.0
_ROWS = 1024  # rows of the comparison arrays at first; doubled as the window fills

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoryDecision:
    """Where `assign` put an item.

    `similarity`: for "near-duplicate" the estimated Jaccard resemblance of word 3-shingles, for "same-event" the
    tf-idf cosine, for "new" the best cosine among the candidates (0.0 when there were none).
    """

    story_id: str
    is_new: bool
    reason: Reason
    similarity: float
    matched_uid: str | None


def _capped_time(item: Item, now: datetime | None) -> float:
    # caps a feed's bogus future date; `now` does not move the window itself, so a replay of an old corpus under a
    # real clock still groups by the items' own times
    t = item_time(item).timestamp()
    return t if now is None else min(t, now.timestamp())


def story_id_for(uid: str) -> str:
    """Deterministic story id from the uid of its first item: 16 hex digits of SHA-1."""
    return hashlib.sha1(uid.encode("utf-8")).hexdigest()[:16]


@dataclass(slots=True)
class _Entry:
    uid: str
    story_id: str
    side: Side  # what a comparison reads: vectors (IDF of the arrival time), names, numbers, outlet, time
    doc_terms: tuple[str, ...]  # distinct terms, counted in the window's document frequencies
    row: int  # its row in the grouper's comparison arrays


class StoryGrouper:
    """Online story grouping over a sliding time window.

    Memory is bounded by the window: items older than `window_seconds` before the newest time seen are dropped
    from the index and from the document frequencies. `background` (optional, static) adds document frequencies
    from elsewhere, which helps while the window is still nearly empty after a first start.
    """

    def __init__(self, window_seconds: float = DEFAULT_WINDOW, background: DocumentFrequencies | None = None) -> None:
        self.window_seconds = window_seconds
        self.background = background
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._by_uid: dict[str, int] = {}
        self._postings: dict[str, list[int]] = {}  # term -> slots; lists: a third of a set's memory
        self._heap: list[tuple[float, int]] = []  # (time, slot), for eviction
        self._df = DocumentFrequencies()
        self._next_slot = 0
        self._newest = -math.inf
        # The held vectors and signatures as rows of arrays, so that an item is compared with all its candidates in
        # a few NumPy calls instead of a dict intersection and a signature comparison per candidate. A vector's row
        # holds its terms' ids (0 pads) and weights; a term has an id while it has postings (ids are reused).
        self._term_ids: dict[str, int] = {}
        self._free_ids: list[int] = []
        self._free_rows: list[int] = []
        self._rows = 0
        self._ids = np.zeros((_ROWS, MAX_TERMS), dtype=np.int32)
        self._weights = np.zeros((_ROWS, MAX_TERMS))
        self._signatures = np.zeros((_ROWS, minhash.PERMUTATIONS), dtype=np.uint32)
        self._signed = np.zeros(_ROWS, dtype=bool)
        self._query = np.zeros(_ROWS * MAX_TERMS)  # a dense vector by term id: zeros but during a comparison

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        """Index size (items held, distinct terms counted, postings entries): all bounded by the window."""
        with self._lock:
            return {
                "items": len(self._entries),
                "terms": len(self._df.counts),
                "postings": sum(len(bucket) for bucket in self._postings.values()),
            }

    def assign(self, item: Item, now: datetime | None = None, analysed: AnalysedText | None = None) -> StoryDecision:
        """Put `item` in an existing story or a new one, and index it. `now` caps item times from the future.

        `analysed` is the item's text as the topic model analysed it, so it is not normalised and tokenised again.
        """
        features = item_features(item, analysed)
        t = _capped_time(item, now)
        with self._lock:
            return self._assign(item.uid, t, features, outlet_of(item))

    def place(self, item: Item, now: datetime | None = None, analysed: AnalysedText | None = None) -> StoryDecision:
        """Where `assign` would put `item`, changing nothing (a preview beside the daemon that owns the stories).

        The window is not moved to the item's time, so items that `assign` would first evict still count in the IDF
        (never as candidates: those lie outside the window from the item).
        """
        features = item_features(item, analysed)
        t = _capped_time(item, now)
        with self._lock:
            return self._assign(item.uid, t, features, outlet_of(item), keep=False)

    def restore(self, pairs: Iterable[tuple[Item, str | None]]) -> dict[str, StoryDecision]:
        """Rebuild the index from stored (item, story id) pairs after a restart; replaces the current state.

        Items stored without a story id (stored, then the process stopped before grouping) are grouped now, in time
        order with the rest; their decisions are returned by uid so the caller can store them.
        """
        with self._lock:
            return self._restore(pairs)

    def knows(self, uid: str) -> bool:
        """Is this item in the window?"""
        with self._lock:
            return uid in self._by_uid

    def add_known(self, pairs: Iterable[tuple[Item, str]]) -> None:
        """Index items another replica grouped (service/leases.py), in their stories, keeping the window."""
        with self._lock:
            for item, story_id in sorted(pairs, key=lambda pair: item_time(pair[0])):
                t = item_time(item).timestamp()
                self._advance(t)
                previous = self._by_uid.get(item.uid)
                if previous is not None:
                    self._remove(previous)
                self._insert(item.uid, story_id, t, item_features(item), outlet_of(item))

    def restore_in_background(self, pairs: Iterable[tuple[Item, str | None]]) -> threading.Thread:
        """`restore` in a thread of its own, so a start need not wait for it (re-analysing a 48 h window of full
        articles takes seconds): polls fetch, parse and store meanwhile, and `assign` and `place` wait until the
        window is whole, so no item is grouped against half of it."""
        self._lock.acquire()  # taken here, before any poll can run; the thread releases it when the window is whole

        def rebuild() -> None:
            started = time.monotonic()
            try:
                self._restore(pairs)
            finally:
                self._lock.release()
            log.info("story window: %d stored items regrouped in %.1fs", len(self), time.monotonic() - started)

        thread = threading.Thread(target=rebuild, name="story-window", daemon=True)
        thread.start()
        return thread

    def _restore(self, pairs: Iterable[tuple[Item, str | None]]) -> dict[str, StoryDecision]:
        """restore(); the caller holds the lock."""
        rows = sorted(((item_time(item).timestamp(), item, story) for item, story in pairs), key=lambda r: r[0])
        decided: dict[str, StoryDecision] = {}
        self._reset()
        for t, item, story_id in rows:
            features = item_features(item)
            if story_id is None:
                decided[item.uid] = self._assign(item.uid, t, features, outlet_of(item))
                continue
            self._advance(t)
            previous = self._by_uid.get(item.uid)
            if previous is not None:
                self._remove(previous)
            self._insert(item.uid, story_id, t, features, outlet_of(item))
        return decided

    def _assign(self, uid: str, t: float, features: ItemFeatures, outlet: str, *, keep: bool = True) -> StoryDecision:
        """The grouping decision, indexing the item unless `keep` is false; the caller holds the lock."""
        if keep:
            self._advance(t)
        previous = self._by_uid.get(uid)
        if previous is not None:  # an updated version of an item we hold stays in its story
            story_id = self._entries[previous].story_id
            if keep:
                self._remove(previous)
                self._insert(uid, story_id, t, features, outlet)
            return StoryDecision(story_id, False, "near-duplicate", 1.0, uid)
        if keep:
            slot, side = self._insert(uid, "", t, features, outlet)
        else:  # weighted as _insert would (the item itself counted in the IDF), then forgotten
            slot = -1
            self._df.add(features.counts)
            side = side_of(features, self._df, self.background, outlet, t)
            self._df.remove(features.counts)
        window, background = self._df, self.background

        def weight(term: str) -> float:
            return idf(term, window, background)

        best: tuple[tuple[int, float, float, int], _Entry, Reason, float] | None = None  # (rank, entry, ...)
        best_cos = 0.0
        entries = self._entries
        held = [
            (cand, entry)
            for cand, entry in ((cand, entries[cand]) for cand in self._candidates(side.vector, exclude=slot))
            if abs(entry.side.time - t) <= self.window_seconds
        ]
        cosines, resemblances = self._compare(side, [entry.row for _, entry in held])
        for (cand, entry), cos, resemblance in zip(held, cosines, resemblances, strict=True):
            best_cos = max(best_cos, cos)
            evidence = judged(side, entry.side, weight, cos, resemblance)
            if evidence is None:
                continue
            ok, reason = decide(evidence)
            if not ok:
                continue
            # near-duplicates first (closest copy), then the strongest evidence, then the earliest item
            near = reason == "near-duplicate"
            rank = (0 if near else 1, -evidence.similarity if near else 0.0, -evidence.logit, cand)
            if best is None or rank < best[0]:
                best = (rank, entry, reason, evidence.similarity)
        if best is None:
            decision = StoryDecision(story_id_for(uid), True, "new", best_cos, None)
        else:
            _, match, reason, similarity = best
            decision = StoryDecision(match.story_id, False, reason, similarity, match.uid)
        if slot in self._entries:
            self._entries[slot].story_id = decision.story_id
        return decision

    # -- index maintenance; callers hold the lock --

    def _advance(self, t: float) -> None:
        """Move the clock to `t` and drop items that fell out of the window."""
        if t <= self._newest:
            return
        self._newest = t
        horizon = t - self.window_seconds
        heap = self._heap
        while heap and heap[0][0] < horizon:
            _, slot = heapq.heappop(heap)
            if slot in self._entries:
                self._remove(slot)

    def _insert(self, uid: str, story_id: str, t: float, features: ItemFeatures, outlet: str) -> tuple[int, Side]:
        """Index an item, unless it is already older than the window; return its slot and what comparisons read.

        The vector is weighted with the IDF of this moment (the item itself counted) and kept as is: stored
        vectors are not re-weighted as the window moves, which keeps an assignment independent of window size.
        """
        slot = self._next_slot
        self._next_slot += 1
        self._df.add(features.counts)
        side = side_of(features, self._df, self.background, outlet, t)
        if t < self._newest - self.window_seconds:
            self._df.remove(features.counts)
            return slot, side
        row = self._free_rows.pop() if self._free_rows else self._new_row()
        self._entries[slot] = _Entry(uid, story_id, side, tuple(features.counts), row)
        self._by_uid[uid] = slot
        heapq.heappush(self._heap, (t, slot))
        postings, term_ids = self._postings, self._term_ids
        for term in side.vector:
            bucket = postings.get(term)
            if bucket is None:
                postings[term] = [slot]
                term_ids[term] = self._free_ids.pop() if self._free_ids else self._new_id()
            else:
                bucket.append(slot)
        n = len(side.vector)
        self._ids[row, :n] = list(map(term_ids.__getitem__, side.vector))
        self._ids[row, n:] = 0
        self._weights[row, :n] = list(side.vector.values())
        self._weights[row, n:] = 0.0
        self._signed[row] = side.signature is not None
        if side.signature is not None:
            self._signatures[row] = side.signature
        return slot, side

    def _new_row(self) -> int:
        if self._rows == len(self._ids):
            self._ids = np.concatenate((self._ids, np.zeros_like(self._ids)))
            self._weights = np.concatenate((self._weights, np.zeros_like(self._weights)))
            self._signatures = np.concatenate((self._signatures, np.zeros_like(self._signatures)))
            self._signed = np.concatenate((self._signed, np.zeros_like(self._signed)))
        self._rows += 1
        return self._rows - 1

    def _new_id(self) -> int:
        term_id = len(self._term_ids) + len(self._free_ids) + 1  # ids 1.. are given out in order; 0 pads
        if term_id == len(self._query):
            self._query = np.concatenate((self._query, np.zeros_like(self._query)))
        return term_id

    def _remove(self, slot: int) -> None:
        entry = self._entries.pop(slot)
        if self._by_uid.get(entry.uid) == slot:
            del self._by_uid[entry.uid]
        self._df.remove(entry.doc_terms)
        self._free_rows.append(entry.row)
        postings = self._postings
        for term in entry.side.vector:
            bucket = postings[term]
            bucket.remove(slot)  # evictions are mostly the oldest slots, at the front: a short scan
            if not bucket:
                del postings[term]
                self._free_ids.append(self._term_ids.pop(term))

    def _candidates(self, vector: Mapping[str, float], exclude: int) -> list[int]:
        """Items worth an exact comparison: those sharing most of the query's QUERY_TERMS heaviest terms.

        The heaviest terms of a tf-idf vector are its rarest: names, places, numbers. A reprint or a rewrite of
        the same event shares most of them, boilerplate shares none, so a few short postings lists suffice.
        """
        postings = self._postings
        heads = sorted(vector, key=lambda t: (-vector[t], t))[:QUERY_TERMS]
        # slots grow with arrival: the tail is the newest entries
        tails = [b if len(b) <= POSTING_SCAN else b[-POSTING_SCAN:] for b in map(postings.get, heads) if b]
        hits = Counter(chain.from_iterable(tails))  # counted in C, in one call
        hits.pop(exclude, None)
        # most shared heavy terms first; ties in first-counted order, which is deterministic for a given history.
        # A stable sort, as `hits.most_common(RERANK)` (heapq.nlargest, documented equal to it), in C: ~35 % less.
        return sorted(sorted(hits, key=hits.__getitem__, reverse=True)[:RERANK])

    def _compare(self, side: Side, rows: list[int]) -> tuple[list[float], list[float | None]]:
        """The cosines and resemblances of `side` with the held items in these rows.

        The same products as `features.cosine`'s, summed in another order (the sum of a dict intersection follows
        the salted string hashes anyway): equal to ~1e-16. Arrays of 30 × 50 keep the GIL (NumPy releases it for
        larger loops only), so other threads do not take it in between.
        """
        if not rows:
            return [], []
        query, vector = self._query, side.vector
        ids = list(map(self._term_ids.get, vector, repeat(0)))  # 0: a term no held item has (place(), an old item)
        query[ids] = list(vector.values())
        query[0] = 0.0
        cosines: list[float] = (query[self._ids[rows]] * self._weights[rows]).sum(axis=1).tolist()
        query[ids] = 0.0
        if side.signature is None:
            return cosines, [None] * len(rows)
        resemblances = minhash.similarities(side.signature, self._signatures[rows])
        signed = self._signed[rows].tolist()
        return cosines, [r if s else None for r, s in zip(resemblances, signed, strict=True)]
