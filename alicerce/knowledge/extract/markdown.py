"""Markdown's structure by `markdown-it-py` (CommonMark, with GFM tables), its text as written.

The parser finds the blocks (ATX and setext headings, paragraphs, list items at any depth, fenced
and indented code, block quotes, table rows, HTML blocks) and their source lines; each block's
text is those lines, markup included. Inline markup (`**30 dias**`, links) is kept: the words are
the same, the keyword index ignores the punctuation, and an answer can quote the source. Only a
heading's text is its inline content, without the `#` marks.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from alicerce.knowledge.extract.blocks import Block, ExtractionError, clean
from alicerce.knowledge.extract.text import decode_text

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from alicerce.knowledge.extract.limits import Budget

# Blocks whose source lines are a text block. A list item is its paragraphs (a nested list's
# items are blocks of their own); a table row is one block, like a CSV or HTML row.
_TEXT_TOKENS = frozenset({"paragraph_open", "fence", "code_block", "html_block", "tr_open"})
# markdown-it stops reading a container nested this deep, silently: the commonmark preset's 20
# is reached by ten nested lists (a list and its item are two levels), so it is raised, and a
# document that reaches even this is refused rather than read in part.
_MAX_NESTING = 100
_PIECE_LINES = 2_000  # lines parsed at a time, at least


@functools.cache
def _parser() -> MarkdownIt:
    """Block structure only: inline parsing (emphasis, links) would build tokens never read.
    One parser serves every call: it holds only rules and options, each parse its own state."""
    from markdown_it import MarkdownIt  # imported late, as the other readers' libraries

    markdown = MarkdownIt("commonmark", {"maxNesting": _MAX_NESTING})
    return markdown.enable("table").disable(["inline", "text_join"])


def read_markdown(data: bytes, budget: Budget) -> Iterator[Block]:
    """Headings, paragraphs, list items, code kept whole, table rows; YAML front matter skipped.

    Parsed a piece at a time (`_pieces`): markdown-it holds every token of what it parses, ~1.5
    KB per paragraph, so 250,000 one-letter paragraphs parsed at once took 350 MB."""
    # The parser's own normalization, so that its line numbers index these lines.
    text = decode_text(data).replace("\r\n", "\n").replace("\r", "\n")
    lines = _without_front_matter(text.split("\n"))
    for offset, piece in _pieces(lines):
        budget.check()
        tokens = _parser().parse("\n".join(piece))
        if any(token.level >= _MAX_NESTING - 1 for token in tokens):
            raise ExtractionError("the Markdown nests lists or block quotes too deeply to be read")
        for index, token in enumerate(tokens):
            if token.type == "heading_open":
                heading = clean(tokens[index + 1].content).replace("\n", " ")
                yield Block("heading", heading, int(token.tag[1]))
            elif token.type in _TEXT_TOKENS and token.map is not None:
                start, end = token.map
                yield Block("text", clean("\n".join(lines[offset + start : offset + end])))


def _pieces(lines: list[str], size: int = _PIECE_LINES) -> Iterator[tuple[int, list[str]]]:
    """The lines cut in pieces of about `size` lines, each `(first line, lines)`, cut only at a
    blank line outside a code fence and before a line that starts flush left: what no block
    but an HTML block spans, so each piece parses as it would in the whole. Ten times `size`
    lines with no such place (one list of 20,000 items) are cut anyway, outside a fence: a
    list read as two lists gives the same blocks."""
    start = 0
    fence = ""
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        if stripped[:3] in ("```", "~~~") and len(line) - len(stripped) < 4:
            marker = stripped[0]
            fence = marker * (len(stripped) - len(stripped.lstrip(marker)))
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if index - start >= 10 * size or (
            index - start >= size
            and not line.strip()
            and following[:1] not in ("", " ", "\t", "-", "*", "+", ">", "|")
            and not following[:1].isdigit()
        ):
            yield start, lines[start:index]
            start = index
    yield start, lines[start:]


def _without_front_matter(lines: list[str]) -> list[str]:
    """The lines after a YAML front matter block (`---` ... `---` or `...`): metadata, not
    content. A `---` first line that is never closed is a thematic break, not front matter."""
    if lines and lines[0].strip() == "---":
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                return lines[end + 1 :]
    return lines
