"""The topic model: TF-IDF profiles, passage scoring, keyword phrases and per-topic calibration.

    build(topics, examples, background)   IDF from background + topic texts; profiles; calibration on background;
                                          self-training: per-topic logistic regression on the background sample,
                                          labelled by the model's own scores (no gold labels)
    classify(title, text)                 terms → doc + passage vectors → cosines to profiles and examples
                                          + keyword phrase hits + learned log-odds (boost only; both ways
                                          for topics with scope "about")
                                          → calibrated score → Match per topic
    refit(background)                     new IDF, calibration and self-training from the rolling window
    save(path) / load(path, ...)          background statistics persisted in data_dir (.npz, no pickle)

See docs/matching.md for the method, the score rule and the measured numbers.
"""

from __future__ import annotations

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
from ..models import Item, Label, Match
from .background import Background
from .profile import PhraseIndex, TopicSpec, profile_vectors, spec_documents, topic_spec
from .text import AnalysedText, TermScan, terms

WINDOW = 40  # content terms per passage, about 60-70 running words
STRIDE = 20
CALIBRATION_SAMPLE = 3000  # most recent background items kept (as term ids) to calibrate scores
PRIOR_WEIGHT = 200  # pseudo-items: how much the cold-start calibration prior counts against the sample
TOP_TERMS = 6
MATCH_CACHE = 50_000  # (topic, score to 3 decimals) → Match; 50 topics × ≤1,000 scores
EXPLAIN_FROM = 0.5  # terms and passage are computed for topics scoring at least this fraction of their threshold
PASSAGE_CHARS = 600
DEFAULT_THRESHOLD = 0.5
PRIOR_MEDIAN = 0.02  # cold start: a typical median cosine of a news item to an unrelated profile
# Evidence E = W_DOC·(doc cosine − its background median) + W_NEAR·(best passage or example cosine − median)
#            + W_KEYWORDS·(hit + log(1 + 2·title hits + text hits) + min(hits per 100 terms, 3) + hit·earliness);
# score = logistic(E − E_ZERO), so the default threshold 0.5 means E ≥ E_ZERO. See docs/matching.md.
W_DOC, W_NEAR, W_KEYWORDS = 9.0, 7.0, 0.75
DENSITY_CAP = 3.0
E_ZERO = 2.5
# Self-training (docs/matching.md): per topic, a logistic regression on the background sample's TF-IDF vectors,
# labelled by the model's own score (≥ PSEUDO_POSITIVE: positive, < PSEUDO_NEGATIVE: negative, between: left out);
# its log-odds, where positive, add W_LEARNED to E. Boost only: the pseudo-labels come from the keyword rule and
# similarity, so the learned model may find topic items the rule misses but is not trusted to veto.
PSEUDO_POSITIVE, PSEUDO_NEGATIVE = 0.8, 0.3
W_LEARNED = 1.0
# Topics with `scope: about` (docs/matching.md): the learned model is trained on cleaner positives, items with a
# keyword phrase among their first ABOUT_LEAD_TERMS terms (title or lead) that score at least ABOUT_MIN_SCORE, and
# its log-odds count both ways with weight W_ABOUT, so an item that only mentions the topic in passing scores lower.
ABOUT_LEAD_TERMS = 15
ABOUT_MIN_SCORE = 0.5
W_ABOUT = 2.0
SELF_TRAIN_MIN = 200  # background items needed before self-training (cold start: none)
SELF_TRAIN_MIN_POSITIVES = 3
LEARNED_TERMS = 2000  # per topic, the terms of largest |weight| kept (the rest of an L2 model's weights are small)
FEEDBACK_WEIGHT = 0.5  # weight of the feedback centroid in a profile (feedback examples: the next issues)
NEAR_MISSES_PER_TOPIC_DAY = 3  # near misses offered for labelling per topic and calendar day (daemon and eval)


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
        self._thresholds = [s.threshold if s.threshold is not None else DEFAULT_THRESHOLD for s in specs]
        self._match_cache: dict[int, Match] = {}  # topic·1001 + score in thousandths → Match; entries never change
        self._key_base = np.arange(self._n_topics, dtype=np.int64) * 1001
        self._explain_from = EXPLAIN_FROM * np.asarray(self._thresholds, dtype=np.float64)
        self._about = np.asarray([s.about for s in specs], dtype=bool)
        self._w_boost = np.where(self._about, W_ABOUT, W_LEARNED).astype(np.float32)
        self._w_penalty = np.where(self._about, W_ABOUT, 0.0).astype(np.float32) if self._about.any() else None
        self._build_matrix([[] for _ in specs])
        self._learned_col = 0  # first matrix column of the self-trained weights (0: none trained)
        self._intercepts = self._zeros
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
        return cls._fit(specs, [terms(text) for text in background])

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
        """A new model with IDF and calibration from `background` (the rolling window); this one stays usable."""
        return self._fit(self._specs, [terms(text) for text in background])

    def _build_matrix(self, feedback: Sequence[Sequence[np.ndarray]]) -> None:
        specs, vocab, idf = self._specs, self._vocab, self._idf
        profiles, examples, owners = [], [], []
        for ti, spec in enumerate(specs):
            profile, exs = profile_vectors(spec, vocab, idf, feedback[ti], FEEDBACK_WEIGHT)
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
        if unseen:
            # Distinct out-of-vocabulary terms must stay distinct for the vector norm: private ids above the
            # vocabulary, in order of first occurrence in title then text (the title's first copy comes first).
            seq = [*text_terms, *title_terms, *title_terms]
            private: dict[str, int] = {}
            at = (ids == oov).nonzero()[0].tolist()
            for i in sorted(at, key=lambda i: i - n - nt if n <= i < n + nt else i):
                ids[i] = oov + 1 + private.setdefault(seq[i], len(private))
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
        )

    def _raw(self, s: _Scores) -> np.ndarray:
        """Evidence E per topic (docs/matching.md): similarity above the topic's background median + keywords."""
        return self._combine(
            s.doc, s.passage, s.example, s.learned, s.kw_title, s.kw_text, s.kw_first, s.n_terms, bool(s.noted)
        )

    def _combine(
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
        """E from the evidence arrays ([topics], or [items, topics] with n_terms [items, 1])."""
        med_doc, med_passage, med_example = self._med_rows
        near = np.maximum(passage - med_passage, example - med_example)
        raw = W_DOC * (doc - med_doc) + W_NEAR * near
        if learned is not None:
            raw = raw + self._w_boost * np.maximum(learned, 0.0)
            if self._w_penalty is not None:  # only topics with scope "about" let the learned model lower E
                raw = raw + self._w_penalty * np.minimum(learned, 0.0)
        if not any_phrase:  # no phrase found: the keyword part is zero
            return np.asarray(raw, dtype=np.float32)
        found = kw_title + kw_text
        hit = (found > 0).astype(np.float32)
        density = np.minimum(found * (100.0 / np.maximum(n_terms, 1)), DENSITY_CAP)
        keywords = hit + np.log1p(2.0 * kw_title + kw_text) + density + hit * (1.0 - kw_first)
        return np.asarray(raw + W_KEYWORDS * keywords, dtype=np.float32)

    def _calibrate(self, sample: Sequence[tuple[list[str], np.ndarray]]) -> None:
        """Each topic's median similarities over the background sample (shrunk to a prior while it is small)."""
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
        if n >= SELF_TRAIN_MIN:
            raw = self._combine(arr[:, 0], arr[:, 1], arr[:, 2], None, arr[:, 3], arr[:, 4], arr[:, 5], n_terms, True)
            scores = _squash(raw)
            positive = scores >= PSEUDO_POSITIVE
            if self._about.any():
                lead = (arr[:, 3] + arr[:, 4] > 0) & (arr[:, 5] * n_terms < ABOUT_LEAD_TERMS)
                positive[:, self._about] = (lead & (scores >= ABOUT_MIN_SCORE))[:, self._about]
            self._self_train([ids for _, ids in sample], positive, scores < PSEUDO_NEGATIVE)

    def _self_train(self, sample: Sequence[np.ndarray], positives: np.ndarray, negatives: np.ndarray) -> None:
        """Per topic, a logistic regression on the sample's TF-IDF vectors, labelled by the model itself.

        Unlabelled stream, labels from the keyword rule and similarity (self-training): the learned weights spread
        the evidence to the words that come with a topic in this stream (for crude oil: "oil", "barrel", "opec",
        "refinery"...), so items about the topic without its keyword phrases score higher too.
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
            return
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

    # ------------------------------------------------------------------------------------------------ public API
    @property
    def topic_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self._specs)

    def with_labels(self, labelled: Sequence[tuple[Label, Item]]) -> TopicModel:
        """A model that also learns from the analyst's labels (all of them: earlier labels are replaced)."""
        return self  # the learning itself: issue 11

    @staticmethod
    def is_near_miss(match: Match) -> bool:
        """Just below the line: worth offering to the analyst for a label (never counted as an alert)."""
        return not match.matched and match.vetoed_by is None and match.score >= 0.8 * match.threshold

    def classify(self, title: str, text: str, lang: str | None = None, *, explain_all: bool = False) -> list[Match]:
        """One Match per topic, in config order, with score, threshold and verdict (`lang` is not needed: each
        word's script decides its language; kept for callers that pass it).

        The explanation (top terms, best passage) is filled for every topic that was vetoed or scored at least half
        its threshold (so every match); keyword hits are always listed; `explain_all` fills every topic's
        explanation (`monitor explain`).
        Leaving it out elsewhere keeps classify fast: most topics are nowhere near most items.
        """
        return self.classify_text(AnalysedText(title, text), explain_all=explain_all)

    def classify_text(self, analysed: AnalysedText, *, explain_all: bool = False) -> list[Match]:
        """classify() of a text analysed once for both matching and story grouping (the pipeline's per-item path)."""
        title_terms = analysed.title_scan.terms
        text = analysed.text
        scan = analysed.text_scan  # the text's terms, and their offsets later if a passage is shown
        text_terms = scan.terms
        s = self._evidence(title_terms, text_terms)
        squashed = _squash(self._raw(s))
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


def _squash(raw: np.ndarray) -> np.ndarray:
    """Evidence E → score in (0, 1): logistic(E − E_ZERO), so the default threshold 0.5 means E ≥ E_ZERO."""
    return np.asarray(1.0 / (1.0 + np.exp(-(raw.astype(np.float64) - E_ZERO))), dtype=np.float64)


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
