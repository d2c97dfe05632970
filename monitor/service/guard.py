"""The per-job guard: the one place in the code base that catches `Exception`.

Every daemon job runs through `JobGuard.run`: whatever a job raises is logged with its traceback and
counted (topic_monitor_job_errors_total{job}), and the daemon carries on. The guard also knows how many
jobs are running, so that a stop can refuse new ones and wait a grace period for the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .metrics import Metrics

log = logging.getLogger(__name__)


class JobGuard:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._busy = threading.Condition()
        self._running = 0
        self._stopping = False

    def run(self, job: str, fn: Callable[..., object], *args: Any) -> None:
        """Run one job; log and count any exception, never let it out."""
        with self._busy:
            if self._stopping:  # queued in an executor before the stop: do not start it now
                return
            self._running += 1
        try:
            fn(*args)
        except Exception:
            log.exception("job %s failed; the daemon carries on", job)
            self._metrics.job_failed(job.split(":", 1)[0])
        finally:
            with self._busy:
                self._running -= 1
                self._busy.notify_all()

    def stop(self) -> None:
        """From now on no job starts."""
        with self._busy:
            self._stopping = True

    def wait(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the running jobs; how many are still running then."""
        deadline = time.monotonic() + timeout
        with self._busy:
            self._busy.wait_for(lambda: self._running == 0, max(0.0, deadline - time.monotonic()))
            return self._running
