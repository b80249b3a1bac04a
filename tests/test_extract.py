"""The dispatcher (`alicerce.knowledge.extract`): which reader a file gets, and the reasons a
file is refused whatever its format."""

from __future__ import annotations

import pytest

from alicerce.knowledge.extract import (
    SUPPORTED_SUFFIXES,
    Block,
    ExtractionError,
    extract,
    unsupported_suffix,
)


@pytest.mark.parametrize("data", [b"", b"  \n\t \r\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(ExtractionError, match="the file is empty"):
        extract(data, "empty.txt")


def test_no_text_after_extraction() -> None:
    with pytest.raises(ExtractionError, match="the document has no text"):
        extract(b"<html><script>x()</script></html>", "page.html")


def test_unsupported_suffix_lists_the_supported_ones() -> None:
    with pytest.raises(ExtractionError) as error:
        extract(b"x", "sheet.xls")
    assert str(error.value).startswith("unsupported file type '.xls'; supported: .csv, .docx")
    assert ".txt" in str(error.value)


def test_too_large() -> None:
    with pytest.raises(ExtractionError, match=r"too large \(2\.0 MB; the limit is 1\.0 MB\)"):
        extract(b"a" * (2 * 1024 * 1024), "big.txt", max_bytes=1024 * 1024)


def test_a_bare_name_uses_the_media_type_then_plain_text() -> None:
    assert extract(b"# T\n\nbody", "notes", "text/markdown")[0] == Block("heading", "T", 1)
    assert extract(b"# T\n\nbody", "notes")[0] == Block("text", "# T", 0)
    assert extract(b"a,b\n1,2", "Release 1.2 notes", "text/csv")[0].text == "a: 1; b: 2"
    assert extract(b"plain words", "Política v1.2")[0].text == "plain words"
    assert extract(b"print('hi')", "script.py", "text/plain")[0].text == "print('hi')"
    with pytest.raises(ExtractionError, match=r"unsupported file type '\.xls'"):
        extract(b"x", "sheet.xls", "application/vnd.ms-excel")


def test_supported_suffixes() -> None:
    assert {".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".json", ".csv"} == SUPPORTED_SUFFIXES


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("sheet.xls", ".xls"),
        ("Slides.PPTX", ".pptx"),
        ("archive.tar.gz", ".gz"),
        ("notes", None),
        ("manual.PDF", None),
        ("Política v1.2", None),  # a version, not a file type
        ("Carta ao Sr. Silva", None),  # a suffix with a space is no file type
        (".md", None),  # a hidden file's name has no suffix
    ],
)
def test_unsupported_suffix(name: str, suffix: str | None) -> None:
    assert unsupported_suffix(name) == suffix


def test_a_known_media_type_reads_a_name_with_an_unsupported_suffix() -> None:
    assert unsupported_suffix("script.py") == ".py"
    assert extract(b"print('hi')", "script.py", "text/markdown; charset=utf-8")[0].text == (
        "print('hi')"
    )
