"""Text normalisation, tokenisation and morphology for Russian and English.

    normalise(text)  NFKC, lower case, ё→е, dash and quote variants unified
    tokens(text)     word tokens; codes and abbreviations stay whole (снв-3, с-400, f-16, u.s)
    terms(text)      content terms: Russian dictionary words → pymorphy3 lemma, other Cyrillic words → Snowball stem,
                     Latin words → English Snowball stem; stop words dropped
    readable(text)   what the model reads of a title or text: the first READ_CHARS (100,000) characters, page-script
                     residue dropped
    AnalysedText     an item's title and text analysed once, read by both the topic model and story grouping

Why lemmas for Russian: Snowball over-stems names ("Ливия" → "лив", "Ливан" → "лива"), which merges countries in
TF-IDF and makes keyword roots unusable. pymorphy3 is ~45 µs a word, so lemmas go through a word cache; words the
dictionary does not know (surnames, transliterations: "Хафтара") get the Snowball stem instead, because pymorphy3's
guess for them is unreliable ("хафтара" → "хафтара"). Mixed text is handled per token by its script.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import accumulate

import pymorphy3  # type: ignore[import-untyped]
import Stemmer

from .clean import strip_code

_REPLACE = (("ё", "е"), ("‐", "-"), ("‑", "-"), ("‒", "-"), ("–", "-"), ("—", "-"), ("−", "-"))
# A token is a run of word characters, optionally joined by "-" or "." to more word characters: "снв-3", "u.s".
# Possessive quantifiers: the same tokens (nothing after a word run ever needs it shorter), ~10 % faster.
_TOKEN = re.compile(r"\w++(?:[-.]\w++)*+")
_CYR = re.compile(r"[а-я]")
_LAT = re.compile(r"[a-z]")
_DIGIT = re.compile(r"\d")

# Function words and reporting verbs of both languages: they say nothing about a topic. Both lists apply to every
# word (a text's script decides, not its language label); Russian lemmas are checked again after lemmatisation.
_RU_STOP_WORDS = """
    а без более бы был была были было быть в вам вас весь во вот все всего всех вы где да даже для до его ее если
    есть еще же за здесь и из или им их к как ко когда кто ли либо между меня мне может мы на над надо наш не него
    нее нет ни них но ну о об однако он она они оно от очень по под при про с сам так также такой там те тем то того
    тоже той только том ты у уже хотя чего чей чем что чтобы чье чья эта эти это этого этой этом этот я который
    свой себя весь мочь этот тот наш ваш какой сказать заявить отметить также пока один два три после перед через
    около вокруг будет будут году года год г млн млрд тыс руб ранее сейчас сегодня вчера завтра всё
    раз именно лишь почти более менее очень нужно можно нельзя кроме среди против вместо ради из-за вне
    """
_EN_STOP_WORDS = """
    a about above after again against all also am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
    on once only or other our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves said says say mr mrs ms
    year years pct mln dlrs billion million would could may might also told one two three reuter reuters
    """
STOP_WORDS = frozenset((_RU_STOP_WORDS + _EN_STOP_WORDS).split())

# Russian words: pymorphy3 lemmas, Snowball stems for words it does not know (chosen and measured: docs/matching.md).
_RU_STEMMER = Stemmer.Stemmer("russian")
_EN_STEMMER = Stemmer.Stemmer("english")
_MORPH_LOCK = threading.Lock()
# How much of an item's title and of its text the model reads (issue 12: a 5 MB description took 3.2 GB to match).
# News articles are a few thousand characters (the longest of both dev sets: 37,272); a text ten times longer says
# what it is about well before its end, and reading all of a hostile 10 MB one would cost seconds and hundreds of MB.
READ_CHARS = 100_000
_CACHE_LIMIT = 200_000  # entries; RU dev (4,467 articles) needs 48k. pymorphy3 re-parses after a clear
# Word → term cache, filled lazily, read without a lock (dict reads and single writes are atomic in CPython). It also
# maps whitespace-separated chunks ("ливии,", "«снв-3»") to their tokens' terms: a chunk that is one token maps to
# that token's terms either way, so the two kinds of key agree where they meet.
_cache: dict[str, str] = {}
# The cached terms that hold a space (a compound token's terms: "российско французский"), so that the common item
# without one skips the join and split below. Never cleared: a reader racing a cache clear still finds every such
# value here; it grows with distinct compounds only.
_compound: set[str] = set()


def _fold(text: str) -> str:
    # str.replace per pair: ~40x faster than str.translate with a dict on a 1,500-character text.
    text = text.lower()
    for old, new in _REPLACE:
        if old in text:
            text = text.replace(old, new)
    return text


def normalise(text: str) -> str:
    """NFKC, lower case, ё→е, typographic dashes to "-" (same length as the NFKC form)."""
    return _fold(unicodedata.normalize("NFKC", text))


def _split(tok: str) -> list[str]:
    """Split alphabetic compounds ("российско-французского", "us-japan"); keep codes with digits ("снв-3")."""
    if "-" in tok and not _DIGIT.search(tok):
        return [part for part in tok.split("-") if part]
    return [tok]


def tokens(text: str) -> list[str]:
    """Normalised word tokens; keeps codes like 'снв-3', 'f-16', 'с-400' and dotted abbreviations like 'u.s'."""
    return normalised_tokens(normalise(text))


@lru_cache(maxsize=1)
def _morph() -> pymorphy3.MorphAnalyzer:
    return pymorphy3.MorphAnalyzer()


def _ru_term(word: str) -> str:
    if not word.isalpha():  # codes and abbreviations: "снв-3", "с-400"
        return word
    morph = _morph()
    with _MORPH_LOCK:  # pymorphy3 is not documented as thread-safe
        # A word its dictionary does not hold gets the stem, so ask the dictionary first (~1 µs): parsing such a
        # word runs pymorphy3's guessers (~50 µs), whose guesses would be thrown away. Every new surname, place and
        # transliteration takes that path once. The best parse is a dictionary one exactly when the word is in
        # the dictionary (all 181,337 Cyrillic words of the RU dev stream agree; tests/test_text.py checks words).
        parse = morph.parse(word)[0] if morph.word_is_known(word) else None
    if parse is not None and parse.is_known:
        return str(parse.normal_form).replace("ё", "е")
    return str(_RU_STEMMER.stemWord(word))


def _en_term(word: str) -> str:
    if not word.isalpha():  # "f-16", "u.s", "1987"
        return word
    return str(_EN_STEMMER.stemWord(word))


def word_term(word: str) -> str:
    """The term of one normalised token ('' for a stop word)."""
    term = _cache.get(word)
    if term is None:
        if word in STOP_WORDS:
            term = ""
        elif _CYR.search(word):
            term = _ru_term(word)
            if term in STOP_WORDS:
                term = ""
        elif _LAT.search(word):
            term = _en_term(word)
        elif word.isdigit():
            term = ""  # bare numbers carry no topic
        else:
            term = word
        if len(term) == 1:
            term = ""
        if len(_cache) > _CACHE_LIMIT:
            _cache.clear()
        if " " in term:
            _compound.add(term)
        _cache[word] = term
    return term


def terms(text: str) -> list[str]:
    """Content terms of a text, in order (lemmas/stems, stop words dropped); each word's script decides its language."""
    return normalised_terms(normalise(text))


def normalised_terms(norm: str) -> list[str]:
    """terms() of a text already normalised."""
    return _flatten(_chunk_terms(norm.split()))


def normalised_tokens(norm: str) -> list[str]:
    """tokens() of a text already normalised."""
    found: list[str] = _TOKEN.findall(norm)
    if "-" not in norm:  # no compound to split (most texts of a few words: names, headlines)
        return found
    out: list[str] = []
    for tok in found:
        if "-" in tok:
            out.extend(_split(tok))
        else:
            out.append(tok)
    return out


def _chunk_terms(chunks: list[str]) -> list[str]:
    """The terms of each whitespace-separated chunk, space-separated ("" for none).

    Tokens never span whitespace and the token regex looks at nothing before a match, so the tokens of a text are
    its chunks' tokens in order. Most chunks recur ("ливии", "ливии,"), so the cache answers for them at C speed and
    the regex (~1,800 CPU instructions a token, half the cost of tokenising) runs only on chunks not seen yet.
    """
    mapped = list(map(_cache.get, chunks))  # None marks a chunk not seen yet
    if None in mapped:
        return [m if m is not None else _new_chunk(c) for m, c in zip(mapped, chunks, strict=True)]
    return mapped  # type: ignore[return-value]  # no None left


def _new_chunk(chunk: str) -> str:
    term = " ".join(filter(None, map(_token_terms, _TOKEN.findall(chunk))))
    if len(_cache) > _CACHE_LIMIT:
        _cache.clear()
    if " " in term:
        _compound.add(term)  # before the cache entry, so a reader never sees one without the other
    _cache[chunk] = term
    return term


def _flatten(mapped: Sequence[str | None]) -> list[str]:
    """The terms of mapped tokens, in order: stop words ("") dropped, a compound's "term term" split in two."""
    if _compound.isdisjoint(mapped):
        # One term per non-empty token, as the cached strings themselves: their hashes are cached too, which the
        # vocabulary look-ups that follow use (joining and splitting made new strings, ~15 µs an item).
        return list(filter(None, mapped))
    # A compound token maps to "term term": joining and splitting on spaces flattens them in one pass.
    joined = " ".join(filter(None, mapped))
    return joined.split(" ") if joined else []


_RU_ADJ = (
    ("ийский", "ия"),
    ("ейский", "ея"),
    ("йский", "я"),
    ("йский", "й"),
    ("ьский", "ь"),
    ("ский", "а"),
    ("ский", ""),
    ("ийский", "и"),
)
_EN_ADJ = (("ian", "ia"), ("ian", ""), ("an", "a"), ("n", ""))


@lru_cache(maxsize=65536)
def derived_from(term: str) -> tuple[str, ...]:
    """Nouns a place/people adjective may come from: 'ливийский' → 'ливия', 'syrian' → 'syria'.

    Only adjective → noun, never the reverse: a noun root such as "груз" (from "Грузия") would collide with
    unrelated words, an adjective suffix cannot.
    """
    out: list[str] = []
    if term.endswith("ский"):
        for suffix, noun in _RU_ADJ:
            if term.endswith(suffix) and len(term) - len(suffix) >= 3:
                out.append(term[: -len(suffix)] + noun)
    elif term.endswith("an") and term.isascii() and len(term) >= 5:
        for suffix, noun in _EN_ADJ:
            if term.endswith(suffix):
                out.append(term[: -len(suffix)] + noun)
    return tuple(dict.fromkeys(out))


def adjectives_of(noun: str) -> tuple[str, ...]:
    """Every term t with `noun in derived_from(t)` ('ливия' → 'ливийский'): the inverse of derived_from."""
    out: list[str] = []
    for suffix, end in (*_RU_ADJ, *_EN_ADJ):
        if noun.endswith(end):
            candidate = noun[: len(noun) - len(end)] + suffix
            if noun in derived_from(candidate):
                out.append(candidate)
    return tuple(dict.fromkeys(out))


def _normalise_mapped(text: str) -> tuple[str, list[int] | None]:
    """normalise(text) and, when lengths differ (NFKC expands "№" to "no"), each output char's source offset."""
    norm = normalise(text)
    if len(norm) == len(text):
        return norm, None
    pieces: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        piece = normalise(ch)
        pieces.append(piece)
        origin.extend([i] * len(piece))
    return "".join(pieces), origin


def _token_terms(tok: str) -> str:
    """Terms of one token, space-separated (a compound gives several); cached."""
    term = _cache.get(tok)
    if term is None:
        if "-" in tok and not _DIGIT.search(tok):
            term = " ".join(t for t in (word_term(part) for part in _split(tok)) if t)
        else:
            term = word_term(tok)
        if " " in term:
            _compound.add(term)  # before the cache entry, so a reader never sees one without the other
        _cache[tok] = term
    return term


def term_spans(text: str) -> tuple[list[str], list[int]]:
    """Content terms of a text and the offset in `text` where each one's token starts (for passages)."""
    scan = TermScan(text)
    return scan.terms, scan.starts()


@dataclass(frozen=True, eq=False)
class AnalysedText:
    """An item's title and text analysed once: the topic model and story grouping both read it.

    Each scan (normalised text, terms, term offsets on demand) is made on first use and kept.
    """

    title: str
    text: str

    @cached_property
    def title_scan(self) -> TermScan:
        return TermScan(self.title)

    @cached_property
    def text_scan(self) -> TermScan:
        return TermScan(self.text)


def readable(text: str) -> str:
    """The part of a title or text the model reads: its first READ_CHARS characters, page-script residue dropped
    (match/clean.py). The item itself keeps all of it, for storage and display."""
    return strip_code(text[:READ_CHARS])


def analyse(title: str, text: str) -> AnalysedText:
    """An item's title and text as the model and the grouper read them (`readable`)."""
    return AnalysedText(readable(title), readable(text))


class TermScan:
    """terms(text), keeping what it takes to find where a term starts, for the few items whose passage is shown.

    The chunks and their terms are kept, so offsets are found later and only if asked, without tokenising the text
    again; a passage needs two (where its window starts and where the next one would).
    """

    __slots__ = ("_chunks", "_ends", "_mapped", "_norm_changed", "_slow", "_text", "aligned", "norm", "terms")

    def __init__(self, text: str) -> None:
        self._text = text
        nfkc = unicodedata.normalize("NFKC", text)
        self.norm = norm = _fold(nfkc)
        self._norm_changed = len(norm) != len(text)
        # norm[i] is text[i] normalised, so a slice of `norm` is the normalised slice of the text: NFKC changed
        # nothing, and lower case kept every length. Except for Σ, whose lower case depends on the next letter
        # (σ or final ς), which a slice may cut off.
        self.aligned: bool = nfkc == text and not self._norm_changed and "Σ" not in text
        self._chunks = norm.split()
        self._mapped = _chunk_terms(self._chunks)
        self.terms: list[str] = _flatten(self._mapped)
        self._ends: list[int] | None = None  # terms in the chunks up to and including each one
        self._slow: list[int] | None = None

    def head(self, n: int) -> tuple[Sequence[str], list[str]]:
        """The whitespace-separated chunks of `norm[:n]` and their terms (`normalised_terms(norm[:n])`), from the
        kept ones: only a chunk the cut falls inside is looked up again. The lists are the scan's own when the cut
        keeps everything; do not change them."""
        if n >= len(self.norm):
            return self._chunks, self.terms
        cut = self.norm[:n].split()
        k = len(cut)
        if not k:
            return [], []
        # The chunks of a prefix are the text's first chunks; the last is shorter if the cut fell inside it.
        chunks, mapped = self._chunks[:k], self._mapped[:k]
        if cut[-1] != chunks[-1]:
            chunks[-1] = cut[-1]
            mapped[-1] = _chunk_terms(cut[-1:])[0]
        return chunks, _flatten(mapped)

    def start(self, i: int) -> int:
        """Offset in the text where term i's token starts."""
        if self._norm_changed:
            return self.starts()[i]
        mapped = self._mapped
        if self._ends is None:
            one_each = len(self.terms) == len(mapped) - mapped.count("")  # no compound: a chunk has 0 or 1 terms
            self._ends = list(accumulate(map(bool, mapped) if one_each else map(len, map(str.split, mapped))))
        ends = self._ends
        j = bisect_right(ends, i)  # the chunk that holds term i
        k = i - (ends[j - 1] if j else 0)  # and which of its terms it is
        # str.split(maxsplit=j) leaves the text from chunk j on (leading whitespace removed) as its last part.
        at = len(self.norm) - len(self.norm.split(maxsplit=j)[-1])
        chunk = self._chunks[j]
        if chunk.isalnum():  # one token, the whole chunk (str.isalnum is the regex's \w less "_")
            return at
        for m in _TOKEN.finditer(chunk):  # "«ливии»," or "нефть/газ": count terms token by token
            k -= len(_token_terms(m.group()).split())
            if k < 0:
                return at + m.start()
        raise AssertionError(f"term {i} not in chunk {chunk!r}")  # the chunk's terms were counted above

    def starts(self) -> list[int]:
        """Offset in the text where each term's token starts."""
        if self._norm_changed:  # NFKC changed lengths ("№" → "no"): map offsets back character by character
            # (per character, so a decomposed "е" + U+0308 may give other terms: keep the count aligned)
            if self._slow is None:
                slow = _slow_spans(self._text)[1][: len(self.terms)]
                self._slow = slow + [slow[-1] if slow else 0] * (len(self.terms) - len(slow))
            return self._slow
        find = self.norm.find
        starts: list[int] = []
        at = 0
        for chunk, term in zip(self._chunks, self._mapped, strict=True):
            at = find(chunk, at)  # only whitespace lies between two chunks: the first match at or after the last
            if term:
                starts.extend(at + m.start() for m in _TOKEN.finditer(chunk) for _ in _token_terms(m.group()).split())
            at += len(chunk)
        return starts


def _slow_spans(text: str) -> tuple[list[str], list[int]]:
    norm, origin = _normalise_mapped(text)
    found = _TOKEN.finditer(norm)
    offsets = [m.start() for m in found]
    toks = _TOKEN.findall(norm)
    mapped = [_token_terms(t) for t in toks]
    out: list[str] = []
    starts: list[int] = []
    for start, term in zip(offsets, mapped, strict=True):
        if term:
            parts = term.split(" ")
            out.extend(parts)
            starts.extend([start] * len(parts))
    if origin is not None:
        starts = [origin[i] for i in starts]
    return out, starts
