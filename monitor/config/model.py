"""The config's schema: frozen pydantic models that validate every key (errors are put in words by load.py)."""

from __future__ import annotations

import codecs
import re
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .values import ClockTime, Duration, QuietHours, UserId, clock_or_off, parse_clock, parse_quiet_hours

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
    near_misses: Annotated[str, BeforeValidator(clock_or_off)] = "17:00"
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
            raise ValueError('a digest channel needs `every` (e.g. 1h) or `at` (e.g. "08:00")')
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
                raise LocatedError(("feeds", i, "name"), f'duplicate feed name "{name}"')
        ids = [t.id for t in self.topics]
        for i, topic in enumerate(self.topics):
            if topic.id in ids[:i]:
                raise LocatedError(("topics", i, "id"), f'duplicate topic id "{topic.id}"')
            for j, channel in enumerate(topic.notify or []):
                if channel not in self.channels:
                    raise LocatedError(
                        ("topics", i, "notify", j),
                        f'unknown channel "{channel}"; channels are: {", ".join(self.channels) or "none"}',
                    )
        admin = self.settings.admin_channel
        if admin is not None and admin not in self.channels:
            raise LocatedError(("settings", "admin_channel"), f'unknown channel "{admin}"')
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


class LocatedError(ValueError):
    """A cross-field error that knows which key it is about."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
