"""What requests would read from the environment on every request, read once per Session.

requests re-reads the proxy and CA-bundle variables (HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE,
CURL_CA_BUNDLE) on every request while `trust_env` is on: a scan of the whole environment that was a tenth
of a 304 poll's CPU (feeds/http.py) and a third of a Telegram message's (bench/deliver.py). Both clients
resolve them here once and turn `trust_env` off; proxies still apply, and NO_PROXY still exempts hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.request import getproxies

import requests
from requests.utils import should_bypass_proxies


def read_environment_once(session: requests.Session) -> dict[str, str]:
    """Fix the session's CA bundle from the environment, stop requests reading it again; the proxies."""
    session.verify = session.merge_environment_settings(None, {}, None, None, None)["verify"]
    session.trust_env = False
    return getproxies()


def proxies_for(url: str, proxies: Mapping[str, str]) -> dict[str, str] | None:
    """The proxies a request to `url` goes through: None when there are none or NO_PROXY exempts its host."""
    if not proxies or should_bypass_proxies(url, proxies.get("no")):
        return None
    return dict(proxies)
