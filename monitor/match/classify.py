"""The topic model: TF-IDF profiles, passage scoring, keyword phrases, calibrated probabilities and labels.

    build(topics, examples, background)   IDF from background + topic texts; profiles; calibration on background;
                                          self-training: per-topic logistic regression on the background sample,
                                          labelled by the model's own probabilities (no gold labels)
    classify(title, text)                 terms → doc + passage vectors → cosines to profiles and examples
                                          + keyword phrase hits + self-trained log-odds
                                          → prior log-odds (calibrate.py) → the topic's label correction (learn.py)
                                          → probability of relevance; matched when above the topic's threshold,
                                          the cut that minimises its expected C_det → Match per topic
    with_labels(labelled)                 the same model corrected per topic by the analyst's labels
    refit(background)                     new IDF, calibration and self-training from the rolling window (labels kept)
    save(path) / load(path, ...)          background statistics persisted in data_dir (.npz, no pickle)

See docs/matching.md for the method, the score rule and the measured numbers.
"""

from __future__ import annotations

import copy
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, repeat
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from ..config import Topic
from ..errors import ModelError
from ..models import Item, Label, LabelEffect, Match
from . import calibrate, learn
from .background import Background
from .clean import strip_code
from .profile import PhraseIndex, TopicSpec, profile_vectors, spec_documents, topic_spec
from .text import AnalysedText, TermScan, adjectives_of, analyse, terms

WINDOW = 40  # content terms per passage, about 60-70 running words
STRIDE = 20
CALIBRATION_SAMPLE = 3000  # most recent background items kept (as term ids) to calibrate scores
PRIOR_WEIGHT = 200  # pseudo-items: how much the cold-start calibration prior counts against the sample
TOP_TERMS = 6
MATCH_CACHE = 50_000  # (topic, score to 3 decimals) → Match; 50 topics × ≤1,000 scores
EXPLAIN_FROM = 0.5  # terms and passage are computed for topics scoring at least this fraction of their threshold
NEAR_MISS_FROM = 0.5  # an item scoring at least half its topic's threshold is "just below the line"
PASSAGE_CHARS = 600
PRIOR_MEDIAN = 0.02  # cold start: a typical median cosine of a news item to an unrelated profile
# Self-training (docs/matching.md): per topic, a logistic regression on the background sample's TF-IDF vectors,
# labelled by the model's own prior probability without the self-trained part (≥ PSEUDO_POSITIVE: positive;
# < PSEUDO_NEGATIVE: negative; between: left out). Its log-odds enter the prior log-odds both ways, with the
# calibrated weights of calibrate.py. The two cuts select the same items as the rule the self-training was first
# measured with (on both dev sets, ~90 % of its positives and ~100 % of its negatives); cleaner positives (≥ 0.5,
# < 0.1) were measured to cost Russian recall (docs/matching.md).
PSEUDO_POSITIVE, PSEUDO_NEGATIVE = 0.2, 0.02
# Topics with `scope: about` (docs/matching.md): the learned model is trained on cleaner positives, items with a
# keyword phrase among their first ABOUT_LEAD_TERMS terms (title or lead) that are at least ABOUT_MIN_PROBABILITY
# likely, so an item that only mentions the topic in passing, among words those items do not use, scores lower.
ABOUT_LEAD_TERMS = 15
ABOUT_MIN_PROBABILITY = 0.05
SELF_TRAIN_MIN = 200  # background items needed before self-training (cold start: none)
SELF_TRAIN_MIN_POSITIVES = 3
LEARNED_TERMS = 2000  # per topic, the terms of largest |weight| kept (the rest of an L2 model's weights are small)
NEAR_MISSES_PER_TOPIC_DAY = 3  # near misses offered for labelling per topic and calendar day (daemon and eval)
# An item is compared with a labelled item (learn.py's kernel) only when at least LABEL_KEY_SHARED of its
# LABEL_KEY_TERMS heaviest terms are among the labelled item's: a near-duplicate (cosine ≥ 0.5) shares most of them,
# and the check costs a few dictionary look-ups instead of a product with every labelled item (50 topics with 50
# labels each would otherwise cost several times the rest of classify).
LABEL_KEY_TERMS, LABEL_KEY_SHARED = 8, 3


@dataclass(frozen=True)
class _Scores:
    """Raw evidence for every topic on one item (arrays over topics)."""

    doc: np.ndarray  # cosine of the whole item to the profile
    passage: np.ndarray  # best passage's cosine to the profile
    example: np.ndarray  # best cosine of the item or a passage to a single example
    best_row: np.ndarray  # row of the best passage (0 = whole item)
    prof: np.ndarray  # [rows, topics] cosines of the item (row 0) and each passage to the profiles
    kw_title: np.ndarray  # keyword phrase occurrences in the title
    kw_text: np.ndarray  # ... in the text
    kw_distinct: np.ndarray  # distinct keyword phrases found
    veto: list[str | None]
    hits: list[list[str]]
    window_starts: list[int]  # first text term of each passage (row r ↔ window_starts[r - 1])
    weights: np.ndarray  # [rows, distinct terms] TF-IDF weights of the item (row 0) and its passages
    gathered: np.ndarray  # [distinct terms, columns] profile and example weights of those terms
    uniq: np.ndarray  # the distinct term ids
    kw_first: np.ndarray  # where the first keyword phrase occurs: 0 = title or start of text .. 1 = end / none
    n_terms: int  # terms in title and text
    noted: tuple[int, ...] = ()  # topics with a keyword or exclude phrase found
    hit_at: Mapping[int, list[int]] | None = None  # topic → text positions of its keyword phrases
    learned: np.ndarray | None = None  # self-trained model's log-odds per topic (None: no model yet)
    unseen: tuple[str, ...] = ()  # out-of-vocabulary terms, by private id (uniq above the vocabulary)


class TopicModel:
    """TF-IDF topic profiles with passage scoring and calibrated thresholds. Read-only after build."""

    def __init__(self, specs: Sequence[TopicSpec], background: Background) -> None:
        self._specs = tuple(specs)
        bg = background.extended(
            [t for s in specs for t in (*s.description_terms, *(t for p in s.keywords for t in p.terms))]
            + [t for s in specs for e in s.example_terms for t in e]
        )
        self._bg = bg
        self._vocab = bg.vocab
        self._vocab_get = bg.vocab.get
        self._oov = len(bg.idf)
        self._idf = bg.idf
        self._idf_ext = np.append(bg.idf, np.float32(bg.oov_idf)).astype(np.float32)  # last slot: unseen terms
        self._phrases = PhraseIndex(specs)
        self._n_topics = len(specs)
        self._zeros = np.zeros(self._n_topics, dtype=np.float32)  # shared, never written
        self._ones = np.ones(self._n_topics, dtype=np.float32)
        self._no_veto: list[str | None] = [None] * self._n_topics  # shared, never written
        self._no_hits: list[list[str]] = [[] for _ in specs]  # shared, never written
        self._match_cache: dict[int, Match] = {}  # topic·1001 + score in thousandths → Match; entries never change
        self._key_base = np.arange(self._n_topics, dtype=np.int64) * 1001
        self._about = np.asarray([s.about for s in specs], dtype=bool)
        self._build_matrix()
        self._learned_col = 0  # first matrix column of the self-trained weights (0: none trained)
        self._intercepts = self._zeros
        self._trained = np.zeros(self._n_topics, dtype=bool)  # topics with a self-trained model
        # The analyst's labels (learn.py): none yet. Per topic the corrected log-odds are z0 + w0, plus the kernel
        # terms for an item close to a labelled one; without labels w = 0.
        self._labels: dict[int, learn.TopicLabels] = {}
        self._labelled: tuple[tuple[Label, Item], ...] = ()
        self._label_posting: dict[int, tuple[int, ...]] = {}  # heavy term id → labelled items (ids in _label_owners)
        self._label_owners: list[tuple[int, int]] = []  # labelled item id → (topic, index in its examples)
        # The terms that name each topic (its keyword phrases, and the place adjectives that stand for them): every
        # item of a topic shares them, so they are left out when the kernel compares an item with labelled ones.
        self._name_ids = [
            np.unique(
                np.array(
                    [
                        i
                        for p in spec.keywords
                        for t in p.terms
                        for w in (t, *adjectives_of(t))
                        if (i := self._vocab_get(w)) is not None
                    ],
                    dtype=np.int64,
                )
            )
            for spec in specs
        ]
        self._example_cache: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._fit_cache: dict[int, tuple[tuple[tuple[str, bool, float], ...], learn.TopicLabels]] = {}
        self._set_correction()
        self._calibrate(self._sample_terms())

    def _sample_terms(self) -> list[tuple[list[str], np.ndarray]]:
        """The calibration sample as (terms, term ids)."""
        sample = self._bg.sample()
        if not sample:
            return []
        inv_vocab = [""] * len(self._idf)
        for term, i in self._vocab.items():
            inv_vocab[i] = term
        return [([inv_vocab[i] for i in ids], ids.astype(np.int64)) for ids in sample]

    # ------------------------------------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        topics: Sequence[Topic],
        examples: Mapping[str, Sequence[tuple[str, str]]],
        background: Sequence[str],
    ) -> TopicModel:
        """Fit IDF on the background items plus the topics' own texts; calibrate on the background."""
        specs = [topic_spec(t, examples.get(t.id, ())) for t in topics]
        return cls._fit(specs, [terms(strip_code(text)) for text in background])

    @classmethod
    def _fit(cls, specs: Sequence[TopicSpec], bg_terms: Sequence[list[str]]) -> TopicModel:
        topic_docs = [d for s in specs for d in spec_documents(s)]
        sample = list(bg_terms[-CALIBRATION_SAMPLE:])
        try:
            background = Background.fit([*bg_terms, *topic_docs], sample)
        except ValueError as exc:
            raise ModelError(f"while fitting the background IDF: {exc}") from exc
        return cls(specs, background)

    def refit(self, background: Sequence[str]) -> TopicModel:
        """A new model with IDF and calibration from `background` (the rolling window) and the same labels (refitted
        on the new statistics); this one stays usable."""
        newer = self._fit(self._specs, [terms(strip_code(text)) for text in background])
        return newer.with_labels(self._labelled) if self._labelled else newer

    def _build_matrix(self) -> None:
        specs, vocab, idf = self._specs, self._vocab, self._idf
        profiles, examples, owners = [], [], []
        for ti, spec in enumerate(specs):
            profile, exs = profile_vectors(spec, vocab, idf)
            profiles.append(profile)
            examples.extend(exs)
            owners.extend([ti] * len(exs))
        # Example columns are padded to the same count per topic so a reshape finds each topic's best example.
        per_topic = max([owners.count(ti) for ti in range(len(specs))] + [0])
        padded: list[dict[int, float]] = []
        for ti in range(len(specs)):
            own = [ex for ex, o in zip(examples, owners, strict=True) if o == ti]
            padded.extend(own + [{}] * (per_topic - len(own)))
        self._per_topic = per_topic
        columns = profiles + padded
        used = sorted({k for col in columns for k in col})
        row_of = np.full(len(idf) + 1, -1, dtype=np.int64)  # last slot: out-of-vocabulary
        row_of[used] = np.arange(len(used))
        matrix = np.zeros((len(used) + 1, len(columns)), dtype=np.float32)  # last row stays zero
        pos = {k: i for i, k in enumerate(used)}
        for c, col in enumerate(columns):
            for k, v in col.items():
                matrix[pos[k], c] = v
        self._row_of = row_of
        self._matrix = matrix
        self._terms_by_id = {i: t for t, i in vocab.items() if row_of[i] >= 0}

    # ----------------------------------------------------------------------------------------------- scoring core
    def _evidence(self, title_terms: Sequence[str], text_terms: Sequence[str]) -> _Scores:
        n_topics = self._n_topics
        nt, n = len(title_terms), len(text_terms)
        if nt + n == 0:
            zeros = np.zeros(n_topics, dtype=np.float32)
            cols = self._matrix.shape[1]
            return _Scores(
                zeros,
                zeros,
                zeros,
                np.zeros(n_topics, dtype=np.int64),
                np.zeros((1, n_topics), dtype=np.float32),
                zeros,
                zeros,
                zeros,
                [None] * n_topics,
                [[] for _ in range(n_topics)],
                [],
                np.zeros((1, 0), dtype=np.float32),
                np.zeros((0, cols), dtype=np.float32),
                np.zeros(0, dtype=np.int64),
                np.ones(n_topics, dtype=np.float32),
                0,
            )
        # Each position's term id, laid out as text, title, title: the whole item's row counts every position (so
        # the title twice) and the passage windows index the text directly. dict.get with a default, at C speed.
        oov = self._oov
        ids = np.fromiter(
            map(self._vocab_get, chain(text_terms, title_terms, title_terms), repeat(oov)),
            dtype=np.int64,
            count=n + 2 * nt,
        )
        unseen = ids.max() == oov
        private: dict[str, int]
        if unseen:
            # Distinct out-of-vocabulary terms must stay distinct for the vector norm: private ids above the
            # vocabulary, in order of first occurrence in title then text (the title's first copy comes first).
            seq = [*text_terms, *title_terms, *title_terms]
            private = {}
            at = (ids == oov).nonzero()[0].tolist()
            for i in sorted(at, key=lambda i: i - n - nt if n <= i < n + nt else i):
                ids[i] = oov + 1 + private.setdefault(seq[i], len(private))
        else:
            private = {}
        uniq, inv = np.unique(ids, return_inverse=True)
        u = len(uniq)
        clipped = np.minimum(uniq, oov) if unseen else uniq  # private out-of-vocabulary ids → the shared OOV slot
        starts, pos, rows = _windows(n)
        if starts:  # one bincount for the whole item (row 0) and every passage window (rows 1..k)
            k = len(starts)
            keys = np.concatenate((inv, rows * u + inv[pos]))
            counts = np.bincount(keys, minlength=(k + 1) * u).reshape(k + 1, u)
        else:
            counts = np.bincount(inv, minlength=u).reshape(1, u)
        # sublinear tf, 1 + log(count) where count > 0, else 0: one table look-up instead of four array operations
        # (a count is at most twice the item's term count: the title counts twice)
        tf = _SUBLINEAR[counts] if 2 * (nt + n) < len(_SUBLINEAR) else _sublinear(counts)
        weights = tf * self._idf_ext[clipped]
        norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", weights, weights)), 1e-12)
        gathered = self._matrix[self._row_of[clipped]]
        cos = (weights @ gathered) / norms[:, None]
        learned = None
        lc = self._learned_col
        if lc:  # on the whole item's L2-normalised TF-IDF vector (row 0), as trained
            learned = cos[0, lc:] + self._intercepts
        prof = cos[:, :n_topics]
        best_row = prof.argmax(axis=0)
        passage = prof.max(axis=0)
        if self._per_topic:
            example = cos[:, n_topics : lc or None].max(axis=0).reshape(n_topics, self._per_topic).max(axis=1)
        else:
            example = np.zeros(n_topics, dtype=np.float32)
        found = self._phrases.find((title_terms, text_terms))
        if found:
            veto: list[str | None] = [None] * n_topics
            hits: list[list[str]] = [[] for _ in range(n_topics)]
            in_title, in_text, first = [0] * n_topics, [0] * n_topics, [1.0] * n_topics
            hit_at: dict[int, list[int]] = {}
            for si, at, ti, exclude, phrase in found:
                if exclude:
                    veto[ti] = veto[ti] or phrase.text
                    continue
                if si == 0:
                    in_title[ti] += 1
                    first[ti] = 0.0
                else:
                    in_text[ti] += 1
                    first[ti] = min(first[ti], at / max(n, 1))
                    hit_at.setdefault(ti, []).append(at)
                if phrase.text not in hits[ti]:
                    hits[ti].append(phrase.text)
            kw_title = np.array(in_title, dtype=np.float32)
            kw_text = np.array(in_text, dtype=np.float32)
            kw_first = np.array(first, dtype=np.float32)
            distinct = np.array([len(h) for h in hits], dtype=np.float32)
            noted = tuple(sorted({f[2] for f in found}))
        else:
            kw_title = kw_text = distinct = self._zeros
            kw_first = self._ones
            veto, hits = self._no_veto, self._no_hits  # shared, only read
            noted = ()
            hit_at = {}
        return _Scores(
            prof[0],
            passage,
            example,
            best_row,
            prof,
            kw_title,
            kw_text,
            distinct,
            veto,
            hits,
            starts,
            weights,
            gathered,
            uniq,
            kw_first,
            nt + n,
            noted,
            hit_at,
            learned,
            tuple(private),
        )

    def _log_odds(self, s: _Scores) -> np.ndarray:
        """The prior log-odds of relevance per topic (calibrate.py), before the analyst's labels."""
        return self._log_odds_of(
            s.doc, s.passage, s.example, s.learned, s.kw_title, s.kw_text, s.kw_first, s.n_terms, bool(s.noted)
        )

    def _log_odds_of(
        self,
        doc: np.ndarray,
        passage: np.ndarray,
        example: np.ndarray,
        learned: np.ndarray | None,
        kw_title: np.ndarray,
        kw_text: np.ndarray,
        kw_first: np.ndarray,
        n_terms: int | np.ndarray,
        any_phrase: bool,
    ) -> np.ndarray:
        """From the evidence arrays ([topics], or [items, topics] with n_terms [items, 1]): similarity above the
        topic's background medians, keyword phrases and the self-trained log-odds, combined by calibrate.log_odds."""
        med_doc, med_passage, med_example = self._med_rows
        near = np.maximum(passage - med_passage, example - med_example)
        return calibrate.log_odds(
            doc - med_doc, near, learned, self._trained, kw_title, kw_text, kw_first, n_terms, any_phrase
        )

    def _calibrate(self, sample: Sequence[tuple[list[str], np.ndarray]]) -> None:
        """Medians, self-training and thresholds from the background sample (the medians shrunk to a prior while
        the sample is small)."""
        t = self._n_topics
        n = len(sample)
        med = np.full((3, t), PRIOR_MEDIAN, dtype=np.float32)
        # Only the arrays the score needs are kept per item (keeping each item's evidence would cost ~60 MB).
        arr = np.empty((n, 6, t), dtype=np.float32)
        n_terms = np.empty((n, 1), dtype=np.float32)
        for i, (seq, _) in enumerate(sample):
            e = self._evidence((), seq)
            arr[i] = e.doc, e.passage, e.example, e.kw_title, e.kw_text, e.kw_first
            n_terms[i] = e.n_terms
        if n:
            med = np.median(arr[:, :3], axis=0)
        w = n / (n + PRIOR_WEIGHT)
        self._med = (w * med + (1 - w) * PRIOR_MEDIAN).astype(np.float32)
        self._med_rows = self._med[0], self._med[1], self._med[2]  # doc, passage, example
        z0 = self._log_odds_of(arr[:, 0], arr[:, 1], arr[:, 2], None, arr[:, 3], arr[:, 4], arr[:, 5], n_terms, True)
        if n >= SELF_TRAIN_MIN:
            p = calibrate.probability(z0)
            positive = p >= PSEUDO_POSITIVE
            if self._about.any():
                lead = (arr[:, 3] + arr[:, 4] > 0) & (arr[:, 5] * n_terms < ABOUT_LEAD_TERMS)
                positive[:, self._about] = (lead & (p >= ABOUT_MIN_PROBABILITY))[:, self._about]
            learned = self._self_train([ids for _, ids in sample], positive, p < PSEUDO_NEGATIVE)
            if learned is not None:
                z0 = self._log_odds_of(
                    arr[:, 0], arr[:, 1], arr[:, 2], learned, arr[:, 3], arr[:, 4], arr[:, 5], n_terms, True
                )
        # The sample's prior log-odds stay with the model: they set each topic's threshold, now and after labels.
        self._sample_z0 = np.asarray(z0, dtype=np.float32).reshape(n, t)
        self._set_thresholds()

    def _self_train(
        self, sample: Sequence[np.ndarray], positives: np.ndarray, negatives: np.ndarray
    ) -> np.ndarray | None:
        """Per topic, a logistic regression on the sample's TF-IDF vectors, labelled by the model itself.

        Unlabelled stream, labels from the prior probability (self-training): the learned weights spread the
        evidence to the words that come with a topic in this stream (for crude oil: "oil", "barrel", "opec",
        "refinery"...), so items about the topic without its keyword phrases score higher too, and items that name
        the topic among words its items do not use score lower. Returns the sample's learned log-odds
        ([items, topics]; None when no topic could be trained).
        """
        v = len(self._idf)
        indptr, indices, data = [0], [], []
        for ids in sample:
            uniq, counts = np.unique(ids, return_counts=True)
            weights = _sublinear(counts) * self._idf[uniq]
            norm = float(np.sqrt(weights @ weights)) or 1.0
            indices.append(uniq)
            data.append(weights / norm)
            indptr.append(indptr[-1] + len(uniq))
        x = sparse.csr_matrix(
            (np.concatenate(data or [np.zeros(0)]), np.concatenate(indices or [np.zeros(0, np.int64)]), indptr),
            shape=(len(sample), v),
        )
        kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        intercepts = np.zeros(self._n_topics, dtype=np.float32)
        for ti in range(self._n_topics):
            positive, negative = positives[:, ti], negatives[:, ti]
            if positive.sum() < SELF_TRAIN_MIN_POSITIVES or negative.sum() < SELF_TRAIN_MIN_POSITIVES:
                continue
            rows = positive | negative
            model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=200)
            model.fit(x[rows], positive[rows].astype(np.int64))
            w = model.coef_[0]
            top = np.argpartition(-np.abs(w), LEARNED_TERMS)[:LEARNED_TERMS] if len(w) > LEARNED_TERMS else np.arange(v)
            top = top[w[top] != 0]
            kept[ti] = (top, w[top])
            intercepts[ti] = model.intercept_[0]
        if not kept:
            return None
        # The kept weights become extra columns of the profile matrix: one gather and one product per item serve
        # profiles, examples and the learned models (a dense [V, topics] array would cost ~300 MB on 20,000 items).
        old_used = np.flatnonzero(self._row_of[:-1] >= 0)
        used = np.union1d(old_used, np.concatenate([top for top, _ in kept.values()]))
        row_of = np.full(v + 1, -1, dtype=np.int64)  # -1: the zero last row
        row_of[used] = np.arange(len(used))
        cols = self._matrix.shape[1]
        matrix = np.zeros((len(used) + 1, cols + self._n_topics), dtype=np.float32)
        matrix[row_of[old_used], :cols] = self._matrix[self._row_of[old_used]]
        for ti, (top, w) in kept.items():
            matrix[row_of[top], cols + ti] = w
        self._matrix, self._row_of, self._learned_col, self._intercepts = matrix, row_of, cols, intercepts
        self._trained = np.isin(np.arange(self._n_topics), list(kept))
        # The sample's log-odds under the kept weights, as classify computes them for an item.
        weights = sparse.csr_matrix(
            (np.concatenate([w for _, w in kept.values()]),
             (np.concatenate([top for top, _ in kept.values()]),
              np.concatenate([np.full(len(top), ti) for ti, (top, _) in kept.items()]))),
            shape=(v, self._n_topics),
        )
        return np.asarray((x @ weights).toarray() + intercepts, dtype=np.float32)

    # ------------------------------------------------------------------------------------------------ public API
    @property
    def topic_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self._specs)

    def with_labels(self, labelled: Sequence[tuple[Label, Item]]) -> TopicModel:
        """A model that learns from the analyst's labels: all of them (any earlier labels are replaced).

        This model stays usable (swap atomically). The background statistics, profiles and self-training are
        shared, not copied; the cost is one evidence pass per item not labelled before on this model (~1 ms) and
        a three-weight fit per labelled topic, so it can run after every label. A later label for the same item and
        topic replaces the earlier one; labels of topics the model does not know are ignored.
        """
        index = {spec.id: ti for ti, spec in enumerate(self._specs)}
        latest: dict[tuple[str, int], tuple[Label, Item]] = {}
        for label, item in labelled:
            ti = index.get(label.topic)
            if ti is not None:
                latest.pop((item.uid, ti), None)  # re-inserted: the last label wins and keeps its place in order
                latest[(item.uid, ti)] = (label, item)
        per_topic: dict[int, list[learn.Example]] = {}
        for (uid, ti), (label, item) in latest.items():
            z0, ids, vec = self._labelled_item(item)
            ids, vec = self._topic_view(ti, ids, vec)
            per_topic.setdefault(ti, []).append(learn.Example(uid, item.title, label.relevant, float(z0[ti]), ids, vec))
        newer = copy.copy(self)  # shares everything read-only; the label state below is the new model's own
        newer._labels = {ti: self._fit_labels(ti, examples) for ti, examples in per_topic.items()}
        newer._labelled = tuple(latest.values())
        posting: dict[int, list[int]] = {}
        owners: list[tuple[int, int]] = []
        for ti, fitted in newer._labels.items():
            for j, example in enumerate(fitted.examples):
                for term in _strongest(example.ids, example.vec):
                    posting.setdefault(term, []).append(len(owners))
                owners.append((ti, j))
        newer._label_posting = {term: tuple(ids) for term, ids in posting.items()}
        newer._label_owners = owners
        newer._match_cache = {}
        newer._set_correction()
        newer._set_thresholds()
        return newer

    def _fit_labels(self, ti: int, examples: Sequence[learn.Example]) -> learn.TopicLabels:
        """A topic's fitted correction; refitted only when its labels changed (the cache lives with the model's
        background statistics, as the labelled items' evidence does)."""
        key = tuple((e.uid, e.relevant, e.z0) for e in examples)
        cached = self._fit_cache.get(ti)
        if cached is not None and cached[0] == key:
            return cached[1]
        fitted = learn.fit_topic(examples)
        self._fit_cache[ti] = (key, fitted)
        return fitted

    @property
    def labels(self) -> tuple[tuple[Label, Item], ...]:
        """The labels this model learned from (the last one per item and topic)."""
        return self._labelled

    def _labelled_item(self, item: Item) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A labelled item's prior log-odds per topic and TF-IDF vector on this model (cached per model lineage)."""
        key = (item.uid, item.title, item.text)
        cached = self._example_cache.get(key)
        if cached is None:
            s = self._evidence(terms(strip_code(item.title)), terms(strip_code(item.text)))
            ids, vec = self._item_vector(s)
            cached = self._example_cache[key] = (self._log_odds(s), ids, vec)
        return cached

    def _item_vector(self, s: _Scores) -> tuple[np.ndarray, np.ndarray]:
        """The whole item's L2-normalised TF-IDF vector (sorted ids), from its evidence, for the label kernel.

        Terms outside the vocabulary (names, new words: often what tells two stories apart) get ids from a hash of
        the term above the vocabulary (CRC-32: stable across processes), so two items with the same unseen term
        share it; a collision of two unseen terms only adds a little similarity.
        """
        w = s.weights[0].astype(np.float64)
        norm = float(np.sqrt(w @ w)) or 1.0
        ids = s.uniq
        if s.unseen:
            ids = ids.copy()
            base = self._oov + 1
            unseen = ids > self._oov
            ids[unseen] = [base + _term_hash(s.unseen[i - base]) for i in ids[unseen].tolist()]
            order = np.argsort(ids, kind="stable")
            return ids[order], w[order] / norm
        return ids, w / norm

    def _heavy_terms(self, s: _Scores) -> list[int]:
        """The ids (as _item_vector gives them) of the item's LABEL_KEY_TERMS heaviest terms."""
        w = s.weights[0]
        top = np.argpartition(-w, LABEL_KEY_TERMS - 1)[:LABEL_KEY_TERMS] if len(w) > LABEL_KEY_TERMS else range(len(w))
        ids: list[int] = s.uniq[top].tolist()
        if s.unseen:
            base = self._oov + 1
            ids = [i if i < base else base + _term_hash(s.unseen[i - base]) for i in ids]
        return ids

    def _topic_view(self, ti: int, ids: np.ndarray, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An item vector without the terms that name topic `ti`, renormalised (what the kernel compares)."""
        names = self._name_ids[ti]
        if not len(names):
            return ids, vec
        keep = ~np.isin(ids, names)
        vec = vec[keep]
        norm = float(np.sqrt(vec @ vec)) or 1.0
        return ids[keep], vec / norm

    def _view_norm(self, ti: int, ids: np.ndarray, vec: np.ndarray) -> float:
        """The norm of a normalised item vector without the terms that name topic `ti`."""
        names = self._name_ids[ti]
        if not len(names) or not len(ids):
            return 1.0
        at = np.minimum(np.searchsorted(ids, names), len(ids) - 1)
        named = vec[at][ids[at] == names]
        return float(np.sqrt(max(1.0 - float(named @ named), 1e-12)))

    def _set_correction(self) -> None:
        """Per-topic coefficients of the corrected log-odds (learn.py)."""
        w = np.zeros((self._n_topics, 3))
        for ti, fitted in self._labels.items():
            w[ti] = fitted.w
        self._w = w
        self._w0 = w[:, 0].copy()

    def _set_thresholds(self) -> None:
        """Each topic's cut: its `threshold`, else the C_det-optimal one for its prevalence in the sample."""
        z0 = self._sample_z0.astype(np.float64)
        p = calibrate.probability(z0 + self._w0)
        derived = np.round(calibrate.cost_threshold(calibrate.prevalence(p)), 4)
        self._thresholds = [
            spec.threshold if spec.threshold is not None else float(derived[ti]) for ti, spec in enumerate(self._specs)
        ]
        self._explain_from = EXPLAIN_FROM * np.asarray(self._thresholds, dtype=np.float64)

    def _probabilities(self, s: _Scores, z0: np.ndarray) -> np.ndarray:
        """The probability of relevance per topic: the prior log-odds corrected by the topic's labels (MAP)."""
        return calibrate.probability(self._label_logits(s, z0))

    def _label_logits(self, s: _Scores, z0: np.ndarray) -> np.ndarray:
        """The corrected log-odds per topic ([topics]): z0 + the topic's shift, plus the kernel terms where the item
        is close to a labelled item of the topic (learn.py)."""
        z = z0 + self._w0
        near = self._label_candidates(s)
        if near:
            self._apply_kernel(s, z0, z, near)
        return z

    def _label_logits_batch(self, scores: Sequence[_Scores], z0: np.ndarray) -> np.ndarray:
        """The batch form of _label_logits: `scores` of B items, their prior log-odds z0 [B, topics] → [B, topics].

        The shift is one broadcast add; the kernel is applied only to the rows whose heavy terms meet a labelled
        item's (`_label_candidates`, most rows have none), so a batch costs one add plus the look-ups.
        """
        z = z0 + self._w0[None, :]
        if self._label_posting:
            for row, s in enumerate(scores):
                near = self._label_candidates(s)
                if near:
                    self._apply_kernel(s, z0[row], z[row], near)
        return z

    def _apply_kernel(self, s: _Scores, z0: np.ndarray, z: np.ndarray, near: Mapping[int, Sequence[int]]) -> None:
        """Write into z ([topics]) the kernel-corrected log-odds of the topics in `near` (topic → labelled items)."""
        ids, vec = self._item_vector(s)
        for ti, js in near.items():
            fitted = self._labels[ti]
            # The labelled vectors have no terms that name the topic, so the dot product with the whole item
            # leaves them out too; only the item's norm needs them taken away (_topic_view).
            norm = self._view_norm(ti, ids, vec)
            # Only the candidates can reach the kernel's cosine: the others count as 0 (fitted.kernel's rule).
            pos = neg = 0.0
            for j in js:
                example = fitted.examples[j]
                cos = learn.dot(ids, vec, example.ids, example.vec) / norm
                if example.relevant:
                    pos = max(pos, cos)
                else:
                    neg = max(neg, cos)
            kp, kn = learn.kernel_pair(pos, neg)
            if kp or kn:
                w0, w1, w2 = self._w[ti].tolist()
                z[ti] = z0[ti] + w0 + w1 * kp + w2 * kn

    def _label_candidates(self, s: _Scores) -> dict[int, list[int]]:
        """topic → its labelled items (indices) that share at least LABEL_KEY_SHARED of the item's heavy terms.

        Plain Python: a partial sort and a few dictionary operations on ~25 entries beat numpy calls, and
        Counter counts in C.
        """
        posting = self._label_posting
        if not posting or len(s.uniq) < LABEL_KEY_SHARED:
            return {}
        get = posting.get
        hits = [h for h in map(get, self._heavy_terms(s)) if h is not None]
        if len(hits) < LABEL_KEY_SHARED:
            return {}
        count = Counter(chain.from_iterable(hits))
        if max(count.values()) < LABEL_KEY_SHARED:  # most items: no labelled item shares enough
            return {}
        near: dict[int, list[int]] = {}
        owners = self._label_owners
        for g, c in count.items():
            if c >= LABEL_KEY_SHARED:
                ti, j = owners[g]
                near.setdefault(ti, []).append(j)
        return near

    def label_effects(self, title: str, text: str, lang: str | None = None, top: int = 3) -> dict[str, LabelEffect]:
        """For each topic with labels: the score without and with them, and the labelled items that weighed most."""
        if not self._labels:
            return {}
        s = self._evidence(terms(strip_code(title)), terms(strip_code(text)))
        z0 = self._log_odds(s)
        prior = calibrate.probability(z0)
        score = self._probabilities(s, z0)
        ids, vec = self._item_vector(s)
        out: dict[str, LabelEffect] = {}
        for ti, fitted in sorted(self._labels.items()):
            moved = fitted.weights(fitted.similarities(*self._topic_view(ti, ids, vec)))
            order = np.argsort(-np.abs(moved), kind="stable")[:top]
            out[self._specs[ti].id] = LabelEffect(
                relevant=fitted.n_relevant,
                not_relevant=len(fitted.examples) - fitted.n_relevant,
                prior_score=round(float(prior[ti]), 3),
                score=round(float(score[ti]), 3),
                weighed=tuple(
                    (fitted.examples[j].title, fitted.examples[j].relevant, round(float(moved[j]), 2))
                    for j in order.tolist()
                ),
            )
        return out

    @staticmethod
    def is_near_miss(match: Match) -> bool:
        """Just below the line: at least half the topic's threshold, not matched, not vetoed (offered for a label,
        never counted as an alert; the daemon and `monitor eval` offer NEAR_MISSES_PER_TOPIC_DAY a topic a day)."""
        return not match.matched and match.vetoed_by is None and match.score >= NEAR_MISS_FROM * match.threshold

    def classify(self, title: str, text: str, lang: str | None = None, *, explain_all: bool = False) -> list[Match]:
        """One Match per topic, in config order, with score, threshold and verdict (`lang` is not needed: each
        word's script decides its language; kept for callers that pass it).

        The explanation (top terms, best passage) is filled for every topic that was vetoed or scored at least half
        its threshold (so every match); keyword hits are always listed; `explain_all` fills every topic's
        explanation (`monitor explain`).
        Leaving it out elsewhere keeps classify fast: most topics are nowhere near most items.
        """
        return self.classify_text(analyse(title, text), explain_all=explain_all)

    def classify_text(self, analysed: AnalysedText, *, explain_all: bool = False) -> list[Match]:
        """classify() of a text analysed once (`analyse`) for both matching and story grouping (the pipeline's path)."""
        title_terms = analysed.title_scan.terms
        text = analysed.text
        scan = analysed.text_scan  # the text's terms, and their offsets later if a passage is shown
        text_terms = scan.terms
        s = self._evidence(title_terms, text_terms)
        squashed = self._probabilities(s, self._log_odds(s))
        milli = np.rint(squashed * 1000.0)
        keys = (milli.astype(np.int64) + self._key_base).tolist()  # topic and score to 3 decimals as one int
        if explain_all:
            wanted = list(range(self._n_topics))
        else:
            wanted = (squashed >= self._explain_from).nonzero()[0].tolist()
            wanted.extend(ti for ti in s.noted if s.veto[ti] is not None and ti not in wanted)
        # Most items explain no topic: the arrays below are made only for the topics that need them.
        rows = self._shown_rows(s, wanted) if wanted else {}
        top_terms = self._top_terms(s, wanted, rows) if wanted else {}
        # Far below the threshold with nothing to explain: a shared Match per topic and score to 3 decimals
        # (creating 50 frozen dataclasses per item would cost a quarter of the classify time).
        cache = self._match_cache
        out = list(map(cache.get, keys))
        special = set(top_terms).union(s.noted)
        missing = [ti for ti, match in enumerate(out) if match is None and ti not in special]
        if missing:
            coarse = (milli / 1000.0).tolist()
            for ti in missing:
                spec = self._specs[ti]
                out[ti] = match = Match(topic=spec.id, score=coarse[ti], threshold=self._thresholds[ti], matched=False)
                if len(cache) < MATCH_CACHE:
                    cache[keys[ti]] = match
        scores = np.round(squashed, 6).tolist() if special else []
        passages: dict[int, str] = {}
        for ti in sorted(special):
            spec, threshold, score, veto = self._specs[ti], self._thresholds[ti], scores[ti], s.veto[ti]
            if ti in top_terms:
                row = rows[ti]
                passage = passages.get(row)
                if passage is None:
                    passage = passages[row] = _passage(text, scan, s.window_starts, row)
                out[ti] = Match(
                    topic=spec.id,
                    score=score,
                    threshold=threshold,
                    matched=score >= threshold and veto is None,
                    terms=top_terms[ti],
                    passage=passage,
                    keyword_hits=tuple(s.hits[ti]),
                    vetoed_by=veto,
                )
            else:  # a keyword hit, far below the threshold
                out[ti] = Match(
                    topic=spec.id, score=score, threshold=threshold, matched=False, keyword_hits=tuple(s.hits[ti])
                )
        return [m for m in out if m is not None]

    @staticmethod
    def _shown_rows(s: _Scores, topics: Sequence[int]) -> dict[int, int]:
        """The row (0 = whole item, r = passage r) whose text explains each of `topics` to the analyst.

        The best-scoring row, except when the topic's keyword phrases sit in the text: then the best-scoring passage
        that holds one. Otherwise a topic that matched through one paragraph of a short multi-topic item, where the
        whole item happens to score a little higher than any passage, would show the item's opening, which says
        nothing about why it matched (a readout whose Libya paragraph comes last).
        """
        best = s.best_row.tolist()
        rows = {ti: best[ti] for ti in topics}
        if not s.hit_at or not s.window_starts:
            return rows
        starts = np.asarray(s.window_starts)
        for ti in topics:
            at = s.hit_at.get(ti)
            if not at:
                continue
            pos = np.asarray(at)
            holds = ((starts[:, None] <= pos[None, :]) & (pos[None, :] < starts[:, None] + WINDOW)).any(axis=1)
            candidates = np.flatnonzero(holds) + 1
            if rows[ti] not in candidates.tolist():
                rows[ti] = int(candidates[s.prof[candidates, ti].argmax()])
        return rows

    def _top_terms(self, s: _Scores, topics: Sequence[int], rows: Mapping[int, int]) -> dict[int, tuple[str, ...]]:
        """For `topics`: the terms with the largest weight × profile weight in the row shown (`_shown_rows`)."""
        u = len(s.uniq)
        if u == 0 or not topics:
            return {ti: () for ti in topics}
        weights, gathered, uniq, names = s.weights, s.gathered, s.uniq, self._terms_by_id
        k = min(TOP_TERMS, u)
        out: dict[int, tuple[str, ...]] = {}
        for ti in topics:  # one topic at a time: an item explains one or two, and 1-D calls are fewer and cheaper
            contrib = weights[rows[ti]] * gathered[:, ti]
            top = np.argpartition(-contrib, k - 1)[:k] if u > k else np.arange(u)
            vals = contrib[top]
            order = np.argsort(-vals, kind="stable")
            best = zip(uniq[top[order]].tolist(), vals[order].tolist(), strict=True)
            out[ti] = tuple(names.get(i, "?") for i, v in best if v > 0)
        return out

    # ------------------------------------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        """Write the background statistics (vocabulary, IDF, calibration sample) to `path` (.npz, atomic)."""
        self._bg.save(path)

    @classmethod
    def load(cls, path: Path, topics: Sequence[Topic], examples: Mapping[str, Sequence[tuple[str, str]]]) -> TopicModel:
        """Read saved background statistics and build profiles for `topics` (which may have changed) on them."""
        specs = [topic_spec(t, examples.get(t.id, ())) for t in topics]
        return cls(specs, Background.load(path))


@lru_cache(maxsize=4096)
def _windows(n: int) -> tuple[list[int], np.ndarray, np.ndarray]:
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


_SUBLINEAR = np.concatenate([[0.0], 1.0 + np.log(np.arange(1, 4096))]).astype(np.float32)


def _sublinear(counts: np.ndarray) -> np.ndarray:
    """1 + log(count) for count > 0, 0 for 0 (a table for the usual counts, computed above it)."""
    if counts.size and int(counts.max()) >= len(_SUBLINEAR):
        c = counts.astype(np.float32)
        return np.asarray((np.log(np.maximum(c, 1.0)) + (c > 0)).astype(np.float32))
    return np.asarray(_SUBLINEAR[counts])


def _term_hash(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


def _strongest(ids: np.ndarray, vec: np.ndarray) -> list[int]:
    """The ids of an item's LABEL_KEY_TERMS heaviest terms."""
    if len(ids) <= LABEL_KEY_TERMS:
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids[np.argpartition(-vec, LABEL_KEY_TERMS - 1)[:LABEL_KEY_TERMS]].tolist()]


def _passage(text: str, scan: TermScan, windows: Sequence[int], row: int) -> str:
    """The text of passage `row` (0 = the whole item: its opening), trimmed to PASSAGE_CHARS with "…" when cut.

    Only a passage other than row 0 asks `scan` where its terms start (it finds those offsets on demand).
    """
    begin, end = 0, len(text)
    if row > 0 and windows and scan.terms:
        first = windows[row - 1]
        begin = scan.start(first)
        if first + WINDOW < len(scan.terms):
            end = scan.start(first + WINDOW)
    snippet = " ".join(text[begin:end].split())
    return snippet if len(snippet) <= PASSAGE_CHARS else snippet[: PASSAGE_CHARS - 1].rstrip() + "…"
