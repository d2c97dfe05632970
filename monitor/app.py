"""Wiring: build the parts from a Config, and swap them on reload or refit."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from .config import Config
from .delivery.channels import build_notifiers
from .delivery.outbox import Deliverer
from .errors import ModelError
from .feeds.http import DEFAULT_USER_AGENT, HttpFetcher
from .feeds.pool import ParserPool
from .match.classify import TopicModel
from .models import Item
from .pipeline import Pipeline
from .ports import Clock, Notifier, SystemClock
from .service.lock import ProcessLock
from .store import SqlStore
from .stories.group import StoryGrouper

log = logging.getLogger(__name__)

MODEL_FILE = "topic_model.npz"


@dataclass
class App:
    """Everything a command or the daemon needs, built once from the config."""

    config: Config
    clock: Clock
    store: SqlStore
    fetcher: HttpFetcher
    parser: ParserPool
    pipeline: Pipeline
    deliverer: Deliverer
    notifiers: dict[str, Notifier]

    unfinished: list[Item] = field(default_factory=list)  # stored, never matched: see recover()

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._deliver_lock = ProcessLock(self.config.data_dir / "deliver.lock")

    def claim_delivery(self) -> bool:
        """Become the one process that delivers the outbox of this data directory (see monitor.lock)."""
        return self._deliver_lock.acquire()

    def recover(self) -> int:
        """Match the items a stopped process stored but never matched; the delivering process calls it.

        Those items are no longer new to the next poll, so without this their alerts would be lost."""
        unfinished, self.unfinished = self.unfinished, []
        for item in unfinished:
            self.pipeline.process(item)
        if unfinished:
            log.info("matched %d items left unfinished by the last run", len(unfinished))
        return len(unfinished)

    @property
    def delivering_pid(self) -> str:
        return self._deliver_lock.holder()

    def reconfigure(self, config: Config) -> None:
        """Apply a new, already validated config: topics, channels and settings take effect for the next items."""
        with self._lock:
            model = load_model(config, self.store)
            notifiers = build_notifiers(config)
            old = self.notifiers
            self.config = config
            self.pipeline.config = config
            self.pipeline.model = model
            self.notifiers = notifiers
            self.deliverer = Deliverer(self.store, notifiers, config, self.clock)
            for notifier in old.values():
                notifier.close()

    def refit(self) -> None:
        """Refit the topic model's background statistics on the stored items; swap it in and persist it."""
        texts = background_texts(self.config, self.store)
        model = self.pipeline.model.refit(texts)
        model.save(self.config.data_dir / MODEL_FILE)
        self.pipeline.model = model
        log.info("topic model refit on %d stored items", len(texts))

    def prune(self) -> int:
        before = self.clock.now() - timedelta(seconds=self.config.settings.retention)
        return self.store.prune(before)

    def close(self) -> None:
        for notifier in self.notifiers.values():
            notifier.close()
        self.fetcher.close()
        self.parser.close()
        self.store.close()
        self._deliver_lock.release()


def background_texts(config: Config, store: SqlStore) -> list[str]:
    """The rolling window of stored items the model's IDF and calibration come from."""
    items = store.recent_items(config.settings.background_size)
    return [f"{item.title}\n\n{item.text}" for item in items]


def load_model(config: Config, store: SqlStore) -> TopicModel:
    """The persisted model with this config's topics, or a fresh one bootstrapped from stored items."""
    path = config.data_dir / MODEL_FILE
    if path.exists():
        try:
            return TopicModel.load(path, config.topics, config.example_texts)
        except ModelError as exc:
            log.warning("%s; rebuilding the topic model", exc)
    model = TopicModel.build(config.topics, config.example_texts, background_texts(config, store))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def open_app(config: Config, *, clock: Clock | None = None) -> App:
    """Open the store, load the model, rebuild the story window and connect the channels."""
    clock = clock or SystemClock()
    settings = config.settings
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(config.database_url)
    fetcher = HttpFetcher(
        user_agent=settings.user_agent or DEFAULT_USER_AGENT,
        read_timeout=settings.timeout,
        max_body=settings.max_body,
        max_redirects=settings.max_redirects,
    )
    grouper = StoryGrouper(window_seconds=settings.story_window)
    started = time.monotonic()
    stored = store.items_for_story_index(clock.now() - timedelta(seconds=settings.story_window))
    grouper.restore(stored)
    log.info("story window: %d stored items regrouped in %.1fs", len(stored), time.monotonic() - started)
    started = time.monotonic()
    model = load_model(config, store)
    log.info("topic model ready in %.1fs (%d topics)", time.monotonic() - started, len(config.topics))
    notifiers = build_notifiers(config)
    parser = ParserPool()
    pipeline = Pipeline(config, store, fetcher, model, grouper, clock, parse=parser)
    deliverer = Deliverer(store, notifiers, config, clock)
    app = App(config, clock, store, fetcher, parser, pipeline, deliverer, notifiers)
    app.unfinished = [item for item, story_id in stored if story_id is None]
    return app
