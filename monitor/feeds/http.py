"""HTTP for feeds and article pages: one Session, bounded in time and size.

    fetch(url, etag, last_modified)
      └─ GET (If-None-Match / If-Modified-Since, RFC 9110 §13.1)   no automatic redirects
           ├─ 301/302/303/307/308 → follow by hand, at most max_redirects; a leading run of permanent hops
           │                        (301/308, RFC 9110 §15.4) is reported as FetchResult.permanent_redirect
           ├─ 304 → FetchResult(status=304, body=None)
           ├─ other non-2xx → FetchError(status, retry_after)
           └─ 2xx → read the decoded body with read1(): abort past max_body bytes or past the body deadline

The size cap counts decompressed bytes, so a gzip bomb is cut off after max_body bytes of output; urllib3 ≥ 2.6
bounds each decompression step by the amount asked for (before it, one small read could inflate a whole bomb:
CVE-2025-66471), hence `urllib3>=2.6` in pyproject.toml. Reading with read1() returns after each network read,
which lets the wall-clock deadline stop a server that drips one byte per read timeout forever.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .. import __version__
from ..errors import FetchError
from ..models import FetchResult
from ..net import proxies_for, read_environment_once

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
    ) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.max_body = max_body
        self.max_redirects = max_redirects
        # The read timeout bounds each network read; this bounds the whole body (a slow-drip response).
        self.body_deadline = read_timeout * 3
        self._session = requests.Session()
        # No urllib3 retries: the scheduler's backoff decides when to try again.
        adapter = HTTPAdapter(pool_connections=64, pool_maxsize=16, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"})
        self._proxies = read_environment_once(self._session)  # see monitor.net: not on every request

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

    def get_page(self, url: str) -> FetchResult:
        """GET an article page for full-text extraction, with the same limits as feeds."""
        return self._get(url, {"Accept": PAGE_ACCEPT})

    def close(self) -> None:
        self._session.close()

    def _get(self, url: str, headers: dict[str, str]) -> FetchResult:
        started = time.monotonic()
        response, permanent = self._follow(url, headers)
        with response:
            final_url = response.url
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"), response.headers.get("Date"))
            if status == 304:
                body = None
            elif 200 <= status < 300:
                body = self._read_body(response, final_url, started)
            else:
                raise FetchError(f"HTTP {status} while fetching {final_url}", status=status, retry_after=retry_after)
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

    def _follow(self, url: str, headers: dict[str, str]) -> tuple[requests.Response, str | None]:
        """GET, following redirects by hand; return the final response and the permanent target, if any."""
        _check_url(url, url)
        seen = {url}
        permanent: str | None = None
        still_permanent = True
        current = url
        for _hop in range(self.max_redirects + 1):
            response = self._send(current, headers)
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

    def _send(self, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            return self._session.get(
                url,
                headers=headers,
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
                proxies=proxies_for(url, self._proxies),
            )
        except requests.Timeout as exc:
            raise FetchError(f"timed out while fetching {url}") from exc
        except requests.ConnectionError as exc:
            raise FetchError(f"cannot connect while fetching {url}: {_reason(exc)}") from exc
        except (requests.RequestException, ValueError) as exc:
            # ValueError: requests parses a redirect's Location even with allow_redirects=False ("Invalid IPv6 URL").
            raise FetchError(f"request failed while fetching {url}: {exc}") from exc

    def _read_body(self, response: requests.Response, url: str, started: float) -> bytes:
        """The decoded body, or FetchError past max_body bytes or past the body deadline."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and not response.headers.get("Content-Encoding") and int(declared) > self.max_body:
            raise FetchError(f"response larger than {_size(self.max_body)} while fetching {url}")
        deadline = started + self.body_deadline
        chunks: list[bytes] = []
        total = 0
        try:
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                total += len(chunk)
                if total > self.max_body:
                    raise FetchError(f"response larger than {_size(self.max_body)} while fetching {url}")
                if time.monotonic() > deadline:
                    raise FetchError(f"response took longer than {self.body_deadline:g} s while fetching {url}")
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
