"""Text normalisation, tokenisation, language guess and stemming for Russian and English.

(First version; the topic-matching work refines it. Public API: normalise, tokens, guess_language, terms.)
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

_TOKEN = re.compile(r"[\w]+(?:[-.][\w]+)*", re.UNICODE)
_CYR = re.compile(r"[а-яё]", re.IGNORECASE)
_LAT = re.compile(r"[a-z]", re.IGNORECASE)


def normalise(text: str) -> str:
    """NFKC, lowercase, ё→е."""
    return unicodedata.normalize("NFKC", text).lower().replace("ё", "е")


def tokens(text: str) -> list[str]:
    """Normalised word tokens; keeps codes like 'снв-3', 'f-16', 'с-400'."""
    return _TOKEN.findall(normalise(text))


def guess_language(text: str) -> str:
    """'ru', 'en', or '' when the text has too few letters to tell."""
    sample = text[:2000]
    cyr = len(_CYR.findall(sample))
    lat = len(_LAT.findall(sample))
    if cyr + lat < 3:
        return ""
    return "ru" if cyr >= lat else "en"


@lru_cache(maxsize=4)
def _stemmer(lang: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer("russian" if lang == "ru" else "english")


def terms(text: str, lang: str | None = None) -> list[str]:
    """Stemmed content terms of a text (Cyrillic words with the Russian stemmer, Latin with the English one)."""
    out = []
    ru, en = _stemmer("ru"), _stemmer("en")
    for tok in tokens(text):
        out.append(ru.stemWord(tok) if _CYR.search(tok) else en.stemWord(tok))
    return out
