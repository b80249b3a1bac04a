"""Text out of uploaded files, keeping the structure that chunking needs.

Every format becomes one flat list of blocks: headings (with their level) and text (a paragraph,
a list item, a table row, a CSV row, a JSON record). Chunking later cuts along these lines, so
a chunk never straddles two sections. PDF and DOCX are read by well-kept libraries (`pypdf`,
`python-docx`); HTML by the standard library's tolerant tokenizer; Markdown by a line scanner
that knows ATX (`# Title`) and setext (`Title\\n====`) headings and fenced code blocks.

Failures are `ExtractionError`s whose message is shown to the user as the document's `error`.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any, Literal

import msgspec

DEFAULT_MAX_BYTES = 20 * 1024 * 1024

SUPPORTED_SUFFIXES = frozenset({".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".json", ".csv"})

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


class ExtractionError(ValueError):
    """A file we cannot read; the message is user-facing and names the reason."""


@dataclass(slots=True)
class Block:
    kind: Literal["heading", "text"]
    text: str
    level: int = 0  # 1..6 for headings


def extract(
    data: bytes,
    filename: str,
    media_type: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Block]:
    """The file's headings and text blocks, in reading order.

    The suffix of `filename` picks the format; else a known `media_type`; else a name with no
    suffix is plain text (JSON uploads often carry a bare title as name), and an unknown
    suffix is refused.
    """
    suffix = _format_of(filename, media_type)
    if len(data) > max_bytes:
        raise ExtractionError(
            f"the file is too large ({_megabytes(len(data))}; the limit is {_megabytes(max_bytes)})"
        )
    if not data.strip():
        raise ExtractionError("the file is empty")
    blocks = [block for block in _READERS[suffix](data) if block.text]
    if not any(block.kind == "text" for block in blocks):
        if not blocks:
            raise ExtractionError("the document has no text")
        # Only headings: they are the text.
        blocks = [Block("text", block.text) for block in blocks]
    return blocks


def _format_of(filename: str, media_type: str | None) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    bare = (media_type or "").split(";")[0].strip().lower()
    if bare in _MEDIA_TYPES:
        return _MEDIA_TYPES[bare]
    if suffix and not suffix[1:].isdigit() and " " not in suffix:  # "v1.2" or "Mr. X" are names
        raise ExtractionError(
            f"unsupported file type '{suffix}'; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    return ".txt"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


# -- text and encodings ---------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _clean(text: str) -> str:
    """NFC (PDFs often decompose accents, which breaks keyword matching), no control characters,
    single spaces."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines()).strip()


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252, else Latin-1.

    cp1252 is the usual encoding of legacy Portuguese and English files; Latin-1 accepts any byte.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\x00" in data[:4096]:
        raise ExtractionError("the file is not text (it contains binary data)")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _paragraphs(text: str) -> Iterator[Block]:
    for paragraph in re.split(r"\n\s*\n", text):
        cleaned = _clean(paragraph)
        if cleaned:
            yield Block("text", cleaned)


def _read_txt(data: bytes) -> list[Block]:
    return list(_paragraphs(decode_text(data)))


# -- Markdown -------------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+")
_TABLE_RULE = re.compile(r"^ {0,3}\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$")


def _read_markdown(data: bytes) -> list[Block]:
    """ATX and setext headings, paragraphs, list items, fenced code kept whole."""
    lines = decode_text(data).splitlines()
    blocks: list[Block] = []
    paragraph: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(Block("text", _clean("\n".join(paragraph))))
            paragraph.clear()

    index = 0
    if lines and lines[0].strip() == "---":  # YAML front matter: metadata, not content
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                index = end + 1
                break
    for line in lines[index:]:
        if fence is not None:
            paragraph.append(line)
            if line.strip().startswith(fence):
                fence = None
                flush()
            continue
        if match := _FENCE.match(line):
            flush()
            fence = match.group(1)
            paragraph.append(line)
            continue
        if match := _ATX.match(line):
            flush()
            blocks.append(Block("heading", _clean(match.group(2) or ""), len(match.group(1))))
        elif (match := _SETEXT.match(line)) and len(paragraph) == 1:
            level = 1 if match.group(1).startswith("=") else 2
            blocks.append(Block("heading", _clean(paragraph.pop()), level))
        elif not line.strip() or _TABLE_RULE.match(line):
            flush()
        elif _LIST_ITEM.match(line):
            flush()
            paragraph.append(line)
        else:
            paragraph.append(line)
    flush()
    return blocks


# -- HTML -----------------------------------------------------------------------------------------

_SKIPPED_TAGS = frozenset(
    {"script", "style", "nav", "noscript", "template", "svg", "head", "iframe", "button", "form"}
)
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote",
        "pre", "li", "ul", "ol", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "figure",
        "figcaption", "address", "details", "summary", "hr", "body", "caption",
    }
)  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}


class _HtmlBlocks(HTMLParser):
    """Headings h1-h6 become heading blocks, every block-level element a text boundary, table
    cells of a row are joined with ' | '. Script, style, navigation and forms are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._parts: list[str] = []
        self._skip_depth = 0
        self._heading: int | None = None
        self._row_cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # an unclosed <head> (common in hand-written pages) ends here
            self._skip_depth = 0
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCK_TAGS:
            self._flush()
            self._row_cells = 0
        elif tag in ("td", "th"):
            if self._row_cells:
                self._parts.append(" | ")
            self._row_cells += 1
        elif tag == "br":
            self._parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _HEADINGS or tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self._parts.append(data if "\n" not in data else data.replace("\n", " "))

    def _flush(self) -> None:
        text = _clean("".join(self._parts))
        self._parts.clear()
        if text:
            if self._heading is not None:
                self.blocks.append(Block("heading", text.replace("\n", " "), self._heading))
            else:
                self.blocks.append(Block("text", text))
        self._heading = None


def _read_html(data: bytes) -> list[Block]:
    parser = _HtmlBlocks()
    parser.feed(decode_text(data))
    parser.close()
    parser._flush()
    return parser.blocks


# -- JSON and CSV ---------------------------------------------------------------------------------


def _read_json(data: bytes) -> list[Block]:
    """One block per top-level item (array element or object key), as `key.path: value` lines.

    Flattened paths keep every value next to the name that gives it meaning, which both the
    keyword index and the embedder need; pretty-printed JSON would spend tokens on brackets.
    """
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ExtractionError(f"the JSON is invalid: {exc}") from None
    if isinstance(value, list):
        items: list[tuple[str, Any]] = [(f"[{i}]", item) for i, item in enumerate(value)]
    elif isinstance(value, dict):
        items = [(str(key), item) for key, item in value.items()]
    else:
        items = [("", value)]
    blocks = []
    for path, item in items:
        lines = [f"{key}: {leaf}" if key else leaf for key, leaf in _flatten(path, item)]
        text = _clean("\n".join(lines))
        if text:
            blocks.append(Block("text", text))
    return blocks


def _flatten(path: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(f"{path}.{key}" if path else str(key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(f"{path}[{index}]", item)
    elif isinstance(value, str):
        if value.strip():
            yield path, value
    elif value is not None:
        yield path, msgspec.json.encode(value).decode()


def _read_csv(data: bytes) -> list[Block]:
    """One block per row, `column: value; column: value`, so each row reads on its own."""
    text = decode_text(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [
            row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)
        ]
    except csv.Error as exc:
        raise ExtractionError(f"the CSV is invalid: {exc}") from None
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body:
        return [Block("text", _clean(" | ".join(header)))]
    return [Block("text", _clean(_row_text(header, row))) for row in body]


def _row_text(header: list[str], row: list[str]) -> str:
    pairs = []
    for index, cell in enumerate(row):
        if not cell.strip():
            continue
        name = header[index].strip() if index < len(header) else ""
        pairs.append(f"{name}: {cell.strip()}" if name else cell.strip())
    return "; ".join(pairs)


# -- DOCX -----------------------------------------------------------------------------------------


def _read_docx(data: bytes) -> list[Block]:
    """Paragraphs in body order with their `Title`/`Heading N` styles; tables row by row."""
    import docx  # imported late: lxml and python-docx cost ~50 ms, only DOCX uploads need them
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractionError(f"the DOCX file is corrupt: {exc}") from None
    blocks: list[Block] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = _clean(paragraph.text)
            level = _docx_heading_level(paragraph.style.name if paragraph.style else "")
            if level:
                blocks.append(Block("heading", text.replace("\n", " "), level))
            elif text:
                blocks.append(Block("text", text))
        elif tag == "tbl":
            rows = [[cell.text for cell in row.cells] for row in Table(element, document).rows]
            rows = [row for row in rows if any(cell.strip() for cell in row)]
            if len(rows) == 1:
                blocks.append(Block("text", _clean(" | ".join(rows[0]))))
            for row in rows[1:]:
                blocks.append(Block("text", _clean(_row_text(rows[0], row))))
    return blocks


def _docx_heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading ([1-9])", style)
    return min(int(match.group(1)), 6) if match else 0


# -- PDF ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    text: str
    size: float
    y: float


def _read_pdf(data: bytes) -> list[Block]:
    """Page text with headings found by font size: lines set clearly larger than the body text
    (the size most characters use) are headings, the largest size being level 1. Paragraphs break
    at blank lines and at vertical gaps wider than the usual line spacing."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypts_without_password(reader):
            raise ExtractionError("the PDF is encrypted")
        pages: list[list[_Line]] = [_pdf_lines(page) for page in reader.pages]
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ExtractionError(f"the PDF is corrupt: {exc}") from None
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
                    blocks.append(Block("text", _clean(" ".join(paragraph))))
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
                    blocks[-1].text = _clean(f"{blocks[-1].text} {line.text}")
                else:
                    blocks.append(Block("heading", _clean(line.text), levels[line.size]))
            else:
                gap = previous is not None and abs(previous.y - line.y) > 1.6 * max(line.size, 1)
                if paragraph and (not line.text.strip() or gap):
                    blocks.append(Block("text", _clean(" ".join(paragraph))))
                    paragraph = []
                if line.text.strip():
                    paragraph.append(line.text)
            previous = line
        if paragraph:
            blocks.append(Block("text", _clean(" ".join(paragraph))))
    return blocks


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


_READERS: dict[str, Callable[[bytes], list[Block]]] = {
    ".txt": _read_txt,
    ".md": _read_markdown,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".json": _read_json,
    ".csv": _read_csv,
}
