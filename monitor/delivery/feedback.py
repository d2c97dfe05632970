"""Button presses under Telegram alerts: received by long polling, checked, recorded, answered.

    FeedbackPoller.poll():                       (the daemon's `feedback` job, over and over)
        for each bot of the config's Telegram channels:
            offset = store.get_state("telegram.offset.<bot id>")
            updates = getUpdates(offset, timeout, allowed_updates=["callback_query"])
            for each press:
                not from the alert's own chat and message, or not from an allowed user
                                        → answerCallbackQuery("not allowed"); nothing recorded
                ✓ / ✗                   → store.put_label(...);  answerCallbackQuery("Marked not relevant for Libya")
                🔇                      → store.mute_story(...); answerCallbackQuery("Story muted: ...")
                ✓ / ✗ on a near miss    → the same label, source "near-miss" (the daily message, offers.py)
                                          editMessageReplyMarkup: the keyboard shows what is recorded now
                store.put_state(offset = update_id + 1)

The offset is stored after each press is handled, and Telegram forgets updates only once a getUpdates
passes a higher offset, so a restart neither loses a press (not yet confirmed: delivered again) nor repeats
one (confirmed by the stored offset). A press handled twice (a crash between recording and storing the
offset) records the same verdict again, which changes nothing.

Telegram being down never raises out of poll(): the bot is left alone for a while and the problem logged
once, as one line (a bot with a webhook set cannot use getUpdates at all: the line names deleteWebhook).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Config, TelegramChannel
from ..errors import NotifyError, StoreError
from ..models import Alert, Label, NearMissOffer
from ..ports import Clock, Store
from . import buttons, nearmiss
from .telegram import TelegramNotifier
from .untrusted import one_line, shorten

log = logging.getLogger(__name__)

LONG_POLL = 3  # seconds a getUpdates waits for a press; a stop does not wait for it (unconfirmed presses come again)
RETRY_BASE, RETRY_CAP = 2.0, 60.0  # seconds a failing bot is left alone, doubling
PERMANENT_WAIT = 600.0  # a bot whose problem needs a person (webhook, bad token) is asked again this rarely
NOT_ALLOWED = "not allowed"


def bot_key(token: str) -> str:
    """A stable name for a bot that is not secret: the bot id before the token's colon (else a hash)."""
    head = token.partition(":")[0]
    return head if head.isdigit() else hashlib.sha256(token.encode()).hexdigest()[:12]


def same_chat(configured: str | int, chat: Mapping[str, Any]) -> bool:
    """Is `chat` (a Bot API Chat) the configured chat_id: a numeric id, or a public channel's @username?"""
    want = str(configured)
    if want.startswith("@"):
        return f"@{chat.get('username') or ''}".lower() == want.lower()
    return str(chat.get("id")) == want


def may_press(channel: TelegramChannel, user_id: object) -> bool:
    """`allowed_users` unset: any member of the chat; else only those users."""
    return channel.allowed_users is None or (isinstance(user_id, int) and user_id in channel.allowed_users)


@dataclass
class _Bot:
    key: str
    client: TelegramNotifier
    channels: list[tuple[str, TelegramChannel]]
    offset: int | None = None
    loaded: bool = False
    failures: int = 0
    wait_until: float = 0.0
    last_problem: str = ""


class FeedbackPoller:
    """Receives the presses of every bot in the config; one instance per config, used from one thread."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        *,
        long_poll: int = LONG_POLL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.long_poll = long_poll
        self._monotonic = monotonic
        self.topics = {t.id: t.name for t in config.topics}
        by_bot: dict[tuple[str, str], list[tuple[str, TelegramChannel]]] = {}
        for name, channel in config.channels.items():
            if isinstance(channel, TelegramChannel):
                by_bot.setdefault((channel.api_url.rstrip("/"), channel.bot_token), []).append((name, channel))
        self.bots = [
            _Bot(bot_key(token), TelegramNotifier(channels[0][0], channels[0][1], topics=self.topics), channels)
            for (_, token), channels in by_bot.items()
        ]

    def poll(self) -> int:
        """One getUpdates per bot (long polling when there is one bot); the number of presses recorded."""
        timeout = self.long_poll if len(self.bots) == 1 else 0
        recorded = 0
        for bot in self.bots:
            if self._monotonic() < bot.wait_until:
                continue
            if not bot.loaded:
                stored = self.store.get_state(self._state_name(bot))
                bot.offset = int(stored) if stored and stored.isdigit() else None
                bot.loaded = True
            try:
                updates = bot.client.get_updates(bot.offset, timeout)
            except NotifyError as exc:
                self._failing(bot, exc)
                continue
            if bot.failures:
                log.info("telegram bot %s: receiving button presses again", bot.key)
                bot.failures, bot.last_problem = 0, ""
            for update in updates:
                update_id = update.get("update_id")
                if not isinstance(update_id, int):
                    continue
                recorded += self._handle(bot, update)
                bot.offset = update_id + 1
                self.store.put_state(self._state_name(bot), str(bot.offset))
        return recorded

    def close(self) -> None:
        for bot in self.bots:
            bot.client.close()

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _state_name(bot: _Bot) -> str:
        return f"telegram.offset.{bot.key}"

    def _failing(self, bot: _Bot, exc: NotifyError) -> None:
        bot.failures += 1
        wait = PERMANENT_WAIT if exc.permanent else min(RETRY_CAP, RETRY_BASE * 2.0 ** (bot.failures - 1))
        bot.wait_until = self._monotonic() + max(wait, exc.retry_after or 0.0)
        problem = str(exc)
        if problem != bot.last_problem:  # once per problem, not once a second
            bot.last_problem = problem
            (log.error if exc.permanent else log.warning)("button presses: %s", problem)

    def _handle(self, bot: _Bot, update: Mapping[str, Any]) -> int:
        query = update.get("callback_query")
        if not isinstance(query, dict):
            return 0  # another kind of update (allowed_updates keeps them out; a change of it may not, at once)
        query_id = str(query.get("id") or "")
        message = _dict(query.get("message"))
        chat = _dict(message.get("chat"))
        user = _dict(query.get("from")).get("id")
        near = nearmiss.parse_press(query.get("data"))
        if near is not None:
            return self._near_miss(bot, query_id, chat, message.get("message_id"), user, *near)
        press = buttons.parse(query.get("data"))
        channel = None if press is None else self._channel_of(bot, press.alert_id, chat, message.get("message_id"))
        if press is None or channel is None or not may_press(channel, user):
            log.warning(
                "button presses: ignored a press from user %s in chat %s (%s)",
                user,
                chat.get("id"),
                "unknown button" if press is None else "not this alert's chat" if channel is None else "not allowed",
            )
            self._answer(bot, query_id, NOT_ALLOWED)
            return 0
        try:
            alert = self.store.get_alert(press.alert_id)
        except StoreError:
            self._answer(bot, query_id, "This alert is no longer stored")
            return 0
        text = self._record(alert, press, user)
        if text is None:
            self._answer(bot, query_id, NOT_ALLOWED)
            return 0
        self._answer(bot, query_id, text)
        try:
            bot.client.edit_keyboard(chat["id"], int(message["message_id"]), self.store.get_alert(alert.id))
        except NotifyError as exc:
            log.warning("button presses: could not show the verdict on alert %d: %s", alert.id, exc)
        return 1

    def _near_miss(
        self, bot: _Bot, query_id: str, chat: Mapping[str, Any], message_id: object, user: object, near_id: int,
        relevant: bool,
    ) -> int:  # fmt: skip
        """A ✓ / ✗ under the near-miss message: checked as an alert's press is, recorded as a "near-miss" label."""
        found = self._offer_of(bot, chat, message_id)
        near = next((n for n in found[1].near_misses if n.id == near_id), None) if found else None
        if found is None or near is None or not may_press(found[0], user):
            why = "not this message's chat" if found is None else "unknown item" if near is None else "not allowed"
            log.warning("button presses: ignored a press from user %s in chat %s (%s)", user, chat.get("id"), why)
            self._answer(bot, query_id, NOT_ALLOWED)
            return 0
        label = Label(near.item.uid, near.topic, relevant, nearmiss.LABEL_SOURCE, user=str(user or ""))
        self.store.put_label(label, self.clock.now())
        word = "relevant" if relevant else "not relevant"
        log.info("button presses: user %s marked near miss n%d %s for %s", user, near.id, word, near.topic)
        self._answer(bot, query_id, self._marked(near.topic, relevant))
        shown = self._offer_of(bot, chat, message_id) or found  # read again: with the verdict just recorded
        try:
            bot.client.edit_markup(chat["id"], int(str(message_id)), nearmiss.keyboard(shown[1]))
        except NotifyError as exc:
            log.warning("button presses: could not show the verdict on near miss n%d: %s", near.id, exc)
        return 1

    def _offer_of(
        self, bot: _Bot, chat: Mapping[str, Any], message_id: object
    ) -> tuple[TelegramChannel, NearMissOffer] | None:
        """The near-miss message of the bot's channel in this chat with this message id."""
        for name, channel in bot.channels:
            if same_chat(channel.chat_id, chat):
                offer = self.store.offer_at(name, str(message_id))
                if offer is not None:
                    return channel, offer
        return None

    def _channel_of(
        self, bot: _Bot, alert_id: int, chat: Mapping[str, Any], message_id: object
    ) -> TelegramChannel | None:
        """The bot's channel whose message this is: the press must come from the alert's own chat and message."""
        for name, channel in bot.channels:
            if same_chat(channel.chat_id, chat) and self.store.message_ref(alert_id, name) == str(message_id):
                return channel
        return None

    def _record(self, alert: Alert, press: buttons.Press, user: object) -> str | None:
        """Apply a press; the answer to show, or None when the press names no topic of this alert."""
        if press.mute:
            if alert.story_id is None or not self.store.mute_story(alert.story_id):
                return "This alert has no story to mute"
            log.info("button presses: user %s muted story %s (alert %d)", user, alert.story_id, alert.id)
            return "Story muted: no more alerts or edits for it"
        if press.position not in buttons.positions(alert):
            return None
        topic = alert.matches[press.position].topic
        label = Label(alert.item.uid, topic, press.relevant, "telegram", user=str(user or ""))
        self.store.put_label(label, self.clock.now())
        word = "relevant" if press.relevant else "not relevant"
        log.info("button presses: user %s marked alert %d %s for %s", user, alert.id, word, topic)
        return self._marked(topic, press.relevant)

    def _marked(self, topic: str, relevant: bool) -> str:
        name = shorten(one_line(self.topics.get(topic, topic)), 120)
        return f"Marked {'relevant' if relevant else 'not relevant'} for {name}"

    def _answer(self, bot: _Bot, query_id: str, text: str) -> None:
        try:
            bot.client.answer_callback(query_id, text)
        except NotifyError as exc:  # e.g. "query is too old" after a long outage: the press still counts
            log.info("button presses: could not answer a press: %s", exc)


def _dict(value: object) -> dict[str, Any]:
    """A JSON object from an update, or {} for anything else (updates are read defensively)."""
    return value if isinstance(value, dict) else {}
