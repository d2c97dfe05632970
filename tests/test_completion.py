"""Bash completion and the man page, generated from the parser: run in bash, read by groff (issue 13)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from monitor.cli.commands import build_parser
from monitor.cli.completion import bash_completion, man_page
from tests.test_docs import commands


def complete(script: Path, *words: str) -> list[str]:
    """What the completion offers for `monitor WORDS...` (the last word is the one being completed)."""
    line = " ".join(f"'{w}'" for w in ("monitor", *words))
    show = 'printf "%s\\n" "${COMPREPLY[@]}"'
    code = f'source "{script}"; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _monitor; {show}'
    result = subprocess.run(["bash", "--norc", "-c", code], capture_output=True, text=True, timeout=30, check=True)
    return [w for w in result.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_options_choices_and_files(tmp_path: Path) -> None:
    script = tmp_path / "monitor.bash"
    script.write_text(bash_completion(build_parser()), encoding="utf-8")
    assert complete(script, "") == [*commands(), "--version", "--config", "--log-level", "--log-format", "--help"]
    assert complete(script, "la") == ["label", "labels"]
    assert complete(script, "check", "--") == [
        "--config", "--log-level", "--log-format", "--deliver-timeout", "--learn", "--dry-run", "--help"
    ]  # fmt: skip
    assert complete(script, "validate", "--log-level", "") == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert complete(script, "--log-format", "j") == ["json"]
    (tmp_path / "corpus.jsonl").write_text("", encoding="utf-8")
    assert complete(script, "eval", "--corpus", str(tmp_path / "corp")) == [str(tmp_path / "corpus.jsonl")]


def test_the_man_page_documents_every_command_and_option() -> None:
    page = man_page(build_parser(), date(2026, 12, 1))
    assert page.startswith('.TH MONITOR 1 "2026-12-01" "topic-monitor ')
    for name, parser in commands().items():
        assert f".SS monitor {name.replace('-', chr(92) + '-')}\n" in page
        for action in parser._actions:
            for option in [] if action.dest == "help" else action.option_strings:
                assert option.replace("-", "\\-") in page, option
    assert "STATE_DIRECTORY" in page and ".SH EXIT STATUS" in page


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_groff_reads_the_man_page_without_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "monitor.1"
    path.write_text(man_page(build_parser()), encoding="utf-8")
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(path)], capture_output=True, text=True,
                            timeout=30, check=False, env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
