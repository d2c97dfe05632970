"""Which language an item is in, from its letters: the parser records it on every Item.

Kept apart from match.text so that parsing (in the parser worker processes) loads no stemmer or morphology.
"""

from __future__ import annotations

import re

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)


def guess_language(text: str) -> str:
    """'ru', 'en', or '' when the text has too few letters to tell (script count on the first 2,000 characters)."""
    sample = text[:2000]
    cyr = len(_CYRILLIC.findall(sample))
    lat = len(_LATIN.findall(sample))
    if cyr + lat < 3:
        return ""
    return "ru" if cyr >= lat else "en"
