"""Hostile uploads built in memory (zip bombs, billion laughs, deep nesting, many-page PDFs),
shared by tests/test_knowledge_hostile.py and bench/hostile_uploads.py."""

from __future__ import annotations

import io
import random
import re
import struct
import zipfile
from pathlib import Path

from pypdf import PdfWriter

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
DOCUMENT_OPEN = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}"><w:body>'
DOCUMENT_CLOSE = "</w:body></w:document>"
MB = 1024 * 1024


def docx_streamed(repeat: bytes, times: int, *, head: str = "", tail: str = "") -> bytes:
    """A DOCX whose document.xml is `head`, `repeat` written `times` times, then `tail`; the
    XML is deflated as it is written, so a 1 GB part costs this process no memory."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        with package.open("word/document.xml", "w", force_zip64=True) as part:
            part.write((DOCUMENT_OPEN + head).encode())
            block = repeat * max(1, MB // len(repeat))
            written = 0
            while written < times:
                count = min(times - written, len(block) // len(repeat))
                part.write(block[: count * len(repeat)])
                written += count
            part.write((tail + DOCUMENT_CLOSE).encode())
    return out.getvalue()


def docx_bomb_short_paragraphs() -> bytes:
    """The issue's bomb: ~1.07 GB of short paragraphs in a ~3 MB DOCX."""
    paragraph = b"<w:p><w:r><w:t>bomb</w:t></w:r></w:p>"
    return docx_streamed(paragraph, 1070 * MB // len(paragraph))


def docx_bomb_markup() -> bytes:
    """~1 GB of markup that holds no text (empty formatted runs): 24 million paragraphs."""
    run = b"<w:p><w:r><w:rPr><w:b/></w:rPr></w:r></w:p>"
    return docx_streamed(run, 1024 * MB // len(run))


def docx_bomb_whitespace() -> bytes:
    """~1 GB of XML that is mostly whitespace between few elements: only the inflated size
    stops it."""
    gap = b"<w:p/>" + b" " * 8192
    return docx_streamed(gap, 1024 * MB // len(gap))


def docx_one_huge_text_node() -> bytes:
    """One 1.06 GB text node."""
    return docx_streamed(
        b"a" * 1024, 1060 * 1024, head="<w:p><w:r><w:t>", tail="</w:t></w:r></w:p>"
    )


def docx_lying_sizes() -> bytes:
    """A DOCX whose ZIP headers claim document.xml is 100 bytes; it inflates to ~1.9 MB."""
    xml = DOCUMENT_OPEN + "<w:p><w:r><w:t>word</w:t></w:r></w:p>" * 50_000 + DOCUMENT_CLOSE
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", xml)
    data = bytearray(out.getvalue())
    name = b"word/document.xml"
    for signature, size_at, name_at in ((b"PK\x01\x02", 24, 46), (b"PK\x03\x04", 22, 30)):
        at = data.find(signature)
        while data[at + name_at : at + name_at + len(name)] != name:
            at = data.find(signature, at + 1)
        struct.pack_into("<I", data, at + size_at, 100)
    return bytes(data)


def docx_many_entries(entries: int = 5000) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", DOCUMENT_OPEN + DOCUMENT_CLOSE)
        for number in range(entries):
            package.writestr(f"word/media/{number}.bin", b"")
    return out.getvalue()


def docx_billion_laughs() -> bytes:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'
        for n in range(1, 10)
    )
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]>'
        f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>'
        f"{DOCUMENT_CLOSE}"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("word/document.xml", xml)
    return out.getvalue()


def pdf_pages(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_encrypted() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt("secret", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def deep_html(levels: int = 1_000_000) -> bytes:
    return b"<div>" * levels + b"deep inside" + b"</div>" * levels


def deep_json(levels: int = 100_000) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def csv_rows(rows: int) -> bytes:
    lines = ["id,name,city,notes"] + [
        f"{n},customer {n},city {n % 97},bought item {n * 7 % 1013} twice" for n in range(rows)
    ]
    return "\n".join(lines).encode()


_WORDS = re.findall(r"[a-zà-ú]+", Path(__file__).read_text().lower())


def long_text(paragraphs: int, seed: int, words: int = 120) -> bytes:
    """Distinct prose-like text (no embedding is cached), ~one chunk per paragraph."""
    chooser = random.Random(seed)
    vocabulary = sorted(set(_WORDS)) + [f"w{n}" for n in range(500)]
    return "\n\n".join(
        " ".join(chooser.choice(vocabulary) for _ in range(words)) for _ in range(paragraphs)
    ).encode()
