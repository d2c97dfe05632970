"""`monitor init`: the starter config.yaml and its example articles out of the installed package, and the
systemd unit with this installation's paths.

The files live once, at the top of the checkout; monitor/shipped/ links to them, and the wheel holds copies
(pyproject.toml, package-data), so a `pip install` without the checkout has them too.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from ..errors import UsageError

SHIPPED = Path(__file__).resolve().parent.parent / "shipped"
UNIT = "systemd/topic-monitor.service"
ENV_EXAMPLE = "systemd/topic-monitor.env.example"
# The shipped config keeps its data beside itself (./data, for the checkout); a config written elsewhere
# leaves data_dir to its default: $STATE_DIRECTORY under systemd, else ./data next to the file.
_DATA_DIR = re.compile(r"^  data_dir: \./data\b.*$", re.M)
_DATA_DIR_DEFAULT = (
    "  # data_dir: ./data              # database and model files; default: $STATE_DIRECTORY under systemd\n"
    "  #                               # (StateDirectory=), else ./data next to this file"
)


def shipped(name: str) -> Path:
    """A file of the package's shipped data; UsageError when the installation lacks it."""
    path = SHIPPED / name
    if not path.exists():
        raise UsageError(f"this installation has no {name} (looked in {SHIPPED}); reinstall topic-monitor")
    return path


def write_starter(target: Path, *, force: bool = False) -> list[Path]:
    """Write config.yaml, examples/ and daemon.md (the service guide, the unit's Documentation=) into `target`;
    the files written. Refuses to overwrite unless forced."""
    config = shipped("config.yaml")
    examples = shipped("examples")
    sources = {Path("config.yaml"): config, Path("daemon.md"): shipped("daemon.md")}
    sources.update({p.relative_to(examples.parent): p for p in sorted(examples.rglob("*.txt"))})
    if (examples / "feed.xml").exists():  # the README walk-through's sample feed
        sources[Path("examples/feed.xml")] = examples / "feed.xml"
    existing = [target / rel for rel in sources if (target / rel).exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:3]) + (" …" if len(existing) > 3 else "")
        raise UsageError(f"{shown} exists already; keep it, or write over it with --force")
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: exists and is not a directory")
    written = []
    for rel, source in sources.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel == Path("config.yaml"):
            path.write_text(_DATA_DIR.sub(_DATA_DIR_DEFAULT, source.read_text(encoding="utf-8"), 1),
                            encoding="utf-8")  # fmt: skip
        else:
            shutil.copyfile(source, path)
        written.append(path)
    return written


def unit_text(executable: Path | None = None) -> str:
    """The shipped unit, pointing at this installation: its `monitor` script and its copy of the service guide."""
    text = shipped(UNIT).read_text(encoding="utf-8")
    script = executable or Path(sys.argv[0]).resolve()
    if script.name != "monitor":  # `python -m monitor`: the script beside the interpreter, if the venv has one
        beside = Path(sys.executable).parent / "monitor"
        script = beside if beside.exists() else script
    text = text.replace("/opt/topic-monitor/.venv/bin/monitor", str(script))
    guide = (SHIPPED / "daemon.md").resolve()
    text = re.sub(r"^# Written by `monitor init.*\n", "", text, count=1, flags=re.M)
    return re.sub(r"^Documentation=.*$", f"Documentation=file://{guide}", text, count=1, flags=re.M)
