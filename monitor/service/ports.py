"""What the daemon needs from the App (monitor.app.App has it all; tests pass small fakes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from .. import config as cfg
from ..models import PollReport
from ..ports import Clock, Notifier, Store


class Poller(Protocol):
    def poll(self, feed: cfg.Feed) -> PollReport: ...


class DeliveryReport(Protocol):
    @property
    def sent(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def failures(self) -> Mapping[str, int]: ...


class Delivering(Protocol):
    def deliver_due(self) -> DeliveryReport: ...


class AppLike(Protocol):
    """The part of monitor.app.App the daemon uses (tests pass a fake)."""

    @property
    def config(self) -> cfg.Config: ...

    @property
    def store(self) -> Store: ...

    @property
    def pipeline(self) -> Poller: ...

    @property
    def deliverer(self) -> Delivering: ...

    @property
    def notifiers(self) -> Mapping[str, Notifier]: ...

    @property
    def delivering_pid(self) -> str: ...

    def claim_delivery(self) -> bool: ...
    def recover(self) -> int: ...
    def reconfigure(self, config: cfg.Config) -> None: ...
    def refit(self) -> None: ...
    def relearn(self) -> bool: ...
    def poll_feedback(self) -> int: ...
    def prune(self) -> int: ...
    def close(self) -> None: ...


class AppFactory(Protocol):
    def __call__(self, config: cfg.Config, *, clock: Clock | None = None) -> AppLike: ...


Loader = Callable[[str], cfg.Config]
