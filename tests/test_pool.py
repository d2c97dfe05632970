"""Feed parsing in worker processes: same results and errors as in-process; a dying worker is contained."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed
from monitor.feeds.pool import ParserPool
from monitor.models import ParsedFeed

NOW = datetime(2026, 11, 25, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
RSS = (
    '<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel><title>T</title>'
    "<item><guid>1</guid><title>Перемирие в Ливии</title><description>Триполи</description></item>"
    "</channel></rss>"
).encode("windows-1251")


def crash_on_request(body: bytes, **kwargs: object) -> ParsedFeed:
    """Stands in for a parser bug that kills its process (a segfault in a C extension, the OOM killer)."""
    if body == b"crash":
        os._exit(1)
    return parse_feed(body, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    running = ParserPool(workers=1, target=crash_on_request)
    try:
        yield running
    finally:
        running.close()


def test_parses_like_parse_feed(pool: ParserPool) -> None:
    here = parse_feed(RSS, feed="F", url="http://127.0.0.1/f", now=NOW)
    there = pool(RSS, feed="F", url="http://127.0.0.1/f", now=NOW)
    assert there == here
    assert there.items[0].title == "Перемирие в Ливии"


def test_parse_errors_cross_the_process_boundary(pool: ParserPool) -> None:
    with pytest.raises(ParseError):
        pool(b"<html><body>not a feed</body></html>", feed="F", url="http://127.0.0.1/f", now=NOW)


def test_a_dying_worker_is_a_parse_error_and_the_pool_recovers(pool: ParserPool) -> None:
    with pytest.raises(ParseError, match="parser process died"):
        pool(b"crash", feed="F", url="http://127.0.0.1/f", now=NOW)
    assert pool(RSS, feed="F", url="http://127.0.0.1/f", now=NOW).items


def worker_pid(body: bytes, **kwargs: object) -> ParsedFeed:
    """Parses, and names the worker process in the feed's warning (so the test can watch it)."""
    parsed = parse_feed(body, **kwargs)  # type: ignore[arg-type]
    return dataclasses.replace(parsed, warning=str(os.getpid()))


def loaded_modules(body: bytes, **kwargs: object) -> ParsedFeed:
    """Parses, and lists the worker's top-level modules in the feed's warning."""
    parsed = parse_feed(body, **kwargs)  # type: ignore[arg-type]
    return dataclasses.replace(parsed, warning=" ".join(sorted({name.split(".")[0] for name in sys.modules})))


def test_a_worker_imports_only_what_parsing_needs() -> None:
    # Each worker is a fresh interpreter (spawn) that imports the target's modules; parsing needs feedparser and
    # lxml, not the topic model, the store or the scheduler (~45 MB a worker instead of ~165 MB).
    # (Under the `monitor` script a worker also imports monitor.cli: test_cli checks that it is light too.)
    pool = ParserPool(workers=1, target=loaded_modules)
    try:
        loaded = set(pool(RSS, feed="F", url="http://127.0.0.1/f", now=NOW).warning.split())
    finally:
        pool.close()
    assert {"feedparser", "lxml", "monitor"} <= loaded
    heavy = {"sklearn", "scipy", "numpy", "pymorphy3", "Stemmer", "trafilatura", "sqlalchemy", "apscheduler"}
    assert not loaded & heavy


@pytest.mark.slow  # SIGKILL of a whole process is the point
def test_workers_leave_when_the_daemon_is_killed(tmp_path: Path) -> None:
    # A process with a started pool dies by SIGKILL (no shutdown): its parser workers must not outlive it.
    script = (
        "import os, signal, sys; from datetime import UTC, datetime; sys.path.insert(0, sys.argv[1]);"
        "from monitor.feeds.pool import ParserPool; from tests.test_pool import RSS, worker_pid;"
        "pool = ParserPool(workers=2, target=worker_pid);"
        "print(pool(RSS, feed='F', url='http://127.0.0.1/f', now=datetime.now(UTC)).warning, flush=True);"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    out = tmp_path / "worker.pid"  # a file, not a pipe: a leaked worker would hold a pipe open
    with out.open("w") as fh:
        subprocess.run([sys.executable, "-c", script, str(ROOT)], stdout=fh, timeout=60, check=False)
    worker = int(out.read_text().strip())
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        assert not _alive(worker), f"parser process {worker} outlived its killed parent"
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # an exited child of ours that nobody reaped yet is a zombie: gone for this purpose
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().split()[2] != "Z"
