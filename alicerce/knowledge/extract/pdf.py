"""PDF by `pypdf`: page text with headings found by font size."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alicerce.knowledge.extract.blocks import Block, ExtractionError, clean
from alicerce.knowledge.extract.limits import ExtractionStopped

if TYPE_CHECKING:
    from alicerce.knowledge.extract.limits import Budget


@dataclass(slots=True)
class _Line:
    text: str
    size: float
    y: float


def read_pdf(data: bytes, budget: Budget) -> list[Block]:
    """Page text with headings found by font size: lines set clearly larger than the body text
    (the size most characters use) are headings, the largest size being level 1. Paragraphs break
    at blank lines and at vertical gaps wider than the usual line spacing.

    Hostile files: at most `max_pdf_pages` pages (counted before any is read), encrypted ones
    refused, and whatever pypdf raises on a malformed file (its errors, and the plain ones of a
    broken object graph: a cycle's RecursionError, a missing key) is "the PDF is corrupt"."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypts_without_password(reader):
            raise ExtractionError("the PDF is encrypted (a password is needed to read it)")
        count = len(reader.pages)
        if count > budget.limits.max_pdf_pages:
            raise ExtractionError(
                f"the PDF has {count:,} pages; the limit is {budget.limits.max_pdf_pages:,}"
            )
        pages: list[list[_Line]] = []
        for page in reader.pages:
            budget.check()
            pages.append(_pdf_lines(page))
    except (ExtractionError, ExtractionStopped):
        raise
    except MemoryError:
        raise ExtractionError("the PDF needs too much memory to be read") from None
    except Exception as exc:  # pypdf's own, and plain ones from a broken file's objects
        raise ExtractionError(f"the PDF is corrupt: {_reason(exc)}") from None
    sizes: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            sizes[line.size] += len(line.text)
    if not sizes:
        raise ExtractionError(
            "the PDF has no extractable text (it may be a scanned image; OCR is not supported)"
        )
    body = sizes.most_common(1)[0][0]
    heading_sizes = sorted({s for s in sizes if s >= body * 1.15}, reverse=True)
    levels = {size: min(rank + 1, 6) for rank, size in enumerate(heading_sizes)}
    blocks: list[Block] = []
    for lines in pages:
        paragraph: list[str] = []
        previous: _Line | None = None
        for line in lines:
            if line.size in levels and len(line.text) <= 200:
                if paragraph:
                    blocks.append(Block("text", clean(" ".join(paragraph))))
                    paragraph = []
                wrapped = (
                    previous is not None
                    and previous.size == line.size
                    and not paragraph
                    and blocks
                    and blocks[-1].kind == "heading"
                    and abs(previous.y - line.y) <= 1.6 * line.size
                )
                if wrapped:  # a heading set on two lines is one heading
                    blocks[-1].text = clean(f"{blocks[-1].text} {line.text}")
                else:
                    blocks.append(Block("heading", clean(line.text), levels[line.size]))
            else:
                gap = previous is not None and abs(previous.y - line.y) > 1.6 * max(line.size, 1)
                if paragraph and (not line.text.strip() or gap):
                    blocks.append(Block("text", clean(" ".join(paragraph))))
                    paragraph = []
                if line.text.strip():
                    paragraph.append(line.text)
            previous = line
        if paragraph:
            blocks.append(Block("text", clean(" ".join(paragraph))))
    return blocks


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "its objects refer to each other in a loop"
    return str(exc)[:200] or type(exc).__name__


def _decrypts_without_password(reader: Any) -> bool:
    """Owner-password-only PDFs (printing or copying restricted) open with an empty password."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # pypdf raises several types for unsupported or wrong encryption
        return False


def _pdf_lines(page: Any) -> list[_Line]:
    """The page's text lines with their effective font size and baseline, from pypdf's visitor."""
    fragments: list[tuple[str, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        if text:
            matrix = _multiply(tm, cm)
            scale = (matrix[2] ** 2 + matrix[3] ** 2) ** 0.5 or 1.0
            fragments.append((text, round(size * scale * 2) / 2, matrix[5]))

    page.extract_text(visitor_text=visit)
    lines: list[_Line] = []
    current: list[str] = []
    sizes: Counter[float] = Counter()
    y = 0.0

    def end_line() -> None:
        text = "".join(current).strip()
        if text:
            lines.append(_Line(text, sizes.most_common(1)[0][0] if sizes else 0.0, y))
        current.clear()
        sizes.clear()

    for text, size, baseline in fragments:
        if current and abs(baseline - y) > size * 0.5:
            end_line()
        parts = text.split("\n")
        for index, part in enumerate(parts):
            if index:
                end_line()
            if part.strip():
                current.append(part)
                sizes[size] += len(part)
                y = baseline
    end_line()
    return lines


def _multiply(a: list[float], b: list[float]) -> list[float]:
    return [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
