"""Which words of a text to mark for a match's terms, and the passage around the first of them. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from .untrusted import one_line

SNIPPET_WIDTH = 320
SNIPPET_SCAN = 20_000  # characters of a (possibly megabyte-long) full text searched for the first hit

_RU_ENDING = re.compile("[аеёиоуыэюяйь]{1,2}$")


def _word_pattern(word: str) -> str:
    prefix = word.endswith("*")
    word = word.rstrip("*").lower()
    if not prefix and len(word) >= 5 and re.search("[а-яё]", word):
        # A lemma ("ракета", "стратегический") must also light up its inflected forms ("ракеты",
        # "стратегической"): drop the ending, allow a short one back.
        word = _RU_ENDING.sub("", word)
        tail = r"\w{0,4}"
    else:
        tail = r"\w*" if prefix else ""
    # The tokeniser folds ё into е, so a term never says which one the text used.
    body = "".join("[её]" if ch in "её" else re.escape(ch) for ch in word)
    return body + tail if body else ""


def term_pattern(term: str) -> str | None:
    """A regex for one human-readable term: words in order, a trailing * meaning "any ending"."""
    words = [p for p in (_word_pattern(w) for w in term.split()) if p]
    if not words:
        return None
    return r"(?<!\w)" + r"\W+".join(words) + r"(?!\w)"


@lru_cache(maxsize=256)
def _highlighter(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    patterns = sorted({p for p in map(term_pattern, terms) if p}, key=len, reverse=True)
    return re.compile("|".join(patterns), re.IGNORECASE) if patterns else None


_QUOTES = re.compile(r"\s*[«»\"“”„]+\s*")  # a phrase's words on either side of a quote are marked apart


def highlight_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of `text` where any of the terms occurs, on whole words.

    A hit inside a compound is widened to the whole word ("юго-западе", not "юго-*западе*"), and a phrase whose
    words stand apart by punctuation is marked word by word ("*нормандском*" *формате*, not one run that takes the
    closing quote in).
    """
    pattern = _highlighter(tuple(terms[:40]))
    if pattern is None:
        return []
    spans: list[tuple[int, int]] = []
    for m in pattern.finditer(text):
        if m.end() <= m.start():
            continue
        pos = m.start()
        cuts = [(q.start(), q.end()) for q in _QUOTES.finditer(text, m.start(), m.end())]
        for cut_start, cut_end in [*cuts, (m.end(), m.end())]:
            start, end = _whole_words(text, pos, cut_start)
            if end > start and (not spans or start >= spans[-1][1]):
                spans.append((start, end))
            pos = cut_end
    return spans


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) widened to the words they cut into: letters, and a compound's parts joined by a hyphen
    ("юго-западе"); a code's digits after a hyphen stay out ("ДСНВ" in "ДСНВ-3")."""
    if end <= start:
        return start, start
    while start > 0 and (
        text[start - 1].isalpha() or (text[start - 1] == "-" and start > 1 and text[start - 2].isalpha())
    ):
        start -= 1
    while end < len(text) and (
        text[end].isalpha() or (text[end] == "-" and end + 1 < len(text) and text[end + 1].isalpha())
    ):
        end += 1
    return start, end


# A sentence ends at . ! ? … (and a closing quote or bracket after them) before a space and a capital, a digit or
# an opening quote: "г. Москва" and "т. е." rarely meet the capital, and a passage cut there is still readable.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])[»\"”')\]]*\s+(?=[«\"“(\[]?[A-ZА-ЯЁ0-9])")


def snippet(text: str, terms: Sequence[str], width: int = SNIPPET_WIDTH) -> tuple[str, list[tuple[int, int]]]:
    """About `width` characters of `text` around the first matching term, and the spans to highlight.

    The passage starts and ends at sentence boundaries where the sentences allow it (the one holding the first hit,
    and those after it while they fit in `width`; a first sentence may take half as much again); a sentence longer
    than that is cut at words, with "…".
    """
    text = one_line(text[:SNIPPET_SCAN])
    spans = highlight_spans(text, terms)
    if len(text) <= width:
        return text, spans
    hit = spans[0][0] if spans else 0
    breaks = list(_SENTENCE_BREAK.finditer(text))
    starts = [0, *(m.end() for m in breaks)]
    ends = [*(m.start() + len(m.group().rstrip()) for m in breaks), len(text)]  # after the closing quotes
    start = max(at for at in starts if at <= hit)
    limit = start + width + width // 2
    after = [e for e in ends if e > max(start, hit)]
    fitting = [e for e in after if e <= start + width]
    end = fitting[-1] if fitting else next((e for e in after if e <= limit), None)
    sentences = end is not None and hit - start <= width
    if end is None or not sentences:  # one long sentence: a window of words around the hit
        start = max(0, hit - width // 3)
        if start:
            space = text.find(" ", start)
            start = space + 1 if 0 <= space < start + 40 else start
        end = min(len(text), start + width)
        if end < len(text):
            space = text.rfind(" ", start, end)
            end = space if space > start + width // 2 else end
    lead = "…" if start and not sentences else ""
    window = lead + text[start:end].rstrip() + ("…" if end < len(text) and not sentences else "")
    shift = len(lead) - start
    clipped = [(max(s, start) + shift, min(e, end) + shift) for s, e in spans if s < end and e > start]
    return window, [(s, e) for s, e in clipped if e > s and e <= len(window)]
