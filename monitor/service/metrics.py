"""Optional Prometheus endpoint (`settings.metrics: 127.0.0.1:9464`).

Metrics live in a private CollectorRegistry, so tests (and several daemons in one process) never collide
in prometheus-client's global default registry. Names follow the Prometheus naming guide: a
`topic_monitor_` prefix, `_total` on counters, base units (seconds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from ..errors import MonitorError
from ..models import PollReport

log = logging.getLogger(__name__)


class Metrics:
    """The daemon's counters; every method is cheap and thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter("topic_monitor_polls", "Feed polls by outcome.", ["status"], registry=r)
        self.fetch_errors = Counter("topic_monitor_fetch_errors", "Polls that ended in an error.", registry=r)
        self.items = Counter("topic_monitor_items", "New items stored.", registry=r)
        self.matches = Counter("topic_monitor_matches", "Items that matched a topic.", ["topic"], registry=r)
        self.alerts_enqueued = Counter("topic_monitor_alerts_enqueued", "Alerts written to the outbox.", registry=r)
        self.alerts_sent = Counter("topic_monitor_alerts_sent", "Outbox rows delivered.", registry=r)
        self.alerts_failed = Counter(
            "topic_monitor_alerts_failed", "Outbox delivery attempts that failed (retried or given up).", registry=r
        )
        self.delivery_failures = Counter(
            "topic_monitor_delivery_failures", "Failed delivery attempts per channel.", ["channel"], registry=r
        )
        self.store_errors = Counter(
            "topic_monitor_store_errors", "Jobs stopped by a database error (disk full, locked).", registry=r
        )
        self.outbox = Gauge("topic_monitor_outbox", "Outbox rows by status.", ["status"], registry=r)
        self.feeds = Gauge("topic_monitor_feeds", "Feeds being polled.", registry=r)
        self.dead_feeds = Gauge("topic_monitor_dead_feeds", "Feeds reported dead.", registry=r)
        self.job_errors = Counter("topic_monitor_job_errors", "Daemon jobs that raised.", ["job"], registry=r)
        # APScheduler's EVENT_JOB_MISSED and EVENT_JOB_MAX_INSTANCES (service.scheduler counts them)
        self.jobs_missed = Counter(
            "topic_monitor_jobs_missed", "Scheduled runs dropped: they would start too late.", ["job"], registry=r
        )
        self.jobs_skipped = Counter(
            "topic_monitor_jobs_skipped", "Scheduled runs skipped: the last run was still going.", ["job"], registry=r
        )
        self.poll_duration = Histogram(
            "topic_monitor_poll_duration_seconds",
            "Wall time of one poll: fetch, parse, store, classify, enqueue.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def record_poll(self, report: PollReport) -> None:
        self.polls.labels(report.status).inc()
        if report.status == "error":
            self.fetch_errors.inc()
        self.items.inc(report.new)
        for matches in report.matches.values():
            for match in matches:
                self.matches.labels(match.topic).inc()
        self.alerts_enqueued.inc(report.alerts)
        self.poll_duration.observe(report.elapsed)

    def record_delivery(self, sent: int, failed: int, by_channel: Mapping[str, int] | None = None) -> None:
        """`failed`: attempts that failed, retried or given up; `by_channel`: the same per channel."""
        self.alerts_sent.inc(sent)
        self.alerts_failed.inc(failed)
        for channel, count in (by_channel or {}).items():
            self.delivery_failures.labels(channel).inc(count)

    def set_outbox(self, counts: Mapping[str, int]) -> None:
        for status in ("pending", "failed", "sent", *counts):
            self.outbox.labels(status).set(counts.get(status, 0))

    def job_failed(self, job: str) -> None:
        self.job_errors.labels(job).inc()

    def store_failed(self) -> None:
        self.store_errors.inc()

    def job_missed(self, job: str) -> None:
        self.jobs_missed.labels(job).inc()

    def job_skipped(self, job: str) -> None:
        self.jobs_skipped.labels(job).inc()

    def text(self) -> bytes:
        """The exposition format, as the endpoint serves it."""
        return bytes(generate_latest(self.registry))

    def serve(self, hostport: str) -> tuple[str, int]:
        """Start the HTTP endpoint on a background thread; return the bound (host, port)."""
        host, _, port = hostport.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            server, thread = start_http_server(int(port), addr=host, registry=self.registry)
        except OSError as exc:  # address in use, or not an address of this host
            raise MonitorError(f"cannot serve metrics on {hostport}: {exc}") from exc
        self._server, self._thread = server, thread
        bound = server.server_address
        log.info("metrics on http://%s:%s/metrics", bound[0], bound[1])
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
