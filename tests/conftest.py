"""Shared fixtures. The network beyond loopback is blocked for every test."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def connect(self: socket.socket, address: object) -> None:
        if not _allowed(address):
            raise OSError(f"tests may not reach {address!r}: only loopback is allowed")
        return _real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if not _allowed(address):
            raise OSError(f"tests may not reach {address!r}: only loopback is allowed")
        return _real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
