"""What every reader returns (`Block`), the error it raises, and the text clean-up they share."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal


class ExtractionError(ValueError):
    """A file we cannot read; the message is user-facing and names the reason."""


@dataclass(slots=True)
class Block:
    kind: Literal["heading", "text"]
    text: str
    level: int = 0  # 1..6 for headings


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0]+")


def clean(text: str) -> str:
    """NFC (PDFs often decompose accents, which breaks keyword matching), no control characters,
    single spaces."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines()).strip()


_BLANK_LINE = re.compile(r"\n\s*\n")


def paragraphs(text: str) -> Iterator[Block]:
    """Text blocks split at blank lines, one at a time (a split list of millions of tiny
    paragraphs would cost more than the text)."""
    start = 0
    for match in _BLANK_LINE.finditer(text):
        cleaned = clean(text[start : match.start()])
        start = match.end()
        if cleaned:
            yield Block("text", cleaned)
    cleaned = clean(text[start:])
    if cleaned:
        yield Block("text", cleaned)


def row_text(header: list[str], row: list[str]) -> str:
    """A table row read on its own: `column: value; column: value` (CSV rows, DOCX tables)."""
    pairs = []
    for index, cell in enumerate(row):
        if not cell.strip():
            continue
        name = header[index].strip() if index < len(header) else ""
        pairs.append(f"{name}: {cell.strip()}" if name else cell.strip())
    return "; ".join(pairs)
