"""What story grouping reads from an item's text: weighted terms, a MinHash of shingles, the dates it names.

Also the tf-idf arithmetic: incremental document frequencies and L2-normalised sparse vectors (dicts).
Values of TITLE_WEIGHT, TEXT_CHARS and MAX_TERMS were compared on the labelled pairs: docs/stories.md.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from itertools import chain, compress, repeat
from operator import add, not_, sub

from ..match.text import (
    AnalysedText,
    TermScan,
    analyse,
    normalise,
    normalised_terms,
    normalised_tokens,
    terms,
    word_term,
)
from . import minhash

TITLE_WEIGHT = 3  # a headline names the event; the body wanders
TEXT_CHARS = 1500  # the lead carries the event; long bodies dilute the vector and cost time
LEAD_CHARS = 300  # where dates of the event are looked for (a body's later dates are background)
MAX_TERMS = 50  # terms kept per vector (highest tf-idf): memory and time stay flat, F1 the same as with 100
MIN_SHINGLES = 10  # resemblance of a few shingles (a headline) says little; such items use the cosine path only

# A capitalised word: a name, a place, an organisation, in any alphabet the stream uses. Acronyms ("МИД", "NATO")
# count wherever they stand; other capitalised words only when no sentence starts with them.
_CAPITALISED = re.compile(r"(?<![\w-])[A-ZА-ЯЁ][\w]*(?:-\w+)*")
_SENTENCE_END = frozenset(".!?…:;»\"“”«'|-—–([")
# A capitalised word that opens a short quoted span is a name however it sits: «Кофемания», «Слуга народа»,
# "Sea Breeze". Quoted speech («Мы готовы к диалогу») runs longer than three words, so it stays out.
_OPEN_QUOTES = frozenset("«“„\"'")
_QUOTED = re.compile(r"[^«»“”„\"'.!?…;:\n]{1,60}?[»“”\"']")
_QUOTED_WORDS = 3
_NUMBER = re.compile(r"\d+")  # digit runs: "$400m" and "400 million" both name 400, "16,5%" names 16 and 5

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
    title_counts: Mapping[str, float] = field(
        default_factory=dict
    )  # the title's terms alone (for title-to-title similarity)
    entities: frozenset[str] = frozenset()  # terms of capitalised words in the title and lead: who and where
    numbers: frozenset[str] = frozenset()  # digit runs in the title and lead ("94"; "16,5" as "16" and "5"), dates too
    title_numbers: frozenset[str] = frozenset()  # digit runs in the title
    subject: str | None = None  # the title's first name, as the item's own text confirms it (`subject_of`)


def featurise(title: str, body: str) -> ItemFeatures:
    """Terms, MinHash and dates of one item (title and the first TEXT_CHARS characters of the body)."""
    return features_of(analyse(title, body))


def features_of(analysed: AnalysedText) -> ItemFeatures:
    """featurise() of an item whose text the topic model has analysed already.

    The terms and chunks are the scans' own (`AnalysedText`) unless a link was blanked, which changes them.
    """
    tscan = analysed.title_scan
    title = _without_links(tscan, analysed.title)
    title_chunks, title_terms = tscan.head(len(title)) if title == tscan.norm else _chunked(title)
    lead, body_chunks, body_terms = _opening(analysed.text_scan, analysed.text)
    stop = _stop_terms()
    # Counted in C, in order of first appearance (title, then body) as a loop adding TITLE_WEIGHT and 1.0 would:
    # the same dict, insertion order and all (tf-idf sums over it).
    counts = {
        sys.intern(term): float(n)  # one copy per term across the window's vectors and postings
        for term, n in Counter(chain(title_terms * TITLE_WEIGHT, body_terms)).items()
        if term not in stop and (len(term) >= 2 or term.isdigit())
    }
    title_counts = {
        sys.intern(term): float(n) for term, n in Counter(title_terms).items() if term not in stop and len(term) >= 2
    }
    grams = minhash.shingles(_word_hashes(chain(title_chunks, body_chunks)))
    signature = minhash.signature(grams) if len(grams) >= MIN_SHINGLES else None
    title_numbers = frozenset(_NUMBER.findall(title))
    lead_numbers = frozenset(_NUMBER.findall(lead))
    # A date is a digit token beside a month: none without a digit (int() reads what \d matches, and nothing else).
    dates = named_dates(normalised_tokens(title) + normalised_tokens(lead)) if title_numbers or lead_numbers else _NONE
    lead_names = entities_of(analysed.text[:LEAD_CHARS])
    return ItemFeatures(
        counts,
        signature,
        dates,
        title_counts,
        entities_of(analysed.title) | lead_names,
        title_numbers | lead_numbers,
        title_numbers,
        subject_of(analysed.title, analysed.text[:LEAD_CHARS], lead_names),
    )


_NONE: frozenset[int] = frozenset()
_HASH_CACHE_LIMIT = 100_000  # chunks; a chunk holds one word mostly, so about as many words (~10 MB when full)
# Chunk ("ливии,", "«снв-3»") → its tokens' word hashes (minhash.word_digest), joined: b"" for a chunk without a
# word, 16 bytes for "нефть/газ". Read without a lock (dict reads and single writes are atomic in CPython); a clear
# costs only hashing again.
_digests: dict[str, bytes] = {}


def _word_hashes(chunks: Iterable[str]) -> minhash.Hashes:
    """The word hashes of whitespace-separated chunks' tokens, in order (the chunks' tokens are the text's)."""
    chunks = list(chunks)
    mapped = list(map(_digests.get, chunks))  # None marks a chunk not seen yet (a few in most items)
    i = -1
    with contextlib.suppress(ValueError):  # list.index: no None (left)
        while True:
            i = mapped.index(None, i + 1)
            if len(_digests) > _HASH_CACHE_LIMIT:
                _digests.clear()
            mapped[i] = _digests[chunks[i]] = _chunk_digest(chunks[i])
    return minhash.from_digests(b"".join(mapped))  # type: ignore[arg-type]  # no None left


def _chunk_digest(chunk: str) -> bytes:
    """The word digests of one chunk's tokens, joined."""
    core = chunk.strip(_EDGE)
    if core.isalnum():  # one token, the chunk less its punctuation (str.isalnum is the token regex's \w less "_")
        return minhash.word_digest(core)
    return b"".join(map(minhash.word_digest, normalised_tokens(chunk)))


# Punctuation around a word ("«ливии»,"): no word character among them, so a chunk's one token is what is left.
_EDGE = ".,:;!?…\"'«»“”„()[]{}-—–/"


def _chunked(norm: str) -> tuple[list[str], list[str]]:
    """A normalised text's chunks and terms, made afresh (a blanked link changed them)."""
    chunks = norm.split()
    return chunks, normalised_terms(norm)


def entities_of(raw: str) -> frozenset[str]:
    """Terms of the names in a raw text: acronyms anywhere, other capitalised words not opening a sentence.

    Cheap and language-general (no tagger): "Пушилин", "Петровского", "МИД", "Pyongyang", "NATO". A sentence's
    first word is skipped because it is capitalised whatever it is ("Сегодня", "Police"), unless it opens a short
    quoted span: a quote's first word is capitalised too, but a short quote is a name ("Кофемания").
    """
    found: set[str] = set()
    for m in _CAPITALISED.finditer(raw):
        word = m.group()
        i = m.start() - 1
        while i >= 0 and raw[i].isspace():
            i -= 1
        acronym = len(word) >= 2 and word.isupper()
        if not acronym and (i < 0 or raw[i] in _SENTENCE_END) and not _quoted_name(raw, m.start()):
            continue
        found.update(_name_terms(word))
    return frozenset(found)


def _quoted_name(raw: str, start: int) -> bool:
    """Does the word at `start` open a quoted span of at most _QUOTED_WORDS words?"""
    if start == 0 or raw[start - 1] not in _OPEN_QUOTES:
        return False
    span = _QUOTED.match(raw, start)
    return span is not None and len(span.group().split()) <= _QUOTED_WORDS


@lru_cache(maxsize=16384)  # names recur: a day's news names a few thousand
def _word_terms(word: str) -> tuple[str, ...]:
    """The terms of a raw word's tokens, '' for none."""
    return tuple(word_term(part) for part in normalised_tokens(normalise(word)))


@lru_cache(maxsize=16384)
def _name_terms(word: str) -> tuple[str, ...]:
    """The terms a capitalised raw word names: no stop words, no numbers."""
    stop = _stop_terms()
    return tuple(
        sys.intern(term)
        for term in _word_terms(word)
        if term and len(term) >= 2 and term not in stop and not _NUMBER.search(term)
    )


def subject_of(title: str, text: str, names: frozenset[str] | None = None) -> str | None:
    """The term of the title's first name: who or what the headline is about ("Лукашенко поздравил Токаева").

    A headline's capitals are no evidence on their own (its first word, English Title Case), so a capitalised
    title word counts when the item's text writes it capitalised inside a sentence, or when it is an acronym;
    only a text-less item takes the title's capitals for it.
    """
    known = entities_of(text) if names is None else names
    in_title = entities_of(title) if not text.strip() else frozenset()
    for m in _CAPITALISED.finditer(title):
        word = m.group()
        acronym = len(word) >= 2 and word.isupper()
        for term in _word_terms(word):
            if term and (term in known or term in in_title or (acronym and not _NUMBER.search(term))):
                return term
    return None


def _without_links(scan: TermScan, raw: str) -> str:
    """The normalised text with its links blanked."""
    return _blank_links(scan.norm) if scan.aligned else normalise(_URL.sub(" ", raw))


def _blank_links(norm: str) -> str:
    """_URL.sub(" ", norm) of a lower-cased text, which must hold "http", "www." or "t.me/" for _URL to match: no
    character but an upper-case ASCII letter case-folds to one of those (Python's re, IGNORECASE), and lower()
    leaves none. The test costs ~1 % of the regex's scan."""
    if "http" in norm or "www." in norm or "t.me/" in norm:
        return _URL.sub(" ", norm)
    return norm


def _opening(scan: TermScan, raw: str) -> tuple[str, Sequence[str], list[str]]:
    """The first LEAD_CHARS characters of the body's first TEXT_CHARS, normalised and links blanked, and the chunks
    and terms of those TEXT_CHARS.

    Links are blanked after the cut, as in the raw text (a link cut short may no longer look like one). Where the
    scan's normalised text lines up with the raw text (nearly always) it is cut, and its chunks and terms are
    reused unless a link was blanked; otherwise the raw text is cut.
    """
    if scan.aligned:
        head = scan.norm[:TEXT_CHARS]
        body = _blank_links(head)
        chunks, body_terms = scan.head(TEXT_CHARS) if body == head else _chunked(body)
        return body[:LEAD_CHARS], chunks, body_terms
    cut = _URL.sub(" ", raw[:TEXT_CHARS])
    return (normalise(cut[:LEAD_CHARS]), *_chunked(normalise(cut)))


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
        counts, terms = self.counts, tuple(doc_terms)
        # counts[term] = counts.get(term, 0) + 1 for each (distinct) term, looped in C
        counts.update(zip(terms, map(add, map(counts.get, terms, repeat(0)), repeat(1)), strict=True))
        self.docs += 1

    def remove(self, doc_terms: Iterable[str]) -> None:
        """Forget one document counted before with the same terms."""
        counts, terms = self.counts, tuple(doc_terms)
        left = list(map(sub, map(counts.__getitem__, terms), repeat(1)))
        counts.update(zip(terms, left, strict=True))
        for term in compress(terms, map(not_, left)):  # counted no more
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
    wdf, log = window.counts, math.log
    if background is None:
        n = window.docs + 1
        weights = {t: (1.0 + log(tf)) * (log(n / (wdf.get(t, 0) + 1)) + 1.0) for t, tf in counts.items()}
    else:
        bdf = background.counts
        n = window.docs + background.docs + 1
        weights = {
            t: (1.0 + log(tf)) * (log(n / (wdf.get(t, 0) + bdf.get(t, 0) + 1)) + 1.0) for t, tf in counts.items()
        }
    if len(weights) > MAX_TERMS:
        weights = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TERMS])
    norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
    return {t: w / norm for t, w in weights.items()}


def idf(term: str, window: DocumentFrequencies, background: DocumentFrequencies | None = None) -> float:
    """The smoothed IDF `tfidf` weighs a term with."""
    if background is None:
        return math.log((window.docs + 1) / (window.counts.get(term, 0) + 1)) + 1.0
    n = window.docs + background.docs + 1
    return math.log(n / (window.counts.get(term, 0) + background.counts.get(term, 0) + 1)) + 1.0


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Dot product of two L2-normalised sparse vectors."""
    shared = a.keys() & b.keys()  # a set operation in C; vectors share few terms, so the sum is short
    return sum(a[t] * b[t] for t in shared)
