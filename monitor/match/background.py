"""Background statistics of the topic model: vocabulary, IDF and a calibration sample, and their file.

fit(docs, sample)       IDF over the stored items (scikit-learn, smooth idf); the sample kept as term ids
extended(terms)         the same statistics with new terms (a model loaded for topics that changed)
save(path) / load(path) .npz in data_dir, no pickle; a file of another format is a ModelError
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

FORMAT_VERSION = 1


def _distinct(doc: list[str]) -> set[str]:
    # IDF needs document frequencies only: one count per distinct term is enough and a third faster to fit.
    # (scikit-learn sorts the vocabulary, so ids do not depend on set order.)
    return set(doc)


@dataclass(frozen=True)
class Background:
    """Fitted background statistics: vocabulary, IDF, and a calibration sample of recent items as term ids."""

    vocab: Mapping[str, int]
    idf: np.ndarray  # float32 [V]
    n_docs: int
    sample_ids: np.ndarray  # int32, the sample's term ids concatenated
    sample_offsets: np.ndarray  # int64 [M + 1]

    @classmethod
    def fit(cls, docs: Sequence[list[str]], sample: Sequence[list[str]]) -> Background:
        """IDF over `docs` (scikit-learn, smooth idf); `sample` is kept as term ids for calibration."""
        docs = [d for d in docs if d]
        if not docs:
            docs = [["\x00"]]  # an empty model still has a well-defined (flat) IDF
        # A heavy extra, needed only while fitting (issue 16: polling and classifying never import scikit-learn).
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer=_distinct, sublinear_tf=True, dtype=np.float32)
        vectorizer.fit(docs)
        vocab: dict[str, int] = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
        idf = np.asarray(vectorizer.idf_, dtype=np.float32)
        ids = [np.asarray([vocab[t] for t in d if t in vocab], dtype=np.int32) for d in sample]
        return cls(vocab, idf, len(docs), *_pack(ids))

    @property
    def oov_idf(self) -> float:
        """IDF of a term never seen in the background (document frequency 0, smoothed)."""
        return math.log((1 + self.n_docs) / 1) + 1.0

    def extended(self, new_terms: Sequence[str]) -> Background:
        """The same statistics with terms added as if seen once (loading a model whose topics changed)."""
        missing = [t for t in dict.fromkeys(new_terms) if t not in self.vocab]
        if not missing:
            return self
        vocab = dict(self.vocab)
        for term in missing:
            vocab[term] = len(vocab)
        rare = math.log((1 + self.n_docs) / 2) + 1.0
        idf = np.concatenate([self.idf, np.full(len(missing), rare, dtype=np.float32)])
        return Background(vocab, idf, self.n_docs, self.sample_ids, self.sample_offsets)

    def sample(self) -> list[np.ndarray]:
        off = self.sample_offsets
        return [self.sample_ids[off[i] : off[i + 1]] for i in range(len(off) - 1)]

    def save(self, path: Path) -> None:
        """Write the statistics to `path` (.npz, atomic: a temporary file renamed over it)."""
        vocab = sorted(self.vocab.items(), key=lambda kv: kv[1])
        meta = {"version": FORMAT_VERSION, "n_docs": self.n_docs}
        blob = json.dumps([t for t, _ in vocab], ensure_ascii=False).encode("utf-8")
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                np.savez_compressed(
                    fh,
                    meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                    vocab=np.frombuffer(blob, dtype=np.uint8),
                    idf=self.idf,
                    sample_ids=self.sample_ids,
                    sample_offsets=self.sample_offsets,
                )
            tmp.replace(path)
        except OSError as exc:
            raise ModelError(f"while saving the topic model to {path}: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> Background:
        """Read statistics written by `save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                vocab_list = json.loads(bytes(data["vocab"]).decode("utf-8"))
                idf = np.asarray(data["idf"], dtype=np.float32)
                sample_ids = np.asarray(data["sample_ids"], dtype=np.int32)
                offsets = np.asarray(data["sample_offsets"], dtype=np.int64)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"while loading the topic model from {path}: {exc}") from exc
        if meta.get("version") != FORMAT_VERSION or len(vocab_list) != len(idf):
            raise ModelError(f"{path}: not a topic model of format {FORMAT_VERSION}; delete it to rebuild")
        return cls({t: i for i, t in enumerate(vocab_list)}, idf, int(meta["n_docs"]), sample_ids, offsets)


def _pack(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    if seqs:
        offsets[1:] = np.cumsum([len(s) for s in seqs])
        flat = np.concatenate(seqs).astype(np.int32) if offsets[-1] else np.zeros(0, dtype=np.int32)
    else:
        flat = np.zeros(0, dtype=np.int32)
    return flat, offsets
