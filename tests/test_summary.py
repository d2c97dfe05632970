"""The daemon's summary line: feeds reachable / failing, new items in the last hour, alerts queued (issue 13)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.models import PollReport
from monitor.service.summary import EVERY, PollTally, summary_line
from tests.test_daemon import FEEDS_AB, Harness, wait_for, write_config

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_the_line_counts_reachable_failing_and_waiting_feeds() -> None:
    tally = PollTally(T0)
    tally.record(PollReport("Interfax", "ok", new=3), at(1))
    tally.record(PollReport("TASS", "error", error="HTTP 503"), at(1))
    tally.record(PollReport("RIA", "not_modified"), at(2))
    new = tally.new_since(at(2) - timedelta(hours=1))
    feeds = ["Interfax", "TASS", "RIA", "Kremlin"]
    line = summary_line(feeds, tally.last(), new, {"pending": 2, "failed": 1}, at(2), T0)
    assert line == ("summary: 2 of 4 feeds reachable, 1 failing (TASS), 1 not polled yet; 3 new items in the 2 min "
                    "since start-up; 2 alerts queued, 1 failed")  # fmt: skip


def test_twelve_unreachable_feeds_are_counted_not_listed() -> None:
    tally = PollTally(T0)
    names = [f"feed {n}" for n in range(12)]
    for name in names:
        tally.record(PollReport(name, "error", error="cannot connect"), at(1))
    line = summary_line(names, tally.last(), 0, {}, at(90), T0)
    assert line == ("summary: 0 of 12 feeds reachable, 12 failing (feed 0, feed 1, feed 2, feed 3, feed 4 and 7 more); "
                    "0 new items in the last hour; 0 alerts queued")  # fmt: skip


def test_a_feed_that_recovers_counts_as_reachable_and_old_items_drop_out() -> None:
    tally = PollTally(T0)
    tally.record(PollReport("a", "error"), at(0))
    tally.record(PollReport("a", "ok", new=5), at(10))
    tally.record(PollReport("a", "ok", new=2), at(75))
    assert tally.new_since(at(75) - timedelta(hours=1)) == 2
    assert summary_line(["a"], tally.last(), 2, {"pending": 1}, at(75), T0).startswith(
        "summary: 1 of 1 feeds reachable; 2 new items in the last hour; 1 alert queued"
    )


def test_the_line_is_due_after_start_up_then_hourly() -> None:
    tally = PollTally(T0)
    assert not tally.due(at(0.5), first_after=90)
    assert tally.due(at(1.5), first_after=90)
    assert not tally.due(at(30), first_after=90)
    assert tally.due(at(1.5) + timedelta(seconds=EVERY), first_after=90)
    assert not tally.due(at(1.5) + timedelta(seconds=EVERY + 60), first_after=90)


def test_the_daemon_logs_the_line_from_its_polls(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.service.daemon")
    write_config(tmp_path / "config.yaml", FEEDS_AB)
    h = Harness(tmp_path / "config.yaml").start()
    try:
        h.app.pipeline.raise_for.add("b")  # b's poll fails (the guard logs it): polled, but no report
        wait_for(lambda: {"a", "b"} <= set(h.app.pipeline.polls), what="both feeds polled")
        h.daemon._tally.started -= timedelta(hours=1)  # the start-up line is due
        h.daemon._stats()
    finally:
        h.stop()
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("summary:")]
    assert line.startswith("summary: 1 of 2 feeds reachable, 1 not polled yet; 0 new items in the last hour;")
