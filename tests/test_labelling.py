"""`monitor label`, `monitor labels` and the label counts of `monitor status`, run in-process against a real
SQLite store (and the local feed server for --url); alert ids in console and email text."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import config as cfg
from monitor.cli import commands as cli
from monitor.delivery.message import render_digest_text, render_html, render_text
from monitor.models import Alert, Item, Label, Match
from monitor.store import SqlStore
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LIBYA = Match("libya", 0.8, 0.5, True)
ARTICLE = (
    "<html><head><title>Ignored</title><meta property='og:title' content='Хафтар и Триполи: новый раунд'></head>"
    "<body><nav>menu</nav><article>"
    + "".join(
        f"<p>Абзац {i}: стороны ливийского конфликта снова обсудили перемирие и нефть в Триполи.</p>" for i in range(5)
    )
    + "</article></body></html>"
).encode()


@pytest.fixture(autouse=True)
def _quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # main() configures the root logger for a process; in-process it would take pytest's handlers away.
    monkeypatch.setattr(cli, "setup_logging", lambda **kw: None)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            settings:
              data_dir: {tmp_path / "data"}
              allow_private_fetch: true  # label --url fetches pages from the local feed server
            topics:
              - {{id: libya, name: Ливия, keywords: [Ливия]}}
              - {{id: syria, name: Сирия, keywords: [Сирия]}}
            """),
        encoding="utf-8",
    )
    return path


def store_of(config_path: Path) -> SqlStore:
    config = cfg.load(str(config_path), env={})
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlStore(config.database_url)


def run(config_path: Path, *args: str) -> int:
    return cli.main([args[0], "--config", str(config_path), *args[1:]])


def an_alert(config_path: Path, key: str = "a", link: str | None = "https://tass.example/a") -> Alert:
    store = store_of(config_path)
    it = Item(feed="ТАСС", key=key, title=f"Ливия {key}", link=link, published=T0, summary="Перемирие в Ливии.")
    alert = store.record_alert(it, (LIBYA,), ["console"], T0, story_id=f"s-{key}")
    store.close()
    assert alert is not None
    return alert


def labels(config_path: Path) -> list[tuple[str, str, bool, str]]:
    store = store_of(config_path)
    try:
        return [(it.title, lab.topic, lab.relevant, lab.source) for lab, it in store.labelled_items()]
    finally:
        store.close()


def test_label_an_alert_by_id_for_any_topic(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alert = an_alert(config_path)
    assert run(config_path, "label", str(alert.id), "libya", "no", "--user", "ann") == 0
    assert f"alert #{alert.id}" in capsys.readouterr().out
    assert run(config_path, "label", f"#{alert.id}", "Сирия", "yes") == 0  # by name, for a topic it did not match
    assert labels(config_path) == [("Ливия a", "libya", False, "cli"), ("Ливия a", "syria", True, "cli")]
    store = store_of(config_path)
    assert next(lab.user for lab, _ in store.labelled_items()) == "ann"
    store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["label", "999", "libya", "no"], "no alert #999"),
        (["label", "ALERT", "libya", "no"], "expected an alert id"),
        (["label", "1", "nuclear", "no"], "unknown topic 'nuclear'; topics are: libya, syria"),
        (["label", "1", "libya", "maybe"], "expected yes or no"),
        (["label", "1", "libya"], "expected ALERT_ID TOPIC yes|no"),
        (["label", "--url", "https://x.example/", "yes"], "give --topic TOPIC"),
        (["labels", "--topic", "nuclear"], "unknown topic"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(
    config_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    an_alert(config_path)
    assert run(config_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert labels(config_path) == []


def test_label_a_page_found_elsewhere(config_path: Path, feed_server: FeedServer) -> None:
    feed_server.route("/story.html", ARTICLE, headers={"Content-Type": "text/html; charset=utf-8"})
    url = feed_server.url("/story.html")
    assert run(config_path, "label", "--url", url, "--topic", "libya", "yes") == 0
    assert run(config_path, "label", "--url", url, "--topic", "syria", "no") == 0  # the same item, not a copy
    assert labels(config_path) == [
        ("Хафтар и Триполи: новый раунд", "libya", True, "url"),
        ("Хафтар и Триполи: новый раунд", "syria", False, "url"),
    ]
    store = store_of(config_path)
    [(_, page)] = store.labelled_items("libya")
    assert page.feed == "manual" and page.link == url and "перемирие и нефть" in page.text and "menu" not in page.text
    store.close()
    assert len(feed_server.requests_to("/story.html")) == 1
    # A page whose link a feed item has: that item is labelled.
    alert = an_alert(config_path, "b", link="https://tass.example/b")
    assert run(config_path, "label", "--url", "https://tass.example/b", "--topic", "libya", "no") == 0
    assert labels(config_path)[-1] == (alert.item.title, "libya", False, "url")


def test_labels_list_export_and_import(config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = an_alert(config_path, "a"), an_alert(config_path, "b")
    run(config_path, "label", str(first.id), "libya", "no")
    run(config_path, "label", str(second.id), "libya", "yes")
    run(config_path, "label", str(second.id), "syria", "no")
    capsys.readouterr()
    assert run(config_path, "labels") == 0
    out = capsys.readouterr().out
    assert "Ливия a" in out and "not relevant" in out and "3 labels: Ливия 1 ✓ 1 ✗, Сирия 0 ✓ 1 ✗" in out
    assert run(config_path, "labels", "--topic", "syria") == 0
    assert "1 labels: Сирия 0 ✓ 1 ✗" in capsys.readouterr().out
    exported = tmp_path / "labels.jsonl"
    assert run(config_path, "labels", "--export", str(exported)) == 0
    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert [(r["title"], r["topic"], r["relevant"]) for r in rows] == [
        ("Ливия a", "libya", False), ("Ливия b", "libya", True), ("Ливия b", "syria", False)
    ]  # fmt: skip
    assert rows[0]["summary"] == "Перемирие в Ливии." and rows[0]["item"] == first.item.uid

    other = tmp_path / "other.yaml"
    other.write_text(config_path.read_text(encoding="utf-8").replace("/data", "/data2"), encoding="utf-8")
    assert run(other, "labels", "--import", str(exported)) == 0
    assert labels(other) == labels(config_path)
    copied, original = store_of(other), store_of(config_path)
    assert [lab for lab, _ in copied.labelled_items()] == [lab for lab, _ in original.labelled_items()]
    copied.close()
    original.close()


def test_a_bad_import_file_names_its_line_and_writes_nothing(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {"feed": "ТАСС", "key": "k", "title": "t", "published": "2026-11-25T09:00:00+00:00", "topic": "libya",
            "relevant": False}  # fmt: skip
    for broken, message in [
        ("{not json", "not JSON"),
        (json.dumps({**good, "relevant": "no"}), "relevant: expected true or false"),
        (json.dumps({**good, "published": "2026-11-25T09:00:00"}), "with its UTC offset"),
        (json.dumps({k: v for k, v in good.items() if k != "topic"}), "missing key 'topic'"),
    ]:
        path = tmp_path / "in.jsonl"
        path.write_text(json.dumps(good) + "\n\n" + broken + "\n", encoding="utf-8")
        assert run(config_path, "labels", "--import", str(path)) == 2
        err = capsys.readouterr().err
        assert f"{path}:3: " in err and message in err and err.count("\n") == 1, err
    assert labels(config_path) == []


def test_status_counts_labels_per_topic(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alert = an_alert(config_path)
    store = store_of(config_path)
    store.put_label(Label(alert.item.uid, "libya", False, "cli"), T0)
    store.close()
    assert run(config_path, "status") == 0
    out = capsys.readouterr().out
    libya = next(line for line in out.splitlines() if line.strip().startswith("libya")).split()
    assert libya[2:6] == ["-", "0", "✓", "1"]  # no near misses offered yet; the labels


def test_console_and_email_alerts_show_the_alert_id_and_how_to_label_it() -> None:
    alert = Alert(42, Item("ТАСС", "k", "Заголовок", None, T0, summary="Текст."), (LIBYA,), T0)
    hint = "alert #42 · to label it: monitor label 42 libya yes|no"
    assert render_text(alert, topics={}, tz=UTC).splitlines()[-1] == hint
    assert hint in render_html(alert, topics={}, tz=UTC)
    assert "#42" in render_digest_text([alert], "Digest", topics={}, tz=UTC)
