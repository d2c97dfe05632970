"""What story grouping reads from an item's text: weighted terms, a MinHash of shingles, the dates it names.

Also the tf-idf arithmetic: incremental document frequencies and L2-normalised sparse vectors (dicts).
Values of TITLE_WEIGHT, TEXT_CHARS and MAX_TERMS were compared on the labelled pairs: docs/stories.md.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache

from ..match.text import AnalysedText, TermScan, analyse, normalise, normalised_terms, normalised_tokens, terms
from . import minhash

TITLE_WEIGHT = 3  # a headline names the event; the body wanders
TEXT_CHARS = 1500  # the lead carries the event; long bodies dilute the vector and cost time
LEAD_CHARS = 300  # where dates of the event are looked for (a body's later dates are background)
MAX_TERMS = 50  # terms kept per vector (highest tf-idf): memory and time stay flat, F1 the same as with 100
MIN_SHINGLES = 10  # resemblance of a few shingles (a headline) says little; such items use the cosine path only

# Links (Telegram footers, "read more") are per-outlet boilerplate with rare, heavy tokens.
_URL = re.compile(r"(?:https?://|www\.|t\.me/)\S+", re.IGNORECASE)

# Besides the stop words terms() drops (match/text.py): words and phrases that say nothing about which event an item
# reports ("по словам", "сообщил"). IDF over the window discounts the rest of the boilerplate.
_EVENTLESS_WORDS = """
теперь вдруг нибудь опять уж ведь потом ничего тут чтоб будто тогда потому совсем мой моя куда зачем никогда наконец
другой хоть больше много разве впрочем хорошо лучше иногда чуть всегда конечно сообщил сообщила сообщили словам данным
new
"""

_MONTHS = {
    **{m: i + 1 for i, ms in enumerate(
        ("январь января янв", "февраль февраля фев", "март марта мар", "апрель апреля апр", "май мая",
         "июнь июня июн", "июль июля июл", "август августа авг", "сентябрь сентября сен сент", "октябрь октября окт",
         "ноябрь ноября ноя", "декабрь декабря дек")) for m in ms.split()},
    **{m: i + 1 for i, ms in enumerate(
        ("january jan", "february feb", "march mar", "april apr", "may", "june jun", "july jul", "august aug",
         "september sep sept", "october oct", "november nov", "december dec")) for m in ms.split()},
}  # fmt: skip


@cache
def _stop_terms() -> frozenset[str]:
    return frozenset(terms(_EVENTLESS_WORDS))


@dataclass(frozen=True)
class ItemFeatures:
    """What grouping needs from an item's text."""

    counts: Mapping[str, float]  # term -> frequency, title occurrences counted TITLE_WEIGHT times
    signature: minhash.Signature | None  # MinHash of word 3-shingles; None below MIN_SHINGLES shingles
    dates: frozenset[int]  # days of a leap year (1..366) named in the title and lead ("8 ноября", "Nov 14")


def featurise(title: str, body: str) -> ItemFeatures:
    """Terms, MinHash and dates of one item (title and the first TEXT_CHARS characters of the body)."""
    return features_of(analyse(title, body))


def features_of(analysed: AnalysedText) -> ItemFeatures:
    """featurise() of an item whose text the topic model has analysed already."""
    title = _without_links(analysed.title_scan, analysed.title)
    body, lead = _opening(analysed.text_scan, analysed.text)
    stop = _stop_terms()
    counts: dict[str, float] = {}
    for weight, text in ((float(TITLE_WEIGHT), title), (1.0, body)):
        for term in normalised_terms(text):
            if term in stop or (len(term) < 2 and not term.isdigit()):
                continue
            term = sys.intern(term)  # one copy per term across the window's vectors and postings
            counts[term] = counts.get(term, 0.0) + weight
    title_words = normalised_tokens(title)
    grams = minhash.shingles(title_words + normalised_tokens(body))
    signature = minhash.signature(grams) if len(grams) >= MIN_SHINGLES else None
    return ItemFeatures(counts, signature, named_dates(title_words + normalised_tokens(lead)))


def _without_links(scan: TermScan, raw: str) -> str:
    """The normalised text with its links blanked."""
    return _URL.sub(" ", scan.norm) if scan.aligned else normalise(_URL.sub(" ", raw))


def _opening(scan: TermScan, raw: str) -> tuple[str, str]:
    """The body's first TEXT_CHARS characters and their first LEAD_CHARS, normalised, links blanked.

    Links are blanked after the cut, as in the raw text (a link cut short may no longer look like one). Where the
    scan's normalised text lines up with the raw text (nearly always) it is cut; otherwise the raw text is.
    """
    if scan.aligned:
        body = _URL.sub(" ", scan.norm[:TEXT_CHARS])
        return body, body[:LEAD_CHARS]
    cut = _URL.sub(" ", raw[:TEXT_CHARS])
    return normalise(cut), normalise(cut[:LEAD_CHARS])


def named_dates(words: list[str]) -> frozenset[int]:
    """Day-of-year of each "<day> <month>" or "<month> <day>" in normalised tokens."""
    found = set()
    for i, word in enumerate(words):
        if not (word.isdigit() and len(word) <= 2):
            continue
        for j in (i + 1, i - 1):
            month = _MONTHS.get(words[j]) if 0 <= j < len(words) else None
            if month is not None:
                with contextlib.suppress(ValueError):  # "31 ноября", "0 мая"
                    found.add(date(2000, month, int(word)).timetuple().tm_yday)
                break
    return frozenset(found)


def dates_conflict(a: frozenset[int], b: frozenset[int]) -> bool:
    """Both items name dates and none of them lie within a day of each other (8 vs 16 November)."""
    if not a or not b:
        return False
    return not any(min(abs(x - y), 366 - abs(x - y)) <= 1 for x in a for y in b)


class DocumentFrequencies:
    """Document frequencies of terms, updated incrementally; smoothed IDF as in scikit-learn."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.docs = 0

    def add(self, doc_terms: Iterable[str]) -> None:
        """Count one document (its distinct terms)."""
        counts = self.counts
        for term in doc_terms:
            counts[term] = counts.get(term, 0) + 1
        self.docs += 1

    def remove(self, doc_terms: Iterable[str]) -> None:
        """Forget one document counted before with the same terms."""
        counts = self.counts
        for term in doc_terms:
            left = counts[term] - 1
            if left:
                counts[term] = left
            else:
                del counts[term]
        self.docs -= 1

    @classmethod
    def of(cls, docs: Iterable[ItemFeatures]) -> DocumentFrequencies:
        """Frequencies over a collection (e.g. a background corpus)."""
        df = cls()
        for features in docs:
            df.add(features.counts)
        return df


def tfidf(
    counts: Mapping[str, float], window: DocumentFrequencies, background: DocumentFrequencies | None = None
) -> dict[str, float]:
    """Sublinear tf × smoothed idf over window (+ background), top MAX_TERMS terms, L2-normalised."""
    wdf = window.counts
    if background is None:
        n = window.docs + 1
        weights = {t: (1.0 + math.log(tf)) * (math.log(n / (wdf.get(t, 0) + 1)) + 1.0) for t, tf in counts.items()}
    else:
        bdf = background.counts
        n = window.docs + background.docs + 1
        weights = {
            t: (1.0 + math.log(tf)) * (math.log(n / (wdf.get(t, 0) + bdf.get(t, 0) + 1)) + 1.0)
            for t, tf in counts.items()
        }
    if len(weights) > MAX_TERMS:
        weights = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TERMS])
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {t: w / norm for t, w in weights.items()}


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Dot product of two L2-normalised sparse vectors."""
    shared = a.keys() & b.keys()  # a set operation in C; vectors share few terms, so the sum is short
    return sum(a[t] * b[t] for t in shared)
