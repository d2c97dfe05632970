"""Waiting after failures, shared by feed polls (feeds.schedule) and outbox retries (delivery.rules).

`backoff` doubles a base delay per consecutive failure up to a cap; given a key, repeated failures are
stretched by up to a tenth, so that things which failed together (every feed during a network outage)
drift apart instead of retrying in step. `jitter` is a stable offset: a hash of the key, not random, so
tests and restarts are reproducible.
"""

from __future__ import annotations

import hashlib

JITTER = 0.1  # a jittered delay grows by at most this fraction


def backoff(base: float, failures: int, cap: float, *, key: str | None = None) -> float:
    """base · 2^(failures−1) after `failures` consecutive failures, at most max(base, cap); base when none.

    With a key, delays from the second failure on grow by a stable [0, JITTER) share, within the cap. The
    first retry is not moved: one failure is not an outage, and its time is what callers promise.
    """
    if failures <= 0:
        return base
    # Cap the exponent: 2**60 seconds is already past any cap, and floats overflow eventually.
    delay = base * 2.0 ** min(failures - 1, 60)
    if key is not None and failures > 1:
        delay += jitter(f"{key}\n{failures}", JITTER * delay)
    return min(delay, max(base, cap))


def jitter(key: str, span: float) -> float:
    """A stable offset in [0, span) for `key`: the same feed gets the same offset on every run."""
    if span <= 0:
        return 0.0
    digest = hashlib.sha1(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 * span
