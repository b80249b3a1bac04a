"""PDF extraction (`alicerce.knowledge.extract.pdf`): headings by font size, encryption, damage."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter

from alicerce.knowledge.extract import ExtractionError, extract

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"
HANDBOOK_PDF = (FIXTURES / "handbook.pdf").read_bytes()  # made by make_pdf.py with fpdf2


def test_pdf_headings_by_font_size_and_paragraphs() -> None:
    blocks = extract(HANDBOOK_PDF, "handbook.pdf")
    assert [(b.text, b.level) for b in blocks if b.kind == "heading"] == [
        ("Quokka Handbook", 1),
        ("Onboarding", 2),
        ("Política de férias", 2),
    ]
    texts = [b.text for b in blocks if b.kind == "text"]
    assert len(texts) == 4
    assert texts[0].startswith("New members of the Quokka team receive their badge")
    assert "north entrance only." in texts[0]  # a wrapped line is joined back
    assert texts[2].startswith("Cada colaborador tem direito a 30 dias de férias")


def _encrypted(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(HANDBOOK_PDF))
    writer.encrypt(user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_encrypted_pdf_is_refused() -> None:
    with pytest.raises(ExtractionError, match="the PDF is encrypted"):
        extract(_encrypted("secret"), "locked.pdf")


def test_pdf_restricted_only_by_an_owner_password_is_read() -> None:
    assert len(extract(_encrypted(""), "restricted.pdf")) == 7


@pytest.mark.parametrize("size", [50, 300, len(HANDBOOK_PDF) // 2])
def test_truncated_pdf_is_corrupt(size: int) -> None:
    with pytest.raises(ExtractionError, match=r"^the PDF is corrupt: "):
        extract(HANDBOOK_PDF[:size], "broken.pdf")


def test_a_text_file_named_pdf_is_not_a_pdf() -> None:
    with pytest.raises(ExtractionError, match=r"^the file is named .pdf but is not a PDF"):
        extract(b"just some words", "fake.pdf")


def test_pdf_without_text_says_so() -> None:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ExtractionError, match=r"no extractable text .*scanned"):
        extract(out.getvalue(), "scan.pdf")
