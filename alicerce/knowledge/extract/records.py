"""Records: JSON (one block per top-level item) and CSV (one block per row), each item read on
its own with the names that give its values meaning."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from alicerce.knowledge.extract.blocks import Block, ExtractionError, clean, row_text
from alicerce.knowledge.extract.text import decode_text

if TYPE_CHECKING:
    from alicerce.knowledge.extract.limits import Budget


def read_json(data: bytes, budget: Budget) -> Iterator[Block]:
    """One block per top-level item (array element or object key), as `key.path: value` lines.

    Flattened paths keep every value next to the name that gives it meaning, which both the
    keyword index and the embedder need; pretty-printed JSON would spend tokens on brackets.
    Nesting deeper than `max_nesting` levels is refused, before a flattening could recurse
    through it (msgspec itself stops at about 1,000 levels).
    """
    try:
        value = msgspec.json.decode(data)
    except UnicodeDecodeError:  # JSON in another encoding (UTF-16 from Windows tools, Latin-1)
        value = _decode_as_text(data, budget)
    except msgspec.DecodeError as exc:
        raise ExtractionError(f"the JSON is invalid: {exc}") from None
    except RecursionError:
        raise ExtractionError(_too_deep(budget.limits.max_nesting)) from None
    if isinstance(value, list):
        items: Iterable[tuple[str, Any]] = ((f"[{i}]", item) for i, item in enumerate(value))
    elif isinstance(value, dict):
        items = ((str(key), item) for key, item in value.items())
    else:
        items = [("", value)]
    for path, item in items:
        leaves = _flatten(path, item, budget.limits.max_nesting)
        text = clean("\n".join(f"{key}: {leaf}" if key else leaf for key, leaf in leaves))
        if text:
            yield Block("text", text)


def _too_deep(levels: int) -> str:
    return f"the JSON nests deeper than {levels} levels"


def _flatten(path: str, value: Any, levels: int) -> Iterator[tuple[str, str]]:
    """The leaves under `value`, walked with a stack of its own (no recursion)."""
    stack: list[tuple[str, Any, int]] = [(path, value, 0)]
    while stack:
        at, item, depth = stack.pop()
        if depth > levels:
            raise ExtractionError(_too_deep(levels))
        if isinstance(item, dict):
            children = [(f"{at}.{key}" if at else str(key), v) for key, v in item.items()]
        elif isinstance(item, list):
            children = [(f"{at}[{index}]", v) for index, v in enumerate(item)]
        elif isinstance(item, str):
            if item.strip():
                yield at, item
            continue
        elif item is not None:
            yield at, msgspec.json.encode(item).decode()
            continue
        else:
            continue
        stack.extend((key, child, depth + 1) for key, child in reversed(children))


def _decode_as_text(data: bytes, budget: Budget) -> Any:
    """JSON that is not UTF-8, read through the decoding every text format shares."""
    try:
        return msgspec.json.decode(decode_text(data).encode())
    except msgspec.DecodeError as exc:
        raise ExtractionError(f"the JSON is invalid: {exc}") from None
    except RecursionError:
        raise ExtractionError(_too_deep(budget.limits.max_nesting)) from None


def read_csv(data: bytes, budget: Budget) -> Iterator[Block]:
    """One block per row, `column: value; column: value`, so each row reads on its own."""
    text = decode_text(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    rows = (row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row))
    try:
        header = next(rows, None)
        if header is None:
            return
        empty = True
        for row in rows:
            empty = False
            yield Block("text", clean(row_text(header, row)))
        if empty:
            yield Block("text", clean(" | ".join(header)))
    except csv.Error as exc:
        raise ExtractionError(f"the CSV is invalid: {exc}") from None
