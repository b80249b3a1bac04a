"""HTML by lxml's (libxml2's) tolerant HTML parser, which builds the tree a browser would.

Headings h1-h6 become heading blocks, every block-level element ends a text block, the cells of a
table row are joined with ' | ', `<br>` is a line break. The head (its `<title>` too: a page's
name, which its first heading most often repeats), scripts, styles, navigation and forms are
dropped.

Hostile input: the HTML parser reads no DTD, expands no entity a document declares (HTML has only
its predefined character entities) and never touches the network (`no_network`). Its limits on
text size and depth are raised (`huge_tree`): with no entity to expand, the work is bounded by
the input, which `extract` bounds by `max_bytes`, and without it a 10 MB text node or 256 nested
elements would silently cut the page short. The parser builds no tree (a target takes its
events in document order), so neither nesting nor size costs more than the blocks found: a
million nested `<div>`s are read in ~3 s under 60 MB. What libxml2 still refuses is an
`ExtractionError`, never a truncated page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from alicerce.knowledge.extract.blocks import Block, ExtractionError, clean
from alicerce.knowledge.extract.text import decode_text

if TYPE_CHECKING:
    from alicerce.knowledge.extract.limits import Budget

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
_FEED_BYTES = 64 * 1024


def read_html(data: bytes, budget: Budget) -> Iterator[Block]:
    """The page's blocks in document order, read as libxml2 parses (its SAX events, no tree:
    a tree of 20 MB of `<p>a</p>` took 925 MB), fed 64 KB at a time."""
    from lxml import etree  # imported late: only HTML uploads need it (and python-docx's)

    blocks = _Blocks()
    # Decoded as every text format is (a page's own charset declaration is not trusted more
    # than its bytes), then handed to libxml2 as UTF-8, which overrides any declaration.
    parser = etree.HTMLParser(
        encoding="utf-8",
        no_network=True,
        remove_comments=True,
        remove_pis=True,
        huge_tree=True,
        target=_Events(blocks),
    )
    source = decode_text(data).encode("utf-8")
    try:
        for start in range(0, len(source), _FEED_BYTES):
            parser.feed(source[start : start + _FEED_BYTES])
            yield from blocks.take()
            budget.check()
        parser.close()
    except etree.LxmlError as exc:
        fatal = [error for error in parser.error_log if error.level == etree.ErrorLevels.FATAL]
        if not fatal:
            raise ExtractionError(f"the HTML could not be read: {exc}") from None
    fatal = [error for error in parser.error_log if error.level == etree.ErrorLevels.FATAL]
    if fatal:  # libxml2 stopped there: what it read is a part of the page
        reason = fatal[0].message.split(", use XML_PARSE_HUGE")[0].strip()
        raise ExtractionError(f"the HTML could not be read (line {fatal[0].line}): {reason}")
    blocks.flush()
    yield from blocks.take()


class _Events:
    """libxml2's parse events handed to `_Blocks`, minus the subtrees that are not content."""

    def __init__(self, blocks: _Blocks) -> None:
        self._blocks = blocks
        self._skipping = 0  # depth inside a skipped element

    def start(self, tag: str, attrib: object) -> None:
        if self._skipping or tag in _SKIPPED_TAGS:
            self._skipping += 1
        else:
            self._blocks.start(tag)

    def end(self, tag: str) -> None:
        if self._skipping:
            self._skipping -= 1
        else:
            self._blocks.end(tag)

    def data(self, text: str) -> None:
        if not self._skipping:
            self._blocks.data(text)

    def close(self) -> None:
        return None


class _Blocks:
    """Text gathered between block boundaries, flushed as one block at each boundary."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._parts: list[str] = []
        self._heading: int | None = None
        self._row_cells = 0

    def start(self, tag: str) -> None:
        if tag in _HEADINGS:
            self.flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCK_TAGS:
            self.flush()
            self._row_cells = 0
        elif tag in ("td", "th"):
            if self._row_cells:
                self._parts.append(" | ")
            self._row_cells += 1
        elif tag == "br":
            self._parts.append("\n")

    def end(self, tag: str) -> None:
        if tag in _HEADINGS or tag in _BLOCK_TAGS:
            self.flush()

    def data(self, text: str) -> None:
        """Source line breaks are spaces in HTML; only `<br>` breaks a line."""
        self._parts.append(text.replace("\n", " "))

    def take(self) -> list[Block]:
        """The blocks flushed since the last call."""
        taken, self.blocks = self.blocks, []
        return taken

    def flush(self) -> None:
        text = clean("".join(self._parts))
        self._parts.clear()
        if text:
            if self._heading is not None:
                self.blocks.append(Block("heading", text.replace("\n", " "), self._heading))
            else:
                self.blocks.append(Block("text", text))
        self._heading = None
