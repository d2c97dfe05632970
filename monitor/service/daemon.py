"""`monitor run`: the long-running daemon on APScheduler 3.x, in the foreground under systemd.

Processes:

    monitor run             the daemon: everything below but delivery; holds the delivery lock (delivery/lock.py)
    ├─ monitor-deliver      the outbox's delivery passes (service.deliverer): kicked through a pipe after a poll
    │                       that enqueued alerts, else every 2 s; reload, leases, stop sent the same way; its
    │                       passes' counts come back for the metrics. Restarted if it dies, dies with the daemon.
    ├─ parser workers       feed parsing (feeds.pool), one per core, started on the first poll
    └─ model fitting        while a model is loaded, built or refitted (match.worker), then it exits

Delivery has a process of its own because beside the poll threads it waited for the GIL about eight times a
message (docs/daemon.md, "A burst"). An embedded Daemon (tests with a fake App) delivers in its `deliver` job
instead: `delivery_process=False`, the default; `monitor run` passes True.

Threads of the daemon:

    main thread         signals (SIGHUP reload, SIGTERM/SIGINT stop), config file watcher,
                        systemd READY/WATCHDOG/STATUS/STOPPING, restarting a delivery process that died
    scheduler (APS)     poll:<id>   one per enabled feed, interval trigger as a safety net; after each poll
                                    its next run is moved to PollReport.next_poll (adaptive schedule,
                                    Retry-After, backoff all live in feeds.schedule)
                        deliver     (in-thread delivery only) every 2 s, and kicked right after a poll that
                                    enqueued alerts; a full pass (100 rows) is followed by the next at once
                        feedback    Telegram button presses: one getUpdates long poll (3 s) per run; a stop
                                    does not wait for it (Telegram sends unconfirmed presses again)
                        labels      every 5 s: labels written since (by any process)? learn from them
                        nearmiss    every minute: the day's near-miss message, once its time has come
                        refit       every settings.refit_every
                        prune       hourly (settings.retention)
                        health      dead / recovered feeds -> admin channel
                        stats       outbox gauges, systemd STATUS=
                        lease       with a shared (PostgreSQL) database only: heartbeat, renew, rebalance
                                    (service.leases); a poll, a channel's delivery, getUpdates and the
                                    leader's chores (refit, prune, health, nearmiss) run only under their lease
    poll pool           settings.workers threads; at most PER_HOST polls per host at once. A poll job only
                        queues its feed, so a slow host never holds a scheduler or pool thread waiting.

Every job runs inside the guard (service.guard), the one place that catches `Exception`: it logs the
traceback (a database failure: one line per cause) and the daemon carries on. After each poll that stored
its feed's state, writes work: items an earlier poll stored but could not match are matched then
(App.recover). Which jobs exist is planned in service.jobs and applied by service.scheduler, the only code
that speaks APScheduler.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import cast

from .. import config as cfg
from ..app import open_app
from ..errors import MonitorError, NotifyError, StoreError
from ..feeds.concurrency import PER_HOST, HostLimiter, host_of
from ..ports import Clock, SystemClock
from ..redact import remember_secrets, secrets_of
from .deliverer import DeliveryProcess, PassReport
from .guard import JobGuard
from .health import DeadFeedWatch
from .jobs import (
    LEADER_CHORES,
    LEASE_JOB,
    NEW_FEED_SPREAD,
    STARTUP_SPREAD,
    Housekeeping,
    JobPlan,
    duties,
    fallback_interval,
    feed_lease,
    first_poll,
    plan_jobs,
)
from .leases import LeaseChange, Leases, LeaseStore
from .logs import current_logging
from .metrics import Metrics
from .ports import AppFactory, AppLike, Loader
from .reload import MAX_DELAY, ConfigWatcher, ReloadNotices
from .scheduler import Scheduler
from .summary import WINDOW, PollTally, summary_line
from .systemd import SdNotifier
from .wakeup import Wakeup

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds in-flight work may take after SIGTERM (the unit's TimeoutStopSec is 20)
NOT_WAITED_AT_STOP = {"feedback"}  # a getUpdates long poll cut short loses no press: Telegram sends it again


def daemon_app(config: cfg.Config, *, clock: Clock | None = None) -> AppLike:
    """The daemon's App: its model loaded, built and refitted in a worker process (app.load_model says why)."""
    return open_app(config, clock=clock, fit_in_worker=True)


# --- the daemon ----------------------------------------------------------------------------------------


class Daemon:
    """Polls, delivers and reloads until SIGTERM/SIGINT; `run()` returns the exit status."""

    def __init__(
        self,
        config_path: str,
        *,
        environ: Mapping[str, str] | None = None,
        app_factory: AppFactory = daemon_app,
        loader: Loader = cfg.load,
        clock: Clock | None = None,
        per_host: int = PER_HOST,
        stop_grace: float = STOP_GRACE,
        watch_interval: float = 1.0,
        debounce: float = 1.0,
        max_delay: float = MAX_DELAY,
        startup_spread: float = STARTUP_SPREAD,
        hard_exit: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        delivery_process: bool = False,
    ) -> None:
        self.config_path = config_path
        self._factory = app_factory
        self._loader = loader
        self._clock = clock or SystemClock()
        self._per_host = per_host
        self._stop_grace = stop_grace
        self._watch_interval = watch_interval
        self._debounce = debounce
        self._max_delay = max_delay
        self._startup_spread = startup_spread
        self._hard_exit = hard_exit
        self._delivery_process = delivery_process  # `monitor run`: deliver in a child (service.deliverer)
        self._child: DeliveryProcess | None = None
        self._child_busy: frozenset[str] = frozenset()  # channels the child's pass delivers now
        self._sd = SdNotifier.from_environ(environ or {})
        self.metrics = Metrics()
        self._lock = threading.RLock()
        self._feeds: dict[str, cfg.Feed] = {}
        self._guard = JobGuard(self.metrics, monotonic=monotonic)
        self._notices = ReloadNotices(monotonic=monotonic)
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._wakeup: Wakeup | None = None
        self._deliver_again = threading.Event()
        self._delivering = False
        self._health = DeadFeedWatch(since=self._clock.now())
        self._tally = PollTally(self._clock.now())  # the summary line's figures (service.summary)
        self._app: AppLike | None = None
        self._leases: Leases | None = None  # a shared database: replicas split the work (service.leases)
        self._polling: set[str] = set()  # leases in use now (polls, a delivery pass): a rebalance keeps them
        self._config: cfg.Config | None = None
        self._scheduler: Scheduler | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._limiter: HostLimiter | None = None
        self._chores: dict[str, Callable[[], object]] = {
            "deliver": self._deliver,
            "refit": lambda: self.app.refit(),
            "feedback": lambda: self.app.poll_feedback(),
            "labels": self._relearn,
            "nearmiss": lambda: self.app.offer_near_misses(),
            "prune": self._prune,
            "health": self.check_health,
            "stats": self._stats,
            LEASE_JOB: self._lease_tick,
        }
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
        return {job_id: (job.every, job.next_run) for job_id, job in self._scheduler.jobs().items()}

    def stop(self) -> None:
        """Ask the main loop to shut down (thread-safe, signal-safe)."""
        self._stop.set()
        self._wake()

    def request_reload(self) -> None:
        """Ask the main loop to re-read the config file (thread-safe, signal-safe)."""
        self._reload_requested.set()
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.wake()

    # --- lifecycle ---

    def run(self) -> int:
        """Start, loop until stopped, shut down; 0 after a clean stop. Raise ConfigError if the file is bad."""
        # before reading: miss no edit
        watcher = ConfigWatcher(self.config_path, debounce=self._debounce, max_delay=self._max_delay)
        config = self._loader(self.config_path)
        remember_secrets(secrets_of(config))
        self._config = config
        app = self._factory(config, clock=self._clock)
        if not app.claim_delivery():  # a second daemon on one store would poll and deliver everything twice
            app.close()
            raise MonitorError(
                f"another monitor process (pid {app.delivering_pid}) is running on {config.data_dir}; stop it first"
            )
        app.recover()
        self._app = app
        if getattr(app.store, "shared", False):
            self._leases = Leases(cast(LeaseStore, app.store), config.settings.lease)
        self._wakeup = Wakeup()
        restore = self._wakeup.on_signals(
            {signal.SIGTERM: self._stop.set, signal.SIGINT: self._stop.set, signal.SIGHUP: self._reload_requested.set}
        )
        try:
            self._start(config)
            self._loop(watcher)
        finally:
            self._shutdown()
            restore()
        if self._hard_exit and (self.abandoned or self._guard.running):
            # concurrent.futures joins its worker threads at interpreter exit, which would wait out a
            # stuck fetch's read timeout or the getUpdates long poll; the outbox is consistent (one
            # transaction per row), so leave now.
            if self.abandoned:
                log.warning("abandoning %d in-flight job(s) after %.0fs", self.abandoned, self._stop_grace)
            logging.shutdown()
            os._exit(0)
        return 0

    def _start(self, config: cfg.Config) -> None:
        settings = config.settings
        if settings.metrics:
            self.metrics.serve(settings.metrics)
        if self._delivery_process:
            fmt, level = current_logging()
            self._child = DeliveryProcess(
                config, log_format=fmt, log_level=level, leased=self._leases is not None,
                on_pass=self._child_passed, on_busy=self._child_delivers, on_failure=self._child_failed,
            )  # fmt: skip
            self._child.start()  # from this thread, which lives as long as the daemon (its parent-death signal)
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="poll")
        self._limiter = HostLimiter(self._pool, self._per_host)
        self._scheduler = Scheduler(self.metrics)
        self._scheduler.start()
        self._reconcile(config, startup=True)
        if self._leases is not None:
            # before the first polls (spread over the first seconds): each feed's job runs only under its lease
            self._guard.run(LEASE_JOB, self._lease_tick, True)
            every = self._leases.every
            lease_job = Housekeeping(LEASE_JOB, every, self._clock.now() + timedelta(seconds=every))
            self._scheduler.apply(JobPlan({}, housekeeping=(lease_job,)), self._fire_poll, self._housekeeping)
            log.info(
                "replica %s: %d live replicas, %d leases (lease %.0fs)",
                self._leases.me, self._leases.live, len(self._leases.held()), self._leases.lease,
            )  # fmt: skip
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
        assert self._wakeup is not None
        interval = self._sd.watchdog_interval
        tick = min(self._watch_interval, interval) if interval else self._watch_interval
        next_ping = 0.0
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._guard.run("reload", self.reload, "SIGHUP")
                watcher.accept()
            elif watcher.changed():
                self._guard.run("reload", self.reload, f"{self.config_path} changed")
            if self._child is not None:
                self._child.check()  # a child that died is started again, from this thread
            if interval and time.monotonic() >= next_ping and self._alive():
                self._sd.watchdog()
                next_ping = time.monotonic() + interval
            self._wakeup.wait(tick)

    def _alive(self) -> bool:
        """What the watchdog vouches for: the scheduler thread is running."""
        return self._scheduler is not None and self._scheduler.running

    def _shutdown(self) -> None:
        self._stop.set()
        self._guard.stop()  # from here on no job starts; the ones running are waited for below
        if self._child is not None:
            self._child.stop()  # it ends its pass before the next row, while the jobs here end theirs
        self._sd.stopping()
        log.info("stopping")
        if self._scheduler is not None:
            self._scheduler.shutdown()
        dropped = self._limiter.close() if self._limiter else 0
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        stop_by = time.monotonic() + self._stop_grace
        self.abandoned = self._guard.wait(self._stop_grace)
        if self._child is not None:
            self._child.join(stop_by - time.monotonic())  # killed past the grace: at most its one row resent
        if dropped:
            log.info("dropped %d queued polls", dropped)
        self.metrics.close()
        if self._leases is not None and not self.abandoned:
            # handed back now rather than left to expire: the others take over at their next tick
            try:
                self._leases.stop()
            except StoreError as exc:
                log.warning("leases not handed back (they expire in %.0fs): %s", self._leases.ttl, exc)
        if not self.abandoned and self._app is not None:
            self._app.close()
        if self._wakeup is not None:
            self._wakeup.close()

    def _housekeeping(self, job_id: str) -> None:
        if job_id in LEADER_CHORES and not self._duty("leader"):
            return
        if job_id == "feedback" and not self._duty("feedback"):
            return
        self._guard.run(job_id, self._chores[job_id], wait_on_stop=job_id not in NOT_WAITED_AT_STOP)

    def _duty(self, name: str) -> bool:
        """Does this process do `name`? Always without replicas; with them, while it holds the lease."""
        return self._leases is None or self._leases.holds(name)

    # --- leases (several replicas on one PostgreSQL database) ---

    def _lease_tick(self, startup: bool = False) -> None:
        leases = self._leases
        if leases is None:
            return
        with self._lock:
            feeds = dict(self._feeds)
            busy = set(self._polling) | {f"deliver:{name}" for name in self._child_busy}
        pools = [[feed_lease(job_id) for job_id in feeds], duties(self.config)]
        try:
            change = leases.tick(pools, busy=busy)
        finally:  # renewed, or not (the database failed): the child delivers only while the leases last
            self._lease_child()
        if not startup:  # at a start the plan spreads the first polls, and open_app took the unmatched items
            self._took(change, feeds)

    def _took(self, change: LeaseChange, feeds: Mapping[str, cfg.Feed]) -> None:
        """Poll the feeds just claimed soon (at their stored next poll when that is nearer than their interval),
        and match what the previous holder stored but left unmatched."""
        gained = [job_id for job_id in change.gained if job_id in feeds]
        if change.gained or change.lost:
            log.info(
                "leases: +%d -%d, holding %d (%d live replicas)",
                len(change.gained), len(change.lost), len(self._leases.held()) if self._leases else 0,
                self._leases.live if self._leases else 1,
            )  # fmt: skip
        if not gained or self._scheduler is None:
            return
        now = self._clock.now()
        stored = {state.name: state for state in self.app.store.feeds()}
        for job_id in gained:
            feed = feeds[job_id]
            every = fallback_interval(feed, self.config.settings)
            when = first_poll(
                feed, every, now, stored.get(feed.name), startup=True, startup_spread=NEW_FEED_SPREAD
            )  # fmt: skip
            self._scheduler.run_at(job_id, when)
        # Taken over from a dead holder, or handed back by one that stopped with items still in memory: either
        # may have stored items it did not match.
        adopted = self.app.adopt_unfinished([feeds[job_id].name for job_id in gained])
        if adopted:
            log.info("leases: %d items stored but not matched by the previous holder, matching them", adopted)

    # --- reconcile and reload ---

    def reload(self, why: str = "reload") -> bool:
        """Re-read the config; apply it if valid, else keep the running one and tell the admin channel.

        systemd hears RELOADING=1 first and READY=1 when the reload is over, whatever its outcome
        (sd_notify(3); a unit with Type=notify-reload waits for that pair)."""
        self._sd.reloading()
        status = "config reload failed"
        try:
            applied, status = self._reload(why)
            return applied
        finally:
            self._sd.ready(status)

    def _reload(self, why: str) -> tuple[bool, str]:
        log.info("%s: reloading the config", why)
        try:
            config = self._loader(self.config_path)
            self.app.reconfigure(config)
        except MonitorError as exc:
            log.error("%s: config not applied, still running the previous one:\n%s", why, exc)
            notice = self._notices.failed(str(exc))
            if notice is not None:
                self._send_admin_later(notice)
            return False, f"config reload failed: {str(exc).splitlines()[0]}"
        fixed = self._notices.applied()
        if fixed is not None:
            self._send_admin_later(fixed)
        remember_secrets(secrets_of(config))
        old = self.config
        self._config = config
        if self._child is not None:
            self._child.configure(config)
            self._lease_child()  # a new channel's lease, a removed one's end
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
        return True, self._status_line()

    def _reconcile(self, config: cfg.Config, *, startup: bool = False) -> tuple[int, int, int]:
        """Make the scheduler's jobs match the config (service.jobs plans, service.scheduler applies)."""
        assert self._scheduler is not None
        stored = {s.name: s for s in self.app.store.feeds()} if startup else None
        with self._lock:
            plan = plan_jobs(
                config,
                self._feeds,
                self._scheduler.jobs(),
                self._clock.now(),
                startup=startup,
                stored=stored,
                startup_spread=self._startup_spread,
            )
            self._feeds = dict(plan.feeds)
        self._scheduler.apply(plan, self._fire_poll, self._housekeeping)
        self.metrics.feeds.set(len(plan.feeds))
        return len(plan.add), len(plan.remove), len(plan.modify)

    # --- polling ---

    def _fire_poll(self, job_id: str) -> None:
        """The APScheduler job: hand the feed to the per-host-limited pool and return at once."""
        feed = self._feeds.get(job_id)
        if feed is None or self._limiter is None or not self._duty(feed_lease(job_id)):
            return
        self._limiter.submit(job_id, host_of(feed.url), lambda: self._guard.run(job_id, self._poll, job_id))

    def _poll(self, job_id: str) -> None:
        feed = self._feeds.get(job_id)
        if feed is None or self._stop.is_set() or not self._duty(feed_lease(job_id)):
            return  # removed by a reload while queued, stopping, or its lease went to another replica
        with self._lock:
            self._polling.add(job_id)
        try:
            self._polled(job_id, feed)
        finally:
            with self._lock:
                self._polling.discard(job_id)

    def _polled(self, job_id: str, feed: cfg.Feed) -> None:
        report = self.app.pipeline.poll(feed)  # a failed database write raises StoreError: the guard tells it
        self._guard.store_works()  # the poll stored its feed's state
        self.app.recover()  # items an earlier poll stored but could not match, if any
        self.metrics.record_poll(report)
        self._tally.record(report, self._clock.now())
        if report.new:  # errors are logged by the pipeline, with the retry time
            log.info("feed %s: %d new, %d alerts", feed.name, report.new, report.alerts)
        if report.alerts:
            self.kick_delivery()
        if report.next_poll is not None and self._scheduler is not None:
            self._scheduler.run_at(job_id, max(report.next_poll, self._clock.now() + timedelta(seconds=1)))

    # --- delivery, prune, stats ---

    def kick_delivery(self) -> None:
        """Deliver now rather than at the next 2-second tick (or once more, if a run is in progress)."""
        if self._child is not None:
            self._child.kick()
            return
        self._deliver_again.set()
        if self._delivering or self._scheduler is None:
            return
        self._scheduler.run_at("deliver", self._clock.now())

    def _deliver(self) -> None:
        if self._child is not None:
            return  # the child delivers, kicked by the polls and on a tick of its own (service.deliverer)
        while True:
            self._delivering = True
            try:
                self._deliver_passes()
            finally:
                self._delivering = False
            # kick_delivery sets _deliver_again before it reads _delivering: a kick that came after the passes'
            # last look saw _delivering still on and left the work to this run, so look once more now it is off.
            if self._stop.is_set() or not self._deliver_again.is_set():
                return

    def _deliver_passes(self) -> None:
        """Delivery passes, one after another while one is asked for: a kick came during the last, or it was full."""
        while not self._stop.is_set():
            self._deliver_again.clear()
            if self._leases is None:
                report = self.app.deliverer.deliver_due()  # each failed attempt is logged there
            else:  # the channels this replica holds; a rebalance leaves them here while this pass runs
                held = self._leases.held()
                channels = [name for name in self.config.channels if f"deliver:{name}" in held]
                with self._lock:
                    self._polling.update(f"deliver:{name}" for name in channels)
                try:
                    report = self.app.deliverer.deliver_due(channels=channels, still=self._delivers)
                finally:
                    with self._lock:
                        self._polling.difference_update(f"deliver:{name}" for name in channels)
            self.metrics.record_delivery(report.sent, sum(report.failures.values()), report.failures)
            if report.sent or report.failed:
                log.info("delivered %d, failed %d", report.sent, report.failed)
            # A full pass leaves rows due now (a burst of alerts): the next pass starts at once, not at the
            # next tick or kick, which capped delivery at one batch (100 rows) per 2 s.
            if not self._deliver_again.is_set() and not report.more:
                break

    def _delivers(self, channel: str) -> bool:
        return self._duty(f"deliver:{channel}")

    # --- the delivery child (service.deliverer); its callbacks run on its reader thread ---

    def _lease_child(self) -> None:
        """Tell the child which channels it may deliver, and for how long (the leases' remaining time)."""
        if self._child is None or self._leases is None:
            return
        held = self._leases.held()
        channels = [name for name in self.config.channels if f"deliver:{name}" in held]
        self._child.lease(channels, self._leases.remaining())

    def _child_passed(self, report: PassReport) -> None:
        self.metrics.record_delivery(report.sent, report.failed, report.failures)

    def _child_delivers(self, channels: frozenset[str]) -> None:
        with self._lock:
            self._child_busy = channels

    def _child_failed(self, job: str, store_error: bool) -> None:
        self.metrics.job_failed(job)
        if store_error:
            self.metrics.store_failed()

    def _relearn(self) -> None:
        if self._leases is not None:
            self.app.reload_model()  # the leader refit and stored a model: load it
        self.app.relearn()

    def _prune(self) -> None:
        removed = self.app.prune()
        if removed:
            log.info("retention: removed %d old items", removed)

    def _stats(self) -> None:
        self.metrics.set_outbox(self.app.store.outbox_counts())
        self._sd.status(self._status_line())
        self._summarise()

    def _summarise(self) -> None:
        """The summary line, once the start-up polls are in (spread over startup_spread, each bounded by
        3 × timeout), then hourly: feeds reachable / failing, new items, alerts queued."""
        now = self._clock.now()
        if self._tally.due(now, self._startup_spread + 3 * self.config.settings.timeout):
            names = [feed.name for feed in self._feeds.values()]
            new = self._tally.new_since(now - timedelta(seconds=WINDOW))
            counts = self.app.store.outbox_counts()
            log.info("%s", summary_line(names, self._tally.last(), new, counts, now, self._tally.started))

    def _status_line(self) -> str:
        counts = self.app.store.outbox_counts()
        return f"{len(self._feeds)} feeds; outbox {counts.get('pending', 0)} pending, {counts.get('failed', 0)} failed"

    # --- health and the admin channel ---

    def check_health(self) -> None:
        """Report feeds that died (failing or silent too long) and feeds that came back, once each way."""
        urls = {feed.name: feed.url for feed in self._feeds.values()}
        for text in self._health.check(self.app.store, urls, self.config.settings, self._clock.now()):
            log.warning("%s", text)
            self._send_admin(text)
        self.metrics.dead_feeds.set(self._health.dead)

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
        if self._scheduler is not None:
            self._scheduler.run_soon(self._guard.run, "admin", self._send_admin, text, name="admin notice")
