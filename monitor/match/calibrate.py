"""From a topic's evidence on an item to a probability of relevance, and from probabilities to the topic's threshold.

    log_odds(evidence)        the prior log-odds that the item is relevant to the topic: a logistic regression over
                              the evidence, fitted once on both dev sets pooled (docs/matching.md), the same for
                              every topic (the evidence is already per topic: cosines above the topic's median)
    probability(z)            the logistic of z
    cost_threshold(pi)        the cut that minimises the topic's expected detection cost C_det = P_miss + 4.9 P_fa,
                              given its prevalence pi (the mean calibrated probability on a sample of the stream),
                              with a margin for the error of that estimate

Why a cost threshold and not a fixed 0.5: C_det weighs a miss of a relevant item ten times a false alarm at the TDT
target rate (C_miss 1, C_fa 0.1, P_target 0.02). With calibrated probabilities p, alerting on an item lowers the
expected cost when p / N_pos > 4.9 (1 − p) / N_neg, i.e. when the odds p / (1 − p) exceed 4.9 π / (1 − π) for the
topic's share π of relevant items. π is the mean probability over the stream sample, so a rare topic (Libya in a
general news stream, π ≈ 0.2 %) alerts from p ≈ 0.005 and a common one (Syria in 2016, π ≈ 6 %) from p ≈ 0.13
(with the margin below).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Weights(NamedTuple):
    """Coefficients of the prior log-odds (see log_odds)."""

    intercept: float
    doc: float
    near: float
    hit: float
    occurrences: float
    density: float
    early: float
    boost: float
    penalty: float
    length: float


# TDT detection cost (also what `monitor eval` reports).
C_MISS, C_FA, P_TARGET = 1.0, 0.1, 0.02
FA_WEIGHT = C_FA * (1 - P_TARGET) / (C_MISS * P_TARGET)  # 4.9
# Cold start: the sample's prevalence is shrunk to P_TARGET as n / (n + 20). Few pseudo-items: P_TARGET is ten times
# the share of a rare topic (Libya: 0.2 % of a news stream), so a heavier prior would raise its threshold for good.
PREVALENCE_PRIOR_ITEMS = 20
# The cut is the C_det-optimal one for half the estimated prevalence: a margin for the estimate's error. The error
# is asymmetric in cost: a cut set too high loses whole relevant items of a rare topic (each one 1/N_pos of P_miss:
# 1/8 for Libya on the Russian dev stream), a cut set too low adds false alarms at 4.9/N_neg each. The margin 1/2 was
# chosen as the value that minimises the macro C_det of both dev sets together (docs/matching.md has the table).
COST_MARGIN = 0.5

# The prior log-odds: logistic regressions over the evidence of all eight dev topics (RU and EN, each language
# weighted equally; L2, C = 1), coefficients rounded to one decimal; docs/matching.md has the fits, the
# cross-language and leave-one-topic-out checks. The evidence:
#   doc      cosine of the whole item to the profile, minus the topic's background median
#   near     best passage or single-example cosine, minus its median
#   hit      1 when a keyword phrase occurs
#   occur    log(1 + 2 · title hits + text hits)
#   density  keyword hits per 100 terms, capped at 3 (a short headline naming the topic is not more relevant for
#            being short: the weight is negative)
#   early    hit · (1 − position of the first hit), 1 = the title
#   boost    max(self-trained log-odds, 0); penalty: min(self-trained log-odds, 0)
#   length   log(terms in the item)
# Two fits: with the self-trained log-odds, for topics the model could train on its stream, and without, for the
# others and before any training (cold start), and to label the stream for the self-training itself.
DENSITY_CAP = 3.0
NO_EVIDENCE = -9.2  # log-odds of an item without any evidence for the topic: p ≈ 0.0001
# Similarity alone is evidence from 0.2 above the topic's median cosine: on both dev sets the alerts below it that
# have no keyword and no positive self-trained log-odds are 61 of 81 false (EN; RU has none), in headline streams
# they are nearly all the noise.
NEAR_MIN = 0.2
#                 intercept  doc  near  hit  occur density early boost penalty length
TRAINED = Weights(0.2, 3.2, 3.4, 0.2, 1.5, -0.5, 1.2, 0.4, 1.5, -0.7)
UNTRAINED = Weights(-3.0, 8.0, 7.2, 1.4, 1.2, -0.1, 1.4, 0.0, 0.0, -0.6)


def log_odds(
    doc: np.ndarray,
    near: np.ndarray,
    learned: np.ndarray | None,
    trained: np.ndarray | None,
    kw_title: np.ndarray,
    kw_text: np.ndarray,
    kw_first: np.ndarray,
    n_terms: int | np.ndarray,
    any_phrase: bool,
) -> np.ndarray:
    """Prior log-odds of relevance per topic ([topics], or [items, topics] with n_terms [items, 1]).

    `doc` and `near` are already minus the topic's background medians; `trained` marks the topics that have a
    self-trained model (their `learned` log-odds count, with the TRAINED weights; the others get UNTRAINED).
    """
    z = _combine(UNTRAINED, doc, near, None, kw_title, kw_text, kw_first, n_terms, any_phrase)
    if learned is not None and trained is not None and trained.any():
        full = _combine(TRAINED, doc, near, learned, kw_title, kw_text, kw_first, n_terms, any_phrase)
        z = np.where(trained, full, z)
    # Evidence for the topic is a keyword phrase, positive log-odds of the topic's self-trained model, or a passage or
    # example clearly closer to the topic than the median background item (NEAR_MIN). Without any, the item is not
    # relevant whatever the intercept and length terms say: they are fitted on items that have some, and a short
    # headline whose one generic word the profile shares (cosine a few hundredths above the median) would otherwise
    # get 2-4 %, above a rare topic's cut (83 Libya alerts a day on 2024 Lenta.ru headlines, none about Libya).
    evidence = near >= NEAR_MIN
    if learned is not None and trained is not None:
        evidence = evidence | (trained & (learned > 0))
    if any_phrase:
        evidence = evidence | (kw_title + kw_text > 0)
    return np.asarray(np.where(evidence, z, np.minimum(z, NO_EVIDENCE)), dtype=np.float64)


def _combine(
    w: Weights,
    doc: np.ndarray,
    near: np.ndarray,
    learned: np.ndarray | None,
    kw_title: np.ndarray,
    kw_text: np.ndarray,
    kw_first: np.ndarray,
    n_terms: int | np.ndarray,
    any_phrase: bool,
) -> np.ndarray:
    z = w.intercept + w.doc * doc + w.near * near + w.length * np.log(np.maximum(n_terms, 1))
    if learned is not None:
        z = z + w.boost * np.maximum(learned, 0.0) + w.penalty * np.minimum(learned, 0.0)
    if any_phrase:
        found = kw_title + kw_text
        hit = (found > 0).astype(np.float32)
        density = np.minimum(found * (100.0 / np.maximum(n_terms, 1)), DENSITY_CAP)
        z = z + w.hit * hit + w.occurrences * np.log1p(2.0 * kw_title + kw_text) + w.density * density
        z = z + w.early * hit * (1.0 - kw_first)
    return np.asarray(z, dtype=np.float64)


def probability(z: np.ndarray) -> np.ndarray:
    """The logistic of the log-odds z."""
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64))), dtype=np.float64)


def prevalence(p: np.ndarray) -> np.ndarray:
    """Each topic's expected share of relevant items from probabilities over a sample ([items, topics])."""
    n = p.shape[0]
    mean = p.mean(axis=0) if n else np.zeros(p.shape[1])
    w = n / (n + PREVALENCE_PRIOR_ITEMS)
    return np.asarray(w * mean + (1 - w) * P_TARGET, dtype=np.float64)


def cost_threshold(pi: np.ndarray) -> np.ndarray:
    """The probability above which alerting lowers the expected C_det, for topics of prevalence `pi`."""
    pi = np.clip(pi, 1e-6, 1 - 1e-6)
    odds = COST_MARGIN * FA_WEIGHT * pi / (1.0 - pi)
    return np.asarray(odds / (1.0 + odds), dtype=np.float64)
