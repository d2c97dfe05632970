"""MinHash signatures of word shingles, for spotting reprints and lightly edited wire copy.

Broder, "On the resemblance and containment of documents" (1997): the share of equal components of two
signatures estimates the Jaccard similarity of their shingle sets (standard error sqrt(J(1-J)/PERMUTATIONS)).

A shingle is a run of SIZE words. Each word has a 64-bit BLAKE2b hash (`word_digest`; words recur across items,
so callers cache it); a shingle's hash is MurmurHash3's 64-bit finaliser of its words' hashes XORed, each
multiplied by an odd constant for its position so that order counts ("a b c" is not "b a c"), computed in NumPy
for all shingles of a text at once (a BLAKE2b and a string join per shingle were ~40 % of an item's story
features). Two different shingles share a hash with probability ~2**-64, so the distinct hashes stand for the
shingle set. The permutations are
multiply-shift hashes (Dietzfelbinger et al. 1997) of the shingle hashes with fixed seeds: signatures are identical
across processes and restarts (they are not stored; the window is regrouped from stored text at start).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

PERMUTATIONS = 64
Signature = npt.NDArray[np.uint32]

# The seeds, written out: they were drawn once from NumPy's default_rng(20261125), whose stream NumPy does not
# promise to keep across versions, and stored signatures must stay comparable after an upgrade.
# fmt: off
_A = np.array([  # odd multipliers below 2**63
    0x2D7133FB369FF5ED, 0x04C261F9108CEBAB, 0x279D5BC1EF12376F, 0x57C41FB122056663,
    0x1D74FE2415AF7DC5, 0x017F45A799AE3085, 0x4006B91EB14C9BF1, 0x6484369D42764105,
    0x63E341F9B07BA25D, 0x15D4E2914FD206DF, 0x034F8873B872103D, 0x655D020F3DFF7499,
    0x646A190808D93181, 0x0A35A7E76D42B649, 0x47B028A3A825188B, 0x011C4DBBA41415B5,
    0x6120340025C09501, 0x0E1121FBA490150D, 0x05F77A9E8760DD33, 0x2A67FC6B6866C90D,
    0x7E34F83001DF6D13, 0x67D5BE008C498961, 0x2AA82BC3F0CF9FC5, 0x39B4B2F8CE8311E9,
    0x3227A0ADA9ABDA2D, 0x51FC46F76905485F, 0x2F3958B4D12CEA09, 0x681552E956A3BA41,
    0x243D52924C8D49E7, 0x6B34E565AE3243BD, 0x3D1DE4F27BA6D397, 0x0AD7D492BFBBE327,
    0x55D6CE5E74ECF7C9, 0x21FEDA42B101B48D, 0x29541C87C6F39E23, 0x3BCBA6B3F233EADF,
    0x4A9D1324C58F5311, 0x7A883161139C7237, 0x4B5F366107460C6F, 0x6A5D0CA4365FE29B,
    0x736841E238FD885F, 0x1A94F7B3ACE97F6F, 0x1DA6D9135819ED5F, 0x5F96D746117F5B3D,
    0x3F29EA94E3AB6D47, 0x44E5B6A9DD4A83B1, 0x330033068516FD95, 0x6CB4ABE197E35B7F,
    0x4C99680ED63BB347, 0x10A361D400634DD9, 0x1F811EB516359689, 0x4D348758DEC3AB45,
    0x78A0C5BEA37A14CD, 0x435CB3ECAF9E9189, 0x4ACFFD799F6F070D, 0x34EB7AC40F7AFCB9,
    0x019D3FB7EC8024E5, 0x32FF745698158FEB, 0x63FB2734C3DEA231, 0x1ED3BF6FA2A77429,
    0x57C0AD3311A1E11B, 0x3F6959CA057C86FB, 0x5CF4DFE922696F31, 0x4BC29F1751C8CE71
], dtype=np.uint64)
_B = np.array([  # offsets below 2**63
    0x1BE8699343F96719, 0x206060CD93B86D6B, 0x2D79CB6F2B8EA0CD, 0x6D20D386AC794688,
    0x0D225B8BEF952E6F, 0x0839F7A2531356A1, 0x3C8BEBA255EA7738, 0x54EC00A787BD6914,
    0x65281F8F1B44BC71, 0x48D32CEF121FFCA2, 0x560DA9B99CE8AD0F, 0x3D0254DF528436A6,
    0x5AAE7BCF24456EE2, 0x43044BB27E0750FD, 0x756266D3914D2AAA, 0x5F42F1ADFA31CCD5,
    0x7EECA01380799FF5, 0x2A4E700FB6663365, 0x093831974E64C10E, 0x78EC44FB4E195BD3,
    0x0A48B7A72840120D, 0x215CDFB1983EF686, 0x511A44A54524805F, 0x6477023F96B63361,
    0x72DEFAC530263D95, 0x1307849BB28F050D, 0x26B7EF7DF3783DA3, 0x6425E3A348471AF0,
    0x4EE89FE9D11AD052, 0x3B8839179EBE2C2B, 0x46510106BE425A3B, 0x44CEB8B46A9C53DB,
    0x4B059AEED7BA491F, 0x0D2724CF241D13C2, 0x77DB8AF8F7EE13AE, 0x275B8458F3BF0920,
    0x1B4B5460F8CD7DE8, 0x18F4A47E42482F73, 0x52F928BE9199CC64, 0x587CB1D3470652BE,
    0x7DF846CCD9AB52DE, 0x11A7A45FA5A23A22, 0x79FE1ABC5CFE0C64, 0x480BB61E8402BA18,
    0x0D250D90D9874EDC, 0x05EBB0AA7D3621E1, 0x15FEAB1E89C6DC04, 0x194C0E6EEE6A911A,
    0x5D2A1C52B46E2209, 0x59D2B2A239B8948E, 0x53E6D9E42623C337, 0x7DEA31DE2E529125,
    0x52C14C24A307AB96, 0x0DB7DE06A5D51E57, 0x6D456220ADCA6219, 0x4968FE17464325E6,
    0x14D448C55C01C52F, 0x357BD73F225DB496, 0x1F1475918673D97C, 0x2767634C54D7031B,
    0x2397830C1E602BD6, 0x35D7963176DEE8CF, 0x08145C17DE993162, 0x56A89E34BE245F85
], dtype=np.uint64)
# fmt: on
_SHIFT = np.uint64(32)
SIZE = 3  # words per shingle
Hashes = npt.NDArray[np.uint64]

# A word's weight by its position in the shingle: odd, so each multiplication is a bijection of the 64-bit words
# (two shingles that differ in any word differ in a uniformly random term of the XOR). 2**64 / golden ratio and
# the constants of SplitMix64 (Steele et al. 2014).
_POSITION = (np.uint64(1), np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9))
# MurmurHash3's fmix64 constants (Appleby, MurmurHash3.cpp): each input bit flips each output bit with p ~ 1/2.
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_33 = np.uint64(33)
_NO_WORD = b"\0" * 8  # the missing words of a text shorter than SIZE words (its one shingle)


def word_digest(word: str) -> bytes:
    """A word's stable 64-bit hash, 8 bytes little-endian: BLAKE2b of its UTF-8 (Python's hash() of str is salted
    per process, and signatures must be the same after a restart)."""
    return hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()


def word_hashes(words: Iterable[str]) -> Hashes:
    """The words' hashes (`word_digest`) as an array, in order. Uncached: callers that see words again cache the
    digests and join them the same way."""
    return from_digests(b"".join(map(word_digest, words)))


def from_digests(digests: bytes) -> Hashes:
    """An array of the word hashes joined in `digests` (8 bytes each)."""
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def shingles(words: Hashes) -> Hashes:
    """Distinct hashes of a text's overlapping SIZE-word shingles, given its words' hashes (in no set order).

    A text shorter than SIZE words (but not empty) is one shingle; no words, no shingle.
    """
    n = len(words)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    if n < SIZE:
        words = from_digests(words.astype("<u8").tobytes() + _NO_WORD * (SIZE - n))
        n = SIZE
    m = n - SIZE + 1
    x = words[:m].copy()
    for i in range(1, SIZE):
        x ^= words[i : m + i] * _POSITION[i]
    x ^= x >> _33
    x *= _FMIX1
    x ^= x >> _33
    x *= _FMIX2
    x ^= x >> _33
    # Distinct values through a Python set, not np.unique: NumPy's sort releases the GIL whatever the array's size,
    # and among the pipeline's threads getting it back waits (py-spy, `bench/ingest.py --stage full --feeds 300`:
    # the sort held 43 % of the features' samples; the features' share of the cycle went 7.3 → 5.6 %).
    # Elementwise operations on fewer than ~500 values keep the GIL.
    distinct = set(x.tolist())
    return np.fromiter(distinct, dtype=np.uint64, count=len(distinct))


def signature(shingle_hashes: Hashes) -> Signature:
    """MinHash signature (PERMUTATIONS uint32 values) of a non-empty set of shingle hashes."""
    if not len(shingle_hashes):
        raise ValueError("MinHash of an empty set is undefined")
    # (a*x + b) mod 2**64, top 32 bits: uint64 array arithmetic wraps around by design. The top bits of the
    # minimum are the minimum of the top bits (the shift keeps order), so only the 64 minima are shifted.
    hashed = np.multiply.outer(shingle_hashes, _A)
    hashed += _B
    result: Signature = (hashed.min(axis=0) >> _SHIFT).astype(np.uint32)
    return result


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two underlying sets."""
    return float(np.count_nonzero(a == b)) / PERMUTATIONS


def similarities(a: Signature, rows: npt.NDArray[np.uint32]) -> list[float]:
    """`similarity(a, row)` for each row of a 2-D array of signatures, in one comparison."""
    return [n / PERMUTATIONS for n in np.count_nonzero(rows == a, axis=1).tolist()]
