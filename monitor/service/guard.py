"""The per-job guard: the one place in the code base that catches `Exception`.

Every daemon job runs through `JobGuard.run`: whatever a job raises is counted
(topic_monitor_job_errors_total{job}) and logged, and the daemon carries on. A bug is logged with its
traceback. A database failure (StoreError: disk full, database locked past its busy timeout) makes every
job that writes fail the same way, polls every second or so: it gets one clear line per cause, again
every 10 minutes while it lasts with the count of repeats, its tracebacks only at DEBUG, and one line
when a write works again (`store_works`, which the daemon calls after each stored poll).

The guard also knows how many jobs are running, so that a stop can refuse new ones and wait a grace
period for the rest; a job run with `wait_on_stop=False` (the Telegram long poll: cutting it loses
nothing) is not waited for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import StoreError
from ..repeats import Recurring

log = logging.getLogger(__name__)

RETELL_EVERY = 600.0  # seconds between two lines about the same lasting database problem


class Counters(Protocol):
    """Where the guard counts failed jobs: service.metrics.Metrics, or the delivery process's report pipe."""

    def job_failed(self, job: str) -> None: ...
    def store_failed(self) -> None: ...


class JobGuard:
    def __init__(self, metrics: Counters, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._busy = threading.Condition()
        self._running = 0  # jobs a stop waits for
        self._cuttable = 0  # jobs it does not wait for
        self._stopping = False
        self._store = Recurring(RETELL_EVERY, monotonic=monotonic)

    @property
    def running(self) -> int:
        """Jobs running now, those a stop does not wait for included."""
        with self._busy:
            return self._running + self._cuttable

    def run(self, job: str, fn: Callable[..., object], *args: Any, wait_on_stop: bool = True) -> None:
        """Run one job; log and count any exception, never let it out."""
        with self._busy:
            if self._stopping:  # queued in an executor before the stop: do not start it now
                return
            if wait_on_stop:
                self._running += 1
            else:
                self._cuttable += 1
        try:
            fn(*args)
        except StoreError as exc:
            self._metrics.job_failed(job.split(":", 1)[0])
            self._metrics.store_failed()
            self._store_failed(job, exc)
        except Exception:
            log.exception("job %s failed; the daemon carries on", job)
            self._metrics.job_failed(job.split(":", 1)[0])
        finally:
            with self._busy:
                if wait_on_stop:
                    self._running -= 1
                else:
                    self._cuttable -= 1
                self._busy.notify_all()

    def store_works(self) -> bool:
        """A job has just written to the database. If writes had been failing, say once that they work
        again; True then (the daemon runs its recovery pass)."""
        failures = self._store.over()
        if failures:
            log.warning("database: writes work again, after %d failed job(s)", failures)
        return failures > 0

    def stop(self) -> None:
        """From now on no job starts."""
        with self._busy:
            self._stopping = True

    def wait(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the running jobs a stop waits for; how many are still running then."""
        deadline = time.monotonic() + timeout
        with self._busy:
            self._busy.wait_for(lambda: self._running == 0, max(0.0, deadline - time.monotonic()))
            return self._running

    def _store_failed(self, job: str, exc: StoreError) -> None:
        log.debug("job %s: %s", job, exc, exc_info=True)
        told = self._store.seen(exc.reason)
        if told == 1:
            log.error("database: %s (job %s); the same failure again is counted, not logged", exc, job)
        elif told is not None:
            log.error("database: still failing, %d times in the last %.0f min: %s", told, RETELL_EVERY / 60, exc)
