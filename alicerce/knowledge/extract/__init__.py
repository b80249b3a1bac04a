"""Text out of uploaded files, keeping the structure that chunking needs.

Every format becomes one flat list of blocks: headings (with their level) and text (a paragraph,
a list item, a table row, a CSV row, a JSON record). Chunking later cuts along these lines, so
a chunk never straddles two sections. Each format family has its module, read by a well-kept
library where one exists: `pdf` (pypdf), `word` (python-docx), `html` (lxml), `markdown`
(markdown-it-py), `records` (JSON by msgspec, CSV by the standard library) and `text` (plain
text, and the decoding every text format shares, with charset-normalizer). This module picks
the reader, by the file's suffix or its media type, and owns the rules that hold for all.

Failures are `ExtractionError`s whose message is shown to the user as the document's `error`.
Hostile input is bounded by `limits`: every reader yields its blocks through a `Budget`, so a
document past a bound (or stopped by the indexer) ends at the next block, and a file is read as
the format its name says only when its bytes are that format (a `.pdf` that is no PDF fails).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import PurePath

from alicerce.knowledge.extract.blocks import Block, ExtractionError
from alicerce.knowledge.extract.html import read_html
from alicerce.knowledge.extract.limits import (
    DEFAULT_LIMITS,
    Budget,
    ExtractionLimits,
    ExtractionStopped,
)
from alicerce.knowledge.extract.markdown import read_markdown
from alicerce.knowledge.extract.pdf import read_pdf
from alicerce.knowledge.extract.records import read_csv, read_json
from alicerce.knowledge.extract.text import decode_text, read_text
from alicerce.knowledge.extract.word import read_docx

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_SUFFIXES",
    "Block",
    "ExtractionError",
    "ExtractionLimits",
    "ExtractionStopped",
    "decode_text",
    "extract",
    "unsupported_suffix",
]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024

_READERS: dict[str, Callable[[bytes, Budget], Iterable[Block]]] = {
    ".txt": read_text,
    ".md": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".json": read_json,
    ".csv": read_csv,
}

SUPPORTED_SUFFIXES = frozenset(_READERS)

_MEDIA_TYPES = {
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/json": ".json",
    "text/csv": ".csv",
}


def extract(
    data: bytes,
    filename: str,
    media_type: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: ExtractionLimits = DEFAULT_LIMITS,
    stop: threading.Event | None = None,
) -> list[Block]:
    """The file's headings and text blocks, in reading order.

    The suffix of `filename` picks the format; else a known `media_type`; else a name with no
    suffix is plain text (JSON uploads often carry a bare title as name), and an unknown
    suffix is refused. Setting `stop` (from another thread) ends the reading with
    `ExtractionStopped` at the reader's next step.
    """
    suffix = _format_of(filename, media_type)
    if len(data) > max_bytes:
        raise ExtractionError(
            f"the file is too large ({_megabytes(len(data))}; the limit is {_megabytes(max_bytes)})"
        )
    if not data.strip():
        raise ExtractionError("the file is empty")
    _check_signature(suffix, data)
    budget = Budget(limits, stop)
    blocks = [budget.add(block) for block in _READERS[suffix](data, budget) if block.text]
    if not any(block.kind == "text" for block in blocks):
        if not blocks:
            raise ExtractionError("the document has no text")
        # Only headings: they are the text.
        blocks = [Block("text", block.text) for block in blocks]
    return blocks


def unsupported_suffix(name: str) -> str | None:
    """The suffix of `name` when it names a file type that cannot be read. A name without a
    suffix (or with one that is no file type: "v1.2", "Mr. X") is read by its media type
    instead."""
    suffix = PurePath(name).suffix.lower()
    if not suffix or suffix in SUPPORTED_SUFFIXES or suffix[1:].isdigit() or " " in suffix:
        return None
    return suffix


def _format_of(filename: str, media_type: str | None) -> str:
    """The supported suffix of `filename`; else that of a known `media_type` (which reads
    "script.py" sent as text/plain); else plain text, unless the suffix names another type."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    bare = (media_type or "").split(";")[0].strip().lower()
    if bare in _MEDIA_TYPES:
        return _MEDIA_TYPES[bare]
    if unsupported := unsupported_suffix(filename):
        raise ExtractionError(
            f"unsupported file type '{unsupported}'; "
            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    return ".txt"


_SIGNATURES = {
    ".pdf": (b"%PDF-", 1024, "a PDF (it does not begin with %PDF-)"),
    ".docx": (b"PK\x03\x04", 4, "a DOCX (it is not a ZIP package)"),
}


def _check_signature(suffix: str, data: bytes) -> None:
    """A binary format's magic bytes, before its library reads it: a renamed file fails with
    its real reason, not a parser's (PDF readers accept the header in the first 1024 bytes)."""
    if suffix in _SIGNATURES:
        magic, within, what = _SIGNATURES[suffix]
        if magic not in data[:within]:
            raise ExtractionError(f"the file is named {suffix} but is not {what}")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
