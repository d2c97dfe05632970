"""Which items of a batch are near-duplicates of a labelled item, and the kernel-corrected log-odds (learn.py).

    LabelIndex.of(labels, name_ids)   every topic's fitted labels → one index of their heavy terms and vectors
    index.logits(batch, z0, w, oov)   a batch's corrected log-odds [items, topics], in array operations
                                      (a batch of one: bit masks and its few pairs, the same bits)

An item is compared with a labelled item only when at least KEY_SHARED of its KEY_TERMS heaviest terms are among the
labelled item's: a near-duplicate (cosine ≥ 0.5) shares most of them, and the check is one sorted look-up per batch
instead of a product with every labelled item (50 topics with 50 labels each would otherwise cost several times
the rest of classify). The pairs that pass are then computed together, for the whole batch, as one sparse product:
a loop over rows, topics and labelled items cost twice as much where items are close to many labelled ones (wire
copy labelled for several topics; docs/matching.md has the figures). For one item the array form's fixed cost
(some tens of numpy calls) was most of the step, so a batch of one counts its candidates on bit masks instead.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import learn

KEY_TERMS, KEY_SHARED = 8, 3
PAIRS_AT_ONCE = 4  # from this many pairs, one item's dot products are one look-up (fewer numpy calls than a loop)
BATCH_HEAVY = 4  # from this many items, heavy_terms finds the cut for the batch at once (numpy calls: fewer)
_NO_UNSEEN = 1 << 62  # as `oov` for labelled vectors, whose unseen terms are hashed already
_SHIFT = 34  # a batch row's ids are keyed row << _SHIFT | id: ids stay below 2^33 (vocabulary + CRC-32 of a term)


class Terms(Protocol):
    """What the look-up reads of an item: its distinct term ids, their weights (row 0: the whole item) and its
    out-of-vocabulary terms (score.ItemTerms and score.ItemEvidence)."""

    @property
    def uniq(self) -> np.ndarray: ...
    @property
    def weights(self) -> np.ndarray: ...
    @property
    def unseen(self) -> tuple[str, ...]: ...


def term_hash(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


@dataclass(frozen=True)
class Batch:
    """What the look-up reads of a batch: every item's distinct term ids, one item after the other (sorted within
    each; out-of-vocabulary terms by private id above the vocabulary, as score.py gives them), their whole-item
    weights, where each item's run starts, and each item's unseen terms (by private id)."""

    uniq: np.ndarray
    weights: np.ndarray  # float32, aligned with uniq
    col0: np.ndarray  # item i's terms are uniq[col0[i]:col0[i + 1]]
    unseen: Sequence[tuple[str, ...]]

    @classmethod
    def of(cls, items: Sequence[Terms]) -> Batch:
        sizes = [len(s.uniq) for s in items]
        return cls(
            np.concatenate([np.zeros(0, np.int64), *(s.uniq for s in items)]),
            np.concatenate([np.zeros(0, np.float32), *(s.weights[0] for s in items)]),
            np.cumsum([0, *sizes], dtype=np.int64),
            [s.unseen for s in items],
        )

    def __len__(self) -> int:
        return len(self.col0) - 1


def item_vector(s: Terms, oov: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole item's L2-normalised TF-IDF vector (sorted ids), for the label kernel.

    Terms outside the vocabulary (names, new words: often what tells two stories apart) get ids from a hash of the
    term above the vocabulary (CRC-32: stable across processes), so two items with the same unseen term share it;
    a collision of two unseen terms only adds a little similarity.
    """
    return _vector(s.uniq, s.weights[0], s.unseen, oov)


def _vector(ids: np.ndarray, weights: np.ndarray, unseen: Sequence[str], oov: int) -> tuple[np.ndarray, np.ndarray]:
    w = weights.astype(np.float64)
    norm = math.sqrt(w @ w) or 1.0  # as np.sqrt: IEEE square roots are exact-rounded
    if unseen:
        ids = ids.copy()
        base = oov + 1
        at = ids > oov
        ids[at] = [base + term_hash(unseen[i - base]) for i in ids[at].tolist()]
        order = np.argsort(ids, kind="stable")
        return ids[order], w[order] / norm
    return ids, w / norm


def heavy_terms(batch: Batch, oov: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, id) of every item's KEY_TERMS heaviest terms, ids as item_vector gives them; items with fewer than
    KEY_SHARED distinct terms have none.

    The terms at or above an item's KEY_TERMS-th largest weight are its heavy terms unless more of them tie at that
    weight than there are places (~8 % of items: rare terms of the same count share an IDF); only those items are
    partitioned one by one, so that the tie is broken as one argpartition of the item's weights breaks it.
    """
    b = len(batch)
    if b < BATCH_HEAVY:
        return _heavy_one_by_one(batch, oov, range(b))
    rows, heavy, tied = _at_cut(batch, oov)
    sizes = batch.col0[1:] - batch.col0[:-1]
    dropped = (sizes < KEY_SHARED).nonzero()[0].tolist() + tied
    if dropped:
        keep = ~np.isin(rows, dropped)
        rows, heavy = rows[keep], heavy[keep]
    if tied:
        more_rows, more = _heavy_one_by_one(batch, oov, tied)
        rows, heavy = np.concatenate((rows, more_rows)), np.concatenate((heavy, more))
    return rows, heavy


def _at_cut(batch: Batch, oov: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(row, id) of every item's terms at or above its KEY_TERMS-th largest weight (ids as item_vector gives them),
    and the items with more such terms than KEY_TERMS (tied at the cut): their heavy terms are among theirs.

    The cut is one partition of the batch's weights padded to a matrix: a value, which padding cannot change, where
    the indices argpartition picks among ties depend on the row's length.
    """
    # (array methods and ufuncs rather than np.diff, np.full, np.partition...: their Python wrappers cost as much as
    # the work on a batch's few thousand terms)
    b = len(batch)
    col0, w = batch.col0, batch.weights
    sizes = col0[1:] - col0[:-1]
    items = np.arange(b)
    item_of = items.repeat(sizes)
    width = int(sizes.max()) if b else 0
    tied: list[int] = []
    if width > KEY_TERMS:
        neg = -w
        pad = np.empty(b * width, dtype=w.dtype)
        pad.fill(np.inf)
        pad[np.arange(len(w)) + (items * width - col0[:-1]).repeat(sizes)] = neg
        table = pad.reshape(b, width)
        table.partition(KEY_TERMS - 1, axis=1)
        cut = table[:, KEY_TERMS - 1]  # −cut; inf: ≤ KEY_TERMS terms
        at_cut = neg <= cut.repeat(sizes)
        rows, heavy = item_of[at_cut], batch.uniq[at_cut]
        tied = (np.bincount(rows, minlength=b) > KEY_TERMS).nonzero()[0].tolist()
    else:
        rows, heavy = item_of, batch.uniq.copy()
    base = oov + 1
    if batch.unseen.count(()) != b:  # some item has unseen terms: hashed in place
        at = (heavy >= base).nonzero()[0]
        if len(at):
            unseen, at_rows, at_ids = batch.unseen, rows[at].tolist(), heavy[at].tolist()
            heavy[at] = [base + term_hash(unseen[r][i - base]) for r, i in zip(at_rows, at_ids, strict=True)]
    return rows, heavy, tied


def _heavy_one_by_one(batch: Batch, oov: int, which: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """heavy_terms of the items `which`, one partition each."""
    which = list(which)
    heavy = [_heavy(batch, i, oov) for i in which]
    rows = np.repeat(np.asarray(which, dtype=np.int64), [len(h) for h in heavy])
    return rows, np.fromiter(itertools.chain.from_iterable(heavy), dtype=np.int64, count=len(rows))


def _heavy(batch: Batch, i: int, oov: int) -> list[int]:
    c0, c1 = int(batch.col0[i]), int(batch.col0[i + 1])
    if c1 - c0 < KEY_SHARED:
        return []
    w = batch.weights[c0:c1]
    top = (-w).argpartition(KEY_TERMS - 1)[:KEY_TERMS] + c0 if len(w) > KEY_TERMS else slice(c0, c1)
    ids: list[int] = batch.uniq[top].tolist()
    unseen = batch.unseen[i]
    if unseen:
        base = oov + 1
        ids = [j if j < base else base + term_hash(unseen[j - base]) for j in ids]
    return ids


def _masks(keys: np.ndarray, key_ptr: np.ndarray, key_owner: np.ndarray, n: int) -> dict[int, int]:
    """Each key's labelled items as the bits of one int (bit g: labelled item g), from bit-packed rows of keys (a
    sum of 1 << g per key and item cost ~1.5 µs each, a third of building the index)."""
    width = (n + 7) // 8
    step = max(1, (1 << 22) // max(8 * width, 1))  # keys per block of bits: at most 4 MB at a time
    counts = np.diff(key_ptr)
    out: dict[int, int] = {}
    for k0 in range(0, len(keys), step):
        k1 = min(k0 + step, len(keys))
        bits = np.zeros((k1 - k0, 8 * width), dtype=bool)
        bits[np.repeat(np.arange(k1 - k0), counts[k0:k1]), key_owner[key_ptr[k0] : key_ptr[k1]]] = True
        packed = np.packbits(bits, axis=1, bitorder="little").tobytes()
        ints = (int.from_bytes(packed[r * width : (r + 1) * width], "little") for r in range(k1 - k0))
        out.update(zip(keys[k0:k1].tolist(), ints, strict=True))
    return out


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_inverse=True) of keys already sorted, without its sort and bookkeeping (which cost
    0.1-0.2 ms a call here, a third of the label step of a batch of 30)."""
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    run_of = first.cumsum()
    run_of -= 1
    return keys[first], run_of


def _spans(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For spans [starts[k], starts[k] + counts[k]): every position in them, concatenated, and the span k each
    belongs to."""
    ends = counts.cumsum()
    total = int(ends[-1]) if len(ends) else 0
    starts = starts - ends
    starts += counts
    return np.arange(total) + starts.repeat(counts), np.arange(len(counts)).repeat(counts)


def _kernel(cos: np.ndarray) -> np.ndarray:
    """learn.kernel in place, by ufuncs (the same values; np.clip's wrapper costs more than the work here)."""
    cos -= learn.NEAR_COSINE
    cos /= learn.SAME_COSINE - learn.NEAR_COSINE
    np.maximum(cos, 0.0, out=cos)
    np.minimum(cos, 1.0, out=cos)
    return cos


@dataclass(frozen=True)
class LabelIndex:
    """Every topic's labelled items: postings of their heavy terms, and their vectors (one flat array)."""

    keys: np.ndarray  # sorted heavy term ids of the labelled items
    key_ptr: np.ndarray  # key k's labelled items are key_owner[key_ptr[k]:key_ptr[k + 1]]
    key_owner: np.ndarray
    key_len: np.ndarray  # key_ptr[k + 1] - key_ptr[k]
    topic: np.ndarray  # labelled item g → its topic
    relevant: np.ndarray  # labelled item g → its verdict
    verdict: np.ndarray  # the same as 0/1 (int64: an index)
    start: np.ndarray  # labelled item g's vector is ids/vec[start[g]:start[g + 1]]
    size: np.ndarray  # start[g + 1] - start[g]
    ids: np.ndarray
    vec: np.ndarray
    name_ptr: np.ndarray  # topic t's name term ids are names[name_ptr[t]:name_ptr[t + 1]]
    name_len: np.ndarray
    names: np.ndarray
    masks: Mapping[int, int]  # heavy term id → its labelled items as bits of an int (one item's look-up)
    topic_of: Sequence[int]  # topic, start and verdict (0/1) as Python ints, for one item's pairs (no numpy scalars)
    start_of: Sequence[int]
    relevant_of: Sequence[int]

    @classmethod
    def of(cls, labels: Mapping[int, learn.TopicLabels], name_ids: Sequence[np.ndarray]) -> LabelIndex:
        fitted = [labels[ti] for ti in sorted(labels)]
        counts = [len(f.examples) for f in fitted]
        first = np.cumsum([0, *counts]).tolist()  # topic k's labelled items are first[k]:first[k + 1]
        n = first[-1]
        # The labelled vectors as each topic's fit packed them (learn._pack), one topic after the other
        offsets = np.cumsum([0, *(len(f.flat_ids) for f in fitted)]).tolist()
        col0 = [np.append(f.starts, len(f.flat_ids)).astype(np.int64) for f in fitted]
        start = np.concatenate([np.zeros(1, np.int64)] + [c[1:] + o for c, o in zip(col0, offsets[:-1], strict=True)])
        # Each labelled item's KEY_TERMS heaviest terms, a topic's items at once as a batch's are found (the same
        # terms as one argpartition per item); an item of fewer than KEY_SHARED terms keeps them all (it can never
        # be a candidate, but its terms are keys as before)
        pairs = [np.zeros(0, np.int64)]
        for f, c, g0 in zip(fitted, col0, first[:-1], strict=True):
            rows, heavy = heavy_terms(Batch(f.flat_ids, f.flat_vec, c, [()] * len(f.examples)), _NO_UNSEEN)
            small = np.flatnonzero(np.diff(c) < KEY_SHARED)
            if len(small):
                pos, owner = _spans(c[small], c[small + 1] - c[small])
                rows, heavy = np.concatenate((rows, small[owner])), np.concatenate((heavy, f.flat_ids[pos]))
            pairs.append(heavy * max(n, 1) + rows + g0)
        # distinct (term, labelled item), by term then item: unseen terms' hashes may meet within an item
        pair = np.unique(np.concatenate(pairs))
        keys, key_of = _runs(pair // max(n, 1))
        key_ptr = np.searchsorted(key_of, np.arange(len(keys) + 1)).astype(np.int64)
        key_owner = pair % max(n, 1)
        topic = np.repeat(np.array(sorted(labels), dtype=np.int64), counts)
        relevant = np.concatenate([np.zeros(0, bool)] + [f.relevant for f in fitted])
        return cls(
            keys=keys,
            key_ptr=key_ptr,
            key_owner=key_owner,
            key_len=np.diff(key_ptr),
            topic=topic,
            relevant=relevant,
            verdict=relevant.astype(np.int64),
            start=start,
            size=np.diff(start),
            ids=np.concatenate([np.zeros(0, np.int64)] + [f.flat_ids for f in fitted]).astype(np.int64),
            vec=np.concatenate([np.zeros(0)] + [f.flat_vec for f in fitted]).astype(np.float64),
            name_ptr=np.cumsum([0, *(len(named) for named in name_ids)], dtype=np.int64),
            name_len=np.array([len(named) for named in name_ids], dtype=np.int64),
            names=np.concatenate([np.zeros(0, np.int64), *name_ids]).astype(np.int64),
            masks=_masks(keys, key_ptr, key_owner, n),
            topic_of=topic.tolist(),
            start_of=start.tolist(),
            relevant_of=relevant.astype(np.int64).tolist(),
        )

    @classmethod
    def empty(cls, name_ids: Sequence[np.ndarray]) -> LabelIndex:
        return cls.of({}, name_ids)

    def candidates(self, rows: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, labelled item) pairs that share at least KEY_SHARED of the row's heavy terms (`heavy_terms`)."""
        none = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if not len(self.keys) or len(rows) < KEY_SHARED:
            return none
        at = self.keys.searchsorted(ids)
        np.minimum(at, len(self.keys) - 1, out=at)
        hit = self.keys[at] == ids
        rows, at = rows[hit], at[hit]
        positions, hit_of = _spans(self.key_ptr[at], self.key_len[at])
        if len(positions) < KEY_SHARED:
            return none
        n = len(self.topic)
        keys = rows[hit_of] * n
        keys += self.key_owner[positions]
        keys.sort()
        # sorted: a key met at least KEY_SHARED times equals the key KEY_SHARED - 1 places on; the first of each run
        met = keys[KEY_SHARED - 1 :] == keys[: 1 - KEY_SHARED]
        first = met.copy()
        first[1:] &= ~met[:-1]
        pairs = keys[: 1 - KEY_SHARED][first]
        return np.divmod(pairs, n)

    def pairs(self, batch: Batch, oov: int) -> tuple[np.ndarray, np.ndarray]:
        """`candidates` of a batch's heavy terms (`heavy_terms`), sorted by row then labelled item.

        An item tied at its cut is first looked up with all its terms at or above the cut, more than its heavy
        terms: if that finds no labelled item, its heavy terms cannot either, and only the few items it does find
        something for are partitioned (partitioning every tied item was ~15 % of a batch of 30's label step)."""
        if len(batch) < BATCH_HEAVY:
            return self.candidates(*heavy_terms(batch, oov))
        rows, heavy, tied = _at_cut(batch, oov)
        rows, owners = self.candidates(rows, heavy)
        redo = set(tied).intersection(rows.tolist()) if tied and len(rows) else ()
        if not redo:
            return rows, owners
        found = [(r, g) for r, g in zip(rows.tolist(), owners.tolist(), strict=True) if r not in redo]
        found += [(r, g) for r in redo for g in self.near(_heavy(batch, r, oov))]
        found.sort()
        out = np.array(found, dtype=np.int64).reshape(-1, 2)
        return out[:, 0].copy(), out[:, 1].copy()

    def logits(self, batch: Batch, z0: np.ndarray, w: np.ndarray, oov: int) -> np.ndarray:
        """The corrected log-odds of a batch: z0 [items, topics] + each topic's shift w[:, 0], plus the kernel terms
        w[:, 1]·k⁺ + w[:, 2]·k⁻ where a row is close to a labelled item of the topic (learn.py).

        The cosine of a row and a labelled item of topic t leaves out the terms that name t (the labelled vectors
        have none, so only the row's norm needs them taken away); pairs that are not candidates count as 0.
        """
        z: np.ndarray = z0 + w[:, 0]
        if not len(self.keys):
            return z
        if len(batch) == 1:
            return self._logits_one(batch, z, w, oov)
        rows, owners = self.pairs(batch, oov)
        if not len(rows):
            return z
        # The candidate rows' vectors (item_vector's, for all of them at once), keyed row << _SHIFT | id and sorted.
        # (The candidates come sorted by row, then by labelled item, and the labelled items by topic.)
        cand, row_of = _runs(rows)
        c0 = batch.col0[cand]
        sizes = batch.col0[cand + 1] - c0
        pos, owner = _spans(c0, sizes)
        ids = batch.uniq[pos]
        weights = batch.weights[pos].astype(np.float64)
        bounds = [0, *sizes.cumsum().tolist()]
        # each row's norm by the same BLAS dot as item_vector's (the same bits; IEEE square roots are exact-rounded)
        norms = np.array(
            [math.sqrt((x := weights[a:b]) @ x) or 1.0 for a, b in itertools.pairwise(bounds)], dtype=np.float64
        )
        keys = ids | (owner << _SHIFT)
        base = oov + 1
        unseen = (ids >= base).nonzero()[0]
        if len(unseen):  # hashed as item_vector hashes them, then each row sorted again (stable, as there)
            at_row = cand[owner[unseen]].tolist()
            keys[unseen] = [
                (base + term_hash(batch.unseen[r][i - base])) | (o << _SHIFT)
                for r, i, o in zip(at_row, ids[unseen].tolist(), owner[unseen].tolist(), strict=True)
            ]
            order = np.argsort(keys, kind="stable")
            keys, weights, owner = keys[order], weights[order], owner[order]
        vals = weights / norms[owner]

        def look_up(row: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Where (row, id) sits in keys, and whether it is there."""
            want = ids | (row << _SHIFT)
            at = keys.searchsorted(want)
            np.minimum(at, len(keys) - 1, out=at)
            return at, keys[at] == want

        # Each (row, topic)'s norm without the topic's names
        n_topics = z0.shape[1]
        pair_key, pair_of = _runs(row_of * n_topics + self.topic[owners])
        pair_row, pair_topic = np.divmod(pair_key, n_topics)
        name_at, name_pair = _spans(self.name_ptr[pair_topic], self.name_len[pair_topic])
        at, found = look_up(pair_row[name_pair], self.names[name_at])
        named = np.bincount(name_pair[found], vals[at[found]] ** 2, minlength=len(pair_key))
        norm = np.sqrt(np.maximum(1.0 - named, 1e-12))
        # Each candidate's dot product with its labelled item
        entry, entry_of = _spans(self.start[owners], self.size[owners])
        # Only the labelled terms that some candidate row holds are looked up (a table over the vocabulary, every
        # unseen term in its last slot): most of a labelled article's terms are in none of the rows, and the look-up
        # of the rest is most of the kernel's work where items are close to many labelled ones.
        held = np.zeros(oov + 2, dtype=bool)
        held[np.minimum(ids, base)] = True
        entry_ids = self.ids[entry]
        kept = np.flatnonzero(held[np.minimum(entry_ids, base)])
        entry, entry_of, entry_ids = entry[kept], entry_of[kept], entry_ids[kept]
        at, found = look_up(row_of[entry_of], entry_ids)
        dots = np.bincount(entry_of[found], vals[at[found]] * self.vec[entry[found]], minlength=len(owners))
        cos = dots / norm[pair_of]
        best = np.zeros((2, len(pair_key)))  # nearest not-relevant, relevant
        np.maximum.at(best, (self.verdict[owners], pair_of), cos)
        kn, kp = _kernel(best)
        act = (kp + kn).nonzero()[0]  # both ≥ 0
        r, t = cand[pair_row[act]], pair_topic[act]
        z[r, t] = z[r, t] + w[t, 1] * kp[act] + w[t, 2] * kn[act]  # z is z0 + w0 already: the same sum, the same bits
        return z

    def near(self, heavy: Sequence[int]) -> list[int]:
        """The labelled items that hold at least KEY_SHARED of one item's heavy terms, ascending: `candidates` for a
        single row, counted on bit masks (a few integer operations a term, where the array form costs some tens of
        numpy calls for any batch)."""
        one = two = three = 0  # labelled items met at least once, twice, three times
        get = self.masks.get
        for term in heavy:
            m = get(term)
            if m:
                three |= two & m
                two |= one & m
                one |= m
        out = []
        while three:
            low = three & -three
            out.append(low.bit_length() - 1)
            three ^= low
        return out

    def _logits_one(self, batch: Batch, z: np.ndarray, w: np.ndarray, oov: int) -> np.ndarray:
        """`logits` of a batch of one: the same sums in the same order as the array form (each cosine a sum over the
        labelled item's terms in id order, each norm one over the topic's names), so the same bits. The norms go
        topic by topic (an item meets few topics); from PAIRS_AT_ONCE pairs the dot products of all of them are
        one look-up and one `bincount` (a sum in index order, as Python's sum of each pair's products: the same
        bits; a quarter less time in the step where an item is close to many labelled items, EN wire copy)."""
        owners = self.near(_heavy(batch, 0, oov))
        if not owners:
            return z
        ids, vals = _vector(batch.uniq, batch.weights, batch.unseen[0], oov)
        last = len(ids) - 1
        topic_of, start, relevant = self.topic_of, self.start_of, self.relevant_of  # Python ints: no numpy scalars
        norms: dict[int, float] = {}  # topic → the item's norm without the topic's names
        for t in sorted({topic_of[g] for g in owners}):
            names = self.names[self.name_ptr[t] : self.name_ptr[t + 1]]
            at = ids.searchsorted(names)
            np.minimum(at, last, out=at)
            named = sum((vals[at[ids[at] == names]] ** 2).tolist())
            norms[t] = math.sqrt(max(1.0 - named, 1e-12))  # as np.sqrt: IEEE square roots are exact-rounded
        dots: list[float] = []
        if len(owners) >= PAIRS_AT_ONCE:
            own = np.array(owners, dtype=np.int64)
            span, span_of = _spans(self.start[own], self.size[own])
            span_ids = self.ids[span]
            at = ids.searchsorted(span_ids)
            np.minimum(at, last, out=at)
            found = ids[at] == span_ids
            dots = np.bincount(span_of[found], vals[at[found]] * self.vec[span[found]], minlength=len(owners)).tolist()
        else:
            for g in owners:
                entry = slice(start[g], start[g + 1])
                g_ids = self.ids[entry]
                at = ids.searchsorted(g_ids)
                np.minimum(at, last, out=at)
                found = ids[at] == g_ids
                dots.append(sum((vals[at[found]] * self.vec[entry][found]).tolist()))
        best: dict[int, list[float]] = {t: [0.0, 0.0] for t in norms}  # topic → nearest not relevant, relevant
        for g, dot in zip(owners, dots, strict=True):
            t = topic_of[g]
            near, k = best[t], relevant[g]
            near[k] = max(near[k], dot / norms[t])
        # The kernel and the corrected log-odds in Python floats, topic by topic (an item meets few topics; as
        # arrays it was some twenty numpy calls): the same IEEE operations in the same order as the array form's,
        # z[0, t] being z0 + w0 already, so the same bits.
        row = z[0]
        for t, (neg, pos) in best.items():
            kp, kn = learn.kernel_pair(pos, neg)
            if kp > 0 or kn > 0:
                _, w1, w2 = w[t].tolist()
                row[t] = float(row[t]) + w1 * kp + w2 * kn
        return z
