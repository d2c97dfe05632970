"""backoff: one exponential backoff for feed polls and outbox retries; a stable jitter when keyed."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.backoff import JITTER, backoff
from monitor.feeds.schedule import next_poll

CAP = 6 * 3600.0


def test_without_a_key_it_doubles_per_failure_up_to_the_cap() -> None:
    assert [backoff(5, n, 1800) for n in range(6)] == [5, 5, 10, 20, 40, 80]
    assert backoff(5, 10_000, 1800) == 1800


def test_a_key_stretches_repeated_failures_by_less_than_a_tenth_the_same_way_each_time() -> None:
    assert backoff(5, 1, 1800, key="row 1") == 5  # the first retry keeps its promised time
    for failures in range(2, 7):  # below the cap (600 · 2^5 · 1.1 < 6 h)
        plain = backoff(600, failures, CAP)
        keyed = [backoff(600, failures, CAP, key=f"feed-{i}") for i in range(50)]
        assert keyed == [backoff(600, failures, CAP, key=f"feed-{i}") for i in range(50)]
        assert all(plain <= d < plain * (1 + JITTER) for d in keyed)
        assert len({round(d) for d in keyed}) > 10  # feeds that failed together drift apart


def test_a_key_never_passes_the_cap() -> None:
    assert all(backoff(600, 9, CAP, key=f"feed-{i}") == CAP for i in range(20))
    assert backoff(86400, 3, CAP, key="daily") == 86400  # never faster than a long fixed interval


def test_next_poll_jitters_error_backoff_by_the_feed_key() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def delay(key: str | None) -> float:
        when = next_poll(
            now,
            interval=600,
            min_interval=60,
            max_interval=3600,
            default_interval=600,
            result_max_age=None,
            ttl=None,
            retry_after=None,
            error_count=3,
            max_backoff=CAP,
            item_times=(),
            key=key,
        )
        return (when - now).total_seconds()

    assert delay(None) == 2400
    assert 2400 < delay("Interfax") < 2400 * (1 + JITTER) and delay("Interfax") == delay("Interfax")
