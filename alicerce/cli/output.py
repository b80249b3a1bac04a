"""How commands print: the API's JSON for scripts (`--json`), tables and `field: value` lines
for people, and amounts of money.

`--json` prints exactly what the API answers (the same encoder: msgspec, decimals as numbers),
lists in the API's envelope `{"object": "list", "data": [...]}`, so the documented shapes
apply to both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import click
import msgspec

from alicerce.catalog import Catalog
from alicerce.money import encode_json as _encode

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the API's JSON object instead of text."
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def print_json(data: Any) -> None:
    click.echo(msgspec.json.format(_encode(data), indent=2).decode())


def listing(data: list[dict[str, Any]]) -> dict[str, Any]:
    """A list as the API answers it."""
    return {"object": "list", "data": data}


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """Columns padded to their widest cell; None prints as nothing."""
    cells = [[_cell(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in [cells[0], ["-" * w for w in widths], *cells[1:]]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def fields(obj: dict[str, Any], *, skip: Sequence[str] = ("object",)) -> None:
    """An object as `field: value` lines; nested objects and lists as compact JSON."""
    width = max((len(k) for k in obj if k not in skip), default=0)
    for name, value in obj.items():
        if name not in skip:
            click.echo(f"{name + ':':<{width + 1}} {_cell(value)}".rstrip())


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    """`data` as JSON with `--json`, else what `human` prints."""
    if as_json:
        print_json(data)
    else:
        human()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return _encode(value).decode()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def currency_of(catalog: Catalog) -> str:
    """The currency the catalog names for its prices (ISO 4217, USD unless it says)."""
    return catalog.currency


def money(amount: Decimal | float | int | str | None, currency: str | None = None) -> str:
    """An amount in plain decimal notation (never `1.35e-05`), with the currency if known."""
    if amount is None:
        return ""
    try:
        number = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    text = f"{number:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {currency}" if currency else text


def plural(count: int, noun: str) -> str:
    """`1 chunk`, `12,034 chunks`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def when(stamp: str | None) -> str:
    """An RFC 3339 time as `YYYY-MM-DD HH:MM` (UTC), short enough for a table."""
    return stamp[:16].replace("T", " ") if stamp else ""
