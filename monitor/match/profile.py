"""Topic profiles: keyword/exclude phrases as term sequences, and the TF-IDF profile and example vectors.

A profile is a Rocchio-style centroid: the L2-normalised sum of
    KEYWORD_WEIGHT × keywords  +  DESCRIPTION_WEIGHT × (name + description)  +  EXAMPLE_WEIGHT × mean(examples)
where each part is itself an L2-normalised sublinear-TF × IDF vector. Each example also stays a vector of its own, so
an item close to one sub-story of a broad topic still scores (nearest-example similarity).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import Topic
from .clean import strip_code
from .text import adjectives_of, derived_from, terms

KEYWORD_WEIGHT = 1.0
DESCRIPTION_WEIGHT = 0.5
EXAMPLE_WEIGHT = 1.0


@dataclass(frozen=True)
class Phrase:
    """A keyword or exclude phrase as typed, and as a sequence of terms."""

    text: str
    terms: tuple[str, ...]


@dataclass(frozen=True)
class TopicSpec:
    """What the model keeps of a config topic: phrases and texts, already reduced to terms."""

    id: str
    name: str
    keywords: tuple[Phrase, ...]
    exclude: tuple[Phrase, ...]
    description_terms: tuple[str, ...]
    example_terms: tuple[tuple[str, ...], ...]
    threshold: float | None
    about: bool = False  # scope "about": passing mentions are discounted (classify.TopicModel._self_train)


def _phrases(texts: Sequence[str]) -> tuple[Phrase, ...]:
    out = []
    for text in texts:
        seq = tuple(terms(text))
        if seq:
            out.append(Phrase(text, seq))
    return tuple(out)


def topic_spec(topic: Topic, examples: Sequence[tuple[str, str]]) -> TopicSpec:
    """Reduce a config topic and its example texts to terms."""
    return TopicSpec(
        id=topic.id,
        name=topic.name,
        keywords=_phrases(topic.keywords),
        exclude=_phrases(topic.exclude),
        description_terms=tuple(terms(f"{topic.name}\n{topic.description}")),
        example_terms=tuple(tuple(terms(strip_code(f"{title}\n{text}"))) for title, text in examples),
        threshold=topic.threshold,
        about=topic.scope == "about",
    )


def spec_documents(spec: TopicSpec) -> list[list[str]]:
    """The topic's texts as documents for a cold-start IDF: keywords + description, and each example."""
    head = [t for p in spec.keywords for t in p.terms] + list(spec.description_terms)
    return [head, *[list(e) for e in spec.example_terms]]


def _vector(counts: Mapping[str, float], vocab: Mapping[str, int], idf: np.ndarray) -> dict[int, float]:
    vec: dict[int, float] = {}
    for term, tf in counts.items():
        idx = vocab.get(term)
        if idx is not None and tf > 0:
            vec[idx] = (1.0 + math.log(tf)) * float(idf[idx]) if tf >= 1 else tf * float(idf[idx])
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {k: v / norm for k, v in vec.items()} if norm > 0 else {}


def _add(acc: dict[int, float], vec: Mapping[int, float], weight: float) -> None:
    for k, v in vec.items():
        acc[k] = acc.get(k, 0.0) + weight * v


def profile_vectors(
    spec: TopicSpec, vocab: Mapping[str, int], idf: np.ndarray
) -> tuple[dict[int, float], list[dict[int, float]]]:
    """(profile centroid, one vector per example), all L2-normalised, as {term id: weight}.

    The analyst's labels do not change the profile: they correct the topic's score (learn.py).
    """
    kw_counts: Counter[str] = Counter()
    for phrase in spec.keywords:
        kw_counts.update(phrase.terms)
    keywords = _vector(kw_counts, vocab, idf)
    description = _vector(Counter(spec.description_terms), vocab, idf)
    examples = [v for v in (_vector(Counter(e), vocab, idf) for e in spec.example_terms) if v]
    acc: dict[int, float] = {}
    _add(acc, keywords, KEYWORD_WEIGHT)
    _add(acc, description, DESCRIPTION_WEIGHT)
    if examples:
        centroid: dict[int, float] = {}
        for vec in examples:
            _add(centroid, vec, 1.0 / len(examples))
        _add(acc, centroid, EXAMPLE_WEIGHT / math.sqrt(sum(v * v for v in centroid.values())))
    norm = math.sqrt(sum(v * v for v in acc.values()))
    profile = {k: v / norm for k, v in acc.items()} if norm > 0 else {}
    return profile, examples


class PhraseIndex:
    """Finds keyword and exclude phrases in term sequences, morphology-aware.

    Terms are lemmas/stems already, so "стратегической стабильности" meets "стратегическая стабильность"; a place
    adjective also stands for its noun ("ливийского" → "ливия"), so keyword "Ливия" finds "ливийского кризиса".
    """

    def __init__(self, specs: Sequence[TopicSpec]) -> None:
        # first term → [(topic index, is_exclude, phrase)]
        self._first: dict[str, list[tuple[int, bool, Phrase]]] = {}
        for ti, spec in enumerate(specs):
            for exclude, phrases in ((False, spec.keywords), (True, spec.exclude)):
                for phrase in phrases:
                    self._first.setdefault(phrase.terms[0], []).append((ti, exclude, phrase))
        self.empty = not self._first
        self._cand_cache: dict[str, list[tuple[int, bool, Phrase]]] = {}  # filled lazily; same result any order
        # Every term that can start a phrase: first terms, and the place adjectives that stand for them. Known up
        # front, so one C-speed set intersection per sequence finds the positions worth looking at.
        self._triggers = frozenset(self._first).union(*(adjectives_of(term) for term in self._first))

    def find(self, seqs: Sequence[Sequence[str]]) -> list[tuple[int, int, int, bool, Phrase]]:
        """Every occurrence as (sequence index, position, topic index, is_exclude, phrase), in sequence order."""
        hits: list[tuple[int, int, int, bool, Phrase]] = []
        if self.empty:
            return hits
        for si, seq in enumerate(seqs):
            triggers = self._triggers.intersection(seq)
            if not triggers:
                continue
            for pos, term in enumerate(seq):
                if term in triggers:
                    for ti, exclude, phrase in self._candidates(term):
                        if self._at(seq, pos, phrase.terms):
                            hits.append((si, pos, ti, exclude, phrase))
        return hits

    def _candidates(self, term: str) -> list[tuple[int, bool, Phrase]]:
        """Phrases that may start at a term: its own, and those of the nouns a place adjective stands for."""
        cached = self._cand_cache.get(term)
        if cached is None:
            cached = list(self._first.get(term, ()))
            for noun in derived_from(term):
                cached.extend(self._first.get(noun, ()))
            if len(self._cand_cache) > 100_000:
                self._cand_cache.clear()
            self._cand_cache[term] = cached
        return cached

    @staticmethod
    def _at(seq: Sequence[str], pos: int, want: tuple[str, ...]) -> bool:
        if pos + len(want) > len(seq):
            return False
        for k, term in enumerate(want):
            got = seq[pos + k]
            if got != term and term not in derived_from(got):
                return False
        return True
