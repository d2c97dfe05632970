"""The APScheduler layer on a real BackgroundScheduler: applying a plan, and counting dropped runs."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor import config as cfg
from monitor.service.jobs import Housekeeping, JobPlan, PollJob, poll_job_id
from monitor.service.logs import setup_logging
from monitor.service.metrics import Metrics
from monitor.service.scheduler import Scheduler
from tests.test_daemon import wait_for

FEED = cfg.Feed(name="a", url="http://one.test/a.xml", interval=60)


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    s = Scheduler(Metrics())
    s.start()
    yield s
    s.shutdown()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The daemon's logging set-up (INFO), writing to a string."""
    stream = io.StringIO()
    root = logging.getLogger()
    names = ("apscheduler", "apscheduler.scheduler", "urllib3")
    saved = (root.handlers[:], root.level, [logging.getLogger(name).level for name in names])
    setup_logging("text", "INFO", stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in zip(names, saved[2], strict=True):
        logging.getLogger(name).setLevel(level)


def counted(metrics: Metrics, name: str, job: str) -> float:
    value = metrics.registry.get_sample_value(f"topic_monitor_{name}_total", {"job": job})
    return value or 0.0


def test_apply_adds_modifies_and_removes(scheduler: Scheduler) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    job_id = poll_job_id(FEED)
    stats = Housekeeping("stats", 15, later)
    add = JobPlan({job_id: FEED}, add=(PollJob(job_id, FEED, 60, later),), housekeeping=(stats,))
    scheduler.apply(add, poll=lambda _: None, housekeeping=lambda _: None)
    assert {k: v.every for k, v in scheduler.jobs().items()} == {job_id: 60, "stats": 15}
    sooner = later - timedelta(minutes=30)
    modify = JobPlan({job_id: FEED}, modify=(PollJob(job_id, FEED, 120, sooner),))
    scheduler.apply(modify, poll=lambda _: None, housekeeping=lambda _: None)
    assert scheduler.jobs()[job_id].every == 120 and scheduler.jobs()[job_id].next_run == sooner
    scheduler.apply(JobPlan({}, remove=(job_id, "poll:gone")), poll=lambda _: None, housekeeping=lambda _: None)
    assert set(scheduler.jobs()) == {"stats"}


def test_a_missed_run_is_counted_and_logged(log_stream: io.StringIO) -> None:
    metrics = Metrics()
    scheduler = Scheduler(metrics)
    ran: list[str] = []
    # Due two minutes ago, with a minute of grace: APScheduler drops the run (EVENT_JOB_MISSED).
    late = Housekeeping("prune", 3600, datetime.now(UTC) - timedelta(minutes=2))
    scheduler.apply(JobPlan({}, housekeeping=(late,)), poll=ran.append, housekeeping=ran.append)
    scheduler.start()
    try:
        wait_for(lambda: counted(metrics, "jobs_missed", "prune") == 1, what="the missed run counted")
    finally:
        scheduler.shutdown()
    assert ran == []
    assert 'Run time of job "prune' in log_stream.getvalue() and "was missed by" in log_stream.getvalue()
    assert "Running job" not in log_stream.getvalue()  # APScheduler's per-run INFO lines stay out


def test_a_run_skipped_while_the_previous_one_runs_is_counted(log_stream: io.StringIO) -> None:
    metrics = Metrics()
    scheduler = Scheduler(metrics)
    scheduler.start()
    started, release = threading.Event(), threading.Event()

    def deliver(job_id: str) -> None:
        started.set()
        release.wait(5)

    now = datetime.now(UTC)
    scheduler.apply(JobPlan({}, housekeeping=(Housekeeping("deliver", 3600, now),)), lambda _: None, deliver)
    try:
        wait_for(started.is_set, what="the first delivery pass running")
        scheduler.run_at("deliver", datetime.now(UTC))  # the next tick, while the pass still runs
        wait_for(lambda: counted(metrics, "jobs_skipped", "deliver") == 1, what="the skipped run counted")
    finally:
        release.set()
        scheduler.shutdown()
    # Counted, not logged: the 2-second delivery tick finds every long (paced) pass still running.
    assert "maximum number of running instances" not in log_stream.getvalue()
