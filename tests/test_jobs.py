"""plan_jobs: desired feeds vs the scheduler's jobs -> add / modify / remove, as a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from monitor import config as cfg
from monitor.models import FeedState
from monitor.service.jobs import (
    HOUSEKEEPING,
    NEW_FEED_SPREAD,
    JobPlan,
    Scheduled,
    fallback_interval,
    housekeeping_intervals,
    job_kind,
    plan_jobs,
    poll_job_id,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A = cfg.Feed(name="a", url="http://one.test/a.xml", interval=60)
B = cfg.Feed(name="b", url="http://one.test/b.xml", interval=60)
A_SLOW = cfg.Feed(name="a", url="http://one.test/a.xml", interval=120)
A_HEADERS = cfg.Feed(name="a", url="http://one.test/a.xml", interval=60, headers={"Cookie": "x=1"})
A_MOVED = cfg.Feed(name="a", url="http://two.test/a.xml", interval=60)
B_OFF = cfg.Feed(name="b", url="http://one.test/b.xml", interval=60, enabled=False)


def config(*feeds: cfg.Feed, **settings: float) -> cfg.Config:
    return cfg.Config(feeds=list(feeds), settings=cfg.Settings(**settings))  # type: ignore[arg-type]


def running(*feeds: cfg.Feed, settings: cfg.Settings | None = None) -> tuple[dict[str, cfg.Feed], dict[str, Scheduled]]:
    """What a daemon that applied `feeds` has: its polled feeds and the scheduler's jobs (next runs in 30 s)."""
    settings = settings or cfg.Settings()
    polled = {poll_job_id(f): f for f in feeds}
    jobs = {i: Scheduled(fallback_interval(f, settings), NOW + timedelta(seconds=30)) for i, f in polled.items()}
    for job_id, (every, _) in housekeeping_intervals(settings).items():
        jobs[job_id] = Scheduled(every, NOW + timedelta(seconds=1))
    return polled, jobs


@dataclass(frozen=True)
class Case:
    before: tuple[cfg.Feed, ...]
    after: tuple[cfg.Feed, ...]
    add: tuple[cfg.Feed, ...] = ()
    modify: tuple[cfg.Feed, ...] = ()
    remove: tuple[cfg.Feed, ...] = ()
    settings: dict[str, float] = field(default_factory=dict)
    housekeeping: tuple[str, ...] = ()


CASES = {
    "unchanged: nothing to do": Case((A, B), (A, B)),
    "a feed added": Case((A,), (A, B), add=(B,)),
    "a feed removed": Case((A, B), (A,), remove=(B,)),
    "a feed disabled is removed": Case((A, B), (A, B_OFF), remove=(B,)),
    "interval changed: same job, new trigger": Case((A, B), (A_SLOW, B), modify=(A_SLOW,)),
    "other settings changed: same job": Case((A,), (A_HEADERS,), modify=(A_HEADERS,)),
    "URL changed: a new feed": Case((A,), (A_MOVED,), add=(A_MOVED,), remove=(A,)),
    "refit_every changed: refit replaced": Case((A,), (A,), settings={"refit_every": 3600}, housekeeping=("refit",)),
    "dead_feed_after 1m: health at 15s": Case((A,), (A,), settings={"dead_feed_after": 60}, housekeeping=("health",)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_reload_plan(case: Case) -> None:
    polled, jobs = running(*case.before)
    plan = plan_jobs(config(*case.after, **case.settings), polled, jobs, NOW)
    assert [j.id for j in plan.add] == [poll_job_id(f) for f in case.add]
    assert [j.id for j in plan.modify] == [poll_job_id(f) for f in case.modify]
    assert list(plan.remove) == [poll_job_id(f) for f in case.remove]
    assert [h.id for h in plan.housekeeping] == list(case.housekeeping)
    assert dict(plan.feeds) == {poll_job_id(f): f for f in case.after if f.enabled}
    for job in plan.add:  # a feed added by a reload is polled within a second
        assert NOW <= job.next_run < NOW + timedelta(seconds=NEW_FEED_SPREAD)


def test_a_modified_job_keeps_an_earlier_next_run_and_never_waits_past_its_new_interval() -> None:
    polled, jobs = running(A)
    job_id = poll_job_id(A)
    early = plan_jobs(config(A_SLOW), polled, jobs, NOW)
    assert early.modify[0].next_run == NOW + timedelta(seconds=30) and early.modify[0].every == 120
    jobs[job_id] = Scheduled(60, NOW + timedelta(hours=5))  # e.g. a Retry-After
    late = plan_jobs(config(A_SLOW), polled, jobs, NOW)
    assert late.modify[0].next_run == NOW + timedelta(seconds=120)


def test_startup_plans_every_enabled_feed_and_every_housekeeping_job() -> None:
    plan = plan_jobs(config(A, B, B_OFF.model_copy(update={"name": "c"})), {}, {}, NOW, startup=True, stored={})
    assert isinstance(plan, JobPlan) and not plan.modify and not plan.remove
    assert [j.feed.name for j in plan.add] == ["a", "b"]
    assert all(NOW <= j.next_run < NOW + timedelta(seconds=30) for j in plan.add)  # spread over half the interval
    assert [j.grace for j in plan.add] == [60, 60]
    assert {h.id for h in plan.housekeeping} == set(HOUSEKEEPING)
    firsts = {h.id: h.first - NOW for h in plan.housekeeping}
    assert firsts["deliver"] == timedelta(seconds=1) and firsts["prune"] == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("stored", "kept"),
    [
        (FeedState(name="a", url=A.url, next_poll=NOW + timedelta(seconds=50)), True),  # ahead, within the interval
        (FeedState(name="a", url=A.url, next_poll=NOW - timedelta(seconds=5)), False),  # overdue: poll soon
        (FeedState(name="a", url=A.url, next_poll=NOW + timedelta(hours=2)), False),  # beyond the interval
        (FeedState(name="a", url="http://old.test/a", next_poll=NOW + timedelta(seconds=50)), False),  # other URL
    ],
)
def test_a_restart_keeps_a_stored_next_poll_when_it_is_still_ahead(stored: FeedState, kept: bool) -> None:
    [job] = plan_jobs(config(A), {}, {}, NOW, startup=True, stored={"a": stored}, startup_spread=10).add
    if kept:
        assert job.next_run == stored.next_poll
    else:
        assert NOW <= job.next_run < NOW + timedelta(seconds=10)


def test_job_kinds_label_metrics_without_unbounded_values() -> None:
    assert job_kind(poll_job_id(A)) == "poll"
    assert [job_kind(h) for h in HOUSEKEEPING] == list(HOUSEKEEPING)
    assert job_kind("3f2a9c0d4e5b4a1f8c7d6e5f4a3b2c1d") == "other"  # a one-off job's random id
