"""MinHash signatures of word shingles, for spotting reprints and lightly edited wire copy.

Broder, "On the resemblance and containment of documents" (1997): the share of equal components of two
signatures estimates the Jaccard similarity of their shingle sets (standard error sqrt(J(1-J)/PERMUTATIONS)).
The permutations are multiply-shift hashes (Dietzfelbinger et al. 1997) of a 64-bit BLAKE2b of each shingle,
with fixed seeds, so signatures are identical across processes and restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

PERMUTATIONS = 64
Signature = npt.NDArray[np.uint32]

_rng = np.random.default_rng(20261125)
_A = _rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) | np.uint64(1)  # odd multipliers
_B = _rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
_SHIFT = np.uint64(32)


def shingles(words: Sequence[str], size: int = 3) -> set[str]:
    """Distinct overlapping word n-grams ("w1 w2 w3"); a text shorter than `size` words is one shingle."""
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def _hash64(shingle: str) -> int:
    # Python's hash() of str is salted per process (PYTHONHASHSEED); signatures must survive restarts.
    return int.from_bytes(hashlib.blake2b(shingle.encode("utf-8"), digest_size=8).digest(), "little")


def signature(features: set[str]) -> Signature:
    """MinHash signature (PERMUTATIONS uint32 values) of a non-empty set of strings."""
    if not features:
        raise ValueError("MinHash of an empty set is undefined")
    x = np.fromiter((_hash64(f) for f in sorted(features)), dtype=np.uint64, count=len(features))
    # (a*x + b) mod 2**64, top 32 bits: uint64 array arithmetic wraps around by design.
    hashed = (x[:, None] * _A[None, :] + _B[None, :]) >> _SHIFT
    result: Signature = hashed.min(axis=0).astype(np.uint32)
    return result


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two underlying sets."""
    return float(np.count_nonzero(a == b)) / PERMUTATIONS
