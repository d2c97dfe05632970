"""The durable outbox's delivery worker; when a row is due is decided in delivery.rules.

    pipeline:  store.record_alert(item, matches, channels, now, hold_until=rules.hold_until(...))
    Deliverer.deliver_due():
        rows = store.due_deliveries(now)                     # pending, next_attempt <= now, oldest first
        for each row:
            channel blocked by a recent 429/5xx, paced, or in quiet hours  → store.defer(row, until)
            digest channel    → gathered; one notifier.send_digest() per channel, then mark_sent each row
            'send'            → notifier.send(alert);   store.mark_sent(row, ref)     # right after the ack
            'edit'            → notifier.edit(ref, alert); store.mark_sent(row)
            NotifyError       → permanent or past give_up_after: store.mark_failed(row, error)
                                else: store.mark_retry(row, error, now + retry_delay(attempts, retry_after))

Exactly once: a row is marked sent in its own transaction as soon as the channel acknowledged it, so a
process killed at any moment resends at most the one message that was in flight when it died (Telegram
has no idempotency key to close that last gap). Rows are keyed by (item, channel) by the store, so
re-classifying an item never enqueues it again. Failed rows stay in the table and show in `monitor alerts`.

Edits whose original message is not sent yet are marked done without a call: the send renders the
alert as it is then, story sources included, so there is nothing left to edit. Where the original
failed, or the channel keeps no message reference (console, email), there is nothing to edit either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from ..config import Config, format_duration
from ..errors import NotifyError
from ..models import Alert, Delivery
from ..ports import Clock, Notifier, Store, SystemClock
from .message import matched
from .rules import gives_up, is_high_priority, quiet_end, retry_delay

UNKNOWN_CHANNEL_WAIT = 3600.0  # a row for a channel no longer configured waits (it may come back)
MAX_PACE_WAIT = 2.0  # wait inline for pacing up to this long; beyond it, defer the channel's rows


# --- the worker -----------------------------------------------------------------------------------


@runtime_checkable
class Paced(Protocol):
    def ready_in(self) -> float:
        """Seconds until the channel may send again under its rate limits."""
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
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.edited + self.retried + self.failed + self.deferred

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.edited += other.edited
        self.retried += other.retried
        self.failed += other.failed
        self.deferred += other.deferred
        self.errors += other.errors
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
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.config = config
        self.clock = clock or SystemClock()
        self.sleep = sleep
        self.max_pace_wait = max_pace_wait
        self.tz = config.settings.tz
        # A channel that answered 429/5xx is left alone until its retry time, in this process; its
        # other due rows are deferred to then instead of each hammering it again.
        self._blocked: dict[str, datetime] = {}
        # isinstance() against a runtime Protocol inspects the class each time: do it once per channel.
        self._paced = {name: n for name, n in notifiers.items() if isinstance(n, Paced)}

    def deliver_due(self, max_rows: int = 100, *, deadline: datetime | None = None) -> DeliveryReport:
        """One pass over the rows due now (at most `max_rows`)."""
        report = DeliveryReport()
        now = self.clock.now()
        rows = self.store.due_deliveries(now, max_rows)
        # One read for the pass: loading alerts one by one was a quarter of the time per message.
        alerts = self.store.get_alerts(sorted({row.alert_id for row, _ in rows}))
        digests: dict[str, list[Delivery]] = {}
        edited: set[tuple[int, str]] = set()
        for row, kind in rows:
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
            if channel.quiet_hours and not self._high(alert):
                end = quiet_end(channel.quiet_hours, self.clock.now(), self.tz)
                if end is not None:
                    self._defer(row, end, report)
                    continue
            if not self._pace(row, deadline, report):
                continue
            try:
                ref = notifier.send(alert)
            except NotifyError as exc:
                self._failed(row, alert, exc, report)
                continue
            self.store.mark_sent(row.id, self.clock.now(), ref)
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
        self.store.defer(row.id, until)
        report.deferred += 1
        report.later(until)

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
        self.store.mark_sent(row.id, self.clock.now(), ref)
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
        batch = [alerts[row.alert_id] for row in rows]
        plural = "s" if len(batch) != 1 else ""
        title = f"Digest: {len(batch)} alert{plural} until {now.astimezone(self.tz):%d.%m %H:%M}"
        try:
            self.notifiers[name].send_digest(batch, title)
        except NotifyError as exc:
            for row, alert in zip(rows, batch, strict=True):
                self._failed(row, alert, exc, report)
            return
        done = self.clock.now()
        for row in rows:
            self.store.mark_sent(row.id, done)
            report.sent += 1

    def _failed(self, row: Delivery, alert: Alert, exc: NotifyError, report: DeliveryReport) -> None:
        now = self.clock.now()
        error = str(exc)
        give_up_after = self.config.settings.give_up_after
        if exc.permanent or gives_up(alert.created, now, give_up_after):
            if not exc.permanent:
                error = f"gave up after {format_duration(give_up_after)} of failures: {error}"
            self.store.mark_failed(row.id, now, error)
            report.failed += 1
            report.errors.append(f"{row.channel}: alert {row.alert_id} failed: {error}")
            return
        retry_at = now + timedelta(seconds=retry_delay(row.attempts, exc.retry_after))
        # The last attempt happens at the give-up time, not a long backoff after it.
        retry_at = max(now, min(retry_at, alert.created + timedelta(seconds=give_up_after)))
        self.store.mark_retry(row.id, now, error, retry_at)
        self._blocked[row.channel] = retry_at
        report.retried += 1
        report.later(retry_at)
        report.errors.append(f"{row.channel}: alert {row.alert_id} will retry at {retry_at:%H:%M:%S}Z: {error}")
