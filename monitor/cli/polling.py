"""The commands that poll: `monitor check` (also --learn, --dry-run) and `monitor feeds`."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import config as cfg
from ..errors import MonitorError
from ..feeds.concurrency import poll_all
from .base import EXIT_OK, load_config, open_app, open_store, table, when
from .progress import Progress

if TYPE_CHECKING:
    from ..models import PollReport


def cmd_check(args: argparse.Namespace) -> int:
    """Poll every enabled feed once, match and enqueue alerts, then deliver what is due (beside a daemon: preview).

    --learn: the same poll with every item silent (matched and grouped, its topics counted as told), so a
    later report of those stories stays quiet; nothing is delivered. --dry-run: Pipeline.preview for every
    feed, nothing stored or sent (on a data directory without a database yet, in a temporary one)."""
    config = load_config(args)
    if args.dry_run:
        return _dry_run(config)
    app = open_app(config)
    try:
        delivering = app.claim_delivery()
        if args.learn and not delivering:
            raise MonitorError(f"the daemon (pid {app.delivering_pid}) polls this data directory; stop it to "
                               "--learn, or let it alert what is new")  # fmt: skip
        if delivering and not args.learn:
            app.recover()
        elif not delivering:  # polling beside the daemon would take items from it and could split its stories
            print(f"the daemon (pid {app.delivering_pid}) polls this data directory: previewing, nothing is stored\n")
        if args.learn:
            reports = _poll_all(config, lambda feed: app.pipeline.poll(feed, alert=False))
        else:
            poll = app.pipeline.poll if delivering else app.pipeline.preview
            reports = _poll_all(config, poll)
        for report in reports:
            print(_feed_line(report))
        if args.learn:
            seen = sum(len(r.items) for r in reports)
            matched = sum(len(r.matches) for r in reports)
            print(f"\nlearned {seen} items ({matched} matching a topic) from {len(reports)} feeds: marked as seen, "
                  "nothing alerted; from now on only what is new alerts")  # fmt: skip
            return EXIT_OK
        _print_items(config, reports)
        if delivering:
            print(f"\ndelivery: {app.deliverer.deliver_until_idle(args.deliver_timeout)}")
            app.offer_near_misses()  # the day's near-miss message, when its time has come
        else:
            print(f"\ndelivery: left to the running daemon (pid {app.delivering_pid}); it alerts these items itself")
    finally:
        app.close()
    return EXIT_OK


def _poll_all(config: cfg.Config, poll: Callable[[cfg.Feed], PollReport]) -> list[PollReport]:
    """Every enabled feed, `settings.workers` at a time, with a progress line on a terminal."""
    feeds = config.enabled_feeds
    progress = Progress("polled", len(feeds), unit="feeds")

    def one(feed: cfg.Feed) -> PollReport:
        try:
            return poll(feed)
        finally:
            progress.step()

    try:
        return list(poll_all(feeds, one, workers=config.settings.workers))
    finally:
        progress.close()


def _dry_run(config: cfg.Config) -> int:
    """`check --dry-run`: what a check would store and alert, storing and sending nothing."""
    with tempfile.TemporaryDirectory(prefix="monitor-dry-run-") as scratch:
        fresh = not config.settings.database and not (config.data_dir / "monitor.db").exists()
        if fresh:  # no database yet: one would be created, and the topic model saved; do both elsewhere
            settings = config.settings.model_copy(update={"data_dir": scratch})
            config = config.model_copy(update={"settings": settings})
        app = open_app(config)
        try:
            reports = _poll_all(config, app.pipeline.preview)
        finally:
            app.close()
    for report in reports:
        print(_feed_line(report))
    _print_items(config, reports)
    alerts = sum(r.alerts for r in reports)
    print(f"\ndry run: {sum(r.new for r in reports)} new items, {alerts} would alert; nothing stored or sent")
    return EXIT_OK


def _print_items(config: cfg.Config, reports: Sequence[PollReport]) -> None:
    names = {t.id: t.name for t in config.topics}
    for report in reports:
        for item in report.items:
            print(f"\n[{item.feed}] {item.title}\n  {item.link or '(no link)'}")
            for match in report.matches.get(item.uid, ()):
                why = ", ".join(match.terms[:5])
                print(
                    f"  -> {names.get(match.topic, match.topic)}: {match.score:.2f} "
                    f"(threshold {match.threshold:.2f}) {why}"
                )


def _feed_line(report: PollReport) -> str:
    status = {"ok": "OK", "not_modified": "304", "error": "ERROR"}[report.status]
    line = f"{status:<6} {report.feed:<24} {report.new:>4} new / {report.total:>5} items  {report.elapsed:6.2f}s"
    problem = report.error or (report.warning and f"warning: {report.warning}")
    return f"{line}  {problem}" if problem else line


def cmd_feeds(args: argparse.Namespace) -> int:
    """Show every feed's state: last fetch, status, items, errors, next poll."""
    config = load_config(args)
    store = open_store(config)
    try:
        states = {s.name: s for s in store.feeds()}
        tz = config.settings.tz
        zone = config.settings.timezone  # one time zone in human output, labelled
        rows = [("feed", f"last fetch ({zone})", "status", "items", "errors", f"next poll ({zone})", "last error")]
        for feed in config.feeds:
            s = states.get(feed.name)
            if s is None:
                rows.append((feed.name, "never", "new", "0", "0", "now", ""))
                continue
            error = " ".join((s.last_error or "").split())  # whole: a cut error hides its cause
            if s.redirected_to:
                error = f"moved permanently to {s.redirected_to}; {error}".rstrip("; ")
            rows.append(
                (
                    feed.name,
                    when(s.last_fetch, tz),
                    s.status if feed.enabled else f"{s.status} (disabled)",
                    str(s.items_total),
                    str(s.error_count),
                    when(s.next_poll, tz),
                    error,
                )
            )
        table(rows)
    finally:
        store.close()
    return EXIT_OK
