"""Text files given on the command line (`explain --file`), decoded the way feeds are.

A Russian article saved from a Windows editor is windows-1251, one from an old mail archive KOI8-R; both must
read as the feed with the same bytes would (feeds.parse.choose_encoding: BOM, valid or mostly valid UTF-8,
then windows-1251 / KOI8-R told apart by their byte statistics).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..feeds.encoding import choose_encoding

MAX_TEXT = 10 * 1024 * 1024  # bytes: an article, not a corpus


def read_text(path: Path) -> str:
    """The file's text; UsageError when it cannot be read or is not text."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_TEXT + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_TEXT:
        raise UsageError(f"{path}: larger than {MAX_TEXT // (1024 * 1024)} MB; expected one article")
    if b"\x00" in raw and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{path}: not a text file (it holds NUL bytes)")
    encoding = choose_encoding(raw, None) or "utf-8"
    text = raw.decode(encoding, errors="replace").lstrip("\ufeff")
    if "\ufffd" in text and encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        # Neither UTF-8 nor Russian in a single-byte code page: say so rather than score mojibake silently.
        bad = text.count("\ufffd")
        if bad * 20 > len(text):
            raise UsageError(f"{path}: not UTF-8, windows-1251 or KOI8-R text; convert it to UTF-8 first")
    return text
