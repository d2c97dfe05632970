"""Which scheduler jobs the daemon should have: a pure plan from the config and the jobs it has now.

    plan_jobs(config, polled feeds, scheduled jobs, now) -> JobPlan(add, modify, remove, housekeeping)
    Scheduler.apply(plan, ...)                              service.scheduler, the only APScheduler code

A poll job's id is derived from its feed (Flexget's way), so a reload or a restart reconciles jobs instead
of duplicating them: new ids are added, missing ones removed, a feed whose settings changed keeps its job
and gets a new trigger. A poll job's interval is only a safety net; after each poll the daemon moves the
job's next run to PollReport.next_poll.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import config as cfg
from ..backoff import jitter
from ..delivery.feedback import LONG_POLL
from ..delivery.offers import OFFER_EVERY
from ..models import FeedState

DELIVER_EVERY = 2.0
PRUNE_EVERY = 3600.0
STATS_EVERY = 15.0
HEALTH_EVERY = 300.0
STARTUP_SPREAD = 30.0  # first polls after a start are spread over up to this many seconds
NEW_FEED_SPREAD = 1.0  # a feed added by a reload is polled within this
# Longer than one getUpdates long poll, or APScheduler would skip a run (max_instances=1) every time.
FEEDBACK_EVERY = LONG_POLL + 1.0
LABELS_EVERY = 5.0  # how soon labels written by another process (`monitor label`) reach the model
HOUSEKEEPING = ("deliver", "feedback", "labels", "nearmiss", "refit", "prune", "health", "stats")
LEASE_JOB = "lease"  # only with a shared (PostgreSQL) database: service.leases, added by the daemon itself
LEADER_CHORES = frozenset({"refit", "prune", "health", "nearmiss"})  # one replica does these: the leader


def feed_lease(job_id: str) -> str:
    """A feed's lease is named after its poll job (`poll:<id>`): stable across reloads and replicas."""
    return job_id


def duties(config: cfg.Config) -> list[str]:
    """The leases besides the feeds: each channel's delivery, Telegram's getUpdates loop, the leader's chores."""
    return [*(f"deliver:{name}" for name in config.channels), "feedback", "leader"]


def poll_job_id(feed: cfg.Feed) -> str:
    """A stable job id: the same feed (name and URL) keeps its job across reloads and restarts."""
    return "poll:" + hashlib.sha1(f"{feed.name}\n{feed.url}".encode()).hexdigest()[:12]


def job_kind(job_id: str) -> str:
    """The metrics label of a job: "poll" for every feed's job, the name of a housekeeping job, else "other"."""
    kind = job_id.split(":", 1)[0]
    return kind if kind in ("poll", LEASE_JOB) or kind in HOUSEKEEPING else "other"


def fallback_interval(feed: cfg.Feed, settings: cfg.Settings) -> float:
    """The poll job's own interval: only used when a poll did not say when to come back."""
    return feed.interval or feed.max_interval or max(settings.default_interval, feed.min_interval or 0.0)


def housekeeping_intervals(settings: cfg.Settings) -> dict[str, tuple[float, float]]:
    """Each housekeeping job's interval and the delay of its first run, in seconds."""
    health = min(HEALTH_EVERY, max(1.0, settings.dead_feed_after / 4))
    return {
        "deliver": (DELIVER_EVERY, DELIVER_EVERY / 2),
        "feedback": (FEEDBACK_EVERY, 1.0),
        "labels": (LABELS_EVERY, 1.0),
        "nearmiss": (OFFER_EVERY, 1.0),
        "refit": (settings.refit_every, settings.refit_every),
        "prune": (PRUNE_EVERY, 300.0),
        "health": (health, health),
        "stats": (STATS_EVERY, 1.0),
    }


@dataclass(frozen=True)
class Scheduled:
    """An interval job as the scheduler holds it now."""

    every: float  # seconds
    next_run: datetime | None  # None: paused


@dataclass(frozen=True)
class PollJob:
    """A poll job to add (first run at `next_run`) or to modify (its next run moved to `next_run`)."""

    id: str
    feed: cfg.Feed
    every: float
    next_run: datetime

    @property
    def grace(self) -> int:
        """Misfire grace: a run that starts late by less than its interval (and at least a minute) still runs."""
        return int(max(60.0, self.every))


@dataclass(frozen=True)
class Housekeeping:
    """A housekeeping job to add, or to replace because its interval changed."""

    id: str
    every: float
    first: datetime


@dataclass(frozen=True)
class JobPlan:
    feeds: Mapping[str, cfg.Feed]  # every feed to poll, by job id
    add: tuple[PollJob, ...] = ()
    modify: tuple[PollJob, ...] = ()
    remove: tuple[str, ...] = ()
    housekeeping: tuple[Housekeeping, ...] = ()


def plan_jobs(
    config: cfg.Config,
    polled: Mapping[str, cfg.Feed],
    scheduled: Mapping[str, Scheduled],
    now: datetime,
    *,
    startup: bool = False,
    stored: Mapping[str, FeedState] | None = None,
    startup_spread: float = STARTUP_SPREAD,
) -> JobPlan:
    """What to change so that the scheduler runs `config`.

    `polled` is the feeds the daemon polled until now, by job id; `scheduled` the scheduler's interval jobs,
    by id. At startup, `stored` holds the feeds' saved states by name: their next polls are kept.
    """
    settings = config.settings
    feeds = {poll_job_id(feed): feed for feed in config.enabled_feeds}
    add: list[PollJob] = []
    modify: list[PollJob] = []
    for job_id, feed in feeds.items():
        every = fallback_interval(feed, settings)
        job = scheduled.get(job_id)
        if job is None:
            state = (stored or {}).get(feed.name) if startup else None
            first = first_poll(feed, every, now, state, startup=startup, startup_spread=startup_spread)
            add.append(PollJob(job_id, feed, every, first))
        elif polled.get(job_id) != feed or not _same(job.every, every):
            soonest = now + timedelta(seconds=every)
            modify.append(PollJob(job_id, feed, every, min(job.next_run, soonest) if job.next_run else soonest))
    remove = tuple(job_id for job_id in polled if job_id not in feeds)
    chores = tuple(
        Housekeeping(job_id, every, now + timedelta(seconds=delay))
        for job_id, (every, delay) in housekeeping_intervals(settings).items()
        if job_id not in scheduled or not _same(scheduled[job_id].every, every)
    )
    return JobPlan(feeds, tuple(add), tuple(modify), remove, chores)


def first_poll(
    feed: cfg.Feed, every: float, now: datetime, state: FeedState | None, *, startup: bool, startup_spread: float
) -> datetime:
    """When a feed's job first runs: its stored next poll after a restart, else soon, spread out."""
    stored = state.next_poll if startup and state is not None and state.url == feed.url else None
    if stored is not None and now < stored <= now + timedelta(seconds=every):
        return stored
    spread = min(startup_spread, every / 2) if startup else NEW_FEED_SPREAD
    return now + timedelta(seconds=jitter(feed.name, spread))


def _same(a: float, b: float) -> bool:
    # APScheduler keeps intervals as timedeltas: equal to the microsecond is equal.
    return timedelta(seconds=a) == timedelta(seconds=b)
