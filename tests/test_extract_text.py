"""Plain text and the decoding every text format shares (`alicerce.knowledge.extract.text`)."""

from __future__ import annotations

import codecs

import pytest

from alicerce.knowledge.extract import Block, ExtractionError, extract
from alicerce.knowledge.extract.text import decode_text


def kinds(blocks: list[Block]) -> list[tuple[str, str, int]]:
    return [(block.kind, block.text, block.level) for block in blocks]


def test_text_paragraphs_and_encodings() -> None:
    text = "Primeiro parágrafo,\nainda ele.\n\n\nSegundo   parágrafo.\n"
    expected = [("text", "Primeiro parágrafo,\nainda ele.", 0), ("text", "Segundo parágrafo.", 0)]
    assert kinds(extract(text.encode("utf-8"), "a.txt")) == expected
    assert kinds(extract(text.encode("utf-8-sig"), "a.txt")) == expected
    assert kinds(extract(text.encode("cp1252"), "a.txt")) == expected
    assert kinds(extract(text.encode("utf-16"), "a.txt")) == expected
    # Decomposed accents (as some PDFs and macOS write them) come out composed.
    assert extract("ac\u0327a\u0303o".encode(), "a.txt")[0].text == "ação"


def test_binary_data_named_txt() -> None:
    with pytest.raises(ExtractionError, match="not text"):
        extract(b"\x00\x01\x02binary", "data.txt")


@pytest.mark.parametrize(
    "text",
    [
        "AÇÃO É ÓTIMA",  # charset-normalizer alone reads these bytes as cp1006 (Farsi)
        "ação",  # ... and these as big5
        "ATENÇÃO: A REUNIÃO SERÁ ÀS 14H NA SALA DE CONFERÊNCIAS. NÃO HAVERÁ CAFÉ. " * 5,
        "Relatório: “ótimo” — custa 5 € por mês… e não há café.",  # cp1252's own punctuation
    ],
)
def test_legacy_portuguese_stays_windows_1252(text: str) -> None:
    assert decode_text(text.encode("cp1252")) == text
    assert decode_text(text.encode("utf-8")) == text  # valid UTF-8 is never guessed at


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Привет, мир! Это тестовый документ на русском языке. " * 3, "cp1251"),
        ("Привет, мир! Это тестовый документ на русском языке, в кодировке KOI8-R. " * 5, "koi8_r"),
        ("Καλημέρα κόσμε, αυτό είναι ένα ελληνικό κείμενο.", "cp1253"),
        ("これは日本語のテキストです。文字コードはシフトJISです。", "shift_jis"),
    ],
)
def test_legacy_non_latin_encodings_are_found(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == text


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF16_BE + "Olá, ação".encode("utf-16-be"),
        "Olá, ação".encode("utf-32"),  # its BOM begins with UTF-16's
    ],
)
def test_utf16_and_utf32_by_their_bom(data: bytes) -> None:
    assert decode_text(data) == "Olá, ação"


def test_bytes_no_encoding_defines_fall_back_to_latin_1() -> None:
    assert decode_text(b"caf\xe9 \x81") == "café \x81"  # 0x81 is undefined in cp1252
