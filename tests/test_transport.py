"""transport: which addresses a page fetch may reach, and the watchdog that ends a fetch at its deadline."""

from __future__ import annotations

import socket
import time

import pytest

from monitor.feeds.transport import AddressRefused, Watchdog, check_host, refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 (RFC 6052)
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "reserved"),  # shared address space (RFC 6598)
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_refusal_names_every_non_public_address(address: str, kind: str | None) -> None:
    assert refusal(address) == kind


def test_check_host_resolves_the_name() -> None:
    with pytest.raises(AddressRefused, match=r"localhost resolves to (127\.0\.0\.1|::1), a loopback address"):
        check_host("localhost", 80, refusal)
    check_host("localhost", 80, lambda address: None)  # nothing refused


def test_a_fetch_past_its_deadline_has_its_socket_shut_down() -> None:
    watchdog = Watchdog()
    ours, theirs = socket.socketpair()
    try:
        with watchdog.scope(time.monotonic() + 0.2) as scope:
            scope.admit(ours, "peer", proxied=False)
            ours.settimeout(5)
            assert ours.recv(1) == b""  # woken by the watchdog, long before the 5 s timeout: end of stream
            assert scope.expired
    finally:
        watchdog.close()
        ours.close()
        theirs.close()


def test_a_fetch_that_ends_in_time_keeps_its_socket_usable() -> None:
    watchdog = Watchdog()
    ours, theirs = socket.socketpair()
    try:
        with watchdog.scope(time.monotonic() + 0.1) as scope:
            scope.admit(ours, "peer", proxied=False)
        deadline = time.monotonic() + 5
        while watchdog.pending() and time.monotonic() < deadline:  # the watchdog has passed that deadline
            time.sleep(0.01)
        assert not scope.expired
        theirs.sendall(b"x")
        assert ours.recv(1) == b"x"  # a kept-alive connection goes on serving the next fetch
    finally:
        watchdog.close()
        ours.close()
        theirs.close()


def test_a_socket_admitted_after_the_deadline_is_shut_at_once() -> None:
    watchdog = Watchdog()
    ours, theirs = socket.socketpair()
    try:
        with watchdog.scope(time.monotonic() - 1) as scope:
            scope.admit(ours, "peer", proxied=False)
            assert scope.expired and ours.recv(1) == b""
    finally:
        watchdog.close()
        ours.close()
        theirs.close()


def test_a_refused_peer_is_named() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    watchdog = Watchdog()
    try:
        with watchdog.scope(time.monotonic() + 5, refusal) as scope, pytest.raises(AddressRefused, match="loopback"):
            scope.admit(ours, "127.0.0.1", proxied=False)  # the address connected, not the name, is checked
        with watchdog.scope(time.monotonic() + 5, refusal) as scope:
            scope.admit(ours, "proxy.internal", proxied=True)  # the proxy's own address is not the target's
    finally:
        watchdog.close()
        ours.close()
        theirs.close()
