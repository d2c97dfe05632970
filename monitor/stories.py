"""Group items into stories online: one alert per story, however many outlets carry it.

    assign(item):
        f = featurise(item)            # stemmed terms (title counted TITLE_WEIGHT times), MinHash of word 3-shingles
        evict items older than (newest time seen - window)
        df += terms(item)              # document frequencies over the window: boilerplate ("МИД России") weighs little
        q = tf-idf vector of f, L2-normalised, top MAX_TERMS terms
        candidates = items sharing q's heaviest (rarest) terms (inverted index); a reprint shares all of them
        best = the candidate that passes `decide` (near-duplicate first, then highest cosine)
        join best's story, or start a new one; index the item

`decide` is the one decision rule: `same_story` (pairwise, used by bench/story_pairs.py) and `StoryGrouper` both
call it. Thresholds and how they were measured: docs/stories.md.

Pure: no I/O. `StoryGrouper` serialises `assign`/`restore` under one lock, so it may be shared by threads.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Literal

from monitor import minhash
from monitor.models import Item
from monitor.text import terms, tokens

# Measured on dev/story_pairs.jsonl.gz (docs/stories.md): cosine threshold maximising F1 over all 245 pairs,
# stable under 5-fold cross-validation; shingle resemblance with no false near-duplicate among the pairs.
SAME_EVENT_MIN_COSINE = 0.30
NEAR_DUP_MIN_JACCARD = 0.5
MIN_SHINGLES = 10  # resemblance of a few shingles (a headline) says little; such items use the cosine path only
TITLE_WEIGHT = 3  # a headline names the event; the body wanders
TEXT_CHARS = 3000  # the lead carries the event; long bodies dilute the vector and cost time
MAX_TERMS = 100  # terms kept per stored vector (highest tf-idf)
QUERY_TERMS = 12  # rarest query terms whose postings are scanned for candidates
RERANK = 40  # candidates scored exactly
DEFAULT_WINDOW = 48 * 3600.0

Reason = Literal["new", "near-duplicate", "same-event"]

# Small list of function words and newswire boilerplate; IDF over the window discounts the rest.
_STOP_WORDS = """
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от меня
еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам ведь там
потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже себе
под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда
зачем всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего них какая много
разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между
это также который которые которая которых заявил заявила заявили сообщил сообщила сообщили отметил отметила сказал
сказала словам по данным году года
the a an and or of to in on for with by at from as is are was were be been has have had it its this that these
those but not no he she they we you his her their our said says will would could also after before over than into
about which who what when where there more new one two reuters
"""


@cache
def _stop_stems() -> frozenset[str]:
    return frozenset(terms(_STOP_WORDS))


@dataclass(frozen=True)
class StoryDecision:
    """Where `assign` put an item.

    `similarity`: for "near-duplicate" the estimated Jaccard resemblance of word 3-shingles; for "same-event" the
    tf-idf cosine;
    for "new" the best cosine seen among candidates (0.0 when there were none).
    """

    story_id: str
    is_new: bool
    reason: Reason
    similarity: float
    matched_uid: str | None


@dataclass(frozen=True)
class ItemFeatures:
    """What grouping needs from an item's text."""

    counts: Mapping[str, float]  # term -> frequency, title occurrences counted TITLE_WEIGHT times
    signature: minhash.Signature | None  # MinHash of word 3-shingles; None below MIN_SHINGLES shingles


def featurise(title: str, body: str) -> ItemFeatures:
    """Terms and MinHash of one item (title and the first TEXT_CHARS characters of the body)."""
    body = body[:TEXT_CHARS]
    stop = _stop_stems()
    counts: dict[str, float] = {}
    for weight, text in ((float(TITLE_WEIGHT), title), (1.0, body)):
        for term in terms(text):
            if term in stop or (len(term) < 2 and not term.isdigit()):
                continue
            term = sys.intern(term)
            counts[term] = counts.get(term, 0.0) + weight
    grams = minhash.shingles(tokens(f"{title}\n{body}"))
    signature = minhash.signature(grams) if len(grams) >= MIN_SHINGLES else None
    return ItemFeatures(counts, signature)


def item_features(item: Item) -> ItemFeatures:
    """`featurise` of an Item's title and text."""
    return featurise(item.title, item.text)


class DocumentFrequencies:
    """Document frequencies of terms, updated incrementally; smoothed IDF as in scikit-learn."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.docs = 0

    def add(self, doc_terms: Iterable[str]) -> None:
        """Count one document (its distinct terms)."""
        counts = self.counts
        for term in doc_terms:
            counts[term] = counts.get(term, 0) + 1
        self.docs += 1

    def remove(self, doc_terms: Iterable[str]) -> None:
        """Forget one document counted before with the same terms."""
        counts = self.counts
        for term in doc_terms:
            left = counts[term] - 1
            if left:
                counts[term] = left
            else:
                del counts[term]
        self.docs -= 1

    @classmethod
    def of(cls, docs: Iterable[ItemFeatures]) -> DocumentFrequencies:
        """Frequencies over a collection (e.g. a background corpus)."""
        df = cls()
        for features in docs:
            df.add(features.counts)
        return df


def _vector(
    counts: Mapping[str, float], window: DocumentFrequencies, background: DocumentFrequencies | None
) -> dict[str, float]:
    """Sublinear tf × smoothed idf, top MAX_TERMS terms, L2-normalised."""
    wdf = window.counts
    if background is None:
        n = window.docs + 1
        weights = {t: (1.0 + math.log(tf)) * (math.log(n / (wdf.get(t, 0) + 1)) + 1.0) for t, tf in counts.items()}
    else:
        bdf = background.counts
        n = window.docs + background.docs + 1
        weights = {
            t: (1.0 + math.log(tf)) * (math.log(n / (wdf.get(t, 0) + bdf.get(t, 0) + 1)) + 1.0)
            for t, tf in counts.items()
        }
    if len(weights) > MAX_TERMS:
        weights = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TERMS])
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {t: w / norm for t, w in weights.items()}


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Dot product of two L2-normalised sparse vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items())


def decide(cos: float, resemblance: float | None) -> tuple[bool, Reason]:
    """The same-story rule: near-duplicate shingles, else tf-idf cosine over the threshold."""
    if resemblance is not None and resemblance >= NEAR_DUP_MIN_JACCARD:
        return True, "near-duplicate"
    if cos >= SAME_EVENT_MIN_COSINE:
        return True, "same-event"
    return False, "new"


def _resemblance(a: minhash.Signature | None, b: minhash.Signature | None) -> float | None:
    return None if a is None or b is None else minhash.similarity(a, b)


def _similarity(reason: Reason, cos: float, resemblance: float | None) -> float:
    return resemblance if reason == "near-duplicate" and resemblance is not None else cos


def same_story(
    a: Item, b: Item, background: DocumentFrequencies | None = None, window_seconds: float | None = None
) -> tuple[bool, float, str]:
    """Pairwise form of the grouper's decision: (same story?, similarity, reason).

    IDF comes from `background` (plus the two items); without one it is near-uniform and boilerplate counts
    as much as names, so pass one built from a stream of the same language.
    """
    if window_seconds is not None and abs((item_time(a) - item_time(b)).total_seconds()) > window_seconds:
        return False, 0.0, "new"
    cos, resemblance = pair_scores(item_features(a), item_features(b), background)
    ok, reason = decide(cos, resemblance)
    return ok, _similarity(reason, cos, resemblance), reason


def pair_scores(
    fa: ItemFeatures, fb: ItemFeatures, background: DocumentFrequencies | None = None
) -> tuple[float, float | None]:
    """(tf-idf cosine, shingle resemblance or None) of two items, IDF over `background` plus the two items."""
    pair = DocumentFrequencies.of((fa, fb))
    va, vb = _vector(fa.counts, pair, background), _vector(fb.counts, pair, background)
    return cosine(va, vb), _resemblance(fa.signature, fb.signature)


def item_time(item: Item) -> datetime:
    """The time an item counts at: published, else first seen."""
    when: datetime | None = item.published or item.first_seen
    if when is None:
        raise ValueError(f"item {item.uid!r} has neither a published nor a first-seen time")
    return when


def story_id_for(uid: str) -> str:
    """Deterministic story id from the uid of its first item."""
    return hashlib.sha1(uid.encode("utf-8")).hexdigest()[:16]


@dataclass(slots=True)
class _Entry:
    uid: str
    story_id: str
    time: float
    vector: dict[str, float]
    doc_terms: tuple[str, ...]  # distinct terms counted in the window's document frequencies
    signature: minhash.Signature | None


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
        self._postings: dict[str, set[int]] = {}
        self._heap: list[tuple[float, int]] = []  # (time, slot), for eviction
        self._df = DocumentFrequencies()
        self._next_slot = 0
        self._newest = -math.inf

    def __len__(self) -> int:
        return len(self._entries)

    def assign(self, item: Item, now: datetime | None = None) -> StoryDecision:
        """Put `item` in an existing story or a new one, and index it. `now` caps item times from the future."""
        features = item_features(item)
        t = item_time(item).timestamp()
        with self._lock:
            if now is not None:
                t = min(t, now.timestamp())
                self._advance(now.timestamp())
            self._advance(t)
            previous = self._by_uid.get(item.uid)
            if previous is not None:  # an updated version of an item we hold stays in its story
                story_id = self._entries[previous].story_id
                self._remove(previous)
                self._insert(item.uid, story_id, t, features)
                return StoryDecision(story_id, False, "near-duplicate", 1.0, item.uid)
            slot, vector = self._insert(item.uid, "", t, features)
            best: tuple[tuple[int, float, float, int], _Entry, Reason, float] | None = None
            best_cos = 0.0
            for cand in self._candidates(vector, exclude=slot):
                entry = self._entries[cand]
                if abs(entry.time - t) > self.window_seconds:
                    continue
                cos = cosine(vector, entry.vector)
                best_cos = max(best_cos, cos)
                resemblance = _resemblance(features.signature, entry.signature)
                ok, reason = decide(cos, resemblance)
                if not ok:
                    continue
                # near-duplicates first (closest copy), then the highest cosine, then the earliest item
                near = reason == "near-duplicate"
                rank = (0 if near else 1, -(resemblance or 0.0) if near else 0.0, -cos, cand)
                if best is None or rank < best[0]:
                    best = (rank, entry, reason, _similarity(reason, cos, resemblance))
            if best is None:
                decision = StoryDecision(story_id_for(item.uid), True, "new", best_cos, None)
            else:
                _, match, reason, similarity = best
                decision = StoryDecision(match.story_id, False, reason, similarity, match.uid)
            if slot in self._entries:
                self._entries[slot].story_id = decision.story_id
            return decision

    def restore(self, pairs: Iterable[tuple[Item, str]]) -> None:
        """Rebuild the index from stored (item, story id) pairs after a restart; replaces the current state."""
        rows = sorted(((item_time(item).timestamp(), item, story) for item, story in pairs), key=lambda r: r[0])
        with self._lock:
            self._reset()
            for t, item, story_id in rows:
                self._advance(t)
                previous = self._by_uid.get(item.uid)
                if previous is not None:
                    self._remove(previous)
                self._insert(item.uid, story_id, t, item_features(item))

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

    def _insert(self, uid: str, story_id: str, t: float, features: ItemFeatures) -> tuple[int, dict[str, float]]:
        """Index an item, unless it is already older than the window; return its slot and tf-idf vector.

        The vector is weighted with the IDF of this moment (the item itself counted) and kept as is: stored
        vectors are not re-weighted as the window moves, which keeps an assignment independent of window size.
        """
        slot = self._next_slot
        self._next_slot += 1
        self._df.add(features.counts)
        vector = _vector(features.counts, self._df, self.background)
        if t < self._newest - self.window_seconds:
            self._df.remove(features.counts)
            return slot, vector
        self._entries[slot] = _Entry(uid, story_id, t, vector, tuple(features.counts), features.signature)
        self._by_uid[uid] = slot
        heapq.heappush(self._heap, (t, slot))
        postings = self._postings
        for term in vector:
            bucket = postings.get(term)
            if bucket is None:
                postings[term] = {slot}
            else:
                bucket.add(slot)
        return slot, vector

    def _remove(self, slot: int) -> None:
        entry = self._entries.pop(slot)
        if self._by_uid.get(entry.uid) == slot:
            del self._by_uid[entry.uid]
        self._df.remove(entry.doc_terms)
        postings = self._postings
        for term in entry.vector:
            bucket = postings[term]
            bucket.discard(slot)
            if not bucket:
                del postings[term]

    def _candidates(self, vector: Mapping[str, float], exclude: int) -> list[int]:
        """Items worth an exact comparison: the best partial scores over the query's QUERY_TERMS heaviest terms.

        The heaviest terms of a tf-idf vector are its rarest: names, places, numbers. A reprint or a rewrite of
        the same event shares most of them, boilerplate shares none, so a few short postings lists suffice.
        """
        scores: dict[int, float] = {}
        heaviest = sorted(vector.items(), key=lambda kv: (-kv[1], kv[0]))[:QUERY_TERMS]
        postings = self._postings
        for term, weight in heaviest:
            for slot in postings.get(term, ()):
                scores[slot] = scores.get(slot, 0.0) + weight
        scores.pop(exclude, None)
        return sorted(heapq.nlargest(RERANK, scores, key=lambda s: (scores[s], -s)))


class StoryMetrics:
    """Story figures for `monitor eval` when corpus items carry a gold "story" field.

    - alerts_sent: first alert per (predicted story, topic): what the daemon would send.
    - repeated_alerts: sent alerts whose item's gold story had already been alerted for that topic.
    - wrong_merges: predicted stories holding items of more than one gold story (items without gold ignored).
    - split_gold_stories: gold stories spread over more than one predicted story (the cause of repeats).
    """

    def __init__(self) -> None:
        self._items = 0
        self._with_gold = 0
        self._alerted_predicted: set[tuple[str, str]] = set()
        self._alerted_gold: set[tuple[str, str]] = set()
        self._alerts = 0
        self._repeats = 0
        self._gold_of_predicted: dict[str, set[str]] = {}
        self._predicted_of_gold: dict[str, set[str]] = {}
        self._predicted: set[str] = set()

    def observe(
        self, item_id: str, gold_story: str | None, predicted_story: str, matched_topics: Sequence[str]
    ) -> None:
        """Record one item in stream order."""
        self._items += 1
        self._predicted.add(predicted_story)
        if gold_story is not None:
            self._with_gold += 1
            self._gold_of_predicted.setdefault(predicted_story, set()).add(gold_story)
            self._predicted_of_gold.setdefault(gold_story, set()).add(predicted_story)
        for topic in dict.fromkeys(matched_topics):
            if (predicted_story, topic) in self._alerted_predicted:
                continue  # folded into the story's existing alert
            self._alerted_predicted.add((predicted_story, topic))
            self._alerts += 1
            if gold_story is None:
                continue
            if (gold_story, topic) in self._alerted_gold:
                self._repeats += 1
            else:
                self._alerted_gold.add((gold_story, topic))

    def summary(self) -> dict[str, int]:
        """The figures, as plain ints."""
        return {
            "items": self._items,
            "items_with_gold_story": self._with_gold,
            "alerts_sent": self._alerts,
            "repeated_alerts": self._repeats,
            "predicted_stories": len(self._predicted),
            "gold_stories": len(self._predicted_of_gold),
            "wrong_merges": sum(1 for golds in self._gold_of_predicted.values() if len(golds) > 1),
            "split_gold_stories": sum(1 for preds in self._predicted_of_gold.values() if len(preds) > 1),
        }
