"""Records: JSON (one block per top-level item) and CSV (one block per row), each item read on
its own with the names that give its values meaning."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import msgspec

from alicerce.knowledge.extract.blocks import Block, ExtractionError, clean, row_text
from alicerce.knowledge.extract.text import decode_text


def read_json(data: bytes) -> list[Block]:
    """One block per top-level item (array element or object key), as `key.path: value` lines.

    Flattened paths keep every value next to the name that gives it meaning, which both the
    keyword index and the embedder need; pretty-printed JSON would spend tokens on brackets.
    """
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ExtractionError(f"the JSON is invalid: {exc}") from None
    if isinstance(value, list):
        items: list[tuple[str, Any]] = [(f"[{i}]", item) for i, item in enumerate(value)]
    elif isinstance(value, dict):
        items = [(str(key), item) for key, item in value.items()]
    else:
        items = [("", value)]
    blocks = []
    for path, item in items:
        lines = [f"{key}: {leaf}" if key else leaf for key, leaf in _flatten(path, item)]
        text = clean("\n".join(lines))
        if text:
            blocks.append(Block("text", text))
    return blocks


def _flatten(path: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(f"{path}.{key}" if path else str(key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(f"{path}[{index}]", item)
    elif isinstance(value, str):
        if value.strip():
            yield path, value
    elif value is not None:
        yield path, msgspec.json.encode(value).decode()


def read_csv(data: bytes) -> list[Block]:
    """One block per row, `column: value; column: value`, so each row reads on its own."""
    text = decode_text(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [
            row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)
        ]
    except csv.Error as exc:
        raise ExtractionError(f"the CSV is invalid: {exc}") from None
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body:
        return [Block("text", clean(" | ".join(header)))]
    return [Block("text", clean(row_text(header, row))) for row in body]
