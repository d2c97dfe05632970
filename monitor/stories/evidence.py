"""The same-story rule for one pair of items: what it looks at (`Evidence`) and what it decides (`decide`).

    evidence_of(a, b):  tf-idf cosine, shingle resemblance, dates (cheap: most candidates are decided here, by
                        `best_logit`'s bound), then title cosine, names covered, numbers, subjects, outlet, time gap
    decide(evidence):   never across dates; a near-duplicate by shingles; else the learnt logit > 0

`same_story` (pairwise, used by bench/story_pairs.py) and `group.StoryGrouper` (online, over a window) both call
`decide`. Thresholds and how they were measured: docs/stories.md. Pure: no I/O, no state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..match.text import AnalysedText, adjectives_of, analyse, derived_from
from ..models import Item
from . import minhash
from .features import DocumentFrequencies, ItemFeatures, cosine, dates_conflict, features_of, idf, tfidf

# The resemblance threshold lies in the gap between gold-different pairs (at most 0.30) and reprints (0.7-1.0).
NEAR_DUP_MIN_JACCARD = 0.5
# Same event: a logistic regression over the pair's evidence (`Evidence.logit`), fit on all 245 labelled pairs by
# `python3 bench/story_pairs.py --fit` (IDF from ~57k real news texts); the figures reported for it are 5-fold
# cross-validated (never scored on the fold it was fit on): docs/stories.md. FEATURES names `Evidence.features`.
FEATURES = ("cosine", "title_cosine", "names_min", "names_max", "numbers_conflict", "same_outlet", "subjects_differ")
WEIGHTS = (7.16, 0.76, 1.45, 0.89, 0.59, -2.89, -3.29)
INTERCEPT = -3.67
_SAME_OUTLET = FEATURES.index("same_outlet")
# What the features other than the cosine and the outlet can add at most (each is in 0..1): `best_logit`'s bound
_BEST_REST = sum(max(0.0, w) for i, w in enumerate(WEIGHTS) if i not in (0, _SAME_OUTLET))
# Not in the pairs (they carry no times), so a stated prior rather than a fit: the time between two reports costs
# the logit up to this much, linearly over the first day, so that the same actor's next event a day later ("КНДР
# вновь запустила ракету") needs clearly more shared evidence than a rewrite of the same hour. Flat after a day:
# beyond that the window decides.
GAP_PENALTY = 1.5

Reason = Literal["new", "near-duplicate", "same-event"]


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


def best_logit(cos: float, same_outlet: bool, gap_hours: float) -> float:
    """The highest logit a pair with this cosine, outlet and time gap (all cheap to know) could reach whatever its
    other evidence (features in 0..1): below 0, skip computing the rest."""
    rest = _BEST_REST + WEIGHTS[_SAME_OUTLET] * same_outlet
    return INTERCEPT + WEIGHTS[0] * cos + rest - GAP_PENALTY * min(gap_hours, 24.0) / 24.0


@dataclass(frozen=True, slots=True)
class Side:
    """One item of a pair as `evidence_of` reads it."""

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


def _cover(side: Side, other: Side, idf: Callable[[str], float]) -> float:
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


def _named(forms: tuple[str, ...], other: Side) -> bool:
    """Does the other item name this (as a name or a heavy term, or as an adjective: "Россия" / "российский")?"""
    entities, vector, title = other.entities, other.vector, other.title_vector
    return any(f in entities or f in vector or f in title for f in forms)


def evidence_of(a: Side, b: Side, idf: Callable[[str], float], *, whole: bool = False) -> Evidence:
    """The evidence for a pair; unless `whole`, only as much as `decide` needs (the rest left at its defaults)."""
    resemblance = None if a.signature is None or b.signature is None else minhash.similarity(a.signature, b.signature)
    return _evidence(a, b, idf, cosine(a.vector, b.vector), resemblance, whole=whole)


def judged(a: Side, b: Side, idf: Callable[[str], float], cos: float, resemblance: float | None) -> Evidence | None:
    """`evidence_of(a, b, idf)` given the pair's cosine and resemblance (the grouper compares all its candidates
    at once), or None where `decide` would reject it on the cheap figures alone: most candidates, for which no
    Evidence is built."""
    near = resemblance is not None and resemblance >= NEAR_DUP_MIN_JACCARD
    return None if _ruled_out(a, b, cos, near) else _evidence(a, b, idf, cos, resemblance, whole=False)


def _ruled_out(a: Side, b: Side, cos: float, near: bool) -> bool:
    """Does `decide` reject the pair on the cheap figures alone: dates in conflict, or, unless a near-duplicate,
    a cosine whose best logit (`best_logit`) is not above 0?"""
    if dates_conflict(a.dates, b.dates):
        return True
    return not near and best_logit(cos, a.outlet == b.outlet, abs(a.time - b.time) / 3600.0) <= 0.0


def _evidence(
    a: Side, b: Side, idf: Callable[[str], float], cos: float, resemblance: float | None, *, whole: bool
) -> Evidence:
    conflict = dates_conflict(a.dates, b.dates)
    near = resemblance is not None and resemblance >= NEAR_DUP_MIN_JACCARD
    same = a.outlet == b.outlet
    gap = abs(a.time - b.time) / 3600.0
    if not whole and (near or _ruled_out(a, b, cos, near)):  # decided already: most candidates
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
    sa = side_of(fa, pair, background, outlets[0], times[0])
    sb = side_of(fb, pair, background, outlets[1], times[1])
    return evidence_of(sa, sb, lambda term: idf(term, pair, background), whole=True)


def side_of(
    f: ItemFeatures, df: DocumentFrequencies, background: DocumentFrequencies | None, outlet: str, t: float
) -> Side:
    return Side(
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
