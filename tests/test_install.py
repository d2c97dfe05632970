"""The wheel alone is enough (issue 13): built, installed into a fresh venv away from the checkout, then
`monitor init` + `monitor validate` + `monitor check` against the local feed server.

Offline and fast: the wheel is built without build isolation (the running interpreter's setuptools), the venv
has no pip of its own (this one's pip installs into it with --python) and borrows the dependencies from this
environment through a .pth line, which only appends that directory to sys.path: its own .pth files, the editable
install of the checkout among them, are not run, so `monitor` can only come from the wheel.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401
from tests.test_cli import LIBYA, WEATHER, rss

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "config.yaml", "monitor", "examples", "systemd", "docs/daemon.md"]

NO_OFFLINE_BUILD = importlib.util.find_spec("setuptools.command.bdist_wheel") is None


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
                            check=False)  # fmt: skip
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
@pytest.mark.skipif(NO_OFFLINE_BUILD, reason="setuptools >= 70.1 (bdist_wheel built in) is needed to build the "
                    "wheel offline; `pip install -e '.[test]'` installs it")  # fmt: skip
def test_the_wheel_installs_and_runs_without_the_checkout(tmp_path: Path, feed_server: FeedServer) -> None:
    source = tmp_path / "src"  # a copy: building in place would leave build/ in the checkout
    for name in SOURCES:
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, target)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", tmp_path / "dist", source, cwd=tmp_path)  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("topic_monitor-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                       cwd=tmp_path).stdout.strip())  # fmt: skip
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    (purelib / "borrowed.pth").write_text("".join(f"{p}\n" for p in sorted(borrowed)), encoding="utf-8")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel,
        cwd=tmp_path)  # fmt: skip

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_CONFIG", "CONFIGURATION_DIRECTORY",
                                                             "STATE_DIRECTORY", "PYTHONPATH")}  # fmt: skip
    env.update(XDG_CONFIG_HOME=str(home / ".config"), HOME=str(home), PATH=f"{env_dir / 'bin'}:{env['PATH']}")
    home.mkdir()
    where = run(python, "-c", "import monitor; print(monitor.__file__)", cwd=home, env=env).stdout.strip()
    assert Path(where).is_relative_to(purelib), where  # the wheel's copy, not the checkout's
    monitor = env_dir / "bin" / "monitor"

    run(monitor, "init", cwd=home, env=env)
    config = home / ".config" / "topic-monitor" / "config.yaml"
    assert (config.parent / "examples" / "libya").is_dir()
    feed_server.route("/news.xml", rss([LIBYA, WEATHER], encoding="windows-1251"),
                      headers={"Content-Type": "application/rss+xml"})  # fmt: skip
    text = config.read_text(encoding="utf-8")
    local = f'feeds:\n  - {{name: Local, url: "{feed_server.url("/news.xml")}"}}\n\ntopics:'
    config.write_text(re.sub(r"^feeds:\n.*?^topics:", local, text, count=1, flags=re.M | re.S), encoding="utf-8")

    valid = run(monitor, "validate", cwd=home, env=env)  # the config found in the XDG directory
    assert valid.stdout.startswith(f"{config}: OK") and "feeds (1 enabled of 1)" in valid.stdout
    check = run(monitor, "check", "--deliver-timeout", "5", cwd=home, env=env)
    assert re.search(r"^OK\s+Local\s+2 new", check.stdout, re.M), check.stdout
    assert "Стороны ливийского конфликта" in check.stdout  # windows-1251, read by the installed parser
    assert re.search(r"^delivery: sent [1-9]", check.stdout, re.M), check.stdout  # matched and alerted
    unit = run(monitor, "init", "--systemd", cwd=home, env=env).stdout
    assert f"ExecStart={monitor} " in unit
    [doc] = re.findall(r"^Documentation=file://(.*)$", unit, re.M)
    assert Path(doc).is_file() and Path(doc).is_relative_to(purelib)


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_constraints_file_pins_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [line for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]  # fmt: skip
    pins = {_name(line): line for line in lines}
    assert all("==" in line for line in lines), lines  # pins, not ranges
    assert {_name(dep) for dep in project["dependencies"]} <= set(pins)
    assert "topic-monitor" not in pins
