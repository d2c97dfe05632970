"""Entry links: resolved against the feed URL, and normalised into stable keys without tracking parameters."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

_TRACKING = re.compile(
    r"^(utm_\w*|fbclid|gclid|dclid|gbraid|wbraid|yclid|ysclid|msclkid|mc_cid|mc_eid|igshid|_openstat|_hsenc|_hsmi"
    r"|mkt_tok|oly_anon_id|oly_enc_id|vero_id|rb_clickid|s_cid|wt_mc|icid|ncid|ocid|cmpid|ref_src|spm)$",
    re.IGNORECASE,
)


def clean_link(link: object, base: str) -> str | None:
    """The link resolved against the feed URL, when it is http(s); else None (javascript:, mailto:, …)."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        absolute = urljoin(base, link.strip())
        parts = urlsplit(absolute)
    except ValueError:
        return None
    return absolute if parts.scheme in ("http", "https") and parts.netloc else None


def normalise_link(link: str) -> str:
    """A link as a stable key: lower-case scheme and host, no fragment, no tracking parameters."""
    parts = urlsplit(link)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urlencode(query), ""))
