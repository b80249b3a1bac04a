"""Markdown extraction (`alicerce.knowledge.extract.markdown`): markdown-it-py's blocks."""

from __future__ import annotations

import pytest

from alicerce.knowledge.extract import Block, ExtractionError, extract


def kinds(blocks: list[Block]) -> list[tuple[str, str, int]]:
    return [(block.kind, block.text, block.level) for block in blocks]


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


def test_markdown_setext_nested_lists_quotes_and_table_rows() -> None:
    markdown = (
        "Título\r\n======\r\n"
        "Um parágrafo\r\n> uma citação\r\n\r\n"
        "1. primeiro\r\n   - aninhado\r\n     1. mais fundo\r\n2. segundo\r\n\r\n"
        "| plano | preço |\r\n|:--|--:|\r\n| básico | grátis |\r\n| pro | R$ 10 |\r\n\r\n"
        "    indented code\r\n\r\n"
        "[ref]: https://example.com\r\n"
    )
    assert kinds(extract(markdown.encode(), "a.md")) == [
        ("heading", "Título", 1),
        ("text", "Um parágrafo", 0),
        ("text", "> uma citação", 0),
        ("text", "1. primeiro", 0),
        ("text", "- aninhado", 0),
        ("text", "1. mais fundo", 0),
        ("text", "2. segundo", 0),
        ("text", "| plano | preço |", 0),
        ("text", "| básico | grátis |", 0),
        ("text", "| pro | R$ 10 |", 0),
        ("text", "indented code", 0),
    ]


def test_markdown_front_matter_must_be_closed() -> None:
    assert kinds(extract(b"---\nnot: closed\n\nText", "a.md")) == [
        ("text", "not: closed", 0),
        ("text", "Text", 0),
    ]
    assert kinds(extract(b"---\na: b\n...\n## H\nText", "a.md")) == [
        ("heading", "H", 2),
        ("text", "Text", 0),
    ]


def test_deep_nesting_is_read_or_refused_never_cut_short() -> None:
    nested = "".join("  " * depth + f"- level {depth}\n" for depth in range(30))
    assert [block.text for block in extract(nested.encode(), "a.md")] == [
        f"- level {depth}" for depth in range(30)
    ]
    with pytest.raises(ExtractionError, match="nests lists or block quotes too deeply"):
        extract(b">" * 200 + b" quoted", "a.md")
