"""The durable outbox's delivery worker; when a row is due is decided in delivery.rules.

    pipeline:  store.record_alert(item, matches, channels, now, hold_until=rules.hold_until(...))
    Deliverer.deliver_due():
        'sent' marks the store lost earlier  → store.mark_sent first; still failing: stop, send nothing
        rows = store.due_deliveries(now)                     # pending, next_attempt <= now, oldest first
        for each row:
            channel paused (429 retry_after, rules.channel_pause, pacing) or in quiet hours
                              → store.defer(row, until)
            an earlier send of the same story backing off on this channel → store.defer(row, its retry)
            digest channel    → gathered; one notifier.send_digest() per channel, then mark_sent each row
            'send'            → notifier.send(alert);   store.mark_sent(row, ref)     # right after the ack
                                (a notifier that Renders: the next row's message is rendered while the mark
                                 is on its way, store.begin_mark_sent; sent only once it is stored)
            'edit'            → notifier.edit(ref, alert); store.mark_sent(row)
            NotifyError       → logged (at most LOG_BURST lines a minute per channel), counted per channel
                                permanent or past give_up_after: store.mark_failed(row, error)
                                else: store.mark_retry(row, error, now + retry_delay(attempts, retry_after))
                                      only that row waits; the channel goes on with the others

Exactly once: a row is marked sent in its own transaction as soon as the channel acknowledged it, and nothing
else is sent or written before that mark is stored, so a process killed at any moment resends at most the one
message that was in flight when it died (Telegram has no idempotency key to close that last gap). Only the
rendering of the next message, which changes nothing, runs while a mark is on its way (PostgreSQL:
store/marks.py). Rows are keyed by (item, channel) by the store, so re-classifying an item never enqueues it
again. Failed rows stay in the table and show in `monitor alerts`.
A mark that fails (database locked past its busy timeout, disk full) after the channel took the message is
tried again at once, then kept in memory and tried first by every later pass, which sends nothing until it
has gone through: the row is never sent again by this process.

Order: a failing row backs off alone, but the later messages of its story on that channel wait for it, so
a story's messages go out in the order they were queued; an edit never precedes its message (it needs the
message's reference, and one queued before the message went out is dropped, see below). The whole channel
waits only on news about the channel: a 429's retry_after, or a run of failures (rules.channel_pause).

Edits whose original message is not sent yet are marked done without a call: the send renders the
alert as it is then, story sources included, so there is nothing left to edit. Where the original
failed, or the channel keeps no message reference (console, email), there is nothing to edit either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from ..config import Config, format_duration
from ..errors import NotifyError, StoreError
from ..models import Alert, Delivery
from ..ports import Clock, Notifier, Store, SystemClock
from ..redact import scrub
from ..repeats import Throttle
from .message import matched
from .rules import channel_pause, gives_up, is_high_priority, quiet_end, retry_delay

log = logging.getLogger(__name__)

UNKNOWN_CHANNEL_WAIT = 3600.0  # a row for a channel no longer configured waits (it may come back)
MAX_PACE_WAIT = 2.0  # wait inline for pacing up to this long; beyond it, defer the channel's rows
MARK_RETRY_WAIT = 0.5  # seconds before a failed 'sent' mark is tried the second time
LOG_BURST = 5  # failed attempts logged per channel and minute; the rest are counted (and in the metrics)


# --- the worker -----------------------------------------------------------------------------------


@runtime_checkable
class Paced(Protocol):
    def ready_in(self) -> float:
        """Seconds until the channel may send again under its rate limits."""
        ...


@runtime_checkable
class Renders(Protocol):
    """A notifier whose send can be split: render (no I/O), then send what was rendered."""

    def render(self, alert: Alert) -> Any:
        """The message(s) of an alert, ready to send."""
        ...

    def send_rendered(self, rendered: Any) -> str | None:
        """`send` of what `render` gave."""
        ...


@dataclass
class DeliveryReport:
    """What a delivery pass did."""

    sent: int = 0
    edited: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    next_due: datetime | None = None  # the earliest retry or deferral this pass scheduled
    full: bool = False  # the pass took as many rows as it was allowed: more may be due now
    errors: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # failed attempts (retried or given up) per channel

    @property
    def handled(self) -> int:
        return self.sent + self.edited + self.retried + self.failed + self.deferred

    @property
    def more(self) -> bool:
        """Another pass now would find due rows: this one was full and moved some. (A full pass that only
        deferred rows, on a paused channel, would only defer the next batch too.)"""
        return self.full and self.handled > self.deferred

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.edited += other.edited
        self.retried += other.retried
        self.failed += other.failed
        self.deferred += other.deferred
        self.full = other.full
        self.errors += other.errors
        for name, count in other.failures.items():
            self.failures[name] = self.failures.get(name, 0) + count
        self.later(other.next_due)

    def later(self, when: datetime | None) -> None:
        if when is not None and (self.next_due is None or when < self.next_due):
            self.next_due = when

    def __str__(self) -> str:
        text = (
            f"sent {self.sent}, edited {self.edited}, retried {self.retried}, failed {self.failed}, "
            f"deferred {self.deferred}"
        )
        if self.next_due is not None:
            text += f"; next attempt {self.next_due:%Y-%m-%d %H:%M:%S}Z"
        return text


@dataclass(frozen=True)
class _Mark:
    """A 'sent' mark the store refused: the channel has the message."""

    when: datetime
    ref: str | None


@dataclass(frozen=True)
class _Flight:
    """A 'sent' mark on its way to the store (begin_mark_sent); `wait` returns once it is stored."""

    row_id: int
    mark: _Mark
    wait: Callable[[], None]


@dataclass(frozen=True)
class _Hold:
    """The row of a story that is backing off on a channel; the story's later rows there wait for it."""

    row_id: int
    until: datetime


class Deliverer:
    """Sends due outbox rows through the channels' notifiers and records the outcome of each."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        config: Config,
        clock: Clock | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_pace_wait: float = MAX_PACE_WAIT,
        monotonic: Callable[[], float] = time.monotonic,
        unmarked: dict[int, _Mark] | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.config = config
        self.clock = clock or SystemClock()
        self.sleep = sleep
        self.max_pace_wait = max_pace_wait
        self.tz = config.settings.tz
        # A channel is left alone until a time only on news about the channel (a 429's retry_after, a run
        # of failures, pacing), in this process; its due rows are deferred to then.
        self._blocked: dict[str, datetime] = {}
        self._unreachable: dict[str, int] = {}  # failures in a row to reach the channel's server
        self._failing: dict[str, int] = {}  # transient failures in a row, of any kind
        self._holds: dict[tuple[str, str], _Hold] = {}  # (channel, story) -> its row that is backing off
        self._unmarked: dict[int, _Mark] = {} if unmarked is None else unmarked  # row id -> lost 'sent' mark
        self._flight: _Flight | None = None  # the last send's mark, until it is stored (_settle)
        self._log = Throttle(LOG_BURST, 60.0, monotonic=monotonic)
        self._monotonic = monotonic
        # isinstance() against a runtime Protocol inspects the class each time: do it once per channel.
        self._paced = {name: n for name, n in notifiers.items() if isinstance(n, Paced)}
        self._renders = {name: n for name, n in notifiers.items() if isinstance(n, Renders)}

    def renewed(self, notifiers: Mapping[str, Notifier], config: Config) -> Deliverer:
        """A worker for a reloaded config that keeps this one's 'sent' marks not yet stored."""
        return Deliverer(
            self.store, notifiers, config, self.clock, sleep=self.sleep, max_pace_wait=self.max_pace_wait,
            monotonic=self._monotonic, unmarked=self._unmarked,
        )  # fmt: skip

    def deliver_due(
        self,
        max_rows: int = 100,
        *,
        deadline: datetime | None = None,
        channels: Collection[str] | None = None,
        still: Callable[[str], bool] | None = None,
    ) -> DeliveryReport:
        """One pass over the rows due now (at most `max_rows`). Raises StoreError when the store fails.

        With replicas (service.leases): only the rows of `channels`, the channels this replica holds the lease
        of, and each sent only while `still(channel)` says the lease is held (it may run out during a pass)."""
        held = getattr(self.store, "delivery_pass", None)  # SqlStore: one connection for the pass's marks
        with held() if held is not None else nullcontext():
            try:
                return self._deliver_due(max_rows, deadline, channels, still)
            finally:
                self._settle()  # the last mark of the pass is stored (or kept in memory) before it ends

    def _deliver_due(
        self,
        max_rows: int,
        deadline: datetime | None,
        channels: Collection[str] | None,
        still: Callable[[str], bool] | None,
    ) -> DeliveryReport:
        report = DeliveryReport()
        self._store_marks()
        now = self.clock.now()
        if channels is None:
            rows = self.store.due_deliveries(now, max_rows)
        else:
            rows = self.store.due_deliveries(now, max_rows, channels=channels) if channels else []
        report.full = len(rows) >= max_rows
        # One read for the pass: loading alerts one by one was a quarter of the time per message.
        alerts = self.store.get_alerts(sorted({row.alert_id for row, _ in rows}))
        digests: dict[str, list[Delivery]] = {}
        edited: set[tuple[int, str]] = set()
        for row, kind in rows:
            if still is not None and not still(row.channel):
                continue  # another replica delivers this channel now; the row stays pending for it
            channel = self.config.channels.get(row.channel)
            notifier = self.notifiers.get(row.channel)
            if channel is None or notifier is None:
                until = now + timedelta(seconds=UNKNOWN_CHANNEL_WAIT)
                self._defer(row, until, report)
                report.errors.append(f"{row.channel}: no such channel configured; row {row.id} waits")
                continue
            blocked = self._blocked.get(row.channel)
            if blocked is not None and blocked > self.clock.now():
                self._defer(row, blocked, report)
                continue
            if row.alert_id not in alerts:
                alerts[row.alert_id] = self.store.get_alert(row.alert_id)
            alert = alerts[row.alert_id]
            if kind == "edit":
                self._edit(row, alert, notifier, edited, report)
                continue
            if channel.mode == "digest":
                digests.setdefault(row.channel, []).append(row)
                continue
            hold = self._holds.get(_story(row, alert))
            if hold is not None and hold.row_id != row.id:  # a story's messages go out in order
                self._defer(row, max(hold.until, self.clock.now()), report)
                continue
            if channel.quiet_hours and not self._high(alert):
                end = quiet_end(channel.quiet_hours, self.clock.now(), self.tz)
                if end is not None:
                    self._defer(row, end, report)
                    continue
            if not self._pace(row, deadline, report):
                continue
            try:
                ref = self._send(row.channel, notifier, alert)
            except NotifyError as exc:
                self._failed(row, alert, exc, report, hold=True)
                continue
            self._delivered(row, alert)
            self._begin_mark(row.id, ref)
            report.sent += 1
        for name, batch in digests.items():
            self._digest(name, batch, alerts, report)
        return report

    def deliver_until_idle(self, timeout: float, max_rows: int = 100) -> DeliveryReport:
        """Deliver what is due, waiting for retries (e.g. a 429's retry_after) that fall due within `timeout`
        seconds; what is still undelivered then stays queued (`monitor check --deliver-timeout`)."""
        deadline = self.clock.now() + timedelta(seconds=timeout)
        total = DeliveryReport()
        while True:
            report = self.deliver_due(max_rows, deadline=deadline)
            total.add(report)
            now = self.clock.now()
            if now >= deadline:
                break
            if report.handled >= max_rows:
                continue  # a full batch: more may be due right now
            upcoming = self.store.due_deliveries(deadline, max_rows)
            if not upcoming:
                break
            wake = min(row.next_attempt or now for row, _ in upcoming)
            if wake <= now:
                if report.handled == 0:
                    break  # due rows this worker cannot move (e.g. unknown channels); nothing to wait for
                continue
            self.sleep((min(wake, deadline) - now).total_seconds())
        if total.next_due is not None and total.next_due <= self.clock.now():
            total.next_due = None
        return total

    # -- internals -------------------------------------------------------------------------------

    def _high(self, alert: Alert) -> bool:
        return is_high_priority([m.topic for m in matched(alert)], self.config)

    def _defer(self, row: Delivery, until: datetime, report: DeliveryReport) -> None:
        self._settle()
        self.store.defer(row.id, until)
        report.deferred += 1
        report.later(until)

    def _store_marks(self) -> None:
        """Store the 'sent' marks an earlier pass could not; StoreError (and no sending) while that fails."""
        for row_id, mark in list(self._unmarked.items()):
            self.store.mark_sent(row_id, mark.when, mark.ref)
            del self._unmarked[row_id]
            log.info("delivery %d: marked sent, late (the message went out at %s)", row_id, f"{mark.when:%H:%M:%S}Z")

    def _send(self, name: str, notifier: Notifier, alert: Alert) -> str | None:
        """Send one alert once the last send's mark is stored; rendered while that mark is on its way."""
        renders = self._renders.get(name)
        if renders is None:
            self._settle()
            return notifier.send(alert)
        rendered = renders.render(alert)
        self._settle()
        return renders.send_rendered(rendered)

    def _begin_mark(self, row_id: int, ref: str | None) -> None:
        """Mark a row sent whose message the channel has just taken; where the store can, without waiting for it:
        `_settle` waits, before anything else is sent or written."""
        begin = getattr(self.store, "begin_mark_sent", None)  # SqlStore; other stores mark at once
        if begin is None:
            self._mark_sent([row_id], ref)
            return
        mark = _Mark(self.clock.now(), ref)
        try:
            self._flight = _Flight(row_id, mark, begin(row_id, mark.when, ref))
        except StoreError:
            self._mark_sent([row_id], ref, when=mark.when, tried=True)

    def _settle(self) -> None:
        """Wait until the last send's mark is stored; a failure goes the way of `_mark_sent`'s first attempt."""
        flight, self._flight = self._flight, None
        if flight is None:
            return
        try:
            flight.wait()
        except StoreError:
            self._mark_sent([flight.row_id], flight.mark.ref, when=flight.mark.when, tried=True)

    def _mark_sent(
        self, row_ids: Sequence[int], ref: str | None = None, *, when: datetime | None = None, tried: bool = False
    ) -> None:
        """Mark rows sent whose message the channel has taken. A failure is tried again once at once; then the
        marks are kept in memory for the next pass (`_store_marks`) and StoreError stops this one. `tried`: the
        first attempt failed already (a mark that went out without waiting)."""
        self._settle()
        when = self.clock.now() if when is None else when
        pending = list(row_ids)
        try:
            if tried:
                self.sleep(MARK_RETRY_WAIT)
            for attempt in (2,) if tried else (1, 2):
                try:
                    while pending:
                        self.store.mark_sent(pending[0], when, ref)
                        pending.pop(0)
                    return
                except StoreError:
                    if attempt == 2:
                        raise
                    self.sleep(MARK_RETRY_WAIT)
        finally:
            for row_id in pending:
                self._unmarked[row_id] = _Mark(when, ref)

    def _pace(self, row: Delivery, deadline: datetime | None, report: DeliveryReport) -> bool:
        """True when the row may be sent now (the notifier sleeps the short wait itself); else defer it."""
        paced = self._paced.get(row.channel)
        if paced is None:
            return True
        wait = paced.ready_in()
        now = self.clock.now()
        if wait <= self.max_pace_wait and (deadline is None or now + timedelta(seconds=wait) <= deadline):
            return True
        until = now + timedelta(seconds=wait)
        self._blocked[row.channel] = until
        self._defer(row, until, report)
        return False

    def _edit(
        self, row: Delivery, alert: Alert, notifier: Notifier, edited: set[tuple[int, str]], report: DeliveryReport
    ) -> None:
        self._settle()  # before the edit goes out, and: the message's reference may be the mark in flight
        ref = self.store.message_ref(row.alert_id, row.channel)
        key = (row.alert_id, row.channel)
        # No ref: not sent yet (the send will show the current story), failed, or a channel without
        # edits. Already edited in this pass: that edit rendered the same current alert.
        if ref is not None and key not in edited:
            if not self._pace(row, None, report):
                return
            try:
                notifier.edit(ref, alert)
            except NotifyError as exc:
                self._failed(row, alert, exc, report)
                return
            edited.add(key)
            self._delivered(row, alert)
        self._mark_sent([row.id], ref)
        report.edited += 1

    def _digest(self, name: str, rows: list[Delivery], alerts: Mapping[int, Alert], report: DeliveryReport) -> None:
        channel = self.config.channels[name]
        now = self.clock.now()
        if channel.quiet_hours:
            end = quiet_end(channel.quiet_hours, now, self.tz)
            if end is not None:
                for row in rows:
                    self._defer(row, end, report)
                return
        self._settle()
        batch = [alerts[row.alert_id] for row in rows]
        plural = "s" if len(batch) != 1 else ""
        title = f"Digest: {len(batch)} alert{plural} until {now.astimezone(self.tz):%d.%m %H:%M}"
        try:
            self.notifiers[name].send_digest(batch, title)
        except NotifyError as exc:
            for row, alert in zip(rows, batch, strict=True):
                self._failed(row, alert, exc, report)
            return
        for row, alert in zip(rows, batch, strict=True):
            self._delivered(row, alert)
        self._mark_sent([row.id for row in rows])
        report.sent += len(rows)

    def _delivered(self, row: Delivery, alert: Alert) -> None:
        """The channel took a message: its runs of failures are over, and so is this row's hold on its story."""
        self._unreachable.pop(row.channel, None)
        self._failing.pop(row.channel, None)
        self._release(row, alert)

    def _release(self, row: Delivery, alert: Alert) -> None:
        key = _story(row, alert)
        hold = self._holds.get(key)
        if hold is not None and hold.row_id == row.id:
            del self._holds[key]

    def _failed(
        self, row: Delivery, alert: Alert, exc: NotifyError, report: DeliveryReport, *, hold: bool = False
    ) -> None:
        """Record a failed attempt; with `hold`, the later sends of the alert's story wait for this row.
        (Edits need no order: each renders the story as it is, and one whose message is unsent is dropped.)"""
        self._settle()
        now = self.clock.now()
        name = row.channel
        error = scrub(str(exc))  # stored, shown by `monitor alerts`: channels scrub server replies, and so does this
        report.failures[name] = report.failures.get(name, 0) + 1
        give_up_after = self.config.settings.give_up_after
        if exc.permanent or gives_up(alert.created, now, give_up_after):
            if not exc.permanent:
                error = f"gave up after {format_duration(give_up_after)} of failures: {error}"
            self.store.mark_failed(row.id, now, error)
            self._release(row, alert)
            report.failed += 1
            report.errors.append(f"{name}: alert {row.alert_id} failed: {error}")
            self._tell(row, None, error)
            return
        retry_at = now + timedelta(seconds=retry_delay(row.attempts, exc.retry_after))
        # The last attempt happens at the give-up time, not a long backoff after it.
        retry_at = max(now, min(retry_at, alert.created + timedelta(seconds=give_up_after)))
        self.store.mark_retry(row.id, now, error, retry_at)
        if hold:
            self._holds[_story(row, alert)] = _Hold(row.id, retry_at)
        self._failing[name] = self._failing.get(name, 0) + 1
        if exc.unreachable:
            self._unreachable[name] = self._unreachable.get(name, 0) + 1
        pause = channel_pause(self._unreachable.get(name, 0), self._failing[name])
        if exc.retry_after:  # a 429: the server says when the channel may send again
            self._block(name, retry_at)
        if pause is not None:
            self._block(name, now + timedelta(seconds=pause))
        report.retried += 1
        report.later(retry_at)
        at = retry_at.astimezone(self.tz)
        report.errors.append(f"{name}: alert {row.alert_id} will retry at {at:%H:%M:%S %Z}: {error}")
        self._tell(row, retry_at, error, paused=pause)

    def _block(self, name: str, until: datetime) -> None:
        current = self._blocked.get(name)
        self._blocked[name] = until if current is None else max(current, until)

    def _tell(self, row: Delivery, retry_at: datetime | None, error: str, *, paused: float | None = None) -> None:
        """One log line per failed attempt, at most LOG_BURST a minute per channel (the rest are counted)."""
        held = self._log.allow(row.channel)
        if held is None:
            return
        more = f" ({held} more failed attempts on {row.channel} not logged)" if held else ""
        attempt = row.attempts + 1
        if retry_at is None:
            log.error("%s: alert %d failed for good (attempt %d): %s%s", row.channel, row.alert_id, attempt, error,
                      more)  # fmt: skip
            return
        pause = f"; the channel pauses {paused:.0f}s" if paused is not None else ""
        log.warning(
            "%s: alert %d, attempt %d failed, retry at %s%s: %s%s",
            row.channel, row.alert_id, attempt, f"{retry_at.astimezone(self.tz):%H:%M:%S %Z}", pause, error, more,
        )  # fmt: skip


def _story(row: Delivery, alert: Alert) -> tuple[str, str]:
    """The key that orders a channel's rows: the alert's story (an alert without one is its own)."""
    return row.channel, alert.story_id or f"alert {alert.id}"
