"""The environment requests would read on every request, read once: CA bundle, proxies, NO_PROXY."""

from __future__ import annotations

import pytest
import requests

from monitor.net import proxies_for, read_environment_once

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_no_proxies_and_the_default_ca_bundle(clean_env: pytest.MonkeyPatch) -> None:
    session = requests.Session()
    assert read_environment_once(session) == {}
    assert session.trust_env is False and session.verify is True
    assert proxies_for("https://www.interfax.ru/rss.asp", {}) is None


def test_proxies_and_ca_bundle_are_taken_once_and_no_proxy_exempts_hosts(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    clean_env.setenv("NO_PROXY", "intranet.example,127.0.0.1")
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/internal.pem")
    session = requests.Session()
    proxies = read_environment_once(session)
    assert session.trust_env is False and session.verify == "/etc/ssl/internal.pem"
    clean_env.setenv("HTTPS_PROXY", "http://changed.internal:1")  # read once: later changes do not count
    assert proxies_for("https://www.interfax.ru/rss.asp", proxies) == {
        "https": "http://proxy.internal:3128",
        "no": "intranet.example,127.0.0.1",
    }
    assert proxies_for("https://intranet.example/feed", proxies) is None
