"""The commands that score text: `monitor explain` and `monitor eval`."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config as cfg
from ..errors import MonitorError
from ..match.explain import explanation_json, format_explanation
from .base import EXIT_OK, load_config, open_app
from .progress import Progress

if TYPE_CHECKING:
    from ..models import Match


def cmd_explain(args: argparse.Namespace) -> int:
    """Score a text against every topic and say why."""

    config = load_config(args)
    if args.text is not None:
        title, text = "", args.text
    elif args.file is not None:
        from .textfile import read_text  # feedparser's module: the charset detection feeds get

        title, _, text = read_text(Path(args.file)).strip().partition("\n")
    else:
        title, text = _fetch_url(config, args.url)
    app = open_app(config)
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
    from ..match.evaluate import run_eval  # heavy: the topic model (see open_app)
    from ..match.report import format_report, report_to_json
    from ..stories.metrics import StoryReplay  # heavy: the story grouper's stemmers

    config = load_config(args)
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
        report = run_eval(
            config,
            corpus,
            warmup=args.warmup,
            decisions=Path(args.decisions) if args.decisions else None,
            on_item=on_item,
            feedback=args.feedback,
            feedback_rate=args.feedback_rate,
            seed=args.seed,
        )
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
