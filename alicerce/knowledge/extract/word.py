"""DOCX: paragraphs in body order with their heading styles, tables by row, read as a stream.

A DOCX is a ZIP of XML parts, so a small upload can stand for a huge one: 3 MB inflated to 1 GB
of `document.xml`, which python-docx loaded whole (the tree ~17x the XML: 32 MB of XML took
600 MB and 90 s) while the server ran out of memory. So the package is read here with the
standard library's `zipfile` and libxml2's event parser, never as a tree:

- only the parts that hold text are opened (the main document and its styles): images and
  every other part are never inflated; the package may list at most `max_zip_entries` files
  and its main part hold at most `max_xml_elements` elements;
- the bytes are counted as they are really inflated, never the sizes the ZIP directory claims,
  and past `max_expanded_bytes` the document is refused; a part whose inflated bytes do not
  match its checksum is a corrupt file (`zipfile` checks it);
- XML that declares a DTD (`<!DOCTYPE`, where entities are declared: billion laughs, external
  entities) is refused: Word never writes one. The parser also resolves no entity, reads no
  DTD, touches no network and keeps libxml2's default limits (`huge_tree` off);
- libxml2 hands its events to `_Body`, which keeps only the paragraph or table row being read.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from io import BytesIO
from typing import IO, TYPE_CHECKING

from alicerce.knowledge.extract.blocks import Block, ExtractionError, clean, row_text

if TYPE_CHECKING:
    from alicerce.knowledge.extract.limits import Budget

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_OFFICE_DOCUMENT = "/officeDocument"
_STYLES = "/styles"
_READ_BYTES = 64 * 1024
_DTD = b"<!DOCTYPE"


def read_docx(data: bytes, budget: Budget) -> Iterator[Block]:
    """Paragraphs in body order with their `Title`/`Heading N` styles; tables row by row."""
    try:
        package = zipfile.ZipFile(BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ExtractionError(f"the DOCX file is corrupt: {exc}") from None
    with package:
        limit = budget.limits.max_zip_entries
        if len(package.infolist()) > limit:
            raise ExtractionError(f"the DOCX package holds more than {limit:,} files")
        inflated = _Inflated(package, budget)
        main = _target(inflated, "_rels/.rels", _OFFICE_DOCUMENT, "") or "word/document.xml"
        folder = main.rsplit("/", 1)[0] + "/" if "/" in main else ""
        rels = f"{folder}_rels/{main.rsplit('/', 1)[-1]}.rels"
        styles_part = _target(inflated, rels, _STYLES, folder) or f"{folder}styles.xml"
        styles = _Styles()
        if styles_part in package.NameToInfo:
            for _ in inflated.parse(styles_part, styles):
                pass
        if main not in package.NameToInfo:
            raise ExtractionError("the DOCX file is corrupt: it has no main document part")
        body = _Body(styles, budget.limits.max_text_chars, budget.limits.max_xml_elements)
        yield from inflated.parse(main, body)


class _Inflated:
    """The package's parts inflated and parsed, their real bytes counted against the limit."""

    def __init__(self, package: zipfile.ZipFile, budget: Budget) -> None:
        self.package = package
        self._budget = budget
        self.total = 0

    def parse(self, name: str, events: _Events) -> Iterator[Block]:
        """Feeds the part to libxml2 a slice at a time; the blocks `events` completes, as it
        completes them."""
        from lxml import etree  # imported late: only DOCX and HTML uploads need it

        parser = etree.XMLParser(
            target=events,
            encoding="utf-8",  # Word writes UTF-8; no declaration can make it another
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        limit = self._budget.limits.max_expanded_bytes
        tail = b""
        try:
            with self.package.open(name) as part:
                while chunk := _read(part):
                    self.total += len(chunk)
                    if self.total > limit:
                        raise ExtractionError(
                            f"the DOCX expands to more than {limit // (1024 * 1024)} MB of XML"
                        )
                    if _DTD in tail + chunk:
                        raise ExtractionError(
                            "the DOCX declares a DTD (XML entities), which Word never writes"
                        )
                    tail = chunk[-len(_DTD) :]
                    parser.feed(chunk)
                    yield from events.take()
                    self._budget.check()
            parser.close()
        except (zipfile.BadZipFile, zlib.error, etree.XMLSyntaxError, EOFError, OSError) as exc:
            raise ExtractionError(f"the DOCX file is corrupt: {name}: {exc}") from None
        except (NotImplementedError, RuntimeError) as exc:  # compression or encryption
            raise ExtractionError(f"the DOCX file cannot be read: {exc}") from None
        yield from events.take()


def _read(part: IO[bytes]) -> bytes:
    return part.read(_READ_BYTES)


def _target(inflated: _Inflated, rels: str, kind: str, folder: str) -> str | None:
    """The part the relationships part `rels` names with a type ending in `kind`."""
    if rels not in inflated.package.NameToInfo:
        return None
    found = _Relationships(kind)
    for _ in inflated.parse(rels, found):
        pass
    if found.target is None:
        return None
    target = found.target
    return target.lstrip("/") if target.startswith("/") else folder + target


class _Events:
    """A libxml2 parser target; `take` hands over the blocks completed so far."""

    def __init__(self) -> None:
        self._done: list[Block] = []

    def take(self) -> list[Block]:
        done, self._done = self._done, []
        return done

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        pass

    def end(self, tag: str) -> None:
        pass

    def data(self, text: str) -> None:
        pass

    def close(self) -> None:
        return None


class _Relationships(_Events):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self._kind = kind
        self.target: str | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if tag == _REL and self.target is None and attrib.get("Type", "").endswith(self._kind):
            self.target = attrib.get("Target")


class _Styles(_Events):
    """Paragraph style names by id (`Heading1` -> "heading 1"), and the default style's."""

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str] = {}
        self.default = ""
        self._style: str | None = None
        self._is_default = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if tag == f"{_W}style":
            paragraph = attrib.get(f"{_W}type") == "paragraph"
            self._style = attrib.get(f"{_W}styleId") if paragraph else None
            self._is_default = attrib.get(f"{_W}default") in ("1", "true")
        elif tag == f"{_W}name" and self._style is not None:
            name = attrib.get(f"{_W}val", "")
            self.names[self._style] = name
            if self._is_default:
                self.default = name

    def level(self, style_id: str | None) -> int:
        """1 for Title, N for Heading N (1..6), else 0."""
        name = (self.names.get(style_id, style_id) if style_id else self.default) or ""
        name = name.lower()
        if name == "title":
            return 1
        match = re.fullmatch(r"heading ([1-9])", name)
        return min(int(match.group(1)), 6) if match else 0


class _Body(_Events):
    """The document's paragraphs and table rows from its parse events.

    A paragraph is a `w:p` in no other paragraph and no table (inside a content control too);
    its text is every `w:t` in it (text boxes included; deleted text and field codes are other
    elements), `w:tab` a tab and `w:br`/`w:cr` a line break. A table row's cells are their
    paragraphs joined by line breaks (a cell spanning N grid columns counts N times, as
    python-docx reads it), read against the table's first non-empty row.
    """

    def __init__(self, styles: _Styles, max_chars: int, max_elements: int) -> None:
        super().__init__()
        self._styles = styles
        self._elements = 0
        self._max_elements = max_elements
        self._max_chars = max_chars  # in one paragraph: the budget counts only whole blocks
        self._chars = 0
        self._paragraphs = 0  # depth of w:p
        self._tables = 0  # depth of w:tbl
        self._in_text = 0  # depth of w:t
        self._text: list[str] = []
        self._style: str | None = None
        self._cells: list[str] = []
        self._cell: list[str] = []
        self._span = 1
        self._header: list[str] | None = None
        self._rows = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._elements += 1
        if self._elements > self._max_elements:
            raise ExtractionError(
                f"the DOCX has more than {self._max_elements:,} XML elements; split it into "
                "smaller documents"
            )
        if not tag.startswith(_W):
            return
        name = tag[len(_W) :]
        if name == "p":
            self._paragraphs += 1
            if self._paragraphs == 1:
                self._text.clear()
                self._chars = 0
                self._style = None
        elif name == "tbl":
            self._tables += 1
            if self._tables == 1:
                self._header, self._rows = None, 0
        elif name == "t":
            self._in_text += 1
        elif self._paragraphs:
            if name == "tab":
                self._text.append("\t")
            elif name in ("br", "cr"):
                self._text.append("\n")
            elif name == "pStyle" and self._paragraphs == 1:
                self._style = attrib.get(f"{_W}val")
        if self._tables == 1 and name == "tr":
            self._cells = []
        elif self._tables == 1 and name == "tc":
            self._cell, self._span = [], 1
        elif self._tables == 1 and name == "gridSpan":
            value = attrib.get(f"{_W}val", "1")
            self._span = max(1, min(int(value), 64)) if value.isdigit() else 1

    def data(self, text: str) -> None:
        if self._in_text and self._paragraphs:
            self._chars += len(text)
            if self._chars > self._max_chars:
                raise ExtractionError(
                    f"the DOCX has more than {self._max_chars // (1024 * 1024)} MB of text"
                )
            self._text.append(text)

    def end(self, tag: str) -> None:
        if not tag.startswith(_W):
            return
        name = tag[len(_W) :]
        if name == "t":
            self._in_text = max(0, self._in_text - 1)
        elif name == "p":
            self._paragraphs -= 1
            if self._paragraphs == 0:
                self._paragraph_ended()
        elif name == "tc" and self._tables == 1:
            self._cells += ["\n".join(self._cell)] * self._span
        elif name == "tr" and self._tables == 1:
            self._row_ended()
        elif name == "tbl":
            self._tables -= 1
            if self._tables == 0 and self._header is not None and self._rows == 0:
                self._done.append(Block("text", clean(" | ".join(self._header))))

    def _paragraph_ended(self) -> None:
        text = "".join(self._text)
        self._text.clear()
        self._chars = 0
        if self._tables:
            self._cell.append(text)
            return
        cleaned = clean(text)
        level = self._styles.level(self._style)
        if level:
            self._done.append(Block("heading", cleaned.replace("\n", " "), level))
        elif cleaned:
            self._done.append(Block("text", cleaned))

    def _row_ended(self) -> None:
        row = self._cells
        if not any(cell.strip() for cell in row):
            return
        if self._header is None:
            self._header = row
            return
        self._rows += 1
        self._done.append(Block("text", clean(row_text(self._header, row))))
