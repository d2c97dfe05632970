"""`monitor run`: the long-running daemon on APScheduler 3.x, in the foreground under systemd.

    main thread         signals (SIGHUP reload, SIGTERM/SIGINT stop), config file watcher,
                        systemd READY/WATCHDOG/STATUS/STOPPING
    scheduler (APS)     poll:<id>   one per enabled feed, interval trigger as a safety net; after each poll
                                    its next run is moved to PollReport.next_poll (adaptive schedule,
                                    Retry-After, backoff all live in feeds.schedule)
                        deliver     every 2 s, and kicked right after a poll that enqueued alerts
                        refit       every settings.refit_every
                        prune       hourly (settings.retention)
                        health      dead / recovered feeds -> admin channel
                        stats       outbox gauges, systemd STATUS=
    poll pool           settings.workers threads; at most PER_HOST polls per host at once. A poll job only
                        queues its feed, so a slow host never holds a scheduler or pool thread waiting.

Every job runs inside `_guard`, the one place that catches `Exception`: it logs the traceback and the
daemon carries on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Protocol

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .. import config as cfg
from ..app import open_app
from ..errors import MonitorError, NotifyError
from ..feeds.concurrency import PER_HOST, HostLimiter, host_of
from ..feeds.schedule import jitter
from ..models import FeedState, PollReport
from ..ports import Clock, Notifier, Store, SystemClock
from .health import dead_feed_transitions, notice, usual_gap
from .logs import remember_secrets, secrets_of
from .metrics import Metrics
from .reload import ConfigWatcher
from .systemd import SdNotifier

log = logging.getLogger(__name__)

DELIVER_EVERY = 2.0
PRUNE_EVERY = 3600.0
STATS_EVERY = 15.0
HEALTH_EVERY = 300.0
STOP_GRACE = 5.0  # seconds in-flight work may take after SIGTERM (the unit's TimeoutStopSec is 20)
STARTUP_SPREAD = 30.0  # first polls after a start are spread over up to this many seconds
NEW_FEED_SPREAD = 1.0  # a feed added by a reload is polled within this


# --- what the daemon needs from the App -------------------------------------------------------------


class Poller(Protocol):
    def poll(self, feed: cfg.Feed) -> PollReport: ...


class DeliveryReport(Protocol):
    @property
    def sent(self) -> int: ...

    @property
    def failed(self) -> int: ...


class Delivering(Protocol):
    def deliver_due(self) -> DeliveryReport: ...


class AppLike(Protocol):
    """The part of monitor.app.App the daemon uses (tests pass a fake)."""

    @property
    def config(self) -> cfg.Config: ...

    @property
    def store(self) -> Store: ...

    @property
    def pipeline(self) -> Poller: ...

    @property
    def deliverer(self) -> Delivering: ...

    @property
    def notifiers(self) -> Mapping[str, Notifier]: ...

    @property
    def delivering_pid(self) -> str: ...

    def claim_delivery(self) -> bool: ...
    def recover(self) -> int: ...
    def reconfigure(self, config: cfg.Config) -> None: ...
    def refit(self) -> None: ...
    def prune(self) -> int: ...
    def close(self) -> None: ...


class AppFactory(Protocol):
    def __call__(self, config: cfg.Config, *, clock: Clock | None = None) -> AppLike: ...


Loader = Callable[[str], cfg.Config]


# --- scheduling decisions ----------------------------------------------------------------------------


def poll_job_id(feed: cfg.Feed) -> str:
    """A stable job id: the same feed (name and URL) keeps its job across reloads and restarts."""
    return "poll:" + hashlib.sha1(f"{feed.name}\n{feed.url}".encode()).hexdigest()[:12]


def fallback_interval(feed: cfg.Feed, settings: cfg.Settings) -> float:
    """The poll job's own interval: only used when a poll did not say when to come back."""
    return feed.interval or feed.max_interval or max(settings.default_interval, feed.min_interval or 0.0)


# --- the daemon ----------------------------------------------------------------------------------------


class Daemon:
    """Polls, delivers and reloads until SIGTERM/SIGINT; `run()` returns the exit status."""

    def __init__(
        self,
        config_path: str,
        *,
        environ: Mapping[str, str] | None = None,
        app_factory: AppFactory = open_app,
        loader: Loader = cfg.load,
        clock: Clock | None = None,
        per_host: int = PER_HOST,
        stop_grace: float = STOP_GRACE,
        watch_interval: float = 1.0,
        debounce: float = 1.0,
        startup_spread: float = STARTUP_SPREAD,
        hard_exit: bool = True,
    ) -> None:
        self.config_path = config_path
        self._factory = app_factory
        self._loader = loader
        self._clock = clock or SystemClock()
        self._per_host = per_host
        self._stop_grace = stop_grace
        self._watch_interval = watch_interval
        self._debounce = debounce
        self._startup_spread = startup_spread
        self._hard_exit = hard_exit
        self._sd = SdNotifier.from_environ(environ or {})
        self.metrics = Metrics()
        self._lock = threading.RLock()
        self._feeds: dict[str, cfg.Feed] = {}
        self._busy = threading.Condition()
        self._jobs_running = 0
        self._stopping = False
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._deliver_again = threading.Event()
        self._delivering = False
        self._dead: dict[str, bool] = {}  # dead status this process last reported, per feed
        self._started = self._clock.now()
        self._app: AppLike | None = None
        self._config: cfg.Config | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._limiter: HostLimiter | None = None
        self.ready = threading.Event()  # set once the first reconcile is done (tests wait on it)
        self.abandoned = 0  # in-flight jobs still running when the stop grace ran out

    # --- public control (signals call these too) ---

    @property
    def app(self) -> AppLike:
        if self._app is None:
            raise RuntimeError("the daemon is not running")
        return self._app

    @property
    def config(self) -> cfg.Config:
        if self._config is None:
            raise RuntimeError("the daemon is not running")
        return self._config

    def jobs(self) -> dict[str, tuple[float, datetime | None]]:
        """Scheduled jobs by id: (interval in seconds, next run). For `monitor status`-like views and tests."""
        if self._scheduler is None:
            return {}
        return {
            job.id: (job.trigger.interval.total_seconds(), job.next_run_time)
            for job in self._scheduler.get_jobs()
            if isinstance(job.trigger, IntervalTrigger)
        }

    def stop(self) -> None:
        """Ask the main loop to shut down (thread-safe, signal-safe)."""
        self._stop.set()
        self._wake()

    def request_reload(self) -> None:
        """Ask the main loop to re-read the config file (thread-safe, signal-safe)."""
        self._reload_requested.set()
        self._wake()

    def _wake(self) -> None:
        # OSError: the buffer is full (it is awake anyway) or the socket is closed (stopped)
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    # --- lifecycle ---

    def run(self) -> int:
        """Start, loop until stopped, shut down; 0 after a clean stop. Raise ConfigError if the file is bad."""
        watcher = ConfigWatcher(self.config_path, debounce=self._debounce)  # before reading: miss no edit
        config = self._loader(self.config_path)
        remember_secrets(secrets_of(config))
        self._config = config
        app = self._factory(config, clock=self._clock)
        if not app.claim_delivery():  # a second daemon on one store would poll and deliver everything twice
            app.close()
            raise MonitorError(
                f"another monitor process (pid {app.delivering_pid}) is running on {config.data_dir}; "
                "stop it first"
            )
        app.recover()
        self._app = app
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        restore = self._install_signals()
        try:
            self._start(config)
            self._loop(watcher)
        finally:
            self._shutdown()
            restore()
        if self.abandoned and self._hard_exit:
            # concurrent.futures joins its worker threads at interpreter exit, which would wait out a
            # stuck fetch's read timeout; the outbox is consistent (one transaction per row), so leave now.
            log.warning("abandoning %d in-flight job(s) after %.0fs", self.abandoned, self._stop_grace)
            logging.shutdown()
            os._exit(0)
        return 0

    def _start(self, config: cfg.Config) -> None:
        settings = config.settings
        if settings.metrics:
            self.metrics.serve(settings.metrics)
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="poll")
        self._limiter = HostLimiter(self._pool, self._per_host)
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": {"type": "threadpool", "max_workers": 4}},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )
        self._scheduler.start()
        self._reconcile(config, startup=True)
        self.ready.set()
        self._sd.ready(self._status_line())
        log.info(
            "topic-monitor running: %d feeds, %d topics, %d channels (config %s)",
            len(self._feeds),
            len(config.topics),
            len(config.channels),
            self.config_path,
        )

    def _loop(self, watcher: ConfigWatcher) -> None:
        assert self._wake_r is not None
        wake = self._wake_r
        interval = self._sd.watchdog_interval
        tick = min(self._watch_interval, interval) if interval else self._watch_interval
        next_ping = 0.0
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._guard("reload", self.reload, "SIGHUP")
                watcher.accept()
            elif watcher.changed():
                self._guard("reload", self.reload, f"{self.config_path} changed")
            if interval and time.monotonic() >= next_ping and self._alive():
                self._sd.watchdog()
                next_ping = time.monotonic() + interval
            select.select([wake], [], [], tick)
            try:
                while wake.recv(512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass

    def _alive(self) -> bool:
        """What the watchdog vouches for: the scheduler thread is running."""
        return self._scheduler is not None and self._scheduler.running

    def _shutdown(self) -> None:
        self._stop.set()
        with self._busy:
            self._stopping = True  # from here on no job starts; the ones running are waited for below
        self._sd.stopping()
        log.info("stopping")
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        dropped = self._limiter.close() if self._limiter else 0
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + self._stop_grace
        with self._busy:
            self._busy.wait_for(lambda: self._jobs_running == 0, max(0.0, deadline - time.monotonic()))
            self.abandoned = self._jobs_running
        if dropped:
            log.info("dropped %d queued polls", dropped)
        self.metrics.close()
        if not self.abandoned and self._app is not None:
            self._app.close()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # tests drive stop() and request_reload() directly

        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stop.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self._reload_requested.set()

        old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        # Handlers only set flags; the wakeup fd makes the main loop's select() return at once.
        assert self._wake_w is not None
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

        def restore() -> None:
            signal.set_wakeup_fd(old_fd)
            for signum, handler in old.items():
                signal.signal(signum, handler)

        return restore

    # --- the guard ---

    def _guard(self, job: str, fn: Callable[..., object], *args: Any) -> None:
        """Run one job; log and count any exception, never let it out (the one `except Exception`)."""
        with self._busy:
            if self._stopping:  # queued in an executor before the stop: do not start it now
                return
            self._jobs_running += 1
        try:
            fn(*args)
        except Exception:
            log.exception("job %s failed; the daemon carries on", job)
            self.metrics.job_failed(job.split(":", 1)[0])
        finally:
            with self._busy:
                self._jobs_running -= 1
                self._busy.notify_all()

    def _add_job(self, job_id: str, fn: Callable[[], object], seconds: float, first: datetime, **kw: Any) -> None:
        """Add or replace a housekeeping job; an unchanged one keeps its next run."""
        assert self._scheduler is not None
        job = self._scheduler.get_job(job_id)
        if job is not None and job.trigger.interval == timedelta(seconds=seconds):
            return
        self._scheduler.add_job(
            self._guard,
            IntervalTrigger(seconds=seconds, timezone=UTC),
            args=[job_id, fn],
            id=job_id,
            name=job_id,
            next_run_time=first,
            replace_existing=True,
            **kw,
        )

    # --- reconcile and reload ---

    def reload(self, why: str = "reload") -> bool:
        """Re-read the config; apply it if valid, else keep the running one and tell the admin channel."""
        log.info("%s: reloading the config", why)
        try:
            config = self._loader(self.config_path)
            self.app.reconfigure(config)
        except MonitorError as exc:
            log.error("%s: config not applied, still running the previous one:\n%s", why, exc)
            self._sd.status(f"config reload failed: {str(exc).splitlines()[0]}")
            self._send_admin_later(f"⚠️ topic-monitor: config reload failed, still running the previous config.\n{exc}")
            return False
        remember_secrets(secrets_of(config))
        old = self.config
        self._config = config
        added, removed, changed = self._reconcile(config)
        for key in ("workers", "metrics", "database", "data_dir"):
            if getattr(old.settings, key) != getattr(config.settings, key):
                log.warning("settings.%s changed: takes effect after a restart", key)
        log.info(
            "config reloaded (%s): %d feeds (+%d, -%d, ~%d), %d topics, %d channels",
            why,
            len(self._feeds),
            added,
            removed,
            changed,
            len(config.topics),
            len(config.channels),
        )
        self._sd.status(self._status_line())
        return True

    def _reconcile(self, config: cfg.Config, *, startup: bool = False) -> tuple[int, int, int]:
        """Make the scheduler's jobs match the config: add, remove and modify by stable id."""
        assert self._scheduler is not None
        settings = config.settings
        now = self._clock.now()
        desired = {poll_job_id(feed): feed for feed in config.enabled_feeds}
        stored = {s.name: s for s in self.app.store.feeds()} if startup else {}
        with self._lock:
            old, self._feeds = self._feeds, desired
        removed = [job_id for job_id in old if job_id not in desired]
        for job_id in removed:
            self._remove_job(job_id)
        added = changed = 0
        for job_id, feed in desired.items():
            every = fallback_interval(feed, settings)
            trigger = IntervalTrigger(seconds=every, timezone=UTC)
            grace = int(max(60.0, every))
            job = self._scheduler.get_job(job_id)
            if job is None:
                added += 1
                self._scheduler.add_job(
                    self._fire_poll,
                    trigger,
                    args=[job_id],
                    id=job_id,
                    name=f"poll {feed.name}",
                    next_run_time=self._first_poll(feed, every, now, stored.get(feed.name), startup),
                    misfire_grace_time=grace,
                )
            elif old.get(job_id) != feed or job.trigger.interval != timedelta(seconds=every):
                changed += 1
                soonest = now + timedelta(seconds=every)
                nrt = job.next_run_time
                job.modify(
                    trigger=trigger,
                    next_run_time=min(nrt, soonest) if nrt else soonest,
                    misfire_grace_time=grace,
                )
        self._add_job("deliver", self._deliver, DELIVER_EVERY, now + timedelta(seconds=DELIVER_EVERY / 2))
        self._add_job("refit", self.app.refit, settings.refit_every, now + timedelta(seconds=settings.refit_every))
        self._add_job("prune", self._prune, PRUNE_EVERY, now + timedelta(minutes=5))
        health_every = min(HEALTH_EVERY, max(1.0, settings.dead_feed_after / 4))
        self._add_job("health", self.check_health, health_every, now + timedelta(seconds=health_every))
        self._add_job("stats", self._stats, STATS_EVERY, now + timedelta(seconds=1))
        self.metrics.feeds.set(len(desired))
        return added, len(removed), changed

    def _first_poll(
        self, feed: cfg.Feed, every: float, now: datetime, state: FeedState | None, startup: bool
    ) -> datetime:
        """When a feed's job first runs: its stored next poll after a restart, else soon, spread out."""
        stored = state.next_poll if startup and state is not None and state.url == feed.url else None
        if stored is not None and now < stored <= now + timedelta(seconds=every):
            return stored
        spread = min(self._startup_spread, every / 2) if startup else NEW_FEED_SPREAD
        return now + timedelta(seconds=jitter(feed.name, spread))

    def _remove_job(self, job_id: str) -> None:
        assert self._scheduler is not None
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job_id)

    # --- polling ---

    def _fire_poll(self, job_id: str) -> None:
        """The APScheduler job: hand the feed to the per-host-limited pool and return at once."""
        feed = self._feeds.get(job_id)
        if feed is None or self._limiter is None:
            return
        self._limiter.submit(job_id, host_of(feed.url), lambda: self._guard(job_id, self._poll, job_id))

    def _poll(self, job_id: str) -> None:
        feed = self._feeds.get(job_id)
        if feed is None or self._stop.is_set():
            return  # removed by a reload while queued, or stopping
        report = self.app.pipeline.poll(feed)
        self.metrics.record_poll(report)
        if report.new:  # errors are logged by the pipeline, with the retry time
            log.info("feed %s: %d new, %d alerts", feed.name, report.new, report.alerts)
        if report.alerts:
            self.kick_delivery()
        if report.next_poll is not None:
            self._reschedule(job_id, report.next_poll)

    def _reschedule(self, job_id: str, when: datetime) -> None:
        assert self._scheduler is not None
        when = max(when, self._clock.now() + timedelta(seconds=1))
        with contextlib.suppress(JobLookupError):  # removed by a reload meanwhile
            self._scheduler.modify_job(job_id, next_run_time=when)

    # --- delivery, refit, prune, stats ---

    def kick_delivery(self) -> None:
        """Deliver now rather than at the next 2-second tick (or once more, if a run is in progress)."""
        self._deliver_again.set()
        if self._delivering or self._scheduler is None:
            return
        with contextlib.suppress(JobLookupError):
            self._scheduler.modify_job("deliver", next_run_time=self._clock.now())

    def _deliver(self) -> None:
        self._delivering = True
        try:
            while not self._stop.is_set():
                self._deliver_again.clear()
                report = self.app.deliverer.deliver_due()
                self.metrics.record_delivery(report.sent, report.failed)
                if report.sent or report.failed:
                    log.info("delivered %d, failed %d", report.sent, report.failed)
                if not self._deliver_again.is_set():
                    break
        finally:
            self._delivering = False

    def _prune(self) -> None:
        removed = self.app.prune()
        if removed:
            log.info("retention: removed %d old items", removed)

    def _stats(self) -> None:
        self.metrics.set_outbox(self.app.store.outbox_counts())
        self._sd.status(self._status_line())

    def _status_line(self) -> str:
        counts = self.app.store.outbox_counts()
        return f"{len(self._feeds)} feeds; outbox {counts.get('pending', 0)} pending, {counts.get('failed', 0)} failed"

    # --- health ---

    def check_health(self) -> None:
        """Report feeds that died (failing or silent too long) and feeds that came back, once each way."""
        app, settings = self.app, self.config.settings
        now = self._clock.now()
        names = {feed.name: feed for feed in self._feeds.values()}
        states = [s for s in app.store.feeds() if s.name in names]
        seen = [replace(s, dead_reported=self._dead.get(s.name, s.dead_reported)) for s in states]
        gaps = {}
        for state in seen:
            gap = usual_gap(app.store.count_items(state.name), settings.retention)
            if gap is not None:
                gaps[state.name] = gap
        transitions = dead_feed_transitions(seen, now, settings.dead_feed_after, since=self._started, usual_gaps=gaps)
        for t in transitions:
            dead = t.kind == "dead"
            self._dead[t.feed] = dead
            current = app.store.get_feed(t.feed)
            if current is not None and current.dead_reported != dead:
                app.store.put_feed(replace(current, dead_reported=dead))
            text = notice(t, names[t.feed].url)
            log.warning("%s", text)
            self._send_admin(text)
        self.metrics.dead_feeds.set(sum(self._dead.values()))

    def _send_admin(self, text: str) -> None:
        """Send a plain notice to settings.admin_channel, if there is one."""
        name = self.config.settings.admin_channel
        notifier = self.app.notifiers.get(name) if name else None
        if notifier is None:
            return
        try:
            notifier.send_text(text)
        except NotifyError as exc:
            log.warning("admin channel %s: could not send a notice: %s", name, exc)

    def _send_admin_later(self, text: str) -> None:
        """The same, on a scheduler thread, so the main loop never waits on the network."""
        if self._scheduler is None or not self._scheduler.running:
            return
        self._scheduler.add_job(
            self._guard, args=["admin", self._send_admin, text], name="admin notice", misfire_grace_time=None
        )
