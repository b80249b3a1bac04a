"""Fuzzing the document extractors for a bounded time (hypothesis): whatever bytes arrive
under whatever name, extraction ends with blocks or an `ExtractionError` (the reason the user
sees), never another exception, which would surface as "an internal error stopped the
indexing". Inputs: random bytes, and real documents of each format with bytes flipped, cut or
spliced, since damaged real files reach the parsers' deep paths and random bytes do not."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alicerce.knowledge.extract import SUPPORTED_SUFFIXES, ExtractionError, extract

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"


def _docx() -> bytes:
    document = docx.Document()
    document.add_heading("Manual", level=1)
    document.add_paragraph("Instale com pip.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "plano", "preço"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


SAMPLES: dict[str, bytes] = {
    ".pdf": (FIXTURES / "handbook.pdf").read_bytes(),
    ".docx": _docx(),
    ".html": b"<html><body><h1>T\xc3\xadtulo</h1><p>Texto <b>forte</b></p>"
    b"<table><tr><td>a</td></tr></table></body></html>",
    ".md": "# Título\n\n- item\n\n```py\ncode\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n".encode(),
    ".json": b'[{"name": "a", "tags": ["x", {"deep": [1, 2.5, null]}]}, {"name": "b"}]',
    ".csv": b'name;price\nplano b\xc3\xa1sico;10\n"quoted;cell";20\n',
    ".txt": "Linha um.\r\nLinha dois — com acento.\n".encode(),
}

fuzz = settings(  # ALICERCE_TEST_FUZZ_EXAMPLES=1000 for a longer hunt
    max_examples=int(os.environ.get("ALICERCE_TEST_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _extracts_or_refuses(data: bytes, name: str) -> None:
    try:
        blocks = extract(data, name)
    except ExtractionError as exc:
        assert str(exc).strip()  # a reason a person can read
        return
    for block in blocks:
        assert block.kind in ("heading", "text") and isinstance(block.text, str)


@st.composite
def damaged(draw: st.DrawFn, sample: bytes) -> bytes:
    """A real document, hurt the ways files get hurt: bytes flipped, cut short, a stretch
    repeated or replaced."""
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "repeat", "splice"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "repeat":
            length = draw(st.integers(1, 64))
            data[at:at] = data[at : at + length] * draw(st.integers(1, 20))
        else:
            data[at : at + draw(st.integers(0, 32))] = draw(st.binary(max_size=32))
    return bytes(data)


@pytest.mark.parametrize("suffix", sorted(SUPPORTED_SUFFIXES))
@fuzz
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_read_or_refused(suffix: str, data: bytes) -> None:
    _extracts_or_refuses(data, "upload" + suffix)


@pytest.mark.parametrize("suffix", sorted(SAMPLES))
@fuzz
@given(data=st.data())
def test_damaged_documents_are_read_or_refused(suffix: str, data: st.DataObject) -> None:
    _extracts_or_refuses(data.draw(damaged(SAMPLES[suffix])), "upload" + suffix)


@fuzz
@given(
    names=st.lists(
        st.one_of(st.text(min_size=1, max_size=40), st.just("=")), min_size=1, max_size=6
    ),
    contents=st.lists(st.binary(max_size=512), min_size=1, max_size=6),
)
def test_docx_archives_with_strange_entries_are_read_or_refused(
    names: list[str], contents: list[bytes]
) -> None:
    """A DOCX is a zip: its parts replaced or joined by others of any name and content."""
    with zipfile.ZipFile(io.BytesIO(SAMPLES[".docx"])) as original:
        parts = {name: original.read(name) for name in original.namelist()}
    kept = list(parts)
    for name, content in zip(names, contents, strict=False):
        # "=..." replaces one of the real parts (document.xml, styles, rels...), else a part
        # is added (under word/: zipfile cannot write a name that normalises to nothing)
        replaced = kept[sum(map(ord, name)) % len(kept)]
        parts[replaced if name.startswith("=") else f"word/{name}"] = content
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    _extracts_or_refuses(out.getvalue(), "upload.docx")
