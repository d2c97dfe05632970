"""Delivery in a process of its own under `monitor run` (issue 16: the burst latency).

    parent: the daemon (service.daemon)                    child: _serve(), spawned
    DeliveryProcess.start()   (main thread) ── spawn ──►    dies with the parent: PR_SET_PDEATHSIG, the pipe's end
      kick()                  ── a byte, own pipe ───►     a pass now (else one every TICK seconds)
      configure(config)       ── ("config", config) ─►     the next pass uses it (Deliverer.renewed: lost marks kept)
      lease(channels, left)   ── ("leases", ...) ────►     replicas: only those channels, only for `left` seconds
      stop()                  ── ("stop",) ──────────►     the pass stops before its next row; the child exits
      reader thread           ◄── ("busy", channels)        a pass began (a rebalance keeps those leases)
                              ◄── ("pass", sent, failed, failures)        metrics (the parent's endpoint)
                              ◄── ("job_failed", job, store error?)       the guard's counters
      check()                 (main loop, every second) a child that died is started again, one log line

Why (docs/daemon.md, "A burst"): beside the poll threads of the daemon, one delivery thread waits for the GIL
about eight times a message (each socket call and database call lets go of it, and a poll thread then holds it
up to the switch interval): ~40 ms a message beside one busy thread, ~3 ms alone. A process of its own has its
own GIL; the kernel schedules it as soon as its socket answers.

Every guarantee of the thread is kept:
- One delivering process per data directory: the parent holds delivery/lock.py's lock for as long as it runs
  and the child delivers on its behalf; the child never outlives it (PR_SET_PDEATHSIG on Linux; elsewhere the
  end of the control pipe, which it reads in a thread of its own, stops it after the row in flight).
- Exactly once: the child is the same `Deliverer` (delivery/outbox.py), each row marked sent right after the
  channel's answer, before the next send. A kill -9 of the parent or the child repeats at most the one message in
  flight, as a kill -9 of the daemon did.
- Leases (replicas on PostgreSQL): the child delivers only the channels the parent last told it of, and only
  until those leases would run out unless renewed (the parent sends them after every lease tick): a parent
  that cannot renew makes its child stop on time too.
- A stop: the parent asks, the child ends its pass before the next row and exits; past the daemon's stop grace
  it is killed. SIGTERM and SIGINT (systemd's stop signals the whole control group, Ctrl-C the terminal's
  process group) and SIGHUP are the parent's to handle: the child ignores them.

The child imports only delivery's modules: config, store, delivery (no topic model, numpy, scikit-learn, APScheduler
or the Prometheus client).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from .. import config as cfg
from ..delivery.channels import build_notifiers
from ..delivery.outbox import Deliverer
from ..redact import remember_secrets, secrets_of
from ..store import SqlStore
from .guard import JobGuard
from .logs import setup_logging

log = logging.getLogger(__name__)

TICK = 2.0  # seconds between passes when nothing kicks: retries and deferrals falling due
RESTART_DELAYS = (0.0, 1.0, 5.0, 30.0)  # before restarting a child that died; the next after a quick death
QUICK_DEATH = 30.0  # seconds: a child that lived less than this died "quickly" (a bad start: back off)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_NAME = 15
NAME = b"monitor-deliver"  # the child's name in ps, top and /proc/<pid>/comm (at most 15 bytes)


@dataclass(frozen=True)
class PassReport:
    """What one of the child's delivery passes did, as the parent's metrics want it."""

    sent: int
    failed: int
    failures: Mapping[str, int]


@dataclass(frozen=True)
class Setup:
    """What the child starts from."""

    config: cfg.Config
    log_format: str
    log_level: int
    parent: int  # its pid: the child leaves when it is gone
    leases: tuple[frozenset[str], float] | None = None  # replicas: the channels it may deliver, for how long
    tick: float = TICK


# --- the parent's side -----------------------------------------------------------------------------------------


class DeliveryProcess:
    """The delivery child of `monitor run`: started, kicked, reconfigured, leased, checked and stopped by the
    daemon. `on_pass` and `on_busy` are called from a reader thread; `on_failure(job, store_error)` too."""

    def __init__(
        self,
        config: cfg.Config,
        *,
        log_format: str = "text",
        log_level: int = logging.INFO,
        leased: bool = False,
        tick: float = TICK,
        on_pass: Callable[[PassReport], None] = lambda report: None,
        on_busy: Callable[[frozenset[str]], None] = lambda channels: None,
        on_failure: Callable[[str, bool], None] = lambda job, store: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._log = (log_format, log_level)
        self._tick = tick
        self._on_pass, self._on_busy, self._on_failure = on_pass, on_busy, on_failure
        self._monotonic = monotonic
        self._context = multiprocessing.get_context("spawn")  # not fork: the daemon has threads (feeds/pool.py)
        self._send_lock = threading.Lock()  # kicks come from poll threads, leases from the lease job
        self._control: Connection | None = None
        self._kicks: Connection | None = None  # its own pipe, written without blocking (kick)
        self._process: BaseProcess | None = None
        self._reader: threading.Thread | None = None
        # (channels, valid until on our clock); with replicas none until the first lease tick says which
        self._leases: tuple[frozenset[str], float] | None = (frozenset(), 0.0) if leased else None
        self._started_at = 0.0
        self._deaths = 0  # quick deaths in a row (restart back-off)
        self._restart_at: float | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        """Start the child. From the thread that lives as long as the daemon (the main thread): Linux sends the
        parent-death signal when the thread that started a child ends, not the process."""
        receive_control, control = self._context.Pipe(duplex=False)
        receive_kicks, kicks = self._context.Pipe(duplex=False)
        receive_reports, reports = self._context.Pipe(duplex=False)
        os.set_blocking(kicks.fileno(), False)
        fmt, level = self._log
        leases = None
        if self._leases is not None:
            channels, until = self._leases
            leases = (channels, until - self._monotonic())
        process = self._context.Process(
            target=_serve,
            args=(
                Setup(self._config, fmt, level, os.getpid(), leases, self._tick),
                receive_control,
                receive_kicks,
                reports,
            ),
            name="monitor-deliver",
            daemon=True,
        )
        try:
            process.start()
        finally:
            receive_control.close()  # the child's ends: when it dies, the reader sees the end of its pipe
            receive_kicks.close()
            reports.close()
        with self._send_lock:
            self._close_pipes()
            self._control, self._kicks, self._process = control, kicks, process
        self._started_at = self._monotonic()
        self._reader = threading.Thread(target=self._read, args=(receive_reports,), name="deliver-reports", daemon=True)
        self._reader.start()
        log.info("delivery process %d started", process.pid)

    def kick(self) -> None:
        """A pass now, not at the child's next tick (a poll enqueued alerts). Never blocks the poll thread: a
        full pipe (a child that does not read, stopped or stuck) already holds kicks it will see."""
        kicks = self._kicks
        if kicks is not None:
            with contextlib.suppress(OSError):  # BlockingIOError: full; BrokenPipeError: check() restarts it
                os.write(kicks.fileno(), b"\0")

    def configure(self, config: cfg.Config) -> None:
        """A reloaded config: the child's next pass uses its channels (a restarted child starts from it)."""
        self._config = config
        self._send(("config", config))

    def lease(self, channels: Collection[str], left: float) -> None:
        """Replicas: deliver only these channels, for at most `left` more seconds unless told again."""
        self._leases = (frozenset(channels), self._monotonic() + left)
        self._send(("leases", frozenset(channels), left))

    def check(self) -> None:
        """Start a child that died again (after a short back-off if it keeps dying): from the main thread."""
        if self._stopping or self._process is None or self._process.is_alive():
            return
        now = self._monotonic()
        if self._restart_at is None:
            quick = now - self._started_at < QUICK_DEATH
            self._deaths = self._deaths + 1 if quick else 0
            # the first death is restarted at once; one right after a restart again (a bad start) waits longer
            delay = RESTART_DELAYS[min(max(self._deaths - 1, 0), len(RESTART_DELAYS) - 1)]
            log.warning(
                "delivery process %d ended (%s); starting it again%s",
                self._process.pid, _exit_text(self._process.exitcode), f" in {delay:.0f}s" if delay else "",
            )  # fmt: skip
            self._restart_at = now + delay
        if now >= self._restart_at:
            self._restart_at = None
            self._join_reader()
            self.restarts += 1
            self.start()

    def stop(self) -> None:
        """Ask the child to stop after the row in flight (returns at once; join() waits)."""
        self._stopping = True
        self._send(("stop",))

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the child to exit; kill it after that. True if it exited by itself."""
        self._stopping = True
        process = self._process
        if process is None:
            return True
        process.join(max(0.0, timeout))
        clean = not process.is_alive()
        if not clean:
            log.warning("delivery process %d still running after %.0fs; killing it", process.pid, timeout)
            process.kill()
            process.join(5)
        with self._send_lock:
            self._close_pipes()
        self._join_reader()
        return clean

    def _close_pipes(self) -> None:
        for pipe in (self._control, self._kicks):
            if pipe is not None:
                pipe.close()
        self._control = self._kicks = None

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            if self._control is None:
                return
            # OSError: the child is gone; check() starts another, which starts from the config and leases kept here
            with contextlib.suppress(OSError):
                self._control.send(message)

    def _read(self, reports: Connection) -> None:
        try:
            while True:
                try:
                    message = reports.recv()
                except (EOFError, OSError):
                    return
                kind = message[0]
                if kind == "pass":
                    self._on_pass(PassReport(*message[1:]))
                    self._on_busy(frozenset())
                elif kind == "busy":
                    self._on_busy(message[1])
                elif kind == "job_failed":
                    self._on_failure(message[1], message[2])
        finally:
            reports.close()
            self._on_busy(frozenset())

    def _join_reader(self) -> None:
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
        self._reader = None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


# --- the child's side ------------------------------------------------------------------------------------------


class _Orders:
    """What the parent last said, read by the control thread, used by the delivery loop (thread-safe)."""

    def __init__(self, config: cfg.Config, leases: tuple[frozenset[str], float] | None) -> None:
        self._lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._config = config
        self._config_changed = False
        self._leases: tuple[frozenset[str], float] | None = None  # None: no replicas, every channel is ours
        if leases is not None:
            self._leases = (leases[0], time.monotonic() + leases[1])

    def kicked(self, kicks: Connection) -> None:
        """The kick thread: each read of the kick pipe (however many kicks it holds) wakes the delivery loop."""
        fd = kicks.fileno()
        while True:
            try:
                if not os.read(fd, 4096):
                    break  # the parent is gone
            except InterruptedError:
                continue
            except OSError:
                break
            self.wake.set()
        self.stopping.set()
        self.wake.set()

    def listen(self, control: Connection) -> None:
        """The control thread: apply each message; the end of the pipe means the parent is gone."""
        while True:
            try:
                message = control.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "stop":
                break
            with self._lock:
                if kind == "config":
                    self._config, self._config_changed = message[1], True
                elif kind == "leases":
                    self._leases = (frozenset(message[1]), time.monotonic() + message[2])
            self.wake.set()
        self.stopping.set()
        self.wake.set()

    def config_pending(self) -> bool:
        with self._lock:
            return self._config_changed

    def new_config(self) -> cfg.Config | None:
        with self._lock:
            if not self._config_changed:
                return None
            self._config_changed = False
            return self._config

    def channels(self, configured: Collection[str]) -> list[str] | None:
        """The channels this pass may deliver: None (all) without replicas, else those leased right now."""
        with self._lock:
            if self._leases is None:
                return None
            held, until = self._leases
        return [name for name in configured if name in held] if time.monotonic() < until else []

    def still(self, channel: str) -> bool:
        """Send the next row of `channel`? Not once stopping, nor past its lease (with replicas)."""
        if self.stopping.is_set():
            return False
        with self._lock:
            leases = self._leases
        if leases is None:
            return True
        held, until = leases
        return channel in held and time.monotonic() < until


class _Counters:
    """The guard's counters, sent to the parent, whose metrics endpoint shows them."""

    def __init__(self, reports: Connection) -> None:
        self._reports = reports

    def job_failed(self, job: str) -> None:
        _report(self._reports, ("job_failed", job, False))

    def store_failed(self) -> None:
        _report(self._reports, ("job_failed", "deliver", True))


def _report(reports: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError):  # the parent is gone; the control pipe's end stops this process
        reports.send(message)


def _die_with(parent: int) -> None:
    """Linux: the kernel kills this process when the parent dies, kill -9 included (prctl(2)); and names it."""
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True) if name else None
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            libc.prctl(PR_SET_NAME, ctypes.c_char_p(NAME), 0, 0, 0)
    if os.getppid() != parent:  # it died before the prctl took effect
        os._exit(0)


def _serve(setup: Setup, control: Connection, kicks: Connection, reports: Connection) -> None:
    """The child's body: delivery passes until the parent says stop or is gone."""
    _die_with(setup.parent)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the parent's to handle; it stops this process in order
    setup_logging(setup.log_format, setup.log_level)
    config = setup.config
    remember_secrets(secrets_of(config))
    orders = _Orders(config, setup.leases)
    threading.Thread(target=orders.listen, args=(control,), name="deliver-control", daemon=True).start()
    threading.Thread(target=orders.kicked, args=(kicks,), name="deliver-kicks", daemon=True).start()
    guard = JobGuard(_Counters(reports))
    store = SqlStore(config.database_url)
    notifiers = build_notifiers(config)
    deliverer = Deliverer(store, notifiers, config)
    try:
        while not orders.stopping.is_set():
            new = orders.new_config()
            if new is not None:
                old, notifiers = notifiers, build_notifiers(new)
                remember_secrets(secrets_of(new))
                config, deliverer = new, deliverer.renewed(notifiers, new)
                for notifier in old.values():
                    notifier.close()
            guard.run("deliver", _passes, deliverer, config, orders, reports, guard)
            orders.wake.wait(setup.tick)
    finally:
        for notifier in notifiers.values():
            notifier.close()
        store.close()
        reports.close()
    # Nothing left to clean up: skip the interpreter's teardown, which a stop would wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _passes(deliverer: Deliverer, config: cfg.Config, orders: _Orders, reports: Connection, guard: JobGuard) -> None:
    """Passes one after another while one is asked for: a kick came during the last, or it was full."""
    while not orders.stopping.is_set():
        orders.wake.clear()
        channels = orders.channels(config.channels)
        if channels is not None:
            _report(reports, ("busy", frozenset(channels)))
        report = deliverer.deliver_due(channels=channels, still=orders.still)
        guard.store_works()
        _report(reports, ("pass", report.sent, sum(report.failures.values()), dict(report.failures)))
        if report.sent or report.failed:
            log.info("delivered %d, failed %d", report.sent, report.failed)
        if orders.config_pending():  # a reload: the next pass is the new config's (_serve applies it at once)
            orders.wake.set()
            return
        if not orders.wake.is_set() and not report.more:
            return
