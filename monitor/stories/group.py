"""Group items into stories online: one alert per story, however many outlets carry it.

    assign(item, analysed):
        f = featurise(analysed)    # from the text the topic model analysed: stemmed terms (title ×3, and the title
                                   # alone), MinHash of word 3-shingles, dates, names and numbers of the lead
        evict items older than (newest time seen - window)
        df += terms(item)          # document frequencies over the window: boilerplate ("МИД России") weighs little
        q = tfidf(f)               # L2-normalised, top MAX_TERMS terms
        candidates = items sharing most of q's heaviest (rarest) terms, via an inverted index (each term's newest
                     POSTING_SCAN entries)
        best = the candidate that passes `decide` (near-duplicate first, then the highest logit of the learnt rule)
        join best's story, or start a new one; index the item

`decide` is the one decision rule: `same_story` (pairwise, used by bench/story_pairs.py) and `StoryGrouper` both
call it. Thresholds and how they were measured: docs/stories.md.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..match.text import AnalysedText, adjectives_of, analyse, derived_from
from ..models import Item
from . import minhash
from .features import DocumentFrequencies, ItemFeatures, cosine, dates_conflict, features_of, featurise, idf, tfidf

__all__ = [
    "DocumentFrequencies",
    "Evidence",
    "StoryDecision",
    "StoryGrouper",
    "decide",
    "featurise",
    "item_features",
    "outlet_of",
    "pair_evidence",
    "same_story",
    "story_id_for",
]

# The resemblance threshold lies in the gap between gold-different pairs (at most 0.30) and reprints (0.7-1.0).
NEAR_DUP_MIN_JACCARD = 0.5
# Same event: a logistic regression over the pair's evidence (`Evidence.logit`), fit on all 245 labelled pairs by
# `python3 bench/story_pairs.py --fit` (IDF from ~57k real news texts); the figures reported for it are 5-fold
# cross-validated (never scored on the fold it was fit on): docs/stories.md. FEATURES names `Evidence.features`.
FEATURES = ("cosine", "title_cosine", "names_min", "names_max", "numbers_conflict", "same_outlet", "subjects_differ")
WEIGHTS = (7.16, 0.76, 1.45, 0.89, 0.59, -2.89, -3.29)
INTERCEPT = -3.67
_SAME_OUTLET = FEATURES.index("same_outlet")
# What the features other than the cosine and the outlet can add at most (each is in 0..1): `_best_logit`'s bound
_BEST_REST = sum(max(0.0, w) for i, w in enumerate(WEIGHTS) if i not in (0, _SAME_OUTLET))
# Not in the pairs (they carry no times), so a stated prior rather than a fit: the time between two reports costs
# the logit up to this much, linearly over the first day, so that the same actor's next event a day later ("КНДР
# вновь запустила ракету") needs clearly more shared evidence than a rewrite of the same hour. Flat after a day:
# beyond that the window decides.
GAP_PENALTY = 1.5
QUERY_TERMS = 12  # heaviest query terms whose postings are scanned for candidates
RERANK = 30  # candidates compared exactly
# Only the newest POSTING_SCAN entries of a term's postings are counted: a frequent term's list grows with the
# window, and its older entries rarely decide (a rarer shared term finds the same item). Keeps the scan flat.
POSTING_SCAN = 400
DEFAULT_WINDOW = 48 * 3600.0

log = logging.getLogger(__name__)

Reason = Literal["new", "near-duplicate", "same-event"]


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


@dataclass(frozen=True)
class Evidence:
    """What `decide` looks at for one pair of items."""

    cosine: float  # tf-idf, title counted TITLE_WEIGHT times
    resemblance: float | None  # MinHash estimate of shingle Jaccard; None when either text is too short
    dates_conflict: bool  # both name dates in title/lead, none within a day of the other's
    title_cosine: float = 0.0  # tf-idf cosine of the titles alone
    entities_min: float = 1.0  # IDF-weighted share of one item's names found in the other: the lower of the two
    entities_max: float = 1.0  # ... and the higher
    numbers_conflict: bool = False  # both titles carry numbers and neither's is found in the other's title or lead
    same_outlet: bool = False  # the same site's template items (weather, rates, releases) are not one story
    subjects_differ: bool = False  # each title's subject (its first name) is one the other item does not name
    gap_hours: float = 0.0  # time between the two items

    @property
    def features(self) -> tuple[float, ...]:
        """The inputs of the learnt part of `decide`, in the order of WEIGHTS."""
        # One same-outlet term: with a second (same outlet × cosine) the two traded weights over a single pair
        # (leaving it out moved one by 3.15), for no gain under cross-validation (docs/stories.md).
        return (
            self.cosine,
            self.title_cosine,
            self.entities_min,
            self.entities_max,
            float(self.numbers_conflict),
            float(self.same_outlet),
            float(self.subjects_differ),
        )

    @property
    def logit(self) -> float:
        """Log-odds of "same event"; > 0 joins."""
        score = INTERCEPT + sum(w * x for w, x in zip(WEIGHTS, self.features, strict=True))
        return score - GAP_PENALTY * min(self.gap_hours, 24.0) / 24.0

    @property
    def similarity(self) -> float:
        """The figure that decided: resemblance for near-duplicates, else cosine."""
        near = self.resemblance is not None and self.resemblance >= NEAR_DUP_MIN_JACCARD
        return self.resemblance if near and self.resemblance is not None else self.cosine


def decide(evidence: Evidence, min_logit: float = 0.0) -> tuple[bool, Reason]:
    """The same-story rule: never across dates; shingles of a reprint; else the learnt score of the evidence."""
    if evidence.dates_conflict:  # "Прогноз погоды на 8 ноября" / "на 16 ноября": same words, other event
        return False, "new"
    if evidence.resemblance is not None and evidence.resemblance >= NEAR_DUP_MIN_JACCARD:
        return True, "near-duplicate"
    if evidence.logit > min_logit:
        return True, "same-event"
    return False, "new"


def _best_logit(cos: float, same_outlet: bool, gap_hours: float) -> float:
    """The highest logit a pair with this cosine, outlet and time gap (all cheap to know) could reach whatever its
    other evidence (features in 0..1): below 0, skip computing the rest."""
    rest = _BEST_REST + WEIGHTS[_SAME_OUTLET] * same_outlet
    return INTERCEPT + WEIGHTS[0] * cos + rest - GAP_PENALTY * min(gap_hours, 24.0) / 24.0


@dataclass(frozen=True, slots=True)
class _Side:
    """One item of a pair as `_evidence` reads it."""

    vector: Mapping[str, float]
    title_vector: Mapping[str, float]
    signature: minhash.Signature | None
    dates: frozenset[int]
    entities: frozenset[str]
    names: tuple[tuple[str, ...], ...]  # per entity: itself and its place adjectives ("россия", "российский")
    numbers: frozenset[str]
    title_numbers: frozenset[str]
    subject: tuple[str, ...]  # the title's subject and its place adjectives (`_name_forms`); () when it names none
    outlet: str
    time: float


def _cover(side: _Side, other: _Side, idf: Callable[[str], float]) -> float:
    """IDF-weighted share of one item's names that the other names too, or uses (as a heavy term, or as an
    adjective: "Россия" / "российский", "Ukraine" / "Ukrainian")."""
    if not side.names:
        return 1.0
    total = found = 0.0
    for forms in side.names:
        w = idf(forms[0])
        total += w
        if _named(forms, other):
            found += w
    return found / total


def _name_forms(entities: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    return tuple((e, *adjectives_of(e), *derived_from(e)) for e in sorted(entities))


def _named(forms: tuple[str, ...], other: _Side) -> bool:
    """Does the other item name this (as a name or a heavy term, or as an adjective: "Россия" / "российский")?"""
    entities, vector, title = other.entities, other.vector, other.title_vector
    return any(f in entities or f in vector or f in title for f in forms)


def _evidence(a: _Side, b: _Side, idf: Callable[[str], float], *, whole: bool = False) -> Evidence:
    """The evidence for a pair; unless `whole`, only as much as `decide` needs (the rest left at its defaults)."""
    cos = cosine(a.vector, b.vector)
    resemblance = None if a.signature is None or b.signature is None else minhash.similarity(a.signature, b.signature)
    conflict = dates_conflict(a.dates, b.dates)
    near = resemblance is not None and resemblance >= NEAR_DUP_MIN_JACCARD
    same = a.outlet == b.outlet
    gap = abs(a.time - b.time) / 3600.0
    if not whole and (conflict or near or _best_logit(cos, same, gap) <= 0.0):  # decided already: most candidates
        return Evidence(cos, resemblance, conflict, same_outlet=same, gap_hours=gap)
    ca, cb = _cover(a, b, idf), _cover(b, a, idf)
    numbers = bool(
        a.title_numbers and b.title_numbers and not (a.title_numbers & b.numbers) and not (b.title_numbers & a.numbers)
    )
    # who each headline is about, and neither named by the other: "Путин ..." / "Лукашенко поздравил Токаева".
    # Both sides, not either: one outlet may name the actor by another name ("Хельсинки" for Finland's
    # government), which "either" counted against the pair (docs/stories.md).
    differ = bool(a.subject and b.subject and not _named(a.subject, b) and not _named(b.subject, a))
    return Evidence(
        cos,
        resemblance,
        conflict,
        title_cosine=cosine(a.title_vector, b.title_vector),
        entities_min=min(ca, cb),
        entities_max=max(ca, cb),
        numbers_conflict=numbers,
        same_outlet=same,
        subjects_differ=differ,
        gap_hours=gap,
    )


def outlet_of(item: Item) -> str:
    """The outlet an item counts for: its feed. One feed carries one outlet's templates (weather, rates, release
    notes); the link's host would not do, as aggregators and test fixtures serve many outlets from one host."""
    return item.feed


def item_features(item: Item, analysed: AnalysedText | None = None) -> ItemFeatures:
    """`featurise` of an Item's title and text; `analysed` is that text analysed already (by the topic model)."""
    return features_of(analysed or analyse(item.title, item.text))


def pair_evidence(
    fa: ItemFeatures,
    fb: ItemFeatures,
    background: DocumentFrequencies | None = None,
    *,
    outlets: tuple[str, str] = ("a", "b"),
    times: tuple[float, float] = (0.0, 0.0),
) -> Evidence:
    """Evidence for two items, IDF over `background` plus the two items."""
    pair = DocumentFrequencies.of((fa, fb))
    sa = _side(fa, pair, background, outlets[0], times[0])
    sb = _side(fb, pair, background, outlets[1], times[1])
    return _evidence(sa, sb, lambda term: idf(term, pair, background), whole=True)


def _side(
    f: ItemFeatures, df: DocumentFrequencies, background: DocumentFrequencies | None, outlet: str, t: float
) -> _Side:
    return _Side(
        tfidf(f.counts, df, background),
        tfidf(f.title_counts, df, background),
        f.signature,
        f.dates,
        f.entities,
        _name_forms(f.entities),
        f.numbers,
        f.title_numbers,
        _name_forms((f.subject,))[0] if f.subject else (),
        outlet,
        t,
    )


def same_story(
    a: Item, b: Item, background: DocumentFrequencies | None = None, window_seconds: float | None = None
) -> tuple[bool, float, str]:
    """Pairwise form of the grouper's decision: (same story?, similarity, reason).

    IDF comes from `background` plus the two items; without a background it is near-uniform and boilerplate
    counts as much as names, so pass one built from a stream of the same language when you can.
    """
    if window_seconds is not None and abs((item_time(a) - item_time(b)).total_seconds()) > window_seconds:
        return False, 0.0, "new"
    times = (item_time(a).timestamp(), item_time(b).timestamp())
    evidence = pair_evidence(
        item_features(a), item_features(b), background, outlets=(outlet_of(a), outlet_of(b)), times=times
    )
    ok, reason = decide(evidence)
    return ok, evidence.similarity, reason


def item_time(item: Item) -> datetime:
    """The time an item counts at: published, else first seen."""
    when: datetime | None = item.published or item.first_seen
    if when is None:
        raise ValueError(f"item {item.uid!r} has neither a published nor a first-seen time")
    return when


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
    side: _Side  # what a comparison reads: vectors (IDF of the arrival time), names, numbers, outlet, time
    doc_terms: tuple[str, ...]  # distinct terms, counted in the window's document frequencies


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
            side = _side(features, self._df, self.background, outlet, t)
            self._df.remove(features.counts)
        window, background = self._df, self.background

        def weight(term: str) -> float:
            return idf(term, window, background)

        best: tuple[tuple[int, float, float, int], _Entry, Reason, float] | None = None  # (rank, entry, ...)
        best_cos = 0.0
        for cand in self._candidates(side.vector, exclude=slot):
            entry = self._entries[cand]
            if abs(entry.side.time - t) > self.window_seconds:
                continue
            evidence = _evidence(side, entry.side, weight)
            best_cos = max(best_cos, evidence.cosine)
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

    def _insert(self, uid: str, story_id: str, t: float, features: ItemFeatures, outlet: str) -> tuple[int, _Side]:
        """Index an item, unless it is already older than the window; return its slot and what comparisons read.

        The vector is weighted with the IDF of this moment (the item itself counted) and kept as is: stored
        vectors are not re-weighted as the window moves, which keeps an assignment independent of window size.
        """
        slot = self._next_slot
        self._next_slot += 1
        self._df.add(features.counts)
        side = _side(features, self._df, self.background, outlet, t)
        if t < self._newest - self.window_seconds:
            self._df.remove(features.counts)
            return slot, side
        self._entries[slot] = _Entry(uid, story_id, side, tuple(features.counts))
        self._by_uid[uid] = slot
        heapq.heappush(self._heap, (t, slot))
        postings = self._postings
        for term in side.vector:
            bucket = postings.get(term)
            if bucket is None:
                postings[term] = [slot]
            else:
                bucket.append(slot)
        return slot, side

    def _remove(self, slot: int) -> None:
        entry = self._entries.pop(slot)
        if self._by_uid.get(entry.uid) == slot:
            del self._by_uid[entry.uid]
        self._df.remove(entry.doc_terms)
        postings = self._postings
        for term in entry.side.vector:
            bucket = postings[term]
            bucket.remove(slot)  # evictions are mostly the oldest slots, at the front: a short scan
            if not bucket:
                del postings[term]

    def _candidates(self, vector: Mapping[str, float], exclude: int) -> list[int]:
        """Items worth an exact comparison: those sharing most of the query's QUERY_TERMS heaviest terms.

        The heaviest terms of a tf-idf vector are its rarest: names, places, numbers. A reprint or a rewrite of
        the same event shares most of them, boilerplate shares none, so a few short postings lists suffice.
        """
        hits: Counter[int] = Counter()
        postings = self._postings
        for term in sorted(vector, key=lambda t: (-vector[t], t))[:QUERY_TERMS]:
            bucket = postings.get(term)
            if bucket:
                # slots grow with arrival: the tail is the newest entries
                hits.update(bucket if len(bucket) <= POSTING_SCAN else bucket[-POSTING_SCAN:])  # counted in C
        hits.pop(exclude, None)
        # most shared heavy terms first; ties in first-counted order, which is deterministic for a given history
        return sorted(slot for slot, _ in hits.most_common(RERANK))
