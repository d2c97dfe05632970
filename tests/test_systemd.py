"""The unit file, and sd_notify against a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import config as cfg
from monitor.ports import Clock
from monitor.service.daemon import Daemon
from monitor.service.systemd import SdNotifier
from tests.test_daemon import FEEDS_AB, FakeApp, wait_for, write_config

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "topic-monitor.service"
ENV_EXAMPLE = UNIT.with_name("topic-monitor.env.example")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (keys may repeat, as SystemCallFilter= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_unit_has_the_required_keys(unit: dict[str, dict[str, list[str]]]) -> None:
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] == "notify"
    assert service["ExecStart"].startswith("/opt/topic-monitor/.venv/bin/monitor ")
    assert "run --config /etc/topic-monitor/config.yaml" in service["ExecStart"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(service["WatchdogSec"]) == 60
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) == 20
    assert service["DynamicUser"] == "yes"
    assert service["StateDirectory"] == "topic-monitor"
    assert service["EnvironmentFile"] == "-/etc/topic-monitor/env"
    # glibc's malloc arenas: at most 2 for the daemon's poll threads (docs/daemon.md, Memory; bench/daemon.py runs
    # the daemon with the unit's Environment=).
    assert "MALLOC_ARENA_MAX=2" in unit["Service"]["Environment"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictRealtime"):
        assert service[key] == "yes", key
    assert service["ProtectSystem"] == "strict"
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in unit["Service"]["SystemCallFilter"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0]


def test_env_example_holds_no_real_secret() -> None:
    lines = [line for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"]
    assert lines and all("=" in line for line in lines)
    assert all("replace" in line for line in lines if "TOKEN" in line or "PASSWORD" in line)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify also checks that ExecStart= exists; point it at an executable that does.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/topic-monitor/.venv/bin/monitor", sys.executable)
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in result.stderr.splitlines() if UNIT.name in line or "Unknown" in line]
    assert result.returncode == 0 and not problems, result.stderr


# --- sd_notify ----------------------------------------------------------------------------------------


class Listener:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def saw(self, state: str) -> bool:
        return any(state in message.splitlines() for message in self.drain())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Listener, str]]:
    path = str(tmp_path / "notify.sock")
    lst = Listener(path)
    yield lst, path
    lst.close()


def test_notify_sends_ready_and_watchdog(listener: tuple[Listener, str]) -> None:
    lst, path = listener
    sd = SdNotifier(path)
    assert sd.ready("3 feeds")
    assert sd.watchdog()
    assert lst.drain() == ["READY=1\nSTATUS=3 feeds", "WATCHDOG=1"]


def test_notify_abstract_socket() -> None:
    name = f"topic-monitor-test-{os.getpid()}"
    lst = Listener(b"\0" + name.encode())
    try:
        assert SdNotifier("@" + name).notify("READY=1")
        assert lst.drain() == ["READY=1"]
    finally:
        lst.close()


def test_notify_is_a_no_op_outside_systemd(tmp_path: Path) -> None:
    assert not SdNotifier.from_environ({}).ready()
    assert not SdNotifier(str(tmp_path / "nobody-listens")).watchdog()  # logged at DEBUG, never raised


def test_watchdog_interval_from_environ() -> None:
    assert SdNotifier.from_environ({"WATCHDOG_USEC": "60000000"}).watchdog_interval == 30
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert SdNotifier.from_environ(mine).watchdog_interval == 1
    assert SdNotifier.from_environ({**mine, "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert SdNotifier.from_environ({"WATCHDOG_USEC": "soon"}).watchdog_interval is None


def start_daemon(config_path: Path, environ: dict[str, str]) -> tuple[Daemon, threading.Thread]:
    """A daemon on a fake App, running in a thread, talking to the notify socket in `environ`."""
    write_config(config_path, FEEDS_AB)

    def factory(config: cfg.Config, *, clock: Clock | None = None) -> FakeApp:
        return FakeApp(config)

    daemon = Daemon(
        str(config_path), environ=environ, app_factory=factory, loader=lambda p: cfg.load(p, env={}), hard_exit=False
    )
    thread = threading.Thread(target=daemon.run)
    thread.start()
    return daemon, thread


def test_daemon_sends_ready_watchdog_and_stopping(tmp_path: Path, listener: tuple[Listener, str]) -> None:
    lst, path = listener
    # a ping every 50 ms
    daemon, thread = start_daemon(tmp_path / "config.yaml", {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    try:
        wait_for(lambda: lst.saw("READY=1"), what="READY=1")
        wait_for(lambda: sum(m == "WATCHDOG=1" for m in lst.drain()) >= 3, what="three watchdog pings")
        assert any(m.startswith("READY=1\nSTATUS=2 feeds") for m in lst.messages)
    finally:
        started = time.monotonic()
        daemon.stop()
        thread.join(10)
    assert time.monotonic() - started < 5
    wait_for(lambda: lst.saw("STOPPING=1"), what="STOPPING=1")


def test_notify_never_blocks_when_nobody_reads(listener: tuple[Listener, str]) -> None:
    _, path = listener
    sd = SdNotifier(path)
    started = time.monotonic()
    results = [sd.status(f"message {i}") for i in range(200)]  # far more than the socket queue holds
    assert time.monotonic() - started < 2
    assert results[0] and not all(results)


def test_a_reload_is_bracketed_by_reloading_and_ready(tmp_path: Path, listener: tuple[Listener, str]) -> None:
    """sd_notify(3): RELOADING=1 with MONOTONIC_USEC when a reload begins, READY=1 when it is over, also when
    the new config is refused (the daemon runs on the old one)."""
    lst, path = listener
    config_path = tmp_path / "config.yaml"
    daemon, thread = start_daemon(config_path, {"NOTIFY_SOCKET": path})
    try:
        wait_for(lambda: lst.saw("READY=1"), what="READY=1 at start")
        lst.messages.clear()
        before = time.monotonic_ns() // 1000
        daemon.request_reload()
        wait_for(lambda: lst.saw("READY=1"), what="READY=1 after the reload")
        reloading, ready = [m for m in lst.messages if not m.startswith("STATUS=")]  # the stats job's lines
        lines = reloading.splitlines()
        assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
        assert before <= int(lines[1].partition("=")[2]) <= time.monotonic_ns() // 1000
        assert ready == "READY=1\nSTATUS=2 feeds; outbox 0 pending, 0 failed"
        lst.messages.clear()
        write_config(config_path, FEEDS_AB + '  - {name: c, url: "http://two.test/c.xml", interval: fast}\n')
        daemon.request_reload()
        wait_for(lambda: lst.saw("READY=1"), what="READY=1 after a refused reload")
        reloading, ready = [m for m in lst.messages if not m.startswith("STATUS=")][:2]
        assert reloading.startswith("RELOADING=1\n")
        assert ready.startswith("READY=1\nSTATUS=config reload failed: ")
    finally:
        daemon.stop()
        thread.join(10)
