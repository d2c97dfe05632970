"""Page-script residue out of item text: JavaScript, CSS, JSON blobs and escaped-unicode runs.

    strip_code(text)   the text without its code-like lines and escaped-unicode runs; prose unchanged

Feeds and extracted pages sometimes carry the text of an embedded video player or widget script (issue 11: 129 items
of the Russian dev stream hold a player's setup code, and `jwplayer`, `x20`, `u0438` became some of their strongest
terms). A topic whose example article held such a script learned those terms and fired on every item that carried
the player. The rule is per line, because scripts arrive as their own lines between paragraphs: a line is code when
code markers (braces, assignments, `function`, method calls, `key: value` pairs, tags) are many for its words.
URLs and escaped runs are no evidence of prose, so they are not counted as words. A line with one marker next to a
code line belongs to the same block (`file: "https://…mp4",` inside a player's setup call).
"""

from __future__ import annotations

import re

# `\u0438\u0437` / `\x20`: a string literal of a script with its characters escaped; two or more in a row is never
# prose (one alone could be a path or a regular expression quoted in an article).
_ESCAPED_RUN = re.compile(r"(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}){2,}")
_MARKER = re.compile(
    r"[{}]"  # blocks, objects, CSS rules
    r"|=>|===?|!==?|&&|\|\|"  # operators that prose does not use
    r"|\bfunction\s*\("
    r"|\b(?:var|let|const|return|typeof|null|undefined|new)\b(?=\s*[\w(\[{\"'])"
    r"|[\w\]\)]\s*=\s*[\"'\w(\[{]"  # assignment
    r"|\w\.\w+\s*\("  # method call: window.open(, jwplayer.setup(
    r"|[\"']?\b[a-zA-Z_][\w-]*[\"']?\s*:\s*[\"'\d\[{(]"  # object key or CSS declaration: file: "…", "id": 3
    r"|</?[a-zA-Z][^>]*>"  # an HTML tag left in the text
    r"|\(\s*\)"  # an empty call
    r"|//\s|/\*|\*/"  # comments
)
_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//\S+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")
MARKERS_PER_WORD = 0.25  # a line is code with at least 2 markers and one marker per 4 words
_HINT = frozenset("{}=\\")  # a text without any of these has no code line and no escaped run


def _markers_and_words(line: str) -> tuple[int, int]:
    if "//" in line:  # a link's query string (?a=1&b=2) is not an assignment, nor its words prose
        line = _URL.sub(" ", line)
    markers = len(_MARKER.findall(line))
    words = len(_WORD.findall(line)) if markers else 1
    return markers, words


def strip_code(text: str) -> str:
    """`text` without the lines that read as code and without escaped-unicode runs (docstring of the module)."""
    if not _HINT.intersection(text):
        return text
    if "\\" in text:
        text = _ESCAPED_RUN.sub(" ", text)
    lines = text.split("\n")
    counts = [_markers_and_words(line) for line in lines]
    code = [m >= 2 and m >= MARKERS_PER_WORD * w for m, w in counts]
    if not any(code):
        return text
    # A line with a marker between code lines, or next to one, is part of the same script.
    for i, (m, _) in enumerate(counts):
        if m and not code[i] and ((i > 0 and code[i - 1]) or (i + 1 < len(code) and code[i + 1])):
            code[i] = True
    return "\n".join(line for line, is_code in zip(lines, code, strict=True) if not is_code)
