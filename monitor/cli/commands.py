"""The `monitor` command line. Exit status: 0 ok, 1 nothing could run, 2 bad config or usage."""

# Start-up cost: this module imports only light parts. A command imports the heavy ones it runs inside its
# handler (the topic model's scikit-learn, SciPy and stemmers; SQLAlchemy; APScheduler), so `--version`,
# `--help` and `validate` start in a fraction of a second (tests/test_cli.py checks sys.modules; bench/startup.py).

from __future__ import annotations

import argparse
import getpass
import gzip
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from .. import config as cfg
from ..errors import ConfigError, MonitorError, UsageError
from ..feeds.concurrency import poll_all
from ..match.explain import explanation_json, format_explanation
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
from .progress import Progress
from .views import daemon_line, format_alerts, notify_test

if TYPE_CHECKING:
    from ..app import App
    from ..models import Match, PollReport
    from ..store import SqlStore

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def _config(args: argparse.Namespace) -> cfg.Config:
    return cfg.load(args.config)


def _open_app(config: cfg.Config) -> App:
    """Everything, topic model included: for the commands that poll, match or send."""
    from ..app import open_app  # heavy: the stemmers, scikit-learn to fit (here: a command exits soon; app.load_model)

    return open_app(config)


def _open_store(config: cfg.Config) -> SqlStore:
    """The store alone, for the commands that only read it: no topic model, no story window, no channels."""
    from ..store import SqlStore  # heavy: SQLAlchemy (~0.2 s) that --version, --help and validate do without

    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlStore(config.database_url)


@dataclass(frozen=True)
class _Records:
    """What `monitor status` reads (health.StatusSource)."""

    config: cfg.Config
    store: SqlStore


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the config and print a summary of feeds, topics and channels."""
    config = _config(args)
    print(f"{config.path}: OK")
    print(f"settings: data in {config.data_dir}, database {scrub(config.database_url)}, "
          f"timezone {config.settings.timezone}")
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


def cmd_check(args: argparse.Namespace) -> int:
    """Poll every enabled feed once, match and enqueue alerts, then deliver what is due (beside a daemon: preview).

    --learn: the same poll with every item silent (matched and grouped, its topics counted as told), so a
    later report of those stories stays quiet; nothing is delivered. --dry-run: Pipeline.preview for every
    feed, nothing stored or sent (on a data directory without a database yet, in a temporary one)."""
    config = _config(args)
    if args.dry_run:
        return _dry_run(config)
    app = _open_app(config)
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
        app = _open_app(config)
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
                print(f"  -> {names.get(match.topic, match.topic)}: {match.score:.2f} "
                      f"(threshold {match.threshold:.2f}) {why}")


def _feed_line(report: PollReport) -> str:
    status = {"ok": "OK", "not_modified": "304", "error": "ERROR"}[report.status]
    line = f"{status:<6} {report.feed:<24} {report.new:>4} new / {report.total:>5} items  {report.elapsed:6.2f}s"
    problem = report.error or (report.warning and f"warning: {report.warning}")
    return f"{line}  {problem}" if problem else line


def cmd_feeds(args: argparse.Namespace) -> int:
    """Show every feed's state: last fetch, status, items, errors, next poll."""
    config = _config(args)
    store = _open_store(config)
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
            rows.append((
                feed.name,
                _when(s.last_fetch, tz),
                s.status if feed.enabled else f"{s.status} (disabled)",
                str(s.items_total),
                str(s.error_count),
                _when(s.next_poll, tz),
                error,
            ))
        _table(rows)
    finally:
        store.close()
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Score a text against every topic and say why."""

    config = _config(args)
    if args.text is not None:
        title, text = "", args.text
    elif args.file is not None:
        from .textfile import read_text  # feedparser's module: the charset detection feeds get

        title, _, text = read_text(Path(args.file)).strip().partition("\n")
    else:
        title, text = _fetch_url(config, args.url)
    app = _open_app(config)
    try:
        matches = app.pipeline.model.classify(title, text, explain_all=True)
        labels = app.pipeline.model.label_effects(title, text)  # what the analyst's labels did, per topic
    finally:
        app.close()
    if args.json:
        print(json.dumps(explanation_json(matches, config.topics, labels), ensure_ascii=False, indent=2))
    else:
        print(format_explanation(matches, config.topics, labels))
    return EXIT_OK


def _fetch_url(config: cfg.Config, url: str) -> tuple[str, str]:
    # heavy: requests, and trafilatura on the first article; only `explain --url` needs them
    from ..feeds.fulltext import extract_article
    from ..feeds.http import HttpFetcher

    fetcher = HttpFetcher.from_settings(config.settings)  # the page may reach only public addresses, unless allowed
    try:
        page = fetcher.get_page(url)
    finally:
        fetcher.close()
    text = extract_article(page.body or b"", page.url)
    if not text:
        raise MonitorError(f"no article text found at {url}")
    return "", text


def cmd_eval(args: argparse.Namespace) -> int:
    """Replay a labelled corpus through the matcher and print precision, recall, F1 and Cdet."""
    from ..match.evaluate import format_report, report_to_json, run_eval  # heavy: the topic model (see _open_app)
    from ..stories.metrics import StoryReplay  # heavy: the story grouper's stemmers

    config = _config(args)
    stories = StoryReplay(config.settings.story_window)
    corpus = Path(args.corpus)
    progress = Progress("scoring", 0, enabled=None if not args.json else False)
    if progress.enabled:  # a terminal: say what it is doing (19 minutes of silence on the Russian dev set)
        total = _corpus_lines(corpus)
        warm = int(total * args.warmup)
        progress.total = total - warm
        progress.say(f"eval: {total:,} items in {corpus.name}; warmup on the first {warm:,} and the model build…")

    def on_item(item: dict[str, Any], matches: list[Match]) -> None:
        if progress.done == 0:
            progress.say(f"eval: model built; scoring {progress.total:,} items")
        stories(item, matches)
        progress.step()

    try:
        report = run_eval(config, corpus, warmup=args.warmup,
                          decisions=Path(args.decisions) if args.decisions else None, on_item=on_item,
                          feedback=args.feedback, feedback_rate=args.feedback_rate, seed=args.seed)
    finally:
        progress.close()
    # Story figures only mean something when the corpus says which items tell the same story.
    story_figures = stories.metrics.summary() if stories.gold_seen else None
    if args.json:
        summary = report_to_json(report)
        if story_figures is not None:
            summary["stories"] = story_figures
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
        if story_figures is not None:
            print("\nstories: " + ", ".join(f"{key} {value}" for key, value in story_figures.items()))
    return EXIT_OK


def _corpus_lines(path: Path) -> int:
    """The items of a corpus file (its non-empty lines), for the progress line; 0 when it cannot be read."""
    try:
        with (gzip.open(path, "rt", encoding="utf-8", errors="replace") if path.suffix == ".gz"
              else path.open(encoding="utf-8", errors="replace")) as lines:  # fmt: skip
            return sum(1 for line in lines if line.strip())
    except (OSError, EOFError):
        return 0  # run_eval says what is wrong with the file


def cmd_alerts(args: argparse.Namespace) -> int:
    """Recent alerts with their topics and delivery state per channel."""

    config = _config(args)
    store = _open_store(config)
    try:
        since = SystemClock().now() - timedelta(seconds=args.since)
        print(format_alerts(store.alerts_since(since), config))
    finally:
        store.close()
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    """Send a test message to one channel and print the server's answer."""

    config = _config(args)
    if args.channel not in config.channels:
        raise ConfigError(f'no channel "{args.channel}"; channels are: {", ".join(config.channels)}')
    app = _open_app(config)
    try:
        print(notify_test(app.notifiers[args.channel]))
    finally:
        app.close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Health: feeds, topics, outbox."""

    config = _config(args)
    store = _open_store(config)
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

    config = _config(args)
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
    store = _open_store(config)
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

    config = _config(args)
    topic = topic_id(config, args.topic) if args.topic else None
    store = _open_store(config)
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
    print(f"next: edit its feeds and topics, then `monitor validate{hint}`, `monitor check --learn{hint}` "
          f"(the feeds' backlog, seen and not alerted) and `monitor run{hint}`")
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

    return Daemon(cfg.config_path(args.config), environ=dict(os.environ)).run()


def _when(value: datetime | None, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


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
    p.add_argument("--deliver-timeout", type=seconds, default=60.0, metavar="SECONDS",
                   help="how long to wait for retries before exiting (default 60)")
    first_run = p.add_mutually_exclusive_group()
    first_run.add_argument("--learn", action="store_true",
                           help="mark everything the feeds hold now as seen (matched and grouped), alert nothing: "
                                "the first run on new feeds")
    first_run.add_argument("--dry-run", action="store_true",
                           help="fetch, match and print what would alert; store and send nothing")
    add("feeds", cmd_feeds, "show each feed's last fetch, status, items, errors and next poll")
    p = add("explain", cmd_explain, "score a text against every topic and show why it matched")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to score")
    source.add_argument("--file", type=existing_file,
                        help="a text file (UTF-8, windows-1251 or KOI8-R): title on line 1, then the text")
    source.add_argument("--url", type=http_url, help="a page to fetch; its article text is scored")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("eval", cmd_eval, "replay a labelled corpus and report precision, recall, F1 and Cdet")
    p.add_argument("--corpus", required=True, type=existing_file, help="JSON lines, optionally gzipped")
    p.add_argument("--warmup", type=fraction, default=0.2, help="fraction used as background only (default 0.2)")
    p.add_argument("--decisions", type=writable_file, help="write per-item decisions as JSON lines here")
    p.add_argument("--feedback", type=count, default=0, metavar="K",
                   help="simulate an analyst who labels alerts and offered near misses, up to K per topic (default 0)")
    p.add_argument("--feedback-rate", type=fraction, default=1.0, metavar="P",
                   help="chance that an alert or near miss gets labelled (default 1.0)")
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
    p.add_argument("--export", type=writable_file, metavar="FILE",
                   help="write the labels and their items to FILE (JSON lines)")
    p.add_argument("--import", dest="import_file", type=existing_file, metavar="FILE",
                   help="read labels and items from FILE")
    add("status", cmd_status, "health: feeds, topics per day, labels, outbox depth and failures")
    p = add("init", cmd_init, "write a starter config.yaml and its example articles (or print the systemd unit)")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="where to write them (default: $CONFIGURATION_DIRECTORY under systemd, "
                        "else $XDG_CONFIG_HOME/topic-monitor)")
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
