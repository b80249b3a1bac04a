"""DOCX extraction (`alicerce.knowledge.extract.word`): heading styles, paragraphs, tables."""

from __future__ import annotations

import io

import docx
import pytest

from alicerce.knowledge.extract import Block, ExtractionError, extract


def kinds(blocks: list[Block]) -> list[tuple[str, str, int]]:
    return [(block.kind, block.text, block.level) for block in blocks]


def test_docx_heading_styles_paragraphs_and_tables() -> None:
    document = docx.Document()
    document.add_heading("Manual do Alicerce", level=0)  # the Title style
    document.add_heading("Instalação", level=1)
    document.add_paragraph("Instale com pip e rode o servidor.")
    document.add_heading("Requisitos", level=2)
    document.add_paragraph("Python 3.11 ou mais novo.", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "plano", "preço"
    table.rows[1].cells[0].text, table.rows[1].cells[1].text = "básico", "grátis"
    out = io.BytesIO()
    document.save(out)
    assert kinds(extract(out.getvalue(), "manual.docx")) == [
        ("heading", "Manual do Alicerce", 1),
        ("heading", "Instalação", 1),
        ("text", "Instale com pip e rode o servidor.", 0),
        ("heading", "Requisitos", 2),
        ("text", "Python 3.11 ou mais novo.", 0),
        ("text", "plano: básico; preço: grátis", 0),
    ]


def test_corrupt_docx() -> None:
    with pytest.raises(ExtractionError, match="the DOCX file is corrupt"):
        extract(b"PK\x03\x04 not really a zip", "broken.docx")
