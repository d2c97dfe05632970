"""The progress line of long commands: only on a terminal, erased at the end, phases stated (issue 13)."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from monitor.cli import progress as progress_module
from monitor.cli.progress import Progress
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401
from tests.test_cli import Monitor, runner, serve_feeds, write_config


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_line_shows_count_rate_and_eta_and_is_erased() -> None:
    out, clock = Terminal(), Clock()
    bar = Progress("scoring", 1000, stream=out, clock=clock)
    clock.now = 2.0
    bar.step(100)
    assert out.getvalue() == "\rscoring 100/1,000 items (10 %), 50 items/s, ETA 18s"
    clock.now = 2.1
    bar.step(100)  # within the redraw interval: not drawn
    assert out.getvalue().count("\r") == 1
    bar.say("eval: phase")
    clock.now = 200.0
    bar.step(800)  # the last one is always drawn
    assert out.getvalue().endswith("\rscoring 1,000/1,000 items (100 %), 5 items/s")
    bar.close()
    assert out.getvalue().endswith("\r" + " " * len("scoring 1,000/1,000 items (100 %), 5 items/s") + "\r")
    assert "eval: phase\n" in out.getvalue()


def test_nothing_is_written_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    bar = Progress("scoring", 10, stream=out)
    bar.say("phase")
    bar.step(10)
    bar.close()
    assert out.getvalue() == ""


@pytest.fixture
def monitor(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Monitor:
    return runner(capsys, monkeypatch)


def test_eval_states_its_phases_on_a_terminal(
    monitor: Monitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text(textwrap.dedent("""\
        topics:
          - id: libya
            name: Ливия
            keywords: [Ливия]
        """), encoding="utf-8")  # fmt: skip
    corpus = tmp_path / "corpus.jsonl"
    lines = [{"id": str(n), "title": f"Новость {n}", "text": "Переговоры в Ливии", "topics": ["libya"]}
             for n in range(10)]  # fmt: skip
    corpus.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    plain = monitor("eval", "--config", str(topics), "--corpus", str(corpus))
    assert plain.returncode == 0 and plain.stderr == ""  # not a terminal: no progress
    monkeypatch.setattr(progress_module, "on_terminal", lambda stream: True)
    shown = monitor("eval", "--config", str(topics), "--corpus", str(corpus))
    assert shown.returncode == 0, shown.stderr
    assert "eval: 10 items in corpus.jsonl; warmup on the first 2 and the model build…\n" in shown.stderr
    assert "eval: model built; scoring 8 items\n" in shown.stderr
    assert "scoring 8/8 items (100 %)" in shown.stderr

    def report(text: str) -> list[str]:
        return [line for line in text.splitlines() if "items/s" not in line]  # timings differ

    assert report(shown.stdout) == report(plain.stdout)  # the report itself is untouched
    quiet = monitor("eval", "--config", str(topics), "--corpus", str(corpus), "--json")
    assert quiet.stderr == ""


def test_check_shows_the_feeds_polled_on_a_terminal(
    monitor: Monitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feed_server: FeedServer
) -> None:
    serve_feeds(feed_server)
    monkeypatch.setattr(progress_module, "on_terminal", lambda stream: True)
    result = monitor("check", "--config", str(write_config(tmp_path, feed_server)), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "\rpolled 3/3 feeds (100 %)" in result.stderr and result.stderr.endswith("\r")  # erased at the end
