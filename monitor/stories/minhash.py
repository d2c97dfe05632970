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
