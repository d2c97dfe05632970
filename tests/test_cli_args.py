"""Every command answers bad arguments with one line and exit status 2, never a traceback (issue 13).

Commands run in this process, like tests/test_cli.py; the cases stop before anything heavy loads (the topic
model), so the whole sweep takes about a second.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest

from monitor.cli.commands import build_parser
from monitor.cli.textfile import read_text
from monitor.errors import UsageError
from tests.test_cli import Monitor, runner

CONFIG = """\
settings:
  data_dir: {data}
channels:
  console: {{type: console}}
topics:
  - id: libya
    name: Ливия
    keywords: [Ливия]
"""


@pytest.fixture
def monitor(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Monitor:
    return runner(capsys, monkeypatch)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """The paths the bad arguments name."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "data"), encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "1", "title": "t", "text": "x", "topics": []}) + "\n", encoding="utf-8")
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    broken = tmp_path / "broken.yaml"
    broken.write_text("settings:\n  timezone: UTC\n\tdata_dir: x\n", encoding="utf-8")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("settings:\n  timezon: UTC\n", encoding="utf-8")
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    return {"config": str(config), "corpus": str(corpus), "binary": str(binary), "broken": str(broken),
            "unknown": str(unknown), "missing": str(tmp_path / "missing.txt"), "dir": str(tmp_path),
            "nodir": str(tmp_path / "no" / "such" / "out.jsonl"), "file": str(a_file)}  # fmt: skip


# (command, arguments after it); {name} is a path from `files`. Every command of the parser appears here.
BAD = [
    ("", []),
    ("", ["nope"]),
    ("", ["--log-level", "verbose", "validate", "--config", "{config}"]),
    ("validate", ["--log-level", "verbose", "--config", "{config}"]),
    ("validate", ["--log-format", "xml", "--config", "{config}"]),
    ("validate", ["--config", "{missing}"]),
    ("validate", ["--config", "{dir}"]),
    ("validate", ["--config", "{broken}"]),
    ("validate", ["--config", "{unknown}"]),
    ("validate", ["--config", "{binary}"]),
    ("validate", ["--bogus"]),
    ("check", ["--config", "{config}", "--deliver-timeout", "soon"]),
    ("check", ["--config", "{config}", "--deliver-timeout", "-1"]),
    ("check", ["--config", "{config}", "--learn", "--dry-run"]),
    ("check", ["--config", "{missing}"]),
    ("feeds", ["--config", "{config}", "extra"]),
    ("explain", ["--config", "{config}"]),
    ("explain", ["--config", "{config}", "--file", "{missing}"]),
    ("explain", ["--config", "{config}", "--file", "{dir}"]),
    ("explain", ["--config", "{config}", "--file", "{binary}"]),
    ("explain", ["--config", "{config}", "--text", "a", "--file", "{missing}"]),
    ("explain", ["--config", "{config}", "--url", "notaurl"]),
    ("eval", ["--config", "{config}"]),
    ("eval", ["--config", "{config}", "--corpus", "{missing}"]),
    ("eval", ["--config", "{config}", "--corpus", "{corpus}", "--warmup", "2"]),
    ("eval", ["--config", "{config}", "--corpus", "{corpus}", "--warmup", "half"]),
    ("eval", ["--config", "{config}", "--corpus", "{corpus}", "--feedback", "-1"]),
    ("eval", ["--config", "{config}", "--corpus", "{corpus}", "--feedback-rate", "2"]),
    ("eval", ["--config", "{config}", "--corpus", "{corpus}", "--decisions", "{nodir}"]),
    ("eval", ["--config", "{config}", "--corpus", "{corpus}", "--seed", "x"]),
    ("alerts", ["--config", "{config}", "--since", "yesterday"]),
    ("alerts", ["--config", "{config}", "--since", "0s"]),
    ("notify-test", ["--config", "{config}"]),
    ("notify-test", ["--config", "{config}", "pigeon"]),
    ("label", ["--config", "{config}"]),
    ("label", ["--config", "{config}", "12", "libya"]),
    ("label", ["--config", "{config}", "x12", "libya", "yes"]),
    ("label", ["--config", "{config}", "12", "libya", "maybe"]),
    ("label", ["--config", "{config}", "12", "nope", "yes"]),
    ("label", ["--config", "{config}", "999", "libya", "yes"]),
    ("label", ["--config", "{config}", "n999", "yes"]),
    ("label", ["--config", "{config}", "--url", "http://127.0.0.1:9/", "yes"]),
    ("label", ["--config", "{config}", "--url", "ftp://x", "--topic", "libya", "yes"]),
    ("labels", ["--config", "{config}", "--import", "{missing}"]),
    ("labels", ["--config", "{config}", "--import", "{binary}"]),
    ("labels", ["--config", "{config}", "--export", "{nodir}"]),
    ("labels", ["--config", "{config}", "--export", "{dir}"]),
    ("labels", ["--config", "{config}", "--topic", "nope"]),
    ("status", ["--config", "{missing}"]),
    ("status", ["--config", "{config}", "--json"]),
    ("init", ["{file}"]),
    ("init", ["{dir}", "{dir}"]),
    ("completion", ["zsh"]),
    ("man", ["--width", "80"]),
    ("run", ["--config", "{missing}"]),
    ("run", ["--config", "{unknown}"]),
]


def commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_every_command_is_tried_with_bad_arguments() -> None:
    assert set(commands()) <= {command for command, _ in BAD}


@pytest.mark.parametrize(("command", "args"), BAD, ids=[" ".join([c, *a]).strip() for c, a in BAD])
def test_bad_arguments_get_one_line_and_status_2(
    monitor: Monitor, files: dict[str, str], command: str, args: list[str]
) -> None:
    argv = ([command] if command else []) + [a.format(**files) for a in args]
    if command == "init" and args == ["{dir}", "{dir}"]:
        Path(files["dir"], "config.yaml").write_text("x", encoding="utf-8")  # there already: not overwritten
        argv = ["init", files["dir"]]
    result = monitor(*argv)
    assert result.returncode == 2, (argv, result)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line saying what is wrong
    assert len(lines[0]) > 20


def test_bad_arguments_name_the_problem(monitor: Monitor, files: dict[str, str]) -> None:
    since = monitor("alerts", "--config", files["config"], "--since", "yesterday")
    assert since.stderr.strip() == (
        "monitor alerts: argument --since: expected a duration like 6h or 1d, got 'yesterday' "
        "(see `monitor alerts --help`)"
    )
    level = monitor("validate", "--config", files["config"], "--log-level", "verbose")
    assert "expected DEBUG, INFO, WARNING or ERROR, got 'verbose'" in level.stderr
    missing = monitor("explain", "--config", files["config"], "--file", files["missing"])
    assert f"{files['missing']}: no such file" in missing.stderr
    unknown = monitor("validate", "--config", files["unknown"])
    assert unknown.stderr.strip() == f"{files['unknown']}:2: settings.timezon: unknown key; did you mean timezone?"
    tab = monitor("validate", "--config", files["broken"])
    assert "YAML indents with spaces only" in tab.stderr and "parser: found character '\\t'" in tab.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{config}", "validate"],
        ["validate", "--config", "{config}", "--log-level", "debug"],
        ["--log-level", "DEBUG", "--log-format", "json", "validate", "--config", "{config}"],
        ["--config", "{missing}", "validate", "--config", "{config}"],  # the later one wins
    ],
    ids=" ".join,
)
def test_global_options_go_before_or_after_the_command(
    monitor: Monitor, files: dict[str, str], argv: list[str]
) -> None:
    result = monitor(*[a.format(**files) for a in argv])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{files['config']}: OK")


def test_an_option_before_the_command_is_not_reset_by_the_command(files: dict[str, str]) -> None:
    args = build_parser().parse_args(["--config", "x.yaml", "--log-level", "info", "--log-format", "json", "status"])
    assert (args.config, args.log_level, args.log_format) == ("x.yaml", "INFO", "json")
    args = build_parser().parse_args(["status"])
    assert (args.config, args.log_level, args.log_format) == (None, None, "text")


ARTICLE = "Перемирие в Ливии\n\nСтороны в Триполи договорились о прекращении огня, сообщили в ООН.\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "windows-1251", "koi8-r", "utf-16"])
def test_text_files_are_decoded_as_feeds_are(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "article.txt"
    path.write_bytes(ARTICLE.encode(encoding))
    assert read_text(path) == ARTICLE


def test_a_file_that_is_no_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(bytes(range(0x80, 0x100)) * 4)  # neither UTF-8 nor Cyrillic by its statistics
    with pytest.raises(UsageError, match="not UTF-8, windows-1251 or KOI8-R"):
        read_text(path)


def test_explain_reads_a_windows_1251_file(monitor: Monitor, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "data") + textwrap.indent(textwrap.dedent("""\
        examples:
          - {title: "Ливия", text: "Переговоры в Триполи о прекращении огня в Ливии"}
        """), "    "), encoding="utf-8")  # fmt: skip
    path = tmp_path / "article.txt"
    path.write_bytes(ARTICLE.encode("windows-1251"))
    result = monitor("explain", "--config", str(config), "--file", str(path), "--json")
    assert result.returncode == 0, result.stderr
    [libya] = json.loads(result.stdout)["topics"]
    assert "Триполи" in libya["passage"]
