"""The daily near-miss message: the day's near misses taken into one message per channel, then sent like alerts.

    NearMissOfferer.run():                    (the daemon's `nearmiss` job, every minute; `monitor check` too)
        waiting = store.waiting_near_misses(up_to=due_day(now))      none before the day's settings.near_misses
        plan = plan_offers(waiting, their stories, config)           pure (delivery/nearmiss.py)
        store.take_near_misses(plan)       one transaction: the messages (pending) and their near misses taken
        for each message due:
            channel in quiet hours   → moved to their end
            Telegram                 → sendMessage, a row of ✓ / ✗ buttons per item; the message_id is kept
            console, e-mail          → plain text, each item with the id `monitor label n12 yes` takes
            acknowledged             → store.mark_offer(sent)          right after the ack
            NotifyError              → retried like an alert (rules.retry_delay); failed when permanent or
                                       past settings.give_up_after

Exactly once, as in the outbox: near misses go into messages in one transaction, and a message is marked sent as
soon as the channel has it, so a restart neither repeats the day's message nor loses it (at most the one message
in flight when the process died is sent again). With `near_misses: off` nothing new is taken; messages already
recorded still go. Near misses are not alerts: their tables are their own, so `monitor alerts`, the alert
metrics and eval's alert counts never see them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from ..config import Config, format_duration
from ..errors import NotifyError
from ..models import NearMissOffer, Story
from ..ports import Clock, Notifier, Store
from .nearmiss import due_day, keyboard, plan_offers, render_telegram, render_text
from .rules import gives_up, quiet_end, retry_delay
from .telegram import TelegramNotifier

log = logging.getLogger(__name__)

OFFER_EVERY = 60.0  # seconds between runs of the daemon's job: the message goes out within a minute of its time


@dataclass
class OfferReport:
    taken: int = 0  # messages recorded by this run
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0


class NearMissOfferer:
    """Makes and sends the near-miss messages; cheap to build (it keeps nothing between runs)."""

    def __init__(self, store: Store, notifiers: Mapping[str, Notifier], config: Config, clock: Clock) -> None:
        self.store = store
        self.notifiers = notifiers
        self.config = config
        self.clock = clock
        self.topics = {t.id: t.name for t in config.topics}

    def run(self) -> OfferReport:
        report = OfferReport()
        report.taken = self.take()
        for offer in self.store.due_offers(self.clock.now()):
            self._send(offer, report)
        return report

    def take(self) -> int:
        """Record the messages for the near misses whose day has come; the number of messages."""
        settings = self.config.settings
        at = settings.near_miss_time
        if at is None:
            return 0
        now = self.clock.now()
        waiting = self.store.waiting_near_misses(due_day(now, at, settings.tz))
        if not waiting:
            return 0
        stories: dict[str, Story] = {}
        for story_id in {near.story_id for near in waiting if near.story_id}:
            story = self.store.get_story(story_id)
            if story is not None:
                stories[story_id] = story
        plan = plan_offers(waiting, stories, self.config)
        taken = self.store.take_near_misses(plan.offers, plan.offered, plan.dropped, now)
        log.info("near misses: %d offered in %d messages, %d left out", len(plan.offered), taken, len(plan.dropped))
        return taken

    def _send(self, offer: NearMissOffer, report: OfferReport) -> None:
        now = self.clock.now()
        channel = self.config.channels.get(offer.channel)
        notifier = self.notifiers.get(offer.channel)
        if channel is None or notifier is None or not offer.near_misses:
            known = channel is not None and notifier is not None
            problem = "its near misses are no longer stored" if known else "no such channel configured"
            self.store.mark_offer(offer.id, "failed", now, error=problem)
            report.failed += 1
            return
        end = quiet_end(channel.quiet_hours, now, self.config.settings.tz) if channel.quiet_hours else None
        if end is not None:
            self.store.mark_offer(offer.id, "pending", now, next_attempt=end, attempted=False)
            report.deferred += 1
            return
        try:
            if isinstance(notifier, TelegramNotifier):
                chunks = render_telegram(offer, self.topics)
                ref = notifier.send_markup(f"nearmiss:{offer.id}", chunks, keyboard(offer))
            else:
                ref = notifier.send_text(render_text(offer, self.topics))
        except NotifyError as exc:
            self._failed(offer, exc, report)
            return
        self.store.mark_offer(offer.id, "sent", self.clock.now(), message_ref=ref)
        report.sent += 1

    def _failed(self, offer: NearMissOffer, exc: NotifyError, report: OfferReport) -> None:
        now = self.clock.now()
        give_up_after = self.config.settings.give_up_after
        created = offer.created or now
        if exc.permanent or gives_up(created, now, give_up_after):
            error = str(exc) if exc.permanent else f"gave up after {format_duration(give_up_after)}: {exc}"
            self.store.mark_offer(offer.id, "failed", now, error=error)
            log.warning("near-miss message %d to %s failed: %s", offer.id, offer.channel, error)
            report.failed += 1
            return
        retry_at = now + timedelta(seconds=retry_delay(offer.attempts, exc.retry_after))
        self.store.mark_offer(offer.id, "pending", now, error=str(exc), next_attempt=retry_at)
        log.info("near-miss message %d to %s will retry at %s: %s", offer.id, offer.channel, retry_at, exc)
        report.retried += 1
