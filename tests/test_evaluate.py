"""The replay and its arithmetic, on a tiny hand-made corpus with known answers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from monitor.config import loads
from monitor.errors import ConfigError
from monitor.match.evaluate import format_report, report_to_json, run_eval, score_topics
from monitor.models import Match


def test_score_arithmetic_by_hand() -> None:
    gold = [{"a"}, {"a"}, {"a"}, set(), set(), set()]
    got = [{"a"}, {"a"}, set(), {"a", "b"}, set(), set()]
    stats, summary = score_topics(["a", "b"], gold, got)
    a, b = stats
    assert (a.tp, a.fp, a.fn, a.tn) == (2, 1, 1, 2)
    assert a.precision == pytest.approx(2 / 3) and a.recall == pytest.approx(2 / 3) and a.f1 == pytest.approx(2 / 3)
    assert a.p_miss == pytest.approx(1 / 3) and a.p_fa == pytest.approx(1 / 3)
    assert a.c_det == pytest.approx(1 / 3 + 4.9 / 3)
    # "b" has no positives: reported, but left out of the averages (keyword_baseline.py's convention)
    assert b.positives == 0 and b.recall is None and b.f1 is None and b.c_det is None and b.fp == 1
    assert summary["topics_averaged"] == 1
    assert summary["macro_f1"] == pytest.approx(2 / 3)
    assert summary["micro_tp"] == 2 and summary["micro_fp"] == 1 and summary["micro_fn"] == 1


def test_no_alerts_means_precision_zero() -> None:
    stats, summary = score_topics(["a"], [{"a"}, set()], [set(), set()])
    assert stats[0].precision == 0.0 and stats[0].f1 == 0.0 and stats[0].c_det == pytest.approx(1.0)
    assert summary["macro_f1"] == 0.0


CONFIG = """
topics:
  - id: libya
    name: Ливия
    description: "Ливия: конфликт, Триполи, Хафтар"
    keywords: ["Ливия", "Триполи", "Хафтар"]
  - id: wheat
    name: Wheat
    keywords: ["wheat", "grain"]
"""
ITEMS = [
    ("w1", "Погода", "В Москве дождь и ветер.", []),
    ("w2", "Театр", "Премьера спектакля прошла с успехом.", []),
    ("s1", "Бои у Триполи", "Армия Хафтара наступает на Триполи, Ливия в огне.", ["libya"]),
    ("s2", "Wheat exports", "Wheat and grain exports rose sharply this season.", ["wheat"]),
    ("s3", "Погода", "Завтра в Москве снег.", []),
    ("s4", "Кино", "Фильм вышел в прокат.", ["libya"]),  # a gold positive no system can find
    ("s5", "Ливия", "Переговоры по Ливии прошли в Триполи.", ["libya"]),
    ("s6", "Markets", "Stocks rose on earnings.", []),
    ("s7", "Grain tender", "Egypt bought wheat and grain.", ["wheat"]),
    ("s8", "Спорт", "Команда выиграла матч.", []),
]


DAYS = ["2024-02-29"] * 2 + ["2024-03-01"] * 3 + ["2024-03-02"] * 5


def write_corpus(path: Path, dated: bool = False) -> Path:
    lines = [
        json.dumps(
            {"id": i, "title": t, "text": x, "topics": g}
            # the warmup (w1, w2) on 29 February, s1-s3 on 1 March, s4-s8 on 2 March
            | ({"published": f"{DAYS[n]}T1{n}:00:00Z"} if dated else {}),
            ensure_ascii=False,
        )
        for n, (i, t, x, g) in enumerate(ITEMS)
    ]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_replay_on_a_tiny_corpus(tmp_path: Path) -> None:
    config = loads(CONFIG, name=str(tmp_path / "topics.yaml"))
    corpus = write_corpus(tmp_path / "corpus.jsonl.gz")
    seen: list[tuple[str, list[Match]]] = []
    report = run_eval(
        config,
        corpus,
        warmup=0.2,
        decisions=tmp_path / "decisions.jsonl",
        refit_every=3,
        on_item=lambda item, matches: seen.append((item["id"], matches)),
    )
    assert (report.items, report.warmup_items, report.scored_items) == (10, 2, 8)
    assert [i for i, _ in seen] == ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"]
    assert report.refits == 2
    lines = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == [i for i, _ in seen]
    assert set(lines[0]["scores"]) == {"libya", "wheat"}
    decided = {x["id"]: set(x["matched"]) for x in lines}
    assert decided["s1"] == decided["s5"] == {"libya"}
    assert decided["s2"] == decided["s7"] == {"wheat"}
    assert decided["s3"] == decided["s4"] == decided["s6"] == decided["s8"] == set()
    libya, wheat = report.topics
    assert (libya.tp, libya.fp, libya.fn) == (2, 0, 1) and libya.recall == pytest.approx(2 / 3)
    assert (wheat.tp, wheat.fp, wheat.fn) == (2, 0, 0) and wheat.f1 == 1.0
    assert report.macro_f1 == pytest.approx((0.8 + 1.0) / 2)
    assert report.macro_c_det == pytest.approx((1 / 3 + 0.0) / 2)
    assert report.micro_f1 == pytest.approx(2 * 4 / (2 * 4 + 0 + 1))
    assert "MACRO" in format_report(report)
    assert report.days == 0 and libya.alerts_per_day is None  # no dates, no volume
    data = report_to_json(report)
    assert data["topics"]["libya"]["tp"] == 2 and data["macro_f1"] == report.macro_f1
    json.dumps(data)


def test_alerts_per_day_over_the_scored_days(tmp_path: Path) -> None:
    config = loads(CONFIG, name=str(tmp_path / "topics.yaml"))
    report = run_eval(config, write_corpus(tmp_path / "corpus.jsonl.gz", dated=True), warmup=0.2)
    libya, wheat = report.topics
    assert report.days == 2  # the warmup's dates do not count
    assert libya.alerts_per_day == wheat.alerts_per_day == 1.0  # two alerts each over two days
    assert "2 calendar days" in format_report(report)
    assert "no gold topics" not in format_report(report)
    assert report_to_json(report)["topics"]["libya"]["alerts_per_day"] == 1.0


def test_a_stream_without_gold_reports_alert_volume(tmp_path: Path) -> None:
    config = loads(CONFIG, name=str(tmp_path / "topics.yaml"))
    corpus = tmp_path / "background.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"id": f"b{n}", "title": title, "text": "", "published": f"2024-03-0{1 + n % 3}T00:00:00Z"})
            for n, title in enumerate(["Погода", "Бои у Триполи", "Театр", "Ливия: переговоры", "Кино", "Спорт"])
        ),
        encoding="utf-8",
    )
    report = run_eval(config, corpus, warmup=0.0)
    libya, _ = report.topics
    assert report.topics_averaged == 0 and libya.positives == 0
    assert (libya.tp, libya.fp, report.days) == (0, 2, 3)
    assert libya.alerts_per_day == pytest.approx(2 / 3)
    text = format_report(report)
    assert "no gold topics" in text and "MACRO" not in text


def test_replay_is_deterministic(tmp_path: Path) -> None:
    config = loads(CONFIG, name=str(tmp_path / "topics.yaml"))
    corpus = write_corpus(tmp_path / "corpus.jsonl.gz")
    run_eval(config, corpus, decisions=tmp_path / "a.jsonl")
    run_eval(config, corpus, decisions=tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_bad_inputs(tmp_path: Path) -> None:
    config = loads(CONFIG, name=str(tmp_path / "topics.yaml"))
    with pytest.raises(ConfigError, match="warmup"):
        run_eval(config, tmp_path / "x.jsonl", warmup=1.0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "t", "text": ""}\nnot json\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2"):
        run_eval(config, bad)
    with pytest.raises(ConfigError, match="cannot read"):
        run_eval(config, tmp_path / "missing.jsonl")
