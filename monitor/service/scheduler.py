"""The daemon's APScheduler 3.x layer, and the only module that imports APScheduler.

It applies a JobPlan (service.jobs) to a BackgroundScheduler, moves a job's next run, and counts the runs
APScheduler drops instead of running (https://apscheduler.readthedocs.io/en/3.x/modules/events.html):

    EVENT_JOB_MISSED          a run that would start later than its misfire grace time (the scheduler was
                              starved or the machine slept): topic_monitor_jobs_missed_total{job}
    EVENT_JOB_MAX_INSTANCES   a run skipped because the job's previous run is still going (max_instances=1;
                              the 2-second delivery tick during a long paced delivery pass):
                              topic_monitor_jobs_skipped_total{job}
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .jobs import JobPlan, Scheduled, job_kind
from .metrics import Metrics

JOB_THREADS = 4  # scheduler threads; a poll job only queues its feed for the poll pool, so few are needed


class Scheduler:
    """A BackgroundScheduler in UTC whose jobs coalesce, never overlap and have a misfire grace time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._aps = BackgroundScheduler(
            timezone=UTC,
            executors={"default": {"type": "threadpool", "max_workers": JOB_THREADS}},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )
        self._aps.add_listener(self._dropped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def _dropped(self, event: JobEvent) -> None:
        kind = job_kind(event.job_id)
        if event.code == EVENT_JOB_MISSED:
            self._metrics.job_missed(kind)
        else:
            self._metrics.job_skipped(kind)

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    def start(self) -> None:
        self._aps.start()

    def shutdown(self) -> None:
        """Stop firing jobs; runs in progress are not waited for (the daemon does that, with a grace)."""
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def jobs(self) -> dict[str, Scheduled]:
        """The interval jobs by id."""
        return {
            job.id: Scheduled(job.trigger.interval.total_seconds(), job.next_run_time)
            for job in self._aps.get_jobs()
            if isinstance(job.trigger, IntervalTrigger)
        }

    def apply(
        self,
        plan: JobPlan,
        poll: Callable[[str], object],
        housekeeping: Callable[[str], object],
    ) -> None:
        """Remove, add and modify jobs as planned; each job calls `poll(id)` or `housekeeping(id)`."""
        for job_id in plan.remove:
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(job_id)
        for job in plan.add:
            self._aps.add_job(
                poll,
                self._every(job.every),
                args=[job.id],
                id=job.id,
                name=f"poll {job.feed.name}",
                next_run_time=job.next_run,
                misfire_grace_time=job.grace,
            )
        for job in plan.modify:
            with contextlib.suppress(JobLookupError):  # not in the plan's snapshot any more: nothing to change
                self._aps.modify_job(
                    job.id, trigger=self._every(job.every), next_run_time=job.next_run, misfire_grace_time=job.grace
                )
        for chore in plan.housekeeping:
            self._aps.add_job(
                housekeeping,
                self._every(chore.every),
                args=[chore.id],
                id=chore.id,
                name=chore.id,
                next_run_time=chore.first,
                replace_existing=True,
            )

    def run_at(self, job_id: str, when: datetime) -> None:
        """Move a job's next run; a job that is gone (removed by a reload meanwhile) is left alone."""
        with contextlib.suppress(JobLookupError):
            self._aps.modify_job(job_id, next_run_time=when)

    def run_soon(self, fn: Callable[..., object], *args: Any, name: str) -> None:
        """Run `fn(*args)` once, at once, on a scheduler thread, however late that is."""
        if self._aps.running:
            self._aps.add_job(fn, args=list(args), name=name, misfire_grace_time=None)

    @staticmethod
    def _every(seconds: float) -> IntervalTrigger:
        return IntervalTrigger(seconds=seconds, timezone=UTC)
