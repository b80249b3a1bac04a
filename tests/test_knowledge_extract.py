"""Text extraction from real files of every supported type, and chunking of the result."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import docx
import pytest
from pypdf import PdfWriter

from alicerce.knowledge.chunking import chunk, embedding_text, split_sentences
from alicerce.knowledge.extract import SUPPORTED_SUFFIXES, Block, ExtractionError, extract

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"
HANDBOOK_PDF = (FIXTURES / "handbook.pdf").read_bytes()  # made by make_pdf.py with fpdf2


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word. The real one is tested below."""
    return len(text.split())


def kinds(blocks: list[Block]) -> list[tuple[str, str, int]]:
    return [(block.kind, block.text, block.level) for block in blocks]


# -- PDF ------------------------------------------------------------------------------------------


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


def test_a_text_file_named_pdf_is_corrupt() -> None:
    with pytest.raises(ExtractionError, match=r"^the PDF is corrupt: "):
        extract(b"just some words", "fake.pdf")


def test_pdf_without_text_says_so() -> None:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ExtractionError, match=r"no extractable text .*scanned"):
        extract(out.getvalue(), "scan.pdf")


# -- DOCX -----------------------------------------------------------------------------------------


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


# -- HTML, Markdown, text -------------------------------------------------------------------------


def test_html_drops_scripts_styles_and_navigation() -> None:
    html = """<!doctype html><html><head><title>T</title><style>p{color:red}</style></head>
    <body><nav><a href="/">Home</a> | <a href="/x">Menu item</a></nav>
    <h1>Preços &amp; planos</h1><p>O plano <b>básico</b> é
    grátis.</p><script>var secret = 1;</script>
    <h2>Limites</h2><ul><li>60 pedidos por minuto</li><li>1 GB</li></ul>
    <table><tr><th>plano</th><th>preço</th></tr><tr><td>pro</td><td>R$ 10</td></tr></table>
    <p>Fim<br>do texto</p></body></html>"""
    assert kinds(extract(html.encode(), "precos.html")) == [
        ("heading", "Preços & planos", 1),
        ("text", "O plano básico é grátis.", 0),
        ("heading", "Limites", 2),
        ("text", "60 pedidos por minuto", 0),
        ("text", "1 GB", 0),
        ("text", "plano | preço", 0),
        ("text", "pro | R$ 10", 0),
        ("text", "Fim\ndo texto", 0),
    ]


def test_html_with_an_unclosed_head_and_no_body_tags() -> None:
    assert kinds(extract(b"<html><head><title>T</title><body><p>Oi</p>", "a.htm")) == [
        ("text", "Oi", 0)
    ]
    assert kinds(extract(b"Just <b>text</b> &eacute;", "a.html")) == [("text", "Just text é", 0)]


def test_markdown_in_portuguese() -> None:
    markdown = """---
title: ignorado
---
# Política de Férias

As férias são de **30 dias**.
Pedidos com antecedência.

Atenção, coração
----------------

- Primeiro item
- Segundo item com ação

```python
# não é um título
print("olá")
```

### Exceções ###
| a | b |
|---|---|
| 1 | 2 |
"""
    assert kinds(extract(markdown.encode(), "ferias.md")) == [
        ("heading", "Política de Férias", 1),
        ("text", "As férias são de **30 dias**.\nPedidos com antecedência.", 0),
        ("heading", "Atenção, coração", 2),
        ("text", "- Primeiro item", 0),
        ("text", "- Segundo item com ação", 0),
        ("text", '```python\n# não é um título\nprint("olá")\n```', 0),
        ("heading", "Exceções", 3),
        ("text", "| a | b |", 0),
        ("text", "| 1 | 2 |", 0),
    ]


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


# -- JSON and CSV ---------------------------------------------------------------------------------


def test_json_is_flattened_to_key_paths() -> None:
    data = json.dumps(
        [
            {"pergunta": "Qual o limite?", "resposta": "60 rpm", "tags": ["limites", "uso"]},
            {"pergunta": "Há plano grátis?", "detalhes": {"sim": True, "tokens": 100000}},
        ],
        ensure_ascii=False,
    ).encode()
    assert [b.text for b in extract(data, "faq.json")] == [
        "[0].pergunta: Qual o limite?\n[0].resposta: 60 rpm\n[0].tags[0]: limites\n"
        "[0].tags[1]: uso",
        "[1].pergunta: Há plano grátis?\n[1].detalhes.sim: true\n[1].detalhes.tokens: 100000",
    ]
    assert [b.text for b in extract(b'{"a": {"b": "c"}, "d": 1}', "x.json")] == ["a.b: c", "d: 1"]


def test_invalid_json() -> None:
    with pytest.raises(ExtractionError, match="the JSON is invalid"):
        extract(b'{"a": ', "x.json")


def test_csv_rows_with_their_header_semicolons_and_cp1252() -> None:
    data = "cidade;população;região\nSão Paulo;12,3 mi;Sudeste\nBelém;;Norte\n".encode("cp1252")
    assert [b.text for b in extract(data, "cidades.csv")] == [
        "cidade: São Paulo; população: 12,3 mi; região: Sudeste",
        "cidade: Belém; região: Norte",
    ]
    assert [b.text for b in extract(b"a,b\n1,2\n", "x.csv")] == ["a: 1; b: 2"]


# -- the reasons a file is refused ----------------------------------------------------------------


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


# -- chunking -------------------------------------------------------------------------------------


def section(words_count: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {i} is here." for i in range(start, start + words_count))


def test_chunks_keep_heading_paths_and_positions() -> None:
    blocks = [
        Block("text", "Preamble before any heading."),
        Block("heading", "Guide", 1),
        Block("text", "Intro of the guide."),
        Block("heading", "Install", 2),
        Block("text", "Run pip."),
        Block("heading", "Empty", 3),
        Block("heading", "Usage", 2),
        Block("text", "Call the API."),
        Block("heading", "Appendix", 1),
        Block("text", "The end."),
    ]
    chunks = chunk(blocks, count_tokens=words, max_tokens=100)
    assert [(c.position, c.heading_path, c.text) for c in chunks] == [
        (0, [], "Preamble before any heading."),
        (1, ["Guide"], "Intro of the guide."),
        (2, ["Guide", "Install"], "Run pip."),
        (3, ["Guide", "Install"], "Empty"),  # a heading without text is kept as text
        (4, ["Guide", "Usage"], "Call the API."),
        (5, ["Appendix"], "The end."),
    ]
    assert embedding_text(chunks[2]) == "Guide > Install\n\nRun pip."
    assert embedding_text(chunks[0]) == "Preamble before any heading."


def test_small_paragraphs_of_a_section_are_packed_together() -> None:
    blocks = [Block("heading", "A", 1)] + [Block("text", f"Paragraph {i}.") for i in range(5)]
    [only] = chunk(blocks, count_tokens=words, max_tokens=100)
    assert (
        only.text == "Paragraph 0.\n\nParagraph 1.\n\nParagraph 2.\n\nParagraph 3.\n\nParagraph 4."
    )
    assert only.tokens == 10


def test_long_section_is_split_at_sentences_with_overlap() -> None:
    blocks = [Block("heading", "Long", 1), Block("text", section(40))]
    chunks = chunk(blocks, count_tokens=words, max_tokens=30, overlap_tokens=6)
    assert len(chunks) > 5
    for previous, following in itertools.pairwise(chunks):
        last_sentence = split_sentences(previous.text)[-1]
        assert following.text.startswith(last_sentence)  # the overlap
        assert following.heading_path == ["Long"]
    for piece in chunks:
        assert piece.tokens <= 30
        assert piece.text.endswith(".")  # cut at sentence ends, not mid-sentence
    covered = " ".join(c.text for c in chunks)
    assert all(f"Sentence number {i} is here." in covered for i in range(40))


def test_no_overlap_across_headings_or_when_disabled() -> None:
    blocks = [
        Block("heading", "A", 1),
        Block("text", section(12)),
        Block("heading", "B", 1),
        Block("text", section(12, 100)),
    ]
    chunks = chunk(blocks, count_tokens=words, max_tokens=30, overlap_tokens=0)
    texts = " ".join(c.text for c in chunks)
    assert all(texts.count(f"number {i} ") == 1 for i in [*range(12), *range(100, 112)])
    assert {c.heading_path[0] for c in chunks if "number 5 " in c.text} == {"A"}
    assert {c.heading_path[0] for c in chunks if "number 105 " in c.text} == {"B"}


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    long_sentence = " ".join(f"w{i}" for i in range(95)) + "."
    chunks = chunk([Block("text", long_sentence)], count_tokens=words, max_tokens=20)
    assert all(c.tokens <= 20 for c in chunks)
    assert " ".join(c.text for c in chunks).count("w94.") == 1


def test_an_unsplittable_run_is_cut_by_characters() -> None:
    def chars(text: str) -> int:
        return len(text) // 4

    chunks = chunk([Block("text", "x" * 1000)], count_tokens=chars, max_tokens=50)
    assert all(c.tokens <= 50 for c in chunks)
    assert sum(len(c.text) for c in chunks) == 1000


def test_portuguese_sentences() -> None:
    text = (
        "O Dr. Silva chegou às 10h. Ele disse: “Olá!” Depois foi embora… E voltou. "
        "Veja a pág. 3 e o art. 5º. A Sra. J. Souza concordou? Sim. Custa R$ 1.500,00 por mês. "
        "2024 foi bom."
    )
    assert split_sentences(text) == [
        "O Dr. Silva chegou às 10h.",
        "Ele disse: “Olá!”",
        "Depois foi embora…",
        "E voltou.",
        "Veja a pág. 3 e o art. 5º.",
        "A Sra. J. Souza concordou?",
        "Sim.",
        "Custa R$ 1.500,00 por mês.",
        "2024 foi bom.",
    ]
    assert split_sentences("See e.g. Mr. Smith. He agreed. version 1.2 is out.") == [
        "See e.g. Mr. Smith.",
        "He agreed. version 1.2 is out.",  # a lower-case start is not a new sentence
    ]


def test_real_tokenizer_sizes_portuguese_chunks() -> None:
    from alicerce.embeddings import LocalE5Embedder

    count = LocalE5Embedder().count_tokens
    text = " ".join(
        f"A cláusula {i} estabelece que o reembolso é feito em até {i + 2} dias úteis."
        for i in range(200)
    )
    blocks = extract(f"# Contrato\n\n## Reembolso\n\n{text}".encode(), "contrato.md")
    chunks = chunk(blocks, count_tokens=count, max_tokens=128, overlap_tokens=24)
    assert len(chunks) > 10
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for piece in chunks:
        assert piece.tokens == count(piece.text) <= 128
        assert piece.heading_path == ["Contrato", "Reembolso"]
    assert chunks[1].text.startswith(split_sentences(chunks[0].text)[-1])
