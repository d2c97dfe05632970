"""config.yaml: parsed once into frozen, validated objects.

Every error names the file, the line, the key path and what was expected, e.g.
``config.yaml:14: feeds[2].interval: expected a duration like 5m, got "fast"``.
This is the only module that reads ``os.environ``.
"""

from __future__ import annotations

import codecs
import difflib
import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

DEFAULT_CONFIG = "config.yaml"
CONFIG_ENV = "MONITOR_CONFIG"
APP_DIR = "topic-monitor"  # the name of its directories under $XDG_CONFIG_HOME and /etc

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """'30s', '5m', '1h', '1d' (or a number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 5m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f'expected a duration like 5m, got "{value}"')
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as config.yaml writes it, for display: 86400 -> "1d", 300 -> "5m", 90 -> "90s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds < 1:
        raise ValueError(f'expected a duration of at least 1s, got "{value}"')
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]


def _clock_time(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(f'expected a time like "08:00", got {value!r}')
    return value


ClockTime = Annotated[str, BeforeValidator(_clock_time)]


def _near_miss_time(value: object) -> str:
    # YAML 1.1 reads a bare `off` as false, and a bare 18:00 as the base-60 number 1080.
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return "off"
    if isinstance(value, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        return value
    raise ValueError(f'expected a time in quotes like "17:00", or off, got {value!r}')


def parse_clock(value: str) -> dtime:
    hours, minutes = value.split(":")
    return dtime(int(hours), int(minutes))


@dataclass(frozen=True)
class QuietHours:
    """A channel's daily quiet time, in settings.timezone: "23:00-07:00" wraps midnight, "08:00-08:00" is empty."""

    start: dtime
    end: dtime

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(value: object) -> QuietHours:
    """Parse "23:00-07:00" into QuietHours: once, when the config is loaded."""
    if isinstance(value, QuietHours):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d\d:\d\d\s*-\s*\d\d:\d\d", value):
        raise ValueError(f'expected a range like "23:00-07:00", got {value!r}')
    start, end = (part.strip() for part in value.split("-"))
    return QuietHours(parse_clock(_clock_time(start)), parse_clock(_clock_time(end)))


def _user_id(value: object) -> int:
    # A digit string is fine: ids often come from the environment ("${ANALYST_ID}").
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a Telegram user id (a positive number), got {value!r}")
    return value


UserId = Annotated[int, BeforeValidator(_user_id)]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Settings(_Strict):
    data_dir: str = "./data"
    database: str | None = None  # default: sqlite in data_dir
    timezone: str = "UTC"
    default_interval: Duration = 600.0
    retention: Duration = 30 * 86400.0
    backfill: Duration = 86400.0  # on a feed's first poll, older items are matched but not alerted
    user_agent: str | None = None
    timeout: Duration = 20.0  # read timeout for feeds and pages; a whole fetch gets 3 × this
    max_body: int = Field(default=10 * 1024 * 1024, gt=0)  # bytes, after decompression
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_backoff: Duration = 6 * 3600.0
    workers: int = Field(default=8, ge=1, le=64)
    admin_channel: str | None = None
    dead_feed_after: Duration = 12 * 3600.0
    metrics: str | None = None  # "127.0.0.1:9464"
    give_up_after: Duration = 7 * 86400.0
    story_window: Duration = 48 * 3600.0
    refit_every: Duration = 6 * 3600.0
    background_size: int = Field(default=20000, ge=0)
    # The daily "just below the line" message (delivery/offers.py), local time; "off": none, and none recorded.
    near_misses: Annotated[str, BeforeValidator(_near_miss_time)] = "17:00"
    # Replicas on one PostgreSQL database (service/leases.py): a dead replica's feeds and duties move within this.
    lease: Duration = 30.0
    allow_private_fetch: bool = False  # pages (full text, explain/label --url) may be on loopback/private addresses

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f'expected an IANA time zone like "Europe/Moscow", got "{value}"') from exc
        return value

    @field_validator("metrics")
    @classmethod
    def _hostport(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", value):
            raise ValueError(f'expected host:port like "127.0.0.1:9464", got "{value}"')
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def near_miss_time(self) -> dtime | None:
        """When near misses are offered each day (in `tz`), None when that is off."""
        return None if self.near_misses == "off" else parse_clock(self.near_misses)


class _ChannelBase(_Strict):
    mode: Literal["instant", "digest"] = "instant"
    every: Duration | None = None  # digest period
    at: ClockTime | None = None  # digest time of day, in settings.timezone
    quiet_hours: Annotated[QuietHours, BeforeValidator(parse_quiet_hours)] | None = None

    @model_validator(mode="after")
    def _digest(self) -> _ChannelBase:
        if self.mode == "digest" and self.every is None and self.at is None:
            raise ValueError("a digest channel needs `every` (e.g. 1h) or `at` (e.g. \"08:00\")")
        return self


class ConsoleChannel(_ChannelBase):
    type: Literal["console"]


class TelegramChannel(_ChannelBase):
    type: Literal["telegram"]
    bot_token: str = Field(min_length=1, repr=False)
    chat_id: str | int
    message_thread_id: int | None = None
    api_url: str = "https://api.telegram.org"
    disable_preview: bool = True
    pace: bool = True  # keep under Telegram's per-chat limits
    timeout: Duration = 30.0
    # Telegram user ids whose button presses count; unset: any member of the chat
    allowed_users: list[UserId] | None = None

    @field_validator("allowed_users", mode="before")
    @classmethod
    def _users(cls, value: object) -> object:
        if value is not None and (not isinstance(value, list) or not value):
            raise ValueError(
                "expected a list of Telegram user ids like [123456789]; leave the key out to accept button "
                f"presses from every member of the chat, got {value!r}"
            )
        return value


class EmailChannel(_ChannelBase):
    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    ca_file: str | None = None  # extra CA bundle, for an internal server with its own certificate
    timeout: Duration = 30.0


Channel = Annotated[ConsoleChannel | TelegramChannel | EmailChannel, Field(discriminator="type")]


class Feed(_Strict):
    name: str = Field(min_length=1)
    url: str
    interval: Duration | None = None  # fixed interval; else adaptive between min and max
    min_interval: Duration | None = None
    max_interval: Duration | None = None
    enabled: bool = True
    full_text: bool = False
    allow_private_fetch: bool = False  # this feed's full-text pages may be on loopback/private addresses
    encoding: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f'expected an http(s) URL, got "{value}"')
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError as exc:
                raise ValueError(f'expected a known text encoding like "windows-1251", got "{value}"') from exc
        return value


class Example(_Strict):
    title: str = ""
    text: str


class Topic(_Strict):
    id: str
    name: str
    description: str = ""
    keywords: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    examples: list[str | Example] = Field(default_factory=list)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    notify: list[str] | None = None
    priority: Literal["normal", "high"] = "normal"
    # mentions: an item that names the topic alerts, even in passing; about: only items about it (docs/matching.md)
    scope: Literal["mentions", "about"] = "mentions"

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f'expected a slug of a-z, 0-9, "-" and "_", got "{value}"')
        return value


def _default_channels() -> dict[str, ConsoleChannel | TelegramChannel | EmailChannel]:
    return {"console": ConsoleChannel(type="console")}


class Config(_Strict):
    settings: Settings = Field(default_factory=Settings)
    channels: dict[str, Channel] = Field(default_factory=_default_channels)
    feeds: list[Feed] = Field(default_factory=list)
    topics: list[Topic] = Field(default_factory=list)
    # Filled in by load(): where the file is, and the examples read from disk.
    path: str = Field(default="", exclude=True)
    example_texts: dict[str, tuple[tuple[str, str], ...]] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Config:
        names = [f.name for f in self.feeds]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _LocatedError(("feeds", i, "name"), f'duplicate feed name "{name}"')
        ids = [t.id for t in self.topics]
        for i, topic in enumerate(self.topics):
            if topic.id in ids[:i]:
                raise _LocatedError(("topics", i, "id"), f'duplicate topic id "{topic.id}"')
            for j, channel in enumerate(topic.notify or []):
                if channel not in self.channels:
                    raise _LocatedError(
                        ("topics", i, "notify", j),
                        f'unknown channel "{channel}"; channels are: {", ".join(self.channels) or "none"}',
                    )
        admin = self.settings.admin_channel
        if admin is not None and admin not in self.channels:
            raise _LocatedError(("settings", "admin_channel"), f'unknown channel "{admin}"')
        return self

    @property
    def enabled_feeds(self) -> list[Feed]:
        return [f for f in self.feeds if f.enabled]

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    @property
    def data_dir(self) -> Path:
        path = Path(self.settings.data_dir)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_url(self) -> str:
        url = self.settings.database
        if not url:
            return f"sqlite:///{self.data_dir / 'monitor.db'}"
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            relative = url[len("sqlite:///") :]
            if relative and relative != ":memory:":
                return f"sqlite:///{self.base_dir / relative}"
        return url

    def channels_for(self, topic_ids: list[str] | tuple[str, ...]) -> list[str]:
        """The union of the topics' notify channels, in config order (default: every channel)."""
        wanted: set[str] = set()
        for topic in self.topics:
            if topic.id in topic_ids:
                wanted.update(topic.notify if topic.notify is not None else self.channels)
        return [name for name in self.channels if name in wanted]


class _LocatedError(ValueError):
    """A cross-field error that knows which key it is about."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


# --- YAML with line numbers -------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every key and list element."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise ConfigError(f"{loader.name}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    return _Lined(result, lines, node.start_mark.line + 1)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = [loader.construct_object(child, deep=True) for child in node.value]
    return _LinedList(items, [child.start_mark.line + 1 for child in node.value], node.start_mark.line + 1)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Lined(dict[Any, Any]):
    def __init__(self, data: dict[Any, Any], lines: dict[Any, int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


class _LinedList(list[Any]):
    def __init__(self, data: list[Any], lines: list[int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


def _line_of(tree: Any, loc: tuple[str | int, ...]) -> int:
    """The line of the deepest key in `loc` that the YAML has."""
    line = getattr(tree, "line", 1)
    node = tree
    for part in loc:
        in_map = isinstance(node, _Lined) and part in node
        in_list = isinstance(node, _LinedList) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_map or in_list):
            break
        line = node.lines[part]
        node = node[part]
    return line


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _clean_loc(loc: tuple[str | int, ...], tree: Any) -> tuple[str | int, ...]:
    """Drop pydantic's union-branch markers (e.g. 'telegram', 'function-before[...]') from a loc."""
    clean: list[str | int] = []
    node = tree
    for part in loc:
        if isinstance(node, dict):
            if part in node:
                clean.append(part)
                node = node[part]
            elif part == "from_" and "from" in node:
                clean.append("from")
                node = node["from"]
            elif isinstance(part, str) and (part in {"console", "telegram", "email"} or "[" in part):
                continue
            else:
                clean.append(part)
                node = None
        elif isinstance(node, list) and isinstance(part, int):
            clean.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(part, str) and "[" in part:
            continue
        else:
            clean.append(part)
            node = None
    return tuple(clean)


def _describe(error: Any) -> str:
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f'expected type to be one of console, telegram, email, got "{error["ctx"]["tag"]}"'
    if kind == "union_tag_not_found":
        return "expected a `type` key (console, telegram or email)"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        return message
    if message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    shown = f'"{got}"' if isinstance(got, str) else repr(got)
    return f"{message[:1].lower()}{message[1:]}, got {shown}"


# --- YAML syntax errors in words --------------------------------------------------------------------

# The parser's message says where it gave up, in its own terms; these say what the writer most likely did.
_YAML_WORDS = (
    ("found character '\\t'", "a tab character: YAML indents with spaces only"),
    ("mapping values are not allowed", "a colon followed by a space inside a value: put the value in quotes, "
     "or check that the line is indented like its neighbours"),
    ("could not find expected ':'", "a key without its colon, or a line that is indented as if it continued "
     "the line above"),
    ("expected <block end>", "a line indented differently from the keys or list items beside it"),
    ("did not find expected key", "a line indented differently from the keys beside it, or a list item (-) "
     "among keys"),
    ("did not find expected '-' indicator", "a key among the items of a list (-), or a list item indented "
     "differently from the others"),
    ("expected the node content", "a value is missing where one must be (after a [, a { or a comma)"),
    ("expected ',' or ']'", "a list in [ ] that is not closed, or a missing comma between its items"),
    ("expected ',' or '}'", "a mapping in { } that is not closed, or a missing comma between its keys"),
    ("found unexpected end of stream", "a quote that is never closed"),
    ("found unknown escape character", "a backslash inside double quotes: use single quotes, or write \\\\"),
    ("found undefined alias", "a * at the start of a value: put the value in quotes"),
    ("found character '@' that cannot start", "a value starting with @: put it in quotes"),
    ("found character '`' that cannot start", "a value starting with `: put it in quotes"),
    ("found character '%' that cannot start", "a value starting with %: put it in quotes"),
)


def yaml_in_words(exc: yaml.MarkedYAMLError) -> str:
    """What is wrong, then the parser's own message (and where the construct it was reading began)."""
    parser = str(exc.problem or exc)
    started = ""
    if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
        started = f", {exc.context} on line {exc.context_mark.line + 1}"
    text = f"{exc.context or ''} {parser}"
    words = next((words for needle, words in _YAML_WORDS if needle in text), None)
    return f"{words} (parser: {parser}{started})" if words else f"{parser}{started}"


# --- environment ----------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, env: dict[str, str], loc: tuple[str | int, ...], tree: Any, name: str) -> Any:
    if isinstance(value, _Lined):
        return _Lined(
            {k: _expand(v, env, (*loc, k), tree, name) for k, v in value.items()}, value.lines, value.line
        )
    if isinstance(value, _LinedList):
        return _LinedList(
            [_expand(v, env, (*loc, i), tree, name) for i, v in enumerate(value)], value.lines, value.line
        )
    if isinstance(value, str) and "${" in value:

        def replace(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in env and env[var] != "":
                return env[var]
            if default is not None:
                return default
            raise ConfigError(
                f"{name}:{_line_of(tree, loc)}: {_path(loc)}: environment variable {var} is not set "
                f"(set it, or write ${{{var}:-default}})"
            )

        return _VAR.sub(replace, value)
    return value


# --- loading --------------------------------------------------------------------------------------


def config_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a config lives when no path is given: systemd's $CONFIGURATION_DIRECTORY (a colon-separated list,
    set by ConfigurationDirectory=), then $XDG_CONFIG_HOME/topic-monitor (default ~/.config/topic-monitor)."""
    env = os.environ if env is None else env
    dirs = [Path(d) for d in env.get("CONFIGURATION_DIRECTORY", "").split(":") if d]
    xdg = env.get("XDG_CONFIG_HOME") or (str(Path(env["HOME"]) / ".config") if env.get("HOME") else "")
    if xdg:
        dirs.append(Path(xdg) / APP_DIR)
    return dirs


def default_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where `monitor init` writes by default: the first of config_dirs()."""
    dirs = config_dirs(env)
    if not dirs:
        raise ConfigError("no config directory: set XDG_CONFIG_HOME or HOME, or give `monitor init` a DIR")
    return dirs[0]


def config_candidates(explicit: str | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """The config files looked for, in order: --config, $MONITOR_CONFIG, ./config.yaml, the config directories."""
    env = os.environ if env is None else env
    if explicit:
        return [explicit]
    if env.get(CONFIG_ENV):
        return [env[CONFIG_ENV]]
    return [DEFAULT_CONFIG, *(str(d / DEFAULT_CONFIG) for d in config_dirs(env))]


def config_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The config file to read: the first of config_candidates() that exists, else the first of them."""
    candidates = config_candidates(explicit, env)
    return next((c for c in candidates if Path(c).is_file()), candidates[0])


def load(path: str | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raise ConfigError with file:line on any problem."""
    environ = dict(os.environ) if env is None else env
    candidates = config_candidates(path, os.environ)
    path = config_path(path, os.environ)
    name = path
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if len(candidates) > 1:
            raise ConfigError(
                f"{path}: no such file, nor {', '.join(candidates[1:])}; write one with `monitor init`, "
                f"or use --config PATH or set {CONFIG_ENV}"
            ) from exc
        raise ConfigError(f"{path}: no such file (use --config PATH or set {CONFIG_ENV})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return loads(text, name=name, env=environ)


def loads(text: str, *, name: str = DEFAULT_CONFIG, env: dict[str, str] | None = None) -> Config:
    """Validate config text; `name` is the file name shown in errors and the base for relative paths."""
    env = {} if env is None else env
    try:
        loader = _LineLoader(text)
        loader.name = name
        try:
            tree = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{name}:{line}: not valid YAML: {yaml_in_words(exc)}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from exc
    if tree is None:
        tree = _Lined({}, {}, 1)
    if not isinstance(tree, dict):
        raise ConfigError(f"{name}:1: expected a mapping with settings, channels, feeds, topics")
    tree = _with_state_directory(_expand(tree, env, (), tree, name), env)
    try:
        config = Config.model_validate({**tree, "path": name})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            ctx = error.get("ctx") or {}
            located = ctx.get("error")
            if isinstance(located, _LocatedError):
                loc, message = located.loc, located.message
            else:
                loc, message = _clean_loc(tuple(error["loc"]), tree), _describe(error)
                if error["type"] == "extra_forbidden":
                    message += _nearest_key(loc, tree)
            lines.append(f"{name}:{_line_of(tree, loc)}: {_path(loc)}: {message}")
        raise ConfigError("\n".join(dict.fromkeys(lines))) from exc
    return config.model_copy(update={"example_texts": _read_examples(config, tree, name)})


def _with_state_directory(tree: Any, env: Mapping[str, str]) -> Any:
    """settings.data_dir defaults to systemd's $STATE_DIRECTORY (StateDirectory=) when it is set and the file
    names none: the unit's state directory is the one place a DynamicUser service may write."""
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    settings = tree.get("settings")
    if not state or (not isinstance(settings, dict) and settings is not None) or "data_dir" in (settings or {}):
        return tree
    lines = getattr(settings, "lines", {})
    line = getattr(settings, "line", tree.line)
    new = _Lined({**(settings or {}), "data_dir": state}, {**lines, "data_dir": line}, line)
    return _Lined({**tree, "settings": new}, {"settings": line, **tree.lines}, tree.line)


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items() if not field.exclude]


def _nearest_key(loc: tuple[str | int, ...], tree: Any) -> str:
    """"; did you mean threshold?" for a misspelt key, or the keys allowed there when none is near."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    parent = loc[:-1]
    model: type[BaseModel] | None = None
    if parent == ():
        model = Config
    elif parent == ("settings",):
        model = Settings
    elif len(parent) == 2 and parent[0] == "feeds":
        model = Feed
    elif len(parent) == 2 and parent[0] == "topics":
        model = Topic
    elif len(parent) == 4 and parent[0] == "topics" and parent[2] == "examples":
        model = Example
    elif len(parent) == 2 and parent[0] == "channels":
        node = tree.get("channels", {}).get(parent[1]) if isinstance(tree.get("channels"), dict) else None
        kind = node.get("type") if isinstance(node, dict) else None
        kinds: dict[str, type[BaseModel]] = {"console": ConsoleChannel, "telegram": TelegramChannel,
                                             "email": EmailChannel}  # fmt: skip
        model = kinds.get(str(kind))
    if model is None:
        return ""
    keys = _keys_of(model)
    near = difflib.get_close_matches(loc[-1], keys, n=1, cutoff=0.6)
    if near:
        return f"; did you mean {near[0]}?"
    return f"; expected one of: {', '.join(keys)}"


def _read_examples(config: Config, tree: Any, name: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each topic's examples as (title, text): files are 'title, blank line, text'."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for i, topic in enumerate(config.topics):
        texts: list[tuple[str, str]] = []
        for j, example in enumerate(topic.examples):
            if isinstance(example, Example):
                texts.append((example.title, example.text))
                continue
            pattern = example if os.path.isabs(example) else str(config.base_dir / example)
            paths = sorted(glob.glob(pattern))
            if not paths:
                loc = ("topics", i, "examples", j)
                raise ConfigError(f'{name}:{_line_of(tree, loc)}: {_path(loc)}: no file matches "{example}"')
            for file in paths:
                try:
                    raw = Path(file).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    loc = ("topics", i, "examples", j)
                    raise ConfigError(f"{name}:{_line_of(tree, loc)}: {_path(loc)}: cannot read {file}: {exc}") from exc
                title, _, body = raw.strip().partition("\n")
                texts.append((title.strip(), body.strip()))
        out[topic.id] = tuple(texts)
    return out
