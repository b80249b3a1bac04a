"""HTML extraction (`alicerce.knowledge.extract.html`): blocks from lxml's tree, hostile input."""

from __future__ import annotations

import pytest

from alicerce.knowledge.extract import Block, ExtractionError, extract


def kinds(blocks: list[Block]) -> list[tuple[str, str, int]]:
    return [(block.kind, block.text, block.level) for block in blocks]


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


def test_html_entities_nested_lists_and_a_legacy_encoding() -> None:
    html = "<p>Pre&ccedil;os &amp; planos &mdash; &#233;&#x1F600; &bogus;</p>"
    html += "<ul><li>um<ul><li>dois</li></ul>resto do um</li></ul>"
    assert kinds(extract(html.encode(), "a.html")) == [
        ("text", "Preços & planos — é😀 &bogus;", 0),
        ("text", "um", 0),
        ("text", "dois", 0),
        ("text", "resto do um", 0),
    ]
    page = "<p>Atenção: “ótimo” — 5 €</p>".encode("cp1252")
    assert kinds(extract(page, "a.html")) == [("text", "Atenção: “ótimo” — 5 €", 0)]


def test_xhtml_with_an_xml_declaration() -> None:
    page = (
        '<?xml version="1.0" encoding="iso-8859-1"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>T</title></head>'
        "<body><h2>Título</h2><p>Corpo</p></body></html>"
    )
    # The bytes are UTF-8 whatever the declaration says: they are read as what they are.
    assert kinds(extract(page.encode(), "a.html", "application/xhtml+xml")) == [
        ("heading", "Título", 2),
        ("text", "Corpo", 0),
    ]


def test_declared_entities_are_not_expanded_nor_files_read() -> None:
    page = (
        b'<!DOCTYPE p [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY xxe SYSTEM "file:///etc/passwd">]><p>&lol2; &xxe;</p>'
    )
    texts = " ".join(block.text for block in extract(page, "a.html"))
    assert "lollol" not in texts and "root:" not in texts
    assert "&lol2; &xxe;" in texts


def test_deep_nesting_is_read_whole_never_cut_short() -> None:
    deep = b"<div>" * 1000 + b"deep" + b"</div>" * 1000 + b"<p>after</p>"
    assert [block.text for block in extract(deep, "a.html")] == ["deep", "after"]
    # No tree is built, so depth costs nothing: a page nested a million deep is read whole.
    deeper = b"<p>before</p>" + b"<div>" * 1_000_000 + b"deeper" + b"</div>" * 10 + b"<p>end</p>"
    assert [block.text for block in extract(deeper, "a.html")] == ["before", "deeper", "end"]


def test_only_comments_or_a_head_is_no_text() -> None:
    for page in (b"<!-- nothing -->", b"<html><head><title>Only a title</title></head></html>"):
        with pytest.raises(ExtractionError, match="the document has no text"):
            extract(page, "a.html")
