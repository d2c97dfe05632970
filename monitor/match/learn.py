"""Learning from the analyst's labels, per topic: a Bayesian logistic correction of the prior log-odds.

    fit_topic(examples)         a topic's labelled items → the MAP correction (maximum a posteriori weights)
    TopicLabels.kernel(vec)     closeness of an item to the nearest labelled relevant / not-relevant item
    TopicLabels.weights(...)    how much each labelled item moved an item's log-odds (`monitor explain`)

The corrected log-odds of an item x for a topic is z0(x) + w·φ(x), φ = [1, k⁺, k⁻]:
    1        a shift of the prior log-odds: the topic's own calibration and so, through the cost threshold, its own
             threshold. (A slope as well, per-topic Platt scaling, was tried: labels come from the top of the
             ranking, and a slope fitted there moves the far-below bulk of the stream by several log-odds, which
             moved a topic's estimated prevalence and cut by a factor of five in bench/classify.py.)
    k⁺, k⁻   closeness to the nearest labelled relevant / not-relevant item of the topic: (cos − 0.5) / 0.3 on TF-IDF
             cosine, clipped to 0..1, so only near-duplicates and close rewrites of a labelled item count (two news
             items on the same topic rarely reach cosine 0.5; a reprint or an updated wire reaches 0.8 and more)
with a Gaussian prior w ~ N(m, diag(s²)), m = [0, +6, −6], s = [0.5, 1, 1]. The prior is what makes a few labels
safe: a shift of more than ~1 log-odds needs many labels that agree, so five labels cannot wreck a topic, while the
topic's own labels dominate once there are dozens. The kernel's
prior mean lets one label act at once on what is nearly the same item: a "not relevant" press silences the next
copy of that story (−6 log-odds from cosine 0.8) and leaves the rest of the topic alone. The score is the logistic
of the corrected log-odds at the MAP weights. (The posterior predictive, which widens with the weights'
uncertainty, was tried: it pulls the many far-below items towards 1/2, inflates a rare topic's estimated
prevalence and so its threshold, and lost Libya items on the Russian dev stream.)

Fitting is Newton's method on three weights per topic (well under a millisecond for 50 labels); the labelled items'
own kernel features leave the item itself out (k of an item to itself would always be 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PRIOR_MEAN = np.array([0.0, 6.0, -6.0])
PRIOR_SD = np.array([0.5, 1.0, 1.0])
PRIOR_VAR = PRIOR_SD**2
NEAR_COSINE, SAME_COSINE = 0.5, 0.8  # the kernel rises from 0 at the first cosine to 1 at the second
NEWTON_STEPS = 50


@dataclass(frozen=True)
class Example:
    """One labelled item, as the topic model sees it for one topic."""

    uid: str
    title: str
    relevant: bool
    z0: float  # the prior log-odds of the item for the topic (the model's, at the time of fitting)
    ids: np.ndarray  # the item's term ids (sorted), for the kernel
    vec: np.ndarray  # their L2-normalised TF-IDF weights


def kernel(cos: np.ndarray) -> np.ndarray:
    """0 below NEAR_COSINE, rising to 1 at SAME_COSINE."""
    return np.asarray(np.clip((cos - NEAR_COSINE) / (SAME_COSINE - NEAR_COSINE), 0.0, 1.0), dtype=np.float64)


def cosines(
    ids: np.ndarray, vec: np.ndarray, flat_ids: np.ndarray, flat_vec: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Dot products of one sparse vector (sorted `ids`) with many, concatenated (each from `starts[j]`)."""
    if not len(ids) or not len(flat_ids):
        return np.zeros(len(starts))
    at = np.minimum(np.searchsorted(ids, flat_ids), len(ids) - 1)
    prod = np.where(ids[at] == flat_ids, vec[at] * flat_vec, 0.0)
    sums = np.add.reduceat(prod, np.minimum(starts, len(prod) - 1))
    sizes = np.diff(np.append(starts, len(flat_ids)))  # an empty vector's slot is zeroed below
    return np.asarray(np.where(sizes > 0, sums, 0.0), dtype=np.float64)


def kernel_pair(pos: float, neg: float) -> tuple[float, float]:
    """(k⁺, k⁻) from the largest cosine to a labelled relevant / not-relevant item (0 when there is none)."""
    span = SAME_COSINE - NEAR_COSINE
    return min(max((pos - NEAR_COSINE) / span, 0.0), 1.0), min(max((neg - NEAR_COSINE) / span, 0.0), 1.0)


@dataclass(frozen=True)
class TopicLabels:
    """The fitted correction of one topic: weights, covariance and what is needed to explain and apply it."""

    examples: tuple[Example, ...]
    w: np.ndarray  # [3]: shift, kernel relevant, kernel not relevant
    phi: np.ndarray  # [n, 3] the labelled items' features (own item left out of the kernel)
    residual: np.ndarray  # [n] y − p at the MAP: each labelled item's pull on the weights
    flat_ids: np.ndarray
    flat_vec: np.ndarray
    starts: np.ndarray
    relevant: np.ndarray  # [n] bool

    @property
    def n_relevant(self) -> int:
        return int(self.relevant.sum())

    def similarities(self, ids: np.ndarray, vec: np.ndarray) -> np.ndarray:
        """Cosine of an item (sorted term ids, normalised weights) to every labelled item."""
        return cosines(ids, vec, self.flat_ids, self.flat_vec, self.starts)

    def kernel(self, sims: np.ndarray) -> tuple[float, float]:
        """(k⁺, k⁻) from the similarities to the labelled items."""
        return kernel_pair(float(sims[self.relevant].max(initial=0.0)), float(sims[~self.relevant].max(initial=0.0)))

    def weights(self, sims: np.ndarray) -> np.ndarray:
        """How much each labelled item moved this item's log-odds; the sum is the whole move w·φ.

        At the MAP the weights are m + diag(s²)·Φᵀ(y − p), so w·φ(x) = m·φ(x) + Σ_j φ(x)ᵀ diag(s²) φ_j (y_j − p_j);
        the prior-mean part m·φ(x) = 6k⁺ − 6k⁻ is credited to the nearest relevant / not-relevant labelled item.
        """
        kp, kn = self.kernel(sims)
        phi = np.array([1.0, kp, kn])
        out = (self.phi * PRIOR_VAR) @ phi * self.residual
        if kp > 0:
            j = int(np.flatnonzero(self.relevant)[sims[self.relevant].argmax()])
            out[j] += PRIOR_MEAN[1] * kp
        if kn > 0:
            j = int(np.flatnonzero(~self.relevant)[sims[~self.relevant].argmax()])
            out[j] += PRIOR_MEAN[2] * kn
        return np.asarray(out, dtype=np.float64)


def _pack(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes = [len(e.ids) for e in examples]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
    flat_ids = np.concatenate([e.ids for e in examples]) if sizes else np.zeros(0, np.int64)
    flat_vec = np.concatenate([e.vec for e in examples]) if sizes else np.zeros(0)
    return flat_ids.astype(np.int64), flat_vec.astype(np.float64), starts


def fit_topic(examples: Sequence[Example]) -> TopicLabels:
    """The MAP correction for one topic's labelled items (Newton's method; the problem is convex)."""
    n = len(examples)
    flat_ids, flat_vec, starts = _pack(examples)
    relevant = np.array([e.relevant for e in examples], dtype=bool)
    z0 = np.array([e.z0 for e in examples], dtype=np.float64)
    # Each labelled item's kernel features against the others (itself left out).
    sims = np.array([cosines(e.ids, e.vec, flat_ids, flat_vec, starts) for e in examples]).reshape(n, n)
    np.fill_diagonal(sims, 0.0)
    k_pos = kernel(np.where(relevant[None, :], sims, 0.0).max(axis=1, initial=0.0))
    k_neg = kernel(np.where(~relevant[None, :], sims, 0.0).max(axis=1, initial=0.0))
    phi = np.stack([np.ones(n), k_pos, k_neg], axis=1)
    y = relevant.astype(np.float64)
    precision = 1.0 / PRIOR_VAR
    w = PRIOR_MEAN.copy()
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-(z0 + phi @ w)))
        grad = phi.T @ (p - y) + precision * (w - PRIOR_MEAN)
        hess = (phi * (p * (1 - p))[:, None]).T @ phi + np.diag(precision)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-9:
            break
    p = 1.0 / (1.0 + np.exp(-(z0 + phi @ w)))
    return TopicLabels(
        examples=tuple(examples),
        w=w,
        phi=phi,
        residual=y - p,
        flat_ids=flat_ids,
        flat_vec=flat_vec,
        starts=starts,
        relevant=relevant,
    )
