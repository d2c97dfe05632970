"""The `monitor` command line. Exit status: 0 ok, 1 nothing could run, 2 bad config or usage."""

# (That docstring is `monitor --help`'s description. This module holds the parser, the smaller commands and main.)

# Start-up cost: this module and the command modules it imports (polling.py, matching.py) import only light
# parts. A command imports the heavy ones it runs inside its handler (the topic model's scikit-learn, SciPy and
# stemmers; SQLAlchemy; APScheduler), so `--version`, `--help` and `validate` start in a fraction of a second
# (tests/test_cli.py checks sys.modules; bench/startup.py).

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from .. import config as cfg
from ..errors import ConfigError, MonitorError, UsageError
from ..ports import SystemClock
from ..redact import scrub
from ..service.health import format_status
from ..service.logs import setup_logging
from .args import (
    Parser,
    add_globals,
    count,
    duration,
    existing_file,
    fraction,
    http_url,
    seconds,
    writable_file,
)
from .base import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, load_config, open_app, open_store
from .matching import cmd_eval, cmd_explain
from .polling import cmd_check, cmd_feeds
from .views import daemon_line, format_alerts, notify_test

if TYPE_CHECKING:
    from ..store import SqlStore


Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class _Records:
    """What `monitor status` reads (health.StatusSource)."""

    config: cfg.Config
    store: SqlStore


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the config and print a summary of feeds, topics and channels."""
    config = load_config(args)
    print(f"{config.path}: OK")
    print(
        f"settings: data in {config.data_dir}, database {scrub(config.database_url)}, "
        f"timezone {config.settings.timezone}"
    )
    print(f"feeds ({len(config.enabled_feeds)} enabled of {len(config.feeds)}):")
    for feed in config.feeds:
        every = f"every {cfg.format_duration(feed.interval)}" if feed.interval else "adaptive"
        flags = "" if feed.enabled else " [disabled]"
        print(f"  {feed.name:<24} {every:<14} {feed.url}{flags}")
    print(f"topics ({len(config.topics)}):")
    for topic in config.topics:
        channels = ", ".join(topic.notify) if topic.notify is not None else "all channels"
        examples = len(config.example_texts.get(topic.id, ()))
        print(f"  {topic.id:<24} {topic.name} — {len(topic.keywords)} keywords, {examples} examples -> {channels}")
    print(f"channels ({len(config.channels)}):")
    for name, channel in config.channels.items():
        print(f"  {name:<24} {channel.type} ({channel.mode})")
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    """Recent alerts with their topics and delivery state per channel."""

    config = load_config(args)
    store = open_store(config)
    try:
        since = SystemClock().now() - timedelta(seconds=args.since)
        print(format_alerts(store.alerts_since(since), config))
    finally:
        store.close()
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    """Send a test message to one channel and print the server's answer."""

    config = load_config(args)
    if args.channel not in config.channels:
        raise ConfigError(f'no channel "{args.channel}"; channels are: {", ".join(config.channels)}')
    app = open_app(config)
    try:
        print(notify_test(app.notifiers[args.channel]))
    finally:
        app.close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Health: feeds, topics, outbox."""

    config = load_config(args)
    store = open_store(config)
    try:
        polls = [s.last_fetch for s in store.feeds() if s.last_fetch is not None]
        lock = config.data_dir / "deliver.lock"  # App's: the delivering process holds it
        print(daemon_line(lock, max(polls, default=None), config.settings.tz, config.settings.timezone))
        print(format_status(_Records(config, store), SystemClock().now()))
    finally:
        store.close()
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
    """Label an alert's item for a topic, a near miss (n12), or a page found elsewhere (--url, --topic)."""
    from ..delivery.nearmiss import parse_id
    from .labels import label_alert, label_near_miss, label_url, topic_id, verdict  # feedparser, lxml: labels only

    config = load_config(args)
    user = args.user or _login()
    now = SystemClock().now()
    near_id = parse_id(args.words[0])
    if args.url:
        if len(args.words) != 1 or not args.topic:
            raise UsageError("with --url, give --topic TOPIC and the verdict: monitor label --url URL --topic T yes")
        relevant, topic = verdict(args.words[0]), topic_id(config, args.topic)
    elif near_id is not None:
        if len(args.words) not in (2, 3) or args.topic:
            raise UsageError("expected nID [TOPIC] yes|no for a near miss, e.g. monitor label n12 yes")
        relevant, topic = verdict(args.words[-1]), (args.words[1] if len(args.words) == 3 else "")
    else:
        if len(args.words) != 3 or args.topic:
            raise UsageError("expected ALERT_ID TOPIC yes|no, e.g. monitor label 12 libya no")
        if not args.words[0].lstrip("#").isdigit():
            raise UsageError(f"expected an alert id like 12 (see `monitor alerts`) or a near miss like n12, "
                             f"got {args.words[0]!r}")  # fmt: skip
        alert_id, relevant, topic = int(args.words[0].lstrip("#")), verdict(args.words[2]), args.words[1]
    store = open_store(config)
    try:
        if args.url:
            from ..feeds.http import HttpFetcher  # requests: only --url fetches

            fetcher = HttpFetcher.from_settings(config.settings)
            try:
                print(label_url(store, fetcher, config, args.url, topic, relevant, now, user))
            finally:
                fetcher.close()
        elif near_id is not None:
            print(label_near_miss(store, config, near_id, topic or None, relevant, now, user))
        else:
            print(label_alert(store, config, alert_id, topic, relevant, now, user))
    finally:
        store.close()
    return EXIT_OK


def cmd_labels(args: argparse.Namespace) -> int:
    """List the labels (per topic), export them with their items as JSON lines, or import such a file."""
    from .labels import export_labels, format_labels, import_labels, topic_id

    config = load_config(args)
    topic = topic_id(config, args.topic) if args.topic else None
    store = open_store(config)
    try:
        if args.import_file:
            count = import_labels(store, Path(args.import_file), SystemClock().now())
            print(f"imported {count} labels from {args.import_file}")
        if args.export:
            count = export_labels(store.labelled_items(topic), Path(args.export))
            print(f"exported {count} labels to {args.export}")
        if not args.export and not args.import_file:
            names = {t.id: t.name for t in config.topics}
            print(format_labels(store.labelled_items(topic), names, config.settings.tz))
    finally:
        store.close()
    return EXIT_OK


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        return ""


def cmd_init(args: argparse.Namespace) -> int:
    """Write a starter config.yaml with its example articles, or print the systemd unit (--systemd)."""
    from .skeleton import unit_text, write_starter

    if args.systemd:
        print(unit_text(), end="")
        return EXIT_OK
    target = Path(args.dir) if args.dir else cfg.default_config_dir()
    written = write_starter(target, force=args.force)
    config = target / cfg.DEFAULT_CONFIG
    print(f"wrote {config} and {len(written) - 1} files beside it (examples/, daemon.md)")
    found = cfg.config_path(None)
    hint = "" if Path(found).resolve() == config.resolve() else f" --config {config}"
    print(
        f"next: edit its feeds and topics, then `monitor validate{hint}`, `monitor check --learn{hint}` "
        f"(the feeds' backlog, seen and not alerted) and `monitor run{hint}`"
    )
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the bash completion script for `monitor`, generated from this parser."""
    from .completion import bash_completion

    print(bash_completion(build_parser()), end="")
    return EXIT_OK


def cmd_man(args: argparse.Namespace) -> int:
    """Print the monitor(1) man page (roff), generated from this parser."""
    from .completion import man_page

    print(man_page(build_parser()), end="")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground (systemd supervises it)."""
    from ..service.daemon import Daemon  # heavy: APScheduler and the whole application

    return Daemon(cfg.config_path(args.config), environ=dict(os.environ), delivery_process=True).run()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="monitor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"topic-monitor {__version__}")
    add_globals(parser, on_command=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_globals(p, on_command=True)  # before or after the command: `monitor --config x.yaml validate`
        p.set_defaults(handler=handler)
        return p

    add("validate", cmd_validate, "check the config and print a summary of feeds, topics and channels")
    p = add("check", cmd_check, "poll every feed once, match, enqueue and deliver (beside a running daemon: preview)")
    p.add_argument(
        "--deliver-timeout",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for retries before exiting (default 60)",
    )
    first_run = p.add_mutually_exclusive_group()
    first_run.add_argument(
        "--learn",
        action="store_true",
        help="mark everything the feeds hold now as seen (matched and grouped), alert nothing: "
        "the first run on new feeds",
    )
    first_run.add_argument(
        "--dry-run", action="store_true", help="fetch, match and print what would alert; store and send nothing"
    )
    add("feeds", cmd_feeds, "show each feed's last fetch, status, items, errors and next poll")
    p = add("explain", cmd_explain, "score a text against every topic and show why it matched")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to score")
    source.add_argument(
        "--file", type=existing_file, help="a text file (UTF-8, windows-1251 or KOI8-R): title on line 1, then the text"
    )
    source.add_argument("--url", type=http_url, help="a page to fetch; its article text is scored")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("eval", cmd_eval, "replay a labelled corpus and report precision, recall, F1 and Cdet")
    p.add_argument("--corpus", required=True, type=existing_file, help="JSON lines, optionally gzipped")
    p.add_argument("--warmup", type=fraction, default=0.2, help="fraction used as background only (default 0.2)")
    p.add_argument("--decisions", type=writable_file, help="write per-item decisions as JSON lines here")
    p.add_argument(
        "--feedback",
        type=count,
        default=0,
        metavar="K",
        help="simulate an analyst who labels alerts and offered near misses, up to K per topic (default 0)",
    )
    p.add_argument(
        "--feedback-rate",
        type=fraction,
        default=1.0,
        metavar="P",
        help="chance that an alert or near miss gets labelled (default 1.0)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulated analyst (default 0)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p = add("alerts", cmd_alerts, "list recent alerts and their delivery state per channel")
    p.add_argument("--since", type=duration, default=86400.0, help="how far back, e.g. 6h, 1d (default 1d)")
    p = add("notify-test", cmd_notify_test, "send a test message to a channel and print the answer")
    p.add_argument("channel", help="channel id from config.yaml")
    p = add("label", cmd_label, "record a verdict on an alert's item (12 libya no), on a near miss from the daily "
            "message (n12 yes) or on a page found elsewhere (--url URL --topic libya yes)")  # fmt: skip
    p.add_argument("words", nargs="+", metavar="ARG",
                   help="ALERT_ID TOPIC yes|no; a near miss nID [TOPIC] yes|no; with --url only yes|no")  # fmt: skip
    p.add_argument("--url", type=http_url, help="a page the monitor missed: fetched, stored as an item and labelled")
    p.add_argument("--topic", help="the topic (id or name), with --url")
    p.add_argument("--user", help="who gives the verdict (default: the login name)")
    p = add("labels", cmd_labels, "list the labels, or export / import them with their items as JSON lines")
    p.add_argument("--topic", help="only this topic's labels")
    p.add_argument(
        "--export", type=writable_file, metavar="FILE", help="write the labels and their items to FILE (JSON lines)"
    )
    p.add_argument(
        "--import", dest="import_file", type=existing_file, metavar="FILE", help="read labels and items from FILE"
    )
    add("status", cmd_status, "health: feeds, topics per day, labels, outbox depth and failures")
    p = add("init", cmd_init, "write a starter config.yaml and its example articles (or print the systemd unit)")
    p.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help="where to write them (default: $CONFIGURATION_DIRECTORY under systemd, "
        "else $XDG_CONFIG_HOME/topic-monitor)",
    )
    p.add_argument("--systemd", action="store_true", help="print the systemd unit for this installation instead")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    add("completion", cmd_completion, "print the bash completion script (zsh: after bashcompinit)")
    add("man", cmd_man, "print the monitor(1) man page")
    add("run", cmd_run, "run the daemon in the foreground")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    # The other commands print what matters themselves; the daemon's log is its only voice.
    setup_logging(level=args.log_level or ("INFO" if args.command == "run" else "ERROR"), fmt=args.log_format)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as exc:
        print(f"monitor {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except MonitorError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `monitor alerts | head`: the reader left; say nothing more (Python's documented way)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a file the command writes or reads (full disk, permissions): one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"monitor {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED


__all__ = ["build_parser", "main"]
