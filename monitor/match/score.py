"""A batch of items' raw evidence for every topic, computed as array operations over the whole batch.

    evidence(tables, [(title terms, text terms), ...])   → Evidence: [items, topics] arrays
        term ids of the batch      one dict look-up pass (C speed) over every item's text, title, title
        distinct terms per item    one np.unique over (item, term id) keys: each item's sorted ids, contiguous
        term counts                one bincount over every item's whole-item row and passage windows
        TF-IDF rows and cosines    per item: its dense rows × its terms' profile weights (see below)
        reductions                 best passage, best example, argmax rows: reduceat over the stacked cosine rows
        keyword phrases            one PhraseIndex pass over every title and text
    Evidence.item(i)           one item's evidence as ItemEvidence (the label correction and the explanations read it)

Why the product stays per item: the scores are printed to 6 decimals (`monitor eval` decisions) and must not change
with the batch a poll happens to form, nor from the one-item-at-a-time code they replace. A float32 sum of products
depends on its order: a sparse or stacked product over the batch (or BLAS with another shape: OpenBLAS picks a
small-matrix kernel under ~10^6 multiply-adds) changes the last bit of about half the cosines. So each item's product
is the same dense BLAS call on the same arrays as before; everything around it (about 40 numpy calls an item before,
most of the time) is done once per batch, where a per-element result does not depend on the batch.

Memory is linear in the item: an item whose dense rows × terms block would exceed DENSE_LIMIT entries (only
beyond ~50,000 characters of varied text) is computed in chunks of rows, its passage rows' weights recomputed when
one is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, chain, repeat

import numpy as np

from .passages import WINDOW, windows
from .profile import PhraseIndex

DENSE_LIMIT = 1 << 20  # entries of an item's dense rows × distinct terms block computed at once (4 MB of float32)


@dataclass(frozen=True)
class Tables:
    """What scoring reads of the model: vocabulary, IDF and the profile matrix (see TopicModel._build_matrix)."""

    vocab_get: Callable[[str, int], int]  # dict.get with a default
    oov: int  # id of the shared out-of-vocabulary slot (= vocabulary size)
    idf_ext: np.ndarray  # float32 [V + 1], the last slot for unseen terms
    matrix: np.ndarray  # float32 [used terms + 1, columns]: profiles, padded examples, self-trained weights
    row_of: np.ndarray  # int64 [V + 1]: term id → matrix row (the zero last row for terms no column uses)
    n_topics: int
    per_topic: int  # example columns per topic
    learned_col: int  # first self-trained column (0: none)
    intercepts: np.ndarray  # float32 [topics] of the self-trained models
    phrases: PhraseIndex


@dataclass(frozen=True)
class ItemEvidence:
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
    weights: np.ndarray  # [rows, distinct terms] TF-IDF weights of the item (row 0) and its passages (row 0 only
    #                      for an item computed in chunks: row() gives any row)
    gathered: np.ndarray  # [distinct terms, columns] profile and example weights of those terms
    uniq: np.ndarray  # the distinct term ids
    kw_first: np.ndarray  # where the first keyword phrase occurs: 0 = title or start of text .. 1 = end / none
    n_terms: int  # terms in title and text
    noted: tuple[int, ...] = ()  # topics with a keyword or exclude phrase found
    hit_at: Mapping[int, list[int]] | None = None  # topic → text positions of its keyword phrases
    learned: np.ndarray | None = None  # self-trained model's log-odds per topic (None: no model yet)
    unseen: tuple[str, ...] = ()  # out-of-vocabulary terms, by private id (uniq above the vocabulary)
    row: Callable[[int], np.ndarray] = field(default=lambda r: np.zeros(0, dtype=np.float32), compare=False)


@dataclass(frozen=True)
class Rows:
    """One item's dense part: its distinct terms, TF-IDF rows and where its cosine rows sit in the batch."""

    uniq: np.ndarray  # its distinct term ids, sorted (private ids above the vocabulary for unseen terms)
    inv: np.ndarray  # each position's index in uniq (positions laid out text, title, title)
    starts: list[int]  # first text term of each passage
    first_row: int  # its row 0 in the batch's stacked cosines
    weights: np.ndarray  # [rows, u], or [1, u] when computed in chunks
    gathered: np.ndarray  # [u, columns] the profile matrix's rows of its terms
    idf: np.ndarray  # [u] IDF of its terms

    def row_weights(self, r: int) -> np.ndarray:
        """TF-IDF weights of row r (0 = whole item, r = passage r)."""
        if r < len(self.weights):
            return np.asarray(self.weights[r])
        first = self.starts[r - 1]
        counts = np.bincount(self.inv[first : first + WINDOW], minlength=len(self.uniq))
        return np.asarray(sublinear(counts, True) * self.idf)  # as _chunked computes it


@dataclass(frozen=True)
class ItemTerms:
    """What the label look-up reads of an item (ItemEvidence has the same fields): its distinct term ids, their
    weights (row 0: the whole item) and its out-of-vocabulary terms."""

    uniq: np.ndarray
    weights: np.ndarray
    unseen: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """Raw evidence of a batch of items for every topic ([items, topics] arrays, in batch order)."""

    doc: np.ndarray
    passage: np.ndarray
    example: np.ndarray
    best_row: np.ndarray
    learned: np.ndarray | None  # None: no self-trained model
    has_terms: np.ndarray  # bool [items]: items with any term (an empty item has no learned log-odds)
    kw_title: np.ndarray
    kw_text: np.ndarray
    kw_first: np.ndarray
    kw_distinct: np.ndarray
    n_terms: np.ndarray  # int64 [items, 1]
    veto: list[list[str | None]]
    hits: list[list[list[str]]]
    noted: list[tuple[int, ...]]
    hit_at: list[dict[int, list[int]]]
    unseen: list[tuple[str, ...]]
    cos: np.ndarray  # float32 [rows of all items, columns]
    # Where each item's part of the batch arrays is (read only for the items explained or labelled)
    uniq: np.ndarray  # every item's distinct ids, item after item
    inv: np.ndarray  # each position's index among its item's distinct ids
    col0: np.ndarray  # item i's distinct ids are uniq[col0[i]:col0[i + 1]]
    pos0: np.ndarray  # its positions inv[pos0[i]:pos0[i + 1]]
    row0: list[int]  # its cosine rows cos[row0[i]:row0[i + 1]]
    starts: list[list[int]]
    weights: list[np.ndarray]
    gathered: list[np.ndarray]
    idf: np.ndarray  # IDF of uniq's terms

    def rows(self, i: int) -> Rows:
        """Item i's dense part."""
        c0, c1 = int(self.col0[i]), int(self.col0[i + 1])
        return Rows(
            self.uniq[c0:c1],
            self.inv[int(self.pos0[i]) : int(self.pos0[i + 1])],
            self.starts[i],
            self.row0[i],
            self.weights[i],
            self.gathered[i],
            self.idf[c0:c1],
        )

    def prof(self, i: int) -> np.ndarray:
        """[rows, topics] profile cosines of item i."""
        return self.cos[self.row0[i] : self.row0[i + 1], : self.doc.shape[1]]

    def terms(self, i: int) -> ItemTerms:
        """Item i's terms and weights alone: what label look-ups read, far cheaper to make than `item(i)`."""
        return ItemTerms(self.uniq[int(self.col0[i]) : int(self.col0[i + 1])], self.weights[i], self.unseen[i])

    def item(self, i: int) -> ItemEvidence:
        """Item i's evidence on its own."""
        r = self.rows(i)
        return ItemEvidence(
            self.doc[i],
            self.passage[i],
            self.example[i],
            self.best_row[i],
            self.prof(i),
            self.kw_title[i],
            self.kw_text[i],
            self.kw_distinct[i],
            self.veto[i],
            self.hits[i],
            r.starts,
            r.weights,
            r.gathered,
            r.uniq,
            self.kw_first[i],
            int(self.n_terms[i, 0]),
            self.noted[i],
            self.hit_at[i],
            self.learned[i] if self.learned is not None and self.has_terms[i] else None,
            self.unseen[i],
            r.row_weights,
        )


_SUBLINEAR = np.concatenate([[0.0], 1.0 + np.log(np.arange(1, 4096))]).astype(np.float32)


def sublinear(counts: np.ndarray, formula: bool | None = None) -> np.ndarray:
    """1 + log(count) for count > 0, 0 for 0: a table for the usual counts, computed above it (`formula`: always
    computed; None: when a count reaches the table's end)."""
    if formula is None:
        formula = bool(counts.size) and int(counts.max()) >= len(_SUBLINEAR)
    if formula:
        c = counts.astype(np.float32)
        return np.asarray((np.log(np.maximum(c, 1.0)) + (c > 0)).astype(np.float32))
    return np.asarray(_SUBLINEAR[counts])


def evidence(t: Tables, seqs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> Evidence:
    """The raw evidence of each (title terms, text terms) for every topic (module docstring)."""
    b, n_topics = len(seqs), t.n_topics
    nts = [len(title) for title, _ in seqs]
    ns = [len(text) for _, text in seqs]
    lens = [n + 2 * nt for n, nt in zip(ns, nts, strict=True)]
    pos0 = np.zeros(b + 1, dtype=np.int64)
    pos0[1:] = np.cumsum(lens)
    total = int(pos0[-1])
    # Each position's term id, laid out per item as text, title, title: the whole item's row counts every position
    # (so the title twice) and the passage windows index the text directly. dict.get with a default, at C speed.
    oov = t.oov
    ids = np.fromiter(
        map(t.vocab_get, chain.from_iterable(chain(x, tt, tt) for tt, x in seqs), repeat(oov)),
        dtype=np.int64,
        count=total,
    )
    unseen: list[tuple[str, ...]] = [()] * b
    at_oov = np.flatnonzero(ids == oov) if total else ids
    most_private = 0
    if len(at_oov):
        # Distinct out-of-vocabulary terms must stay distinct for the vector norm: private ids above the vocabulary,
        # per item, in order of first occurrence in title then text (the title's first copy comes first).
        owner = np.searchsorted(pos0, at_oov, side="right") - 1
        cut = np.flatnonzero(np.diff(owner)) + 1
        for group in np.split(at_oov, cut):
            i = int(owner[np.searchsorted(at_oov, group[0])])
            title, text = seqs[i]
            n, nt, base = ns[i], nts[i], int(pos0[i])
            seq = [*text, *title, *title]
            private: dict[str, int] = {}
            for j in sorted((g - base for g in group.tolist()), key=lambda j: j - n - nt if n <= j < n + nt else j):
                ids[base + j] = oov + 1 + private.setdefault(seq[j], len(private))
            unseen[i] = tuple(private)
            most_private = max(most_private, len(private))
    # Each item's distinct ids, sorted, as one contiguous run of the batch's distinct (item, id) keys.
    span = oov + 2 + most_private
    item_of = np.repeat(np.arange(b, dtype=np.int64), lens)
    keys, inv = np.unique(item_of * span + ids, return_inverse=True) if b > 1 else np.unique(ids, return_inverse=True)
    col_item = keys // span if b > 1 else np.zeros(len(keys), dtype=np.int64)
    uniq_all = keys - col_item * span
    col0 = np.searchsorted(col_item, np.arange(b + 1))
    inv = inv - col0[item_of]  # each position's index among its own item's distinct ids
    clipped = np.minimum(uniq_all, oov)  # private out-of-vocabulary ids → the shared OOV slot
    idf_cols = t.idf_ext[clipped]
    matrix_rows = t.row_of[clipped]

    # Count rows: row 0 of an item counts all its positions, row r its passage window r. One bincount for every
    # item computed at once (the few long items whose block would pass DENSE_LIMIT are counted in chunks below).
    wins = [windows(n) for n in ns]
    us = np.diff(col0).tolist()
    n_rows = [len(w[0]) + 1 for w in wins]
    dense = [r * u <= DENSE_LIMIT for r, u in zip(n_rows, us, strict=True)]
    row0 = [0, *accumulate(n_rows)]
    flat0 = [0, *accumulate(r * u if d else 0 for r, u, d in zip(n_rows, us, dense, strict=True))]
    at_pos, at_row = [], []
    for i in range(b):
        _, pos, rows = wins[i]
        if len(pos) and dense[i]:
            at_pos.append(pos + int(pos0[i]))
            at_row.append(rows * us[i] + flat0[i])
    flat_of = np.asarray(flat0[:-1], dtype=np.int64)[item_of]
    whole = inv + flat_of if all(dense) else (inv + flat_of)[np.repeat(dense, lens)]
    keys = np.concatenate((whole, np.concatenate(at_row) + inv[np.concatenate(at_pos)])) if at_pos else whole
    counts = np.bincount(keys, minlength=flat0[-1])
    # sublinear tf by table look-up (a count is at most twice the item's term count: the title counts twice);
    # an item long enough for the table to end gets it computed, for all its counts
    formula = [2 * (nt + n) >= len(_SUBLINEAR) for n, nt in zip(ns, nts, strict=True)]
    tf = _SUBLINEAR[np.minimum(counts, len(_SUBLINEAR) - 1) if any(formula) else counts]

    # Per item, its dense rows × its terms' profile weights: the same BLAS call on the same arrays as on its own
    # (module docstring); the squared norms and the division are elementwise, done for the whole batch after.
    matrix = t.matrix
    cos = np.zeros((row0[-1], matrix.shape[1]), dtype=np.float32)
    squares = np.zeros(row0[-1], dtype=np.float32)
    weights_of: list[np.ndarray] = []
    gathered_of: list[np.ndarray] = []
    for i in range(b):
        u, c0, r0, r1 = us[i], int(col0[i]), row0[i], row0[i + 1]
        gathered = matrix[matrix_rows[c0 : c0 + u]]
        gathered_of.append(gathered)
        if not u:  # no term: every cosine 0
            weights_of.append(np.zeros((1, 0), dtype=np.float32))
        elif dense[i]:
            f0, f1 = flat0[i], flat0[i] + (r1 - r0) * u
            tfi = sublinear(counts[f0:f1].reshape(r1 - r0, u)) if formula[i] else tf[f0:f1].reshape(r1 - r0, u)
            weights = tfi * idf_cols[c0 : c0 + u]
            weights_of.append(weights)
            np.einsum("ij,ij->i", weights, weights, out=squares[r0:r1])
            np.matmul(weights, gathered, out=cos[r0:r1])
        else:
            local = inv[int(pos0[i]) : int(pos0[i + 1])]
            weights_of.append(_chunked(cos[r0:r1], local, wins[i], u, idf_cols[c0 : c0 + u], gathered))
            squares[r0:r1] = 1.0  # its rows are normalised already
    cos /= np.maximum(np.sqrt(squares), 1e-12)[:, None]

    # Per item and topic: the whole item's cosine, the best row and its cosine, the best example: reduced over each
    # item's run of rows in the stacked cosines (max and min are exact: the same as over the item alone).
    first_rows = np.asarray(row0[:-1], dtype=np.int64)
    prof = cos[:, :n_topics]
    lc = t.learned_col
    if b == 1:  # a batch of one (classify_text): the same reductions without the segment bookkeeping
        passage = prof.max(axis=0)[None]
        best_row = prof.argmax(axis=0)[None]
        best_col = cos[:, n_topics : lc or None].max(axis=0)[None] if t.per_topic else None
    else:
        passage = np.maximum.reduceat(prof, first_rows, axis=0)
        owner_row = np.repeat(np.arange(b), n_rows)
        local_row = np.arange(len(cos)) - first_rows[owner_row]
        marked = np.where(prof == passage[owner_row], local_row[:, None], len(cos))  # first best row per item
        best_row = np.minimum.reduceat(marked, first_rows, axis=0)
        best_col = np.maximum.reduceat(cos[:, n_topics : lc or None], first_rows, axis=0) if t.per_topic else None
    if best_col is not None:
        example = best_col.reshape(b, n_topics, t.per_topic).max(axis=2)
    else:
        example = np.zeros((b, n_topics), dtype=np.float32)
    learned = cos[first_rows, lc:] + t.intercepts if lc else None
    doc = cos[first_rows, :n_topics]

    kw = _phrases(t.phrases, seqs, ns, n_topics)
    n_terms = np.asarray([[nt + n] for n, nt in zip(ns, nts, strict=True)], dtype=np.int64).reshape(b, 1)
    return Evidence(
        doc,
        passage,
        example,
        best_row,
        learned,
        np.asarray([x > 0 for x in lens], dtype=bool),
        *kw[:4],
        n_terms,
        *kw[4:],
        unseen,
        cos,
        uniq_all,
        inv,
        col0,
        pos0,
        row0,
        [w[0] for w in wins],
        weights_of,
        gathered_of,
        idf_cols,
    )


def _chunked(
    out: np.ndarray,
    local: np.ndarray,
    win: tuple[list[int], np.ndarray, np.ndarray],
    u: int,
    idf: np.ndarray,
    gathered: np.ndarray,
) -> np.ndarray:
    """The cosine rows of a long item into `out`, a chunk of rows at a time (memory linear in the item); returns the
    whole item's weights row ([1, u])."""
    starts, pos, _ = win
    step = max(2, DENSE_LIMIT // u)  # at least two rows: BLAS computes one row by another routine
    first_weights = np.zeros((1, u), dtype=np.float32)
    n_rows = len(starts) + 1
    width = len(pos) // max(len(starts), 1)
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        if r1 - r0 == 1 and r0 > 0:
            r0 -= 1  # the last chunk would be one row: take one row of the previous chunk again
        keys = []
        if r0 == 0:
            keys.append(local)
        p0, p1 = max(r0 - 1, 0) * width, (r1 - 1) * width
        rows = np.repeat(np.arange(max(r0, 1), r1) - r0, width)
        keys.append(rows * u + local[pos[p0:p1]])
        counts = np.bincount(np.concatenate(keys), minlength=(r1 - r0) * u).reshape(r1 - r0, u)
        weights = sublinear(counts, True) * idf  # computed in every chunk alike
        norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", weights, weights)), 1e-12)
        out[r0:r1] = (weights @ gathered) / norms[:, None]
        if r0 == 0:
            first_weights = weights[:1].copy()
    return first_weights


@lru_cache(maxsize=64)
def _nothing_found(n_topics: int) -> tuple[list[str | None], list[list[str]]]:
    """The vetoes and hits of an item without any phrase: shared by all such items, only read."""
    return [None] * n_topics, [[] for _ in range(n_topics)]


def _phrases(
    index: PhraseIndex, seqs: Sequence[tuple[Sequence[str], Sequence[str]]], ns: Sequence[int], n_topics: int
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    list[list[str | None]],
    list[list[list[str]]],
    list[tuple[int, ...]],
    list[dict[int, list[int]]],
]:
    """Keyword and exclude phrases of every item (title and text): occurrences in the title and in the text, where
    the first one is (0 = title or start .. 1 = end / none), distinct phrases, vetoes, and their text positions."""
    b = len(seqs)
    kw_title = np.zeros((b, n_topics), dtype=np.float32)
    kw_text = np.zeros((b, n_topics), dtype=np.float32)
    kw_first = np.ones((b, n_topics), dtype=np.float32)
    distinct = np.zeros((b, n_topics), dtype=np.float32)
    no_veto, no_hits = _nothing_found(n_topics)
    vetoes: list[list[str | None]] = [no_veto] * b
    hits_of: list[list[list[str]]] = [no_hits] * b
    noted: list[tuple[int, ...]] = [()] * b
    hit_at_of: list[dict[int, list[int]]] = [{} for _ in range(b)]
    found = index.find([s for pair in seqs for s in pair])
    by_item: dict[int, list[tuple[int, int, int, bool, str]]] = {}
    for si, at, ti, exclude, phrase in found:
        by_item.setdefault(si // 2, []).append((si % 2, at, ti, exclude, phrase.text))
    for i, item_found in by_item.items():
        n = ns[i]
        veto: list[str | None] = [None] * n_topics
        hits: list[list[str]] = [[] for _ in range(n_topics)]
        in_title, in_text, first = [0] * n_topics, [0] * n_topics, [1.0] * n_topics
        hit_at = hit_at_of[i]
        for part, at, ti, exclude, text in item_found:
            if exclude:
                veto[ti] = veto[ti] or text
                continue
            if part == 0:
                in_title[ti] += 1
                first[ti] = 0.0
            else:
                in_text[ti] += 1
                first[ti] = min(first[ti], at / max(n, 1))
                hit_at.setdefault(ti, []).append(at)
            if text not in hits[ti]:
                hits[ti].append(text)
        kw_title[i] = in_title
        kw_text[i] = in_text
        kw_first[i] = first
        distinct[i] = [len(h) for h in hits]
        vetoes[i], hits_of[i] = veto, hits
        noted[i] = tuple(sorted({f[2] for f in item_found}))
    return kw_title, kw_text, kw_first, distinct, vetoes, hits_of, noted, hit_at_of
