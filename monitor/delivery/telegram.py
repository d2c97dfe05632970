"""Telegram channel: Bot API sendMessage / editMessageText over one requests.Session, with feedback buttons.

Every alert carries its feedback keyboard (buttons.py) as `reply_markup`. editMessageText drops a keyboard
that the call does not repeat, so story edits send it again, with the verdicts recorded so far. The calls
that receive and answer the presses (getUpdates, answerCallbackQuery, editMessageReplyMarkup) are here too;
feedback.py drives them.

Error mapping (https://core.telegram.org/bots/api#making-requests, #responseparameters):

    ok: true                      → success
    429 + parameters.retry_after  → NotifyError(retry_after=…): wait that long, then retry; never drop
    parameters.migrate_to_chat_id → permanent: the group became a supergroup, the config needs the new id
    400, 401, 403, 404            → permanent: chat not found, bot blocked, bad token, bad request
    409 (getUpdates)              → a webhook is set (permanent: the fix is deleteWebhook), or another program
                                    polls the same bot
    5xx, network error, timeout   → NotifyError: retried with backoff by the outbox

The bot token is part of every request URL, and requests/urllib3 put that URL in exception messages and
debug logs: errors here never chain the original exception, and the token is scrubbed from any text.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError  # NameResolutionError is one too

from .. import __version__
from ..config import TelegramChannel
from ..errors import NotifyError
from ..models import Alert
from ..net import proxies_for, read_environment_once
from ..redact import filter_logger, remember_secrets, scrub
from . import buttons, message

CONNECT_TIMEOUT = 10.0
# https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this: "avoid sending more than
# one message per second" in one chat, and "not more than 20 messages per minute" to one group.
CHAT_INTERVAL = 1.0
GROUP_WINDOW = 60.0
GROUP_MAX = 20

_HEADERS = {
    "User-Agent": f"topic-monitor/{__version__}",
    "Content-Type": "application/json; charset=utf-8",
    "Accept": "application/json",
}


@dataclass(frozen=True)
class Rendered:
    """An alert's messages (more than one only when hostile text escapes past 4,096 characters)."""

    key: str  # what a retry continues from (_progress)
    chunks: tuple[str, ...]
    markup: dict[str, Any]


class TelegramNotifier:
    """One Telegram chat (user, group, channel, or a forum topic with message_thread_id)."""

    def __init__(
        self,
        name: str,
        channel: TelegramChannel,
        *,
        topics: Mapping[str, str] | None = None,
        tz: tzinfo = UTC,
        session: requests.Session | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.channel = channel
        self.topics: Mapping[str, str] = topics or {}
        self.tz = tz
        self.last_answer = ""
        self._token = channel.bot_token
        self._api = channel.api_url.rstrip("/")
        self._own_session = session is None
        self._session = session or self._new_session()
        self._monotonic = monotonic
        self._sleep = sleep
        self._last_send: float | None = None
        self._window: deque[float] = deque()
        chat = str(channel.chat_id)
        self._group = chat.startswith(("-", "@"))  # negative ids are groups/channels; @name is a channel
        # Chunks already accepted for a multi-message send that failed part-way, so that a retry in this
        # process continues where it stopped instead of repeating them.
        self._progress: dict[str, list[str]] = {}
        remember_secrets([self._token])
        filter_logger("urllib3.connectionpool")  # it logs request lines, "POST /bot<token>/sendMessage", at DEBUG

    # -- Notifier --------------------------------------------------------------------------------

    def send(self, alert: Alert) -> str | None:
        """sendMessage; returns the first message_id, which later story updates edit."""
        return self.send_rendered(self.render(alert))

    def render(self, alert: Alert) -> Rendered:
        """An alert's messages, ready to send (outbox.Renders: rendered while the last send's mark is stored)."""
        chunks = message.render_telegram(alert, topics=self.topics, tz=self.tz)
        # The keyboard goes on the first message, the one that story updates edit (and re-send it on).
        return Rendered(f"alert:{alert.id}", tuple(chunks), buttons.keyboard(alert, self.topics))

    def send_rendered(self, rendered: Rendered) -> str | None:
        """`send` of a rendered alert."""
        ids = self._send_chunks(rendered.key, rendered.chunks, rendered.markup)
        return ids[0] if ids and ids[0] else None

    def edit(self, ref: str, alert: Alert) -> None:
        """editMessageText on the first message of a sent alert; "message is not modified" is success.

        An alert is one message unless hostile text (say, a title of 400 "&") escapes past 4,096
        characters; then only its first message is edited.
        """
        if not ref.isdigit():
            raise NotifyError(f"{self.name}: cannot edit: {ref!r} is not a Telegram message_id", permanent=True)
        chunks = message.render_telegram(alert, topics=self.topics, tz=self.tz)
        params = self._params(chunks[0])
        params["message_id"] = int(ref)
        params["reply_markup"] = buttons.keyboard(alert, self.topics)  # or the edit removes the buttons
        params.pop("message_thread_id", None)  # not a parameter of editMessageText
        try:
            self._paced_call("editMessageText", params)
        except NotifyError as exc:
            # The Bot API answers 400 when the new text equals the old one: the edit has nothing to do.
            if "message is not modified" not in str(exc):
                raise

    def send_digest(self, alerts: Sequence[Alert], title: str) -> None:
        chunks = message.render_digest_telegram(alerts, title, topics=self.topics, tz=self.tz)
        key = "digest:" + ",".join(str(a.id) for a in alerts) + ":" + title
        self._send_chunks(key, chunks)

    def send_text(self, text: str) -> str | None:
        chunks = message.render_telegram_text(text)
        ids = self._send_chunks(f"text:{hash(text)}", chunks)
        return ids[0] if ids and ids[0] else None

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    # -- extras ----------------------------------------------------------------------------------

    def get_me(self) -> dict[str, Any]:
        """getMe: checks the token; the bot's user object."""
        result = self._call("getMe", {})
        return result if isinstance(result, dict) else {}

    def get_updates(self, offset: int | None, timeout: int) -> list[dict[str, Any]]:
        """getUpdates (long polling for up to `timeout` seconds) for button presses only.

        Updates before `offset` are confirmed by this call and Telegram forgets them, so the caller
        passes the id after the last one it has finished with."""
        params: dict[str, Any] = {"timeout": timeout, "allowed_updates": ["callback_query"]}
        if offset is not None:
            params["offset"] = offset
        result = self._call("getUpdates", params, read_timeout=timeout + self.channel.timeout)
        return [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []

    def answer_callback(self, query_id: str, text: str) -> None:
        """answerCallbackQuery: the notice the presser sees (0-200 characters), and the end of the button's spinner."""
        self._call("answerCallbackQuery", {"callback_query_id": query_id, "text": text[:200]})

    def edit_keyboard(self, chat_id: int | str, message_id: int, alert: Alert) -> None:
        """editMessageReplyMarkup: show the alert's current verdicts; an unchanged keyboard is success."""
        self.edit_markup(chat_id, message_id, buttons.keyboard(alert, self.topics))

    def send_markup(self, key: str, chunks: Sequence[str], markup: dict[str, Any]) -> str | None:
        """sendMessage of rendered HTML chunks with a keyboard on the first (the near-miss message); its message_id.

        `key` names the message, so that a retry in this process continues a send that failed part-way."""
        ids = self._send_chunks(key, chunks, markup)
        return ids[0] if ids and ids[0] else None

    def edit_markup(self, chat_id: int | str, message_id: int, markup: dict[str, Any]) -> None:
        """editMessageReplyMarkup with a given keyboard; an unchanged keyboard is success."""
        params = {"chat_id": chat_id, "message_id": message_id, "reply_markup": markup}
        try:
            self._call("editMessageReplyMarkup", params)
        except NotifyError as exc:
            if "message is not modified" not in str(exc):
                raise

    def ready_in(self) -> float:
        """Seconds until the next message to this chat keeps under Telegram's limits (0 when pacing is off)."""
        if not self.channel.pace:
            return 0.0
        now = self._monotonic()
        wait = 0.0 if self._last_send is None else self._last_send + CHAT_INTERVAL - now
        if self._group:
            while self._window and self._window[0] <= now - GROUP_WINDOW:
                self._window.popleft()
            if len(self._window) >= GROUP_MAX:
                wait = max(wait, self._window[0] + GROUP_WINDOW - now)
        return max(0.0, wait)

    # -- internals -------------------------------------------------------------------------------

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # One host: its proxies are resolved once too (see monitor.net).
        session.proxies.update(proxies_for(self._api, read_environment_once(session)) or {})
        return session

    def _params(self, text: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "chat_id": self.channel.chat_id,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": self.channel.disable_preview},
        }
        if self.channel.message_thread_id is not None:
            params["message_thread_id"] = self.channel.message_thread_id
        return params

    def _send_chunks(self, key: str, chunks: Sequence[str], markup: dict[str, Any] | None = None) -> list[str]:
        done = self._progress.pop(key, [])
        try:
            for chunk in chunks[len(done) :]:
                params = self._params(chunk)
                if markup is not None and not done:
                    params["reply_markup"] = markup
                result = self._paced_call("sendMessage", params)
                message_id = result.get("message_id") if isinstance(result, dict) else None
                done.append("" if message_id is None else str(message_id))
        except NotifyError:
            if done:
                self._progress[key] = done
            raise
        return done

    def _paced_call(self, method: str, params: dict[str, Any]) -> Any:
        wait = self.ready_in()
        if wait > 0:
            self._sleep(wait)
        if self.channel.pace:
            now = self._monotonic()
            self._last_send = now
            if self._group:
                self._window.append(now)
        return self._call(method, params)

    def _call(self, method: str, params: dict[str, Any], *, read_timeout: float | None = None) -> Any:
        where = f"{self.name}: telegram {method}"
        read_timeout = read_timeout or self.channel.timeout
        url = f"{self._api}/bot{self._token}/{method}"
        request = requests.PreparedRequest()
        # Prepared directly rather than via Session.post: the session's cookie and header merging is a third
        # of the client's CPU per message (bench/deliver.py), and the Bot API needs neither.
        request.prepare(method="POST", url=url, headers=_HEADERS, data=json.dumps(params, ensure_ascii=False).encode())
        try:
            response = self._session.send(request, timeout=(CONNECT_TIMEOUT, read_timeout))
        # `from None`: the requests exception's message and its chain hold the URL, which holds the token.
        except requests.Timeout as exc:
            unreachable = isinstance(exc, requests.ConnectTimeout)  # outbox: a run of these pauses the channel
            raise NotifyError(f"{where}: no answer within {read_timeout:g}s", unreachable=unreachable) from None
        except requests.RequestException as exc:
            raise NotifyError(f"{where}: network error: {scrub(str(exc))}", unreachable=_refused(exc)) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        # Not response.text: without a charset in Content-Type (the Bot API sends none) requests runs
        # charset detection over the body, ~1 ms per call. JSON is UTF-8 (RFC 8259 §8.1).
        self.last_answer = scrub(response.content[:1000].decode("utf-8", "replace"))
        if not isinstance(body, dict):
            status = response.status_code
            raise NotifyError(f"{where}: HTTP {status} without a Bot API answer", permanent=status in (401, 404))
        if body.get("ok") is True:
            return body.get("result")
        raise self._error(where, response, body)

    def _error(self, where: str, response: requests.Response, body: dict[str, Any]) -> NotifyError:
        code = body.get("error_code") if isinstance(body.get("error_code"), int) else response.status_code
        description = scrub(str(body.get("description") or response.reason or "no description"))
        raw = body.get("parameters")
        parameters: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if code == 429 or "retry_after" in parameters:
            retry_after = _seconds(parameters.get("retry_after")) or _seconds(response.headers.get("Retry-After"))
            return NotifyError(f"{where}: {code} {description}", retry_after=retry_after or 1.0)
        if "migrate_to_chat_id" in parameters:
            return NotifyError(
                f"{where}: the group became a supergroup; set chat_id to {parameters['migrate_to_chat_id']}",
                permanent=True,
            )
        if code == 409 and "webhook" in description:
            # "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the
            # webhook first" (https://core.telegram.org/bots/api#getupdates: it "will not work if an outgoing
            # webhook is set up"). Nothing retries its way out of that: say what the fix is.
            return NotifyError(
                f"{where}: 409 the bot has a webhook set, so button presses cannot be received; remove it with "
                f"deleteWebhook ({self._api}/bot<token>/deleteWebhook) or give this monitor a bot of its own",
                permanent=True,
            )
        if code == 409:
            # "Conflict: terminated by other getUpdates request": another program polls the same bot.
            return NotifyError(
                f"{where}: 409 {description} (another program receives this bot's updates; give this monitor "
                "a bot of its own)"
            )
        if code in (401, 404):
            return NotifyError(f"{where}: {code} {description} (check bot_token and api_url)", permanent=True)
        if code in (400, 403):
            return NotifyError(f"{where}: {code} {description}", permanent=True)
        return NotifyError(f"{where}: {code} {description}")


def _refused(exc: requests.RequestException) -> bool:
    """Connection refused or the name not resolved: the Bot API was not reached at all (not a reset mid-call)."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
