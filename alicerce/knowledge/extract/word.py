"""DOCX by `python-docx`: paragraphs in body order with their heading styles, tables by row."""

from __future__ import annotations

import io
import re
import zipfile

from alicerce.knowledge.extract.blocks import Block, ExtractionError, clean, row_text


def read_docx(data: bytes) -> list[Block]:
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
            text = clean(paragraph.text)
            level = _docx_heading_level(paragraph.style.name if paragraph.style else "")
            if level:
                blocks.append(Block("heading", text.replace("\n", " "), level))
            elif text:
                blocks.append(Block("text", text))
        elif tag == "tbl":
            rows = [[cell.text for cell in row.cells] for row in Table(element, document).rows]
            rows = [row for row in rows if any(cell.strip() for cell in row)]
            if len(rows) == 1:
                blocks.append(Block("text", clean(" | ".join(rows[0]))))
            for row in rows[1:]:
                blocks.append(Block("text", clean(row_text(rows[0], row))))
    return blocks


def _docx_heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading ([1-9])", style)
    return min(int(match.group(1)), 6) if match else 0
