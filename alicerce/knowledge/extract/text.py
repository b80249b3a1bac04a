"""Bytes to text for every text format (plain text, Markdown, HTML, CSV), and plain text itself.

The order is from certain to guessed. A byte-order mark is certain. Valid UTF-8 is nearly
certain: legacy 8-bit text almost never decodes as UTF-8 by accident. Only then does
`charset-normalizer` guess, and its guess is taken only when it reads the bytes as mostly
non-Latin letters (Cyrillic, Greek, CJK, ...). Text in a Latin script stays Windows-1252, the
usual encoding of legacy Portuguese and English files, because measured on this machine
charset-normalizer reads short Portuguese cp1252 text as cp1250, mac_iceland or even big5
("população" became "populaăo"), and an upper-case UTF-8 line as UTF-16; it cannot tell
Western from Central European text, and Portuguese is the text Alicerce sees most.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import TYPE_CHECKING

from alicerce.knowledge.extract.blocks import Block, ExtractionError, paragraphs

if TYPE_CHECKING:
    from charset_normalizer.models import CharsetMatch

    from alicerce.knowledge.extract.limits import Budget

_WIDE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)
# Never guessed: without a BOM, UTF-16 and UTF-32 text has NUL bytes, which `decode_text`
# refuses first (the guesser would otherwise read some legacy text as UTF-16), and UTF-7 is
# ASCII that a guess would turn into something else.
_NEVER_GUESSED = ["utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be", "utf_7"]
_LATIN_END = "\u0250"  # Basic Latin, Latin-1 Supplement, Latin Extended-A and -B end here
_MIN_FOREIGN_LETTERS = 16  # fewer letters than this are too few to trust a guess


def decode_text(data: bytes) -> str:
    """UTF-8/16/32 by their BOM; UTF-8; a non-Latin legacy encoding charset-normalizer finds;
    else Windows-1252, else Latin-1 (which accepts any byte)."""
    if data.startswith(_WIDE_BOMS):  # BOM_UTF32_LE begins with BOM_UTF16_LE
        match = _best_guess(data, [])
        if match is not None and match.bom:
            return str(match)
    if b"\x00" in data[:4096]:
        raise ExtractionError("the file is not text (it contains binary data)")
    try:
        return data.decode("utf-8-sig")  # with or without its BOM
    except UnicodeDecodeError:
        pass
    match = _best_guess(data, _NEVER_GUESSED)
    if match is not None:
        guess = str(match)
        if _mostly_foreign_letters(guess):
            return guess
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # five bytes are undefined in cp1252
        return data.decode("latin-1")


def _best_guess(data: bytes, excluded: list[str]) -> CharsetMatch | None:
    from charset_normalizer import from_bytes  # imported late: about as costly as msgspec

    return from_bytes(data, cp_exclusion=excluded).best()


def _mostly_foreign_letters(text: str) -> bool:
    """More than half of the letters outside the Latin script, and enough of them."""
    letters = [c for c in text[:65536] if c.isalpha()]
    foreign = sum(1 for c in letters if c >= _LATIN_END)
    return foreign >= _MIN_FOREIGN_LETTERS and foreign * 2 > len(letters)


def read_text(data: bytes, budget: Budget) -> Iterator[Block]:
    """Paragraphs at blank lines."""
    return paragraphs(decode_text(data))
