"""Wiring: build the parts from a Config, and swap them on reload or refit."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

from .config import Config
from .delivery.channels import build_notifiers
from .delivery.feedback import FeedbackPoller
from .delivery.lock import ProcessLock
from .delivery.offers import NearMissOfferer, OfferReport
from .delivery.outbox import Deliverer
from .errors import ModelError
from .feeds.http import HttpFetcher
from .feeds.pool import ParserPool
from .match import worker
from .match.classify import TopicModel
from .models import Item, Label
from .pipeline import Pipeline, Unfinished
from .ports import Clock, Notifier, SystemClock
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

    labels_seen: int = -1  # the labels revision the pipeline's model has learned from
    model_seen: int | None = None  # the revision of the model stored in a shared database the pipeline uses
    fit_in_worker: bool = False  # the daemon's choice: load, build and refit the model in a worker (load_model)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # model swaps: reconfigure, refit, relearn
        self._deliver_lock = ProcessLock(self.config.data_dir / "deliver.lock")
        self._feedback: FeedbackPoller | None = None

    def claim_delivery(self) -> bool:
        """Become the one process that delivers the outbox of this data directory (see delivery/lock.py)."""
        return self._deliver_lock.acquire()

    def recover(self) -> int:
        """Match the items stored but never matched: those a stopped process left (at start-up), and those of
        polls whose database writes failed (the daemon calls it after each stored poll, so as soon as writes
        work again). The delivering process calls it; StoreError if writes still fail.

        Those items are no longer new to the next poll, so without this their alerts would be lost."""
        done = self.pipeline.finish_unfinished()
        if done:
            log.info("matched %d items left unfinished (by the last run, or by a failed database write)", done)
        return done

    @property
    def delivering_pid(self) -> str:
        return self._deliver_lock.holder()

    def reconfigure(self, config: Config) -> None:
        """Apply a new, already validated config: topics, channels and settings take effect for the next items."""
        with self._lock:
            self.labels_seen = self.store.labels_revision()
            model = load_model(config, self.store, self.fit_in_worker).with_labels(self.store.labelled_items())
            notifiers = build_notifiers(config)
            old = self.notifiers
            self.config = config
            self.pipeline.use(config=config, model=model)
            self.notifiers = notifiers
            self.deliverer = self.deliverer.renewed(notifiers, config)
            for notifier in old.values():
                notifier.close()

    def refit(self) -> None:
        """Refit the topic model's background statistics on the stored items, re-apply the labels; swap it
        in and persist it."""
        count = self._refit()
        release_memory()  # the fit's texts and tables are garbage once _refit returns
        log.info("topic model refit on %d stored items", count)

    def _refit(self) -> int:
        texts = background_texts(self.config, self.store)
        fit = worker.fit if self.fit_in_worker else TopicModel.fit
        model, _ = self._swap_model(lambda base, labelled: base.refit(texts, fit=fit).with_labels(labelled))
        path = self.config.data_dir / MODEL_FILE
        model.save(path)
        if self.store.shared:  # the other replicas load it from there (reload_model)
            self.model_seen = self.store.save_model_bytes(MODEL_FILE, path.read_bytes())
        return len(texts)

    def reload_model(self) -> bool:
        """With replicas on a shared database: the leader refit and stored a new model? Load it, learn the labels,
        swap it in. False when there is nothing new."""
        if not self.store.shared:
            return False
        revision = self.store.model_revision(MODEL_FILE)
        if revision is None or revision == self.model_seen:
            return False
        fetched = fetch_model(self.config, self.store)
        if fetched is None:
            return False
        config = self.config
        self._swap_model(lambda _, labelled: load_model(config, self.store, self.fit_in_worker).with_labels(labelled))
        self.model_seen = fetched
        log.info("topic model: loaded revision %d, refit by another replica", fetched)
        return True

    def adopt_unfinished(self, feeds: Collection[str]) -> int:
        """Items of these feeds stored but never matched (a replica died between the two): matched by the next
        recover(). Called when this replica takes the feeds over."""
        since = self.clock.now() - timedelta(seconds=self.config.settings.story_window)
        items = self.store.unfinished_items(feeds, since)
        self.pipeline.keep_unfinished([Unfinished(item) for item in items])
        return len(items)

    def relearn(self) -> bool:
        """If labels were written since the model last learned (by the Telegram job or by `monitor label`
        in another process), swap in a model that learned from all of them. Polls go on meanwhile with the
        old model; the next item is decided by the new one."""
        if self.store.labels_revision() == self.labels_seen:
            return False
        _, count = self._swap_model(lambda base, labelled: base.with_labels(labelled))
        log.info("topic model learned from %d labels", count)
        return True

    def _swap_model(
        self, build: Callable[[TopicModel, list[tuple[Label, Item]]], TopicModel]
    ) -> tuple[TopicModel, int]:
        """Build a model from the current one and every label, outside the lock (it may take a while, and a
        reload waits for the lock); swap it in, unless another swap happened meanwhile: then build again.
        Returns the model and the number of labels it learned from."""
        while True:
            base = self.pipeline.model
            revision = self.store.labels_revision()  # before the labels: one written in between counts next time
            labelled = self.store.labelled_items()
            model = build(base, labelled)
            with self._lock:
                if self.pipeline.model is base:
                    self.pipeline.use(model=model)
                    self.labels_seen = revision
                    return model, len(labelled)

    def poll_feedback(self) -> int:
        """Receive the button presses under Telegram alerts (one long poll), then learn from new labels.

        Called from one thread (the daemon's feedback job); returns the number of presses recorded."""
        if self._feedback is None or self._feedback.config is not self.config:
            if self._feedback is not None:
                self._feedback.close()
            self._feedback = FeedbackPoller(self.config, self.store, self.clock)
        recorded = self._feedback.poll()
        if recorded:
            self.relearn()
        return recorded

    def offer_near_misses(self) -> OfferReport:
        """Once the day's time has come, put the near misses into one message per channel; send what is due."""
        return NearMissOfferer(self.store, self.notifiers, self.config, self.clock).run()

    def prune(self) -> int:
        before = self.clock.now() - timedelta(seconds=self.config.settings.retention)
        return self.store.prune(before)

    def close(self) -> None:
        if self._feedback is not None:
            self._feedback.close()
        for notifier in self.notifiers.values():
            notifier.close()
        self.fetcher.close()
        self.parser.close()
        self.store.close()
        self._deliver_lock.release()


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)  # glibc only


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand the memory a refit or a model build used for a while back to the system.

    A refit reads 20,000 stored texts and fits on them (the daemon: sends them to the fitting worker,
    match/worker.py, and unpickles the model it hands back): tens of MB of short-lived objects. Python frees them,
    but glibc keeps the freed heap mapped, so the daemon's RSS stayed at its peak (issue 16). malloc_trim(3)
    returns it; elsewhere (musl, macOS) this does nothing.
    """
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


def background_texts(config: Config, store: SqlStore) -> list[str]:
    """The rolling window of stored items the model's IDF and calibration come from."""
    items = store.recent_items(config.settings.background_size)
    return [f"{item.title}\n\n{item.text}" for item in items]


def fetch_model(config: Config, store: SqlStore) -> int | None:
    """Write the model stored in a shared database to the data directory (atomically); its revision, or None."""
    stored = store.load_model_bytes(MODEL_FILE)
    if stored is None:
        return None
    revision, data = stored
    path = config.data_dir / MODEL_FILE
    config.data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)
    return revision


def load_model(config: Config, store: SqlStore, in_worker: bool = False) -> TopicModel:
    """The persisted model with this config's topics, or a fresh one bootstrapped from stored items.

    `in_worker`: made in a worker process (match/worker.py), so that scikit-learn is never imported here and the
    fitting's garbage leaves with the worker: what the daemon, which runs for months, wants. A one-shot command
    exits soon anyway and saves the worker's start (~1.5 s of CPU) by fitting in its own process.
    """
    path = config.data_dir / MODEL_FILE
    if path.exists():
        try:
            if in_worker:
                return worker.load(path, config.topics, config.example_texts)
            return TopicModel.load(path, config.topics, config.example_texts)
        except ModelError as exc:
            log.warning("%s; rebuilding the topic model", exc)
    build = worker.build if in_worker else TopicModel.build
    model = build(config.topics, config.example_texts, background_texts(config, store))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def open_app(config: Config, *, clock: Clock | None = None, fit_in_worker: bool = False) -> App:
    """Open the store, load the model, rebuild the story window and connect the channels.

    `fit_in_worker`: the daemon's choice (see load_model); one-shot commands fit in their own process."""
    clock = clock or SystemClock()
    settings = config.settings
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(config.database_url)
    fetcher = HttpFetcher.from_settings(settings)
    grouper = StoryGrouper(window_seconds=settings.story_window)
    stored = store.items_for_story_index(clock.now() - timedelta(seconds=settings.story_window))
    # Rebuilt beside the model load and the first polls (grouping waits for it): start-up does not wait.
    grouper.restore_in_background(stored)
    started = time.monotonic()
    labels_seen = store.labels_revision()
    # Replicas share one model: the one in the database (the leader's last refit), or this one, stored for them.
    model_seen = fetch_model(config, store) if store.shared else None
    base = load_model(config, store, fit_in_worker)
    if store.shared and model_seen is None:
        model_seen = store.save_model_bytes(MODEL_FILE, (config.data_dir / MODEL_FILE).read_bytes())
    model = base.with_labels(store.labelled_items())
    log.info("topic model ready in %.1fs (%d topics)", time.monotonic() - started, len(config.topics))
    release_memory()  # a first start built the model: its fitting's garbage
    notifiers = build_notifiers(config)
    parser = ParserPool()
    pipeline = Pipeline(config, store, fetcher, model, grouper, clock, parse=parser)
    deliverer = Deliverer(store, notifiers, config, clock)
    pipeline.keep_unfinished([Unfinished(item) for item, story_id in stored if story_id is None])
    return App(
        config, clock, store, fetcher, parser, pipeline, deliverer, notifiers,
        labels_seen=labels_seen, model_seen=model_seen, fit_in_worker=fit_in_worker,
    )  # fmt: skip
