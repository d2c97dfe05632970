"""A Telegram Bot API stand-in on 127.0.0.1 for tests, end-to-end runs and the delivery benchmark.

It answers sendMessage, editMessageText and getMe the way the Bot API does (JSON `{"ok": ...}` bodies,
`error_code`, `description`, `parameters.retry_after`), checks message text the way Telegram does with
parse_mode=HTML (supported tags only, balanced, at most 4,096 characters after entity parsing), records
every request, and can be scripted to answer the next calls with 429, 500, 400, 403 or to hang, or
told to fail a share of sendMessage/editMessageText calls at random (`fail_rate`: 500, as an overloaded
Bot API does; a seeded generator, so runs repeat).

Buttons: it keeps each message's inline keyboard (editMessageText without `reply_markup` removes it, as
Telegram does; editMessageReplyMarkup replaces it, "message is not modified" when unchanged), and serves
button presses the test injects with `press()` through getUpdates: long polling up to `timeout`, updates
below `offset` confirmed and forgotten, `allowed_updates` honoured, 409 Conflict while `webhook` is set.
answerCallbackQuery is recorded (`answers()`). getUpdates, which a running daemon calls all the time,
takes only answers scripted for it (`script_updates`), never those of `script`.

In-process::

    with TelegramStub(token="123:abc") as stub:
        stub.script("429:3", "500")       # the next two API calls fail, then normal answers resume
        ...                                # point TelegramChannel.api_url at stub.url
        stub.texts()                       # texts of accepted sendMessage calls
        stub.press("1001", 1, "l5:0:n")    # a user presses a button under message 1 in chat 1001
        stub.keyboard("1001", 1)           # that message's inline keyboard now

As a process (for kill -9 tests)::

    python -m tests.tgstub --token 123:abc --port 0     # prints "PORT 43125" on its first line

and control it over HTTP: GET /_stub/requests (recorded calls as JSON), GET /_stub/messages,
POST /_stub/script {"answers": ["429:2", "hang:5"]}, POST /_stub/release (end hangs), POST /_stub/reset,
POST /_stub/fail {"rate": 0.2, "seed": 1},
POST /_stub/press {"chat_id": "1001", "message_id": 1, "data": "...", "user_id": 7}, GET /_stub/keyboards,
GET /_stub/answers.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

# https://core.telegram.org/bots/api#html-style
SUPPORTED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
    "tg-spoiler", "span", "blockquote", "tg-emoji",
}  # fmt: skip
LIMIT = 4096


@dataclass
class Recorded:
    """One API call as the stand-in saw it."""

    method: str
    token: str
    params: dict[str, Any]
    at: float  # time.monotonic() on arrival
    status: int = 0  # HTTP status answered
    answer: dict[str, Any] = field(default_factory=dict)


class EntityError(ValueError):
    pass


class _Checker(HTMLParser):
    """Telegram's HTML parse mode, strictly enough to catch escaping and splitting bugs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SUPPORTED_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        if tag == "a" and not any(name == "href" for name, _ in attrs):
            raise EntityError("Can't find end of the entity: <a> without href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f'Can\'t find end tag corresponding to start tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def visible_text(html_text: str) -> str:
    """The text Telegram would show, or EntityError like "Bad Request: can't parse entities"."""
    if re.search(r"&(?!(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)", html_text):
        raise EntityError("Unsupported entity or a bare '&'")
    if re.search(r"<(?![a-zA-Z/])", html_text):
        raise EntityError("Unexpected '<'")
    checker = _Checker()
    checker.feed(html_text)
    checker.close()
    if checker.stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{checker.stack[-1]}"')
    return "".join(checker.text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class TelegramStub:
    """The stand-in server; thread-safe; start() / stop() or use as a context manager."""

    def __init__(self, token: str = "123456:TEST-token", host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.requests: list[Recorded] = []
        self.messages: dict[tuple[str, int], str] = {}  # (chat_id, message_id) -> visible text
        self.markups: dict[tuple[str, int], Any] = {}  # (chat_id, message_id) -> reply_markup, when it has one
        self.chats_not_found: set[str] = set()
        self.webhook = False  # a webhook is set: getUpdates answers 409 Conflict
        self.fail_rate = 0.0  # share of sendMessage/editMessageText calls answered 500 at random
        self._random = random.Random(1)
        self._answers: deque[str] = deque()
        self._update_answers: deque[str] = deque()
        self._updates: list[dict[str, Any]] = []  # not yet confirmed
        self._next_update = 1
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._release = threading.Event()
        self._next_id = 1
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TelegramStub:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="tgstub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        with self._arrived:
            self._arrived.notify_all()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> TelegramStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *answers: str) -> None:
        """Queue answers for the next API calls: "ok", "429:<retry_after>", "500", "400", "403",
        "hang" or "hang:<seconds>" (default: until release() or stop(); then a 504 nobody reads)."""
        with self._lock:
            self._answers.extend(answers)

    def fail_at_random(self, rate: float, seed: int = 1) -> None:
        """From now on answer `rate` of the sendMessage/editMessageText calls with 500, at random."""
        with self._lock:
            self.fail_rate = rate
            self._random = random.Random(seed)

    def script_updates(self, *answers: str) -> None:
        """Queue answers for the next getUpdates calls (same forms as `script`)."""
        with self._lock:
            self._update_answers.extend(answers)

    def press(self, chat_id: str, message_id: int, data: str, *, user_id: int = 7001) -> int:
        """A user presses a button with `data` under a message: queue the callback_query update; its id."""
        chat: dict[str, Any] = {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id}
        chat["type"] = "private" if not str(chat["id"]).startswith("-") else "supergroup"
        with self._arrived:
            update_id = self._next_update
            self._next_update += 1
            query = {
                "id": f"cq{update_id}",
                "from": {"id": user_id, "is_bot": False, "first_name": "Analyst"},
                "message": {"message_id": message_id, "date": int(time.time()), "chat": chat},
                "chat_instance": f"ci{chat_id}",
                "data": data,
            }
            self._updates.append({"update_id": update_id, "callback_query": query})
            self._arrived.notify_all()
        return update_id

    def keyboard(self, chat_id: str, message_id: int) -> list[list[dict[str, str]]] | None:
        """The inline keyboard a message shows now (None: it has none)."""
        with self._lock:
            markup = self.markups.get((chat_id, message_id))
        return None if markup is None else markup.get("inline_keyboard")

    def answers(self) -> list[str]:
        """Texts of the answerCallbackQuery calls accepted, in order."""
        return [str(r.params.get("text", "")) for r in self.calls("answerCallbackQuery") if r.status == 200]

    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates with a higher offset."""
        with self._lock:
            return len(self._updates)

    def release(self) -> None:
        """End every hang now (and any later one)."""
        self._release.set()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.messages.clear()
            self.markups.clear()
            self._answers.clear()
            self._update_answers.clear()
            self._updates.clear()
            self._release.clear()

    def calls(self, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    def texts(self, chat_id: str | None = None) -> list[str]:
        """Texts (as sent, HTML) of sendMessage calls that were accepted, in order."""
        return [
            str(r.params.get("text"))
            for r in self.calls("sendMessage")
            if r.status == 200 and (chat_id is None or str(r.params.get("chat_id")) == chat_id)
        ]

    # -- API -------------------------------------------------------------------------------------

    def _answer(self, method: str, token: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        with self._lock:
            queue = self._update_answers if method == "getUpdates" else self._answers
            scripted = queue.popleft() if queue else "ok"
            if scripted == "ok" and method in ("sendMessage", "editMessageText") and self.fail_rate:
                scripted = "500" if self._random.random() < self.fail_rate else "ok"
        kind, _, arg = scripted.partition(":")
        if kind == "hang":
            # The client has given up by now; answering an error keeps the hung call out of texts().
            self._release.wait(float(arg) if arg else 60.0)
            return 504, {"ok": False, "error_code": 504, "description": "Gateway Timeout (stand-in hang)"}
        if kind == "429":
            retry = int(arg or 1)
            return 429, {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {retry}",
                "parameters": {"retry_after": retry},
            }
        if kind == "500":
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if kind == "502":
            return 502, {}
        if kind == "400":
            return 400, {"ok": False, "error_code": 400, "description": arg or "Bad Request: chat not found"}
        if kind == "403":
            return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        return self._ok(method, params)

    def _ok(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "getMe":
            user = {"id": 123456, "is_bot": True, "first_name": "Stub", "username": "stub_bot"}
            return 200, {"ok": True, "result": user}
        if method == "getUpdates":
            return self._get_updates(params)
        if method == "answerCallbackQuery":
            if not str(params.get("callback_query_id") or ""):
                return _bad("Bad Request: query is too old and response timeout expired or query ID is invalid")
            if len(str(params.get("text", ""))) > 200:
                return _bad("Bad Request: MESSAGE_TOO_LONG")
            return 200, {"ok": True, "result": True}
        markup = params.get("reply_markup")
        problem = _markup_problem(markup)
        if problem:
            return _bad(f"Bad Request: {problem}")
        if method == "editMessageReplyMarkup":
            key = (str(params.get("chat_id", "")), int(params.get("message_id", 0)))
            with self._lock:
                if key not in self.messages:
                    return _bad("Bad Request: message to edit not found")
                if self.markups.get(key) == markup:
                    return _bad(
                        "Bad Request: message is not modified: specified new message content and reply markup "
                        "are exactly the same as a current content and reply markup of the message"
                    )
                self._set_markup(key, markup)
            return 200, {"ok": True, "result": {"message_id": key[1], "chat": {"id": key[0]}}}
        if method not in ("sendMessage", "editMessageText"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        chat = str(params.get("chat_id", ""))
        if not chat or chat in self.chats_not_found:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        if params.get("parse_mode") not in (None, "HTML"):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: unsupported parse_mode"}
        try:
            text = visible_text(str(params.get("text", ""))) if params.get("parse_mode") else str(params["text"])
        except (EntityError, KeyError) as exc:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: can't parse entities: {exc}"}
        if not text.strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if utf16_len(text) > LIMIT:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        with self._lock:
            if method == "editMessageText":
                key = (chat, int(params.get("message_id", 0)))
                if key not in self.messages:
                    return 400, {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: message to edit not found",
                    }
                if self.messages[key] == text and self.markups.get(key) == markup:
                    return 400, {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: message is not modified: specified new message content and "
                        "reply markup are exactly the same as a current content and reply markup of the message",
                    }
                message_id = key[1]
            else:
                message_id = self._next_id
                self._next_id += 1
            self.messages[(chat, message_id)] = text
            self._set_markup((chat, message_id), markup)  # an edit without reply_markup removes the keyboard
        result = {"message_id": message_id, "date": int(time.time()), "chat": {"id": chat}, "text": text}
        return 200, {"ok": True, "result": result}

    def _set_markup(self, key: tuple[str, int], markup: Any) -> None:
        if markup:
            self.markups[key] = markup
        else:
            self.markups.pop(key, None)

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.webhook:
            return 409, {
                "ok": False,
                "error_code": 409,
                "description": "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            }
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        wanted = params.get("allowed_updates")
        deadline = time.monotonic() + timeout
        with self._arrived:
            # "An update is considered confirmed as soon as getUpdates is called with an offset higher than
            # its update_id": confirmed updates are forgotten.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while True:
                found = [u for u in self._updates if not wanted or any(kind in u for kind in wanted)]
                left = deadline - time.monotonic()
                if found or left <= 0 or self._release.is_set():
                    return 200, {"ok": True, "result": found[:100]}
                self._arrived.wait(left)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout, a killed daemon in the middle of a long poll)

            def _body(self) -> dict[str, Any]:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not raw:
                    return {}
                if (self.headers.get("Content-Type") or "").startswith("application/json"):
                    parsed = json.loads(raw)
                    return parsed if isinstance(parsed, dict) else {}
                return dict(parse_qsl(raw.decode()))

            def do_GET(self) -> None:
                self._dispatch()

            def do_POST(self) -> None:
                self._dispatch()

            def _dispatch(self) -> None:
                params = self._body()
                if self.path.startswith("/_stub/"):
                    self._control(self.path[len("/_stub/") :], params)
                    return
                m = re.fullmatch(r"/bot([^/]+)/(\w+)", self.path.split("?")[0])
                if not m:
                    self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                record = Recorded(m.group(2), m.group(1), params, time.monotonic())
                with stub._lock:
                    stub.requests.append(record)
                status, answer = stub._answer(record.method, record.token, params)
                record.status, record.answer = status, answer
                self._reply(status, answer)

            def _control(self, command: str, params: dict[str, Any]) -> None:
                if command == "requests":
                    self._reply(200, [asdict(r) for r in stub.calls()])
                elif command == "messages":
                    with stub._lock:
                        items = [{"chat_id": c, "message_id": i, "text": t} for (c, i), t in stub.messages.items()]
                    self._reply(200, items)
                elif command == "script":
                    stub.script(*params.get("answers", []))
                    self._reply(200, {"ok": True})
                elif command == "release":
                    stub.release()
                    self._reply(200, {"ok": True})
                elif command == "fail":
                    stub.fail_at_random(float(params.get("rate", 0.0)), int(params.get("seed", 1)))
                    self._reply(200, {"ok": True})
                elif command == "reset":
                    stub.reset()
                    self._reply(200, {"ok": True})
                elif command == "press":
                    update_id = stub.press(
                        str(params["chat_id"]), int(params["message_id"]), str(params["data"]),
                        user_id=int(params.get("user_id", 7001)),
                    )  # fmt: skip
                    self._reply(200, {"ok": True, "update_id": update_id})
                elif command == "keyboards":
                    with stub._lock:
                        boards = [{"chat_id": c, "message_id": i, "markup": m} for (c, i), m in stub.markups.items()]
                    self._reply(200, boards)
                elif command == "answers":
                    self._reply(200, stub.answers())
                else:
                    self._reply(404, {"ok": False})

        return Handler


def _bad(description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"ok": False, "error_code": 400, "description": description}


def _markup_problem(markup: Any) -> str | None:
    """What Telegram would refuse in an inline keyboard (https://core.telegram.org/bots/api#inlinekeyboardbutton)."""
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return "can't parse reply keyboard markup JSON object"
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                return "inline keyboard button text must be non-empty"
            data = button.get("callback_data")
            if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                return "BUTTON_DATA_INVALID"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Telegram Bot API stand-in on 127.0.0.1")
    parser.add_argument("--token", default="123456:TEST-token")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="answer this share of sends with 500")
    args = parser.parse_args(argv)
    stub = TelegramStub(token=args.token, port=args.port)
    stub.fail_at_random(args.fail_rate)
    print(f"PORT {stub.port}", flush=True)
    try:
        stub._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
