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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..config import Topic
from ..errors import ModelError
from ..models import Item, Label, LabelEffect, Match
from . import calibrate, learn, nearlabels, passages, score
from .background import Background
from .passages import PASSAGE_CHARS, WINDOW
from .passages import passage as _passage
from .profile import PhraseIndex, TopicSpec, profile_vectors, spec_documents, topic_spec
from .score import ItemEvidence as _Scores
from .score import sublinear as _sublinear
from .text import AnalysedText, adjectives_of, analyse, readable, terms

Fit = Callable[[Sequence[TopicSpec], Sequence[str]], "TopicModel"]  # TopicModel.fit, or worker.fit
_Terms = _Scores | score.ItemTerms  # what the label look-up reads: a whole item's evidence, or its terms alone

__all__ = ["NEAR_MISSES_PER_TOPIC_DAY", "PASSAGE_CHARS", "WINDOW", "TopicModel", "_passage"]

CALIBRATION_SAMPLE = 3000  # most recent background items kept (as term ids) to calibrate scores
CALIBRATION_BATCH = 64  # sample items scored at once
PRIOR_WEIGHT = 200  # pseudo-items: how much the cold-start calibration prior counts against the sample
MATCH_CACHE = 50_000  # (topic, score to 3 decimals) → Match; 50 topics × ≤1,000 scores
EXPLAIN_FROM = 0.5  # terms and passage are computed for topics scoring at least this fraction of their threshold
NEAR_MISS_FROM = 0.5  # an item scoring at least half its topic's threshold is "just below the line"
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
        self._label_index = nearlabels.LabelIndex.empty(self._name_ids)  # the labelled items, for a batch's look-up
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
        return cls._fit(specs, [terms(readable(text)) for text in background])

    @classmethod
    def _fit(cls, specs: Sequence[TopicSpec], bg_terms: Sequence[list[str]]) -> TopicModel:
        topic_docs = [d for s in specs for d in spec_documents(s)]
        sample = list(bg_terms[-CALIBRATION_SAMPLE:])
        try:
            background = Background.fit([*bg_terms, *topic_docs], sample)
        except ValueError as exc:
            raise ModelError(f"while fitting the background IDF: {exc}") from exc
        return cls(specs, background)

    @classmethod
    def fit(cls, specs: Sequence[TopicSpec], background: Sequence[str]) -> TopicModel:
        """A model of `specs` with IDF and calibration from the `background` texts, without labels (refit's fit)."""
        return cls._fit(specs, [terms(readable(text)) for text in background])

    def refit(self, background: Sequence[str], *, fit: Fit | None = None) -> TopicModel:
        """A new model with IDF and calibration from `background` (the rolling window) and the same labels (refitted
        on the new statistics); this one stays usable. `fit` fits it instead of TopicModel.fit (worker.fit: in a
        worker process)."""
        newer = (fit or self.fit)(self._specs, background)
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
    def _tables(self) -> score.Tables:
        """What scoring reads of this model (the self-training may have widened the matrix since the build)."""
        return score.Tables(
            self._vocab_get,
            self._oov,
            self._idf_ext,
            self._matrix,
            self._row_of,
            self._n_topics,
            self._per_topic,
            self._learned_col,
            self._intercepts,
            self._phrases,
        )

    def _evidence(self, title_terms: Sequence[str], text_terms: Sequence[str]) -> _Scores:
        """One item's raw evidence (a batch of one: score.evidence)."""
        return score.evidence(self._tables(), [(title_terms, text_terms)]).item(0)

    def _log_odds_batch(self, ev: score.Evidence) -> np.ndarray:
        """The prior log-odds [items, topics], as _log_odds gives them item by item.

        The keyword part is added for every item when one has a phrase (for an item without one it adds exact
        zeros), and an item without any term has no self-trained log-odds, as on its own.
        """
        trained = self._trained if ev.has_terms.all() else self._trained & ev.has_terms[:, None]
        med_doc, med_passage, med_example = self._med_rows
        near = np.maximum(ev.passage - med_passage, ev.example - med_example)
        return calibrate.log_odds(
            ev.doc - med_doc, near, ev.learned, trained, ev.kw_title, ev.kw_text, ev.kw_first, ev.n_terms, any(ev.noted)
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
        tables = self._tables()
        for i in range(0, n, CALIBRATION_BATCH):  # in batches: the same evidence as item by item, faster
            e = score.evidence(tables, [((), seq) for seq, _ in sample[i : i + CALIBRATION_BATCH]])
            evidence = (e.doc, e.passage, e.example, e.kw_title, e.kw_text, e.kw_first)
            arr[i : i + CALIBRATION_BATCH] = np.stack(evidence, 1)
            n_terms[i : i + CALIBRATION_BATCH] = e.n_terms
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
        # Heavy extras, needed only while fitting, which the daemon does in a worker process (match/worker.py): it
        # never imports them (about 70 MB of RSS, issue 16).
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression

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
            (
                np.concatenate([w for _, w in kept.values()]),
                (
                    np.concatenate([top for top, _ in kept.values()]),
                    np.concatenate([np.full(len(top), ti) for ti, (top, _) in kept.items()]),
                ),
            ),
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
        newer._label_index = nearlabels.LabelIndex.of(newer._labels, self._name_ids)
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
            s = self._evidence(terms(readable(item.title)), terms(readable(item.text)))
            ids, vec = self._item_vector(s)
            cached = self._example_cache[key] = (self._log_odds(s), ids, vec)
        return cached

    def _item_vector(self, s: _Terms) -> tuple[np.ndarray, np.ndarray]:
        """The whole item's L2-normalised TF-IDF vector (sorted ids), for the label kernel (nearlabels.py)."""
        return nearlabels.item_vector(s, self._oov)

    def _topic_view(self, ti: int, ids: np.ndarray, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An item vector without the terms that name topic `ti`, renormalised (what the kernel compares)."""
        names = self._name_ids[ti]
        if not len(names):
            return ids, vec
        keep = ~np.isin(ids, names)
        vec = vec[keep]
        norm = float(np.sqrt(vec @ vec)) or 1.0
        return ids[keep], vec / norm

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
        """The corrected log-odds per topic ([topics]) of one item: `_label_logits_batch` of a batch of one."""
        return np.asarray(self._label_logits_batch([s], z0[None, :])[0])

    def _label_logits_batch(self, scores: Sequence[_Terms], z0: np.ndarray) -> np.ndarray:
        """The corrected log-odds [B, topics] of B items from their prior log-odds z0 [B, topics]: z0 + each topic's
        shift, plus the kernel terms where an item is close to a labelled item of the topic (learn.py); the
        look-up and the kernel run for the batch at once (nearlabels.py)."""
        return self._label_index.logits(nearlabels.Batch.of(scores), z0, self._w, self._oov)

    def label_effects(self, title: str, text: str, lang: str | None = None, top: int = 3) -> dict[str, LabelEffect]:
        """For each topic with labels: the score without and with them, and the labelled items that weighed most."""
        if not self._labels:
            return {}
        s = self._evidence(terms(readable(title)), terms(readable(text)))
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
        return self.classify_texts([analyse(title, text)], explain_all=explain_all)[0]

    def classify_text(self, analysed: AnalysedText, *, explain_all: bool = False) -> list[Match]:
        """classify() of a text analysed once (`analyse`) for both matching and story grouping: a batch of one."""
        return self.classify_texts([analysed], explain_all=explain_all)[0]

    def classify_texts(self, analysed: Sequence[AnalysedText], *, explain_all: bool = False) -> list[list[Match]]:
        """classify_text of each item, computed for the batch at once (a poll's new items): the same matches as one
        at a time, whatever the batch (score.py says how)."""
        if not analysed:
            return []
        ev = score.evidence(self._tables(), [(a.title_scan.terms, a.text_scan.terms) for a in analysed])
        probs = self._label_probabilities(ev, self._log_odds_batch(ev))
        milli = np.rint(probs * 1000.0)
        keys = (milli.astype(np.int64) + self._key_base).tolist()  # topic and score to 3 decimals as one int
        n_topics = self._n_topics
        if explain_all:
            wanted_of = [list(range(n_topics)) for _ in analysed]
        else:
            wanted_of = [[] for _ in analysed]
            at_item, at_topic = (probs >= self._explain_from).nonzero()
            for i, ti in zip(at_item.tolist(), at_topic.tolist(), strict=True):
                wanted_of[i].append(ti)
        rounded: list[list[float]] | None = None  # scores to 6 decimals, made once the first item needs them
        out = []
        for i, item in enumerate(analysed):
            wanted, noted, veto = wanted_of[i], ev.noted[i], ev.veto[i]
            if not explain_all:
                wanted.extend(ti for ti in noted if veto[ti] is not None and ti not in wanted)
            if rounded is None and (wanted or noted):
                rounded = np.round(probs, 6).tolist()
            out.append(self._matches(ev, i, item, keys[i], milli[i], wanted, rounded[i] if rounded else []))
        return out

    def _label_probabilities(self, ev: score.Evidence, z0: np.ndarray) -> np.ndarray:
        """The probability of relevance [items, topics] from the prior log-odds: the seam where the analyst's labels
        correct a batch (`_label_logits_batch`; without labelled near-duplicates to look up, one array operation)."""
        if not self._labels:
            return calibrate.probability(z0 + self._w0)
        # The batch's terms as the look-up reads them, straight from the evidence arrays (its whole-item weights are
        # row 0 of each item's weights)
        weights = ev.weights[0][0] if len(z0) == 1 else np.concatenate([x[0] for x in ev.weights])
        batch = nearlabels.Batch(ev.uniq, weights, ev.col0, ev.unseen)
        return calibrate.probability(self._label_index.logits(batch, z0, self._w, self._oov))

    def _matches(
        self,
        ev: score.Evidence,
        i: int,
        item: AnalysedText,
        keys: list[int],
        milli: np.ndarray,
        wanted: list[int],
        scores: list[float],
    ) -> list[Match]:
        """Item i's Match per topic: explained for `wanted`, with keyword hits for the topics that have one."""
        noted, veto, hits = ev.noted[i], ev.veto[i], ev.hits[i]
        rows: dict[int, int] = {}
        top: dict[int, tuple[str, ...]] = {}
        if wanted:  # most items explain no topic: the arrays below are read only for the topics that need them
            r = ev.rows(i)
            rows = passages.shown_rows(ev.best_row[i].tolist(), ev.prof(i), r.starts, ev.hit_at[i], wanted)
            top = passages.top_terms(r.row_weights, r.gathered, r.uniq, self._terms_by_id, rows)
        # Far below the threshold with nothing to explain: a shared Match per topic and score to 3 decimals
        # (creating 50 frozen dataclasses per item would cost a quarter of the classify time).
        cache = self._match_cache
        out = list(map(cache.get, keys))
        special = set(top).union(noted)
        missing = [ti for ti, match in enumerate(out) if match is None and ti not in special]
        if missing:
            coarse = (milli / 1000.0).tolist()
            for ti in missing:
                spec = self._specs[ti]
                out[ti] = match = Match(topic=spec.id, score=coarse[ti], threshold=self._thresholds[ti], matched=False)
                if len(cache) < MATCH_CACHE:
                    cache[keys[ti]] = match
        shown: dict[int, str] = {}
        for ti in sorted(special):
            spec, threshold, score_, vetoed = self._specs[ti], self._thresholds[ti], scores[ti], veto[ti]
            if ti in top:
                row = rows[ti]
                text = shown.get(row)
                if text is None:
                    text = shown[row] = passages.passage(item.text, item.text_scan, ev.starts[i], row)
                out[ti] = Match(
                    topic=spec.id,
                    score=score_,
                    threshold=threshold,
                    matched=score_ >= threshold and vetoed is None,
                    terms=top[ti],
                    passage=text,
                    keyword_hits=tuple(hits[ti]),
                    vetoed_by=vetoed,
                )
            else:  # a keyword hit, far below the threshold
                out[ti] = Match(
                    topic=spec.id, score=score_, threshold=threshold, matched=False, keyword_hits=tuple(hits[ti])
                )
        return [m for m in out if m is not None]

    # ------------------------------------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        """Write the background statistics (vocabulary, IDF, calibration sample) to `path` (.npz, atomic)."""
        self._bg.save(path)

    @classmethod
    def load(cls, path: Path, topics: Sequence[Topic], examples: Mapping[str, Sequence[tuple[str, str]]]) -> TopicModel:
        """Read saved background statistics and build profiles for `topics` (which may have changed) on them."""
        specs = [topic_spec(t, examples.get(t.id, ())) for t in topics]
        return cls(specs, Background.load(path))
