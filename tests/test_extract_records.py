"""JSON and CSV extraction (`alicerce.knowledge.extract.records`): one block per record."""

from __future__ import annotations

import json

import pytest

from alicerce.knowledge.extract import ExtractionError, extract


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
