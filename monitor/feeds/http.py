"""HTTP for feeds and article pages: one Session, bounded in time and size.

    fetch(url, etag, last_modified) / get_page(url)        one deadline for all of it (transport.Watchdog)
      └─ GET (If-None-Match / If-Modified-Since, RFC 9110 §13.1)   no automatic redirects
           │  get_page: each hop's connection must reach a public address (transport.refusal)
           ├─ 301/302/303/307/308 → follow by hand, at most max_redirects; a leading run of permanent hops
           │                        (301/308, RFC 9110 §15.4) is reported as FetchResult.permanent_redirect
           ├─ 304 → FetchResult(status=304, body=None)
           ├─ other non-2xx → FetchError(status, retry_after)
           └─ 2xx → read the decoded body with read1(): abort past max_body bytes
      past the deadline (3 × the read timeout, from connect to the last byte) or on any timeout
           → FetchError with retry_after = TIMEOUT_PAUSE × the time the fetch held on

The size cap counts decompressed bytes, so a gzip bomb is cut off after max_body bytes of output; urllib3 ≥ 2.6
bounds each decompression step by the amount asked for (before it, one small read could inflate a whole bomb:
CVE-2025-66471), hence `urllib3>=2.6` in pyproject.toml.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from .. import __version__
from ..config import Settings
from ..errors import FetchError
from ..models import FetchResult
from ..net import proxies_for, read_environment_once
from .transport import AddressRefused, GuardedAdapter, Refusal, Scope, Watchdog, check_host, refusal

DEFAULT_USER_AGENT = f"topic-monitor/{__version__} (self-hosted news topic monitor)"

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_CHUNK = 64 * 1024
# Credentials must not follow a redirect to another host (requests does the same in rebuild_auth).
_PRIVATE_HEADERS = ("authorization", "cookie", "proxy-authorization")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
# A fetch that timed out asks the scheduler to wait this many times as long as it held on, so a feed that
# always times out holds one of its host's two polling slots (feeds/concurrency.py) at most 1/11 of the time.
TIMEOUT_PAUSE = 10
_TIMEOUTS = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)


class HttpFetcher:
    """ports.Fetcher over requests: conditional GET, manual redirects, size and time caps."""

    def __init__(
        self,
        *,
        user_agent: str,
        connect_timeout: float = 10,
        read_timeout: float = 20,
        max_body: int = 10 * 1024 * 1024,
        max_redirects: int = 5,
        allow_private_pages: bool = False,
        refuse: Refusal = refusal,
    ) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.max_body = max_body
        self.max_redirects = max_redirects
        self.allow_private_pages = allow_private_pages
        self._refuse = refuse  # which addresses pages may not reach (tests let 127.0.0.1 play a public host)
        # The read timeout bounds each network read; this bounds a whole fetch, headers and redirects included.
        self.deadline = read_timeout * 3
        self._watchdog = Watchdog()
        self._session = requests.Session()
        # No urllib3 retries: the scheduler's backoff decides when to try again.
        adapter = GuardedAdapter(pool_connections=64, pool_maxsize=16, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"})
        self._proxies = read_environment_once(self._session)  # see monitor.net: not on every request

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpFetcher:
        """The fetcher the settings describe (timeouts, size cap, redirects, User-Agent, private pages)."""
        return cls(
            user_agent=settings.user_agent or DEFAULT_USER_AGENT,
            read_timeout=settings.timeout,
            max_body=settings.max_body,
            max_redirects=settings.max_redirects,
            allow_private_pages=settings.allow_private_fetch,
        )

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> FetchResult:
        """GET a feed, conditionally when validators are given; raise FetchError on failure."""
        request_headers = {"Accept": FEED_ACCEPT}
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
        request_headers.update(headers or {})
        return self._get(url, request_headers)

    def get_page(self, url: str, *, allow_private: bool = False) -> FetchResult:
        """GET an article page for full-text extraction, with the same limits as feeds.

        The URL comes from a feed item, so it may reach only public addresses (transport.refusal), unless
        `allow_private` or the fetcher's `allow_private_pages` says otherwise."""
        public_only = not (allow_private or self.allow_private_pages)
        return self._get(url, {"Accept": PAGE_ACCEPT}, refuse=self._refuse if public_only else None)

    def close(self) -> None:
        self._watchdog.close()
        self._session.close()

    def _get(self, url: str, headers: dict[str, str], *, refuse: Refusal | None = None) -> FetchResult:
        started = time.monotonic()
        with self._watchdog.scope(started + self.deadline, refuse) as scope:
            try:
                result = self._exchange(url, headers, scope, started)
            except AddressRefused as exc:
                raise FetchError(
                    f"refused to fetch {url}: {exc}; pages are fetched from public addresses only, "
                    "unless allow_private_fetch is true"
                ) from exc
            except FetchError as exc:
                if not (scope.expired or isinstance(exc.__cause__, _TIMEOUTS)):
                    raise
                held = time.monotonic() - started
                message = f"response took longer than {self.deadline:g} s while fetching {url}"
                raise FetchError(
                    message if scope.expired else str(exc), status=exc.status, retry_after=TIMEOUT_PAUSE * held
                ) from exc
        return result

    def _exchange(self, url: str, headers: dict[str, str], scope: Scope, started: float) -> FetchResult:
        response, permanent = self._follow(url, headers, scope.refuse)
        with response:
            final_url = response.url
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"), response.headers.get("Date"))
            if status == 304:
                body = None
            elif 200 <= status < 300:
                body = self._read_body(response, final_url)
            else:
                raise FetchError(f"HTTP {status} while fetching {final_url}", status=status, retry_after=retry_after)
        if scope.expired:  # the watchdog shut the socket: what was read may look complete, and is not
            raise FetchError(f"response took longer than {self.deadline:g} s while fetching {url}")
        return FetchResult(
            url=final_url,
            status=status,
            body=body,
            content_type=response.headers.get("Content-Type"),
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            permanent_redirect=permanent,
            retry_after=retry_after,
            max_age=parse_max_age(response.headers.get("Cache-Control")),
            elapsed=time.monotonic() - started,
        )

    def _follow(
        self, url: str, headers: dict[str, str], refuse: Refusal | None
    ) -> tuple[requests.Response, str | None]:
        """GET, following redirects by hand; return the final response and the permanent target, if any."""
        _check_url(url, url)
        seen = {url}
        permanent: str | None = None
        still_permanent = True
        current = url
        for _hop in range(self.max_redirects + 1):
            response = self._send(current, headers, refuse)
            if response.status_code not in _REDIRECTS or "Location" not in response.headers:
                return response, permanent
            response.close()
            target = _check_url(_join(current, response.headers["Location"]), url)
            still_permanent = still_permanent and response.status_code in _PERMANENT
            if still_permanent:
                permanent = target
            if target in seen:
                raise FetchError(f"redirect loop at {target} while fetching {url}", status=response.status_code)
            if urlsplit(target).hostname != urlsplit(current).hostname:
                headers = {k: v for k, v in headers.items() if k.lower() not in _PRIVATE_HEADERS}
            seen.add(target)
            current = target
        raise FetchError(f"more than {self.max_redirects} redirects while fetching {url}")

    def _send(self, url: str, headers: dict[str, str], refuse: Refusal | None) -> requests.Response:
        proxies = proxies_for(url, self._proxies)
        if refuse is not None and proxies:  # the connection's peer is the proxy: check where it is asked to go
            parts = urlsplit(url)
            check_host(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), refuse)
        try:
            return self._session.get(
                url, headers=headers, timeout=self.timeout, stream=True, allow_redirects=False, proxies=proxies
            )
        except requests.Timeout as exc:
            raise FetchError(f"timed out while fetching {url}") from exc
        except requests.ConnectionError as exc:
            raise FetchError(f"cannot connect while fetching {url}: {_reason(exc)}") from exc
        except (requests.RequestException, ValueError) as exc:
            # ValueError: requests parses a redirect's Location even with allow_redirects=False ("Invalid IPv6 URL").
            raise FetchError(f"request failed while fetching {url}: {exc}") from exc

    def _read_body(self, response: requests.Response, url: str) -> bytes:
        """The decoded body, or FetchError past max_body bytes (the deadline is the watchdog's)."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and not response.headers.get("Content-Encoding") and int(declared) > self.max_body:
            raise FetchError(f"response larger than {_size(self.max_body)} while fetching {url}")
        chunks: list[bytes] = []
        total = 0
        try:
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                total += len(chunk)
                if total > self.max_body:
                    raise FetchError(f"response larger than {_size(self.max_body)} while fetching {url}")
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError(f"reading the response failed while fetching {url}: {exc}") from exc
        return b"".join(chunks)


def _join(base: str, location: str) -> str:
    try:
        return urljoin(base, location)
    except ValueError:
        return location  # _check_url rejects it with a clear message


def _check_url(url: str, fetching: str) -> str:
    """`url` when it is a well-formed http(s) URL, else FetchError (file:, ftp:, javascript:, garbage)."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. "Invalid IPv6 URL"
        valid = False
    if not valid:
        raise FetchError(f"only http and https URLs can be fetched, got {url!r} while fetching {fetching}")
    return url


def parse_retry_after(value: str | None, date: str | None = None) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    # Measure against the server's own Date header when present, so clock skew doesn't matter.
    reference = _http_date(date) if date else None
    return max(0.0, (when - (reference or datetime.now(UTC))).total_seconds())


def parse_max_age(value: str | None) -> float | None:
    """Cache-Control max-age in seconds; None when absent or when the response must not be reused."""
    if not value or re.search(r"no-cache|no-store", value, re.IGNORECASE):
        return None
    match = _MAX_AGE.search(value)
    return float(match.group(1)) if match else None


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error: 'Connection refused', not a page of wrapper reprs."""
    while exc.__context__ is not None and isinstance(exc.__context__, Exception):
        exc = exc.__context__
    return str(exc) or type(exc).__name__


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"
