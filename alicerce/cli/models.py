"""`alicerce models` and `alicerce usage`: what the catalog offers at what price, and what an
account spent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from alicerce.catalog import describe_models
from alicerce.cli import refs
from alicerce.cli.context import load_catalog, load_settings, opened
from alicerce.cli.output import (
    currency_of,
    emit,
    json_option,
    listing,
    money,
    print_json,
    table,
)

GROUPINGS = ("day", "sku", "gateway", "key", "model")


def _context(entry: dict[str, Any]) -> str:
    if entry["kind"] == "embedding":
        return f"{entry['dimensions']} dims" if entry["dimensions"] else ""
    return str(entry["context_length"] or "")


@click.command()
@json_option
def models(as_json: bool) -> None:
    """List the models accounts may use: the catalog (ALICERCE_CONFIG) with prices per
    million tokens, and the local embedding model of `/embeddings`."""
    catalog = load_catalog(load_settings())
    entries = describe_models(catalog)
    currency = currency_of(catalog)
    rows = [
        [e["id"], e["kind"], e["owned_by"], e["upstream_model"]]
        + [money(e[p]) for p in ("price_in", "price_out", "price_cached_in")]
        + [_context(e)]
        for e in entries
    ]
    unit = f"{currency}/M" if currency else "/M"
    header = ["model", "kind", "owner", "upstream", f"in {unit}", f"out {unit}"]
    header += [f"cached in {unit}", "context"]
    emit(listing(entries), as_json, lambda: table(rows, header))


@click.command()
@refs.account_argument
@refs.account_option
@click.option("--days", type=int, default=30, show_default=True, help="How far back to look.")
@click.option(
    "--group-by",
    "groupings",
    type=click.Choice(GROUPINGS),
    multiple=True,
    help="Only these groupings (repeat); default day, sku and gateway.",
)
@json_option
def usage(
    account_arg: str | None,
    account: str | None,
    days: int,
    groupings: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print ACCOUNT's spending (an id or a name) by day, SKU and gateway.

    With --json: `{"day": ..., "sku": ...}`, each what `GET /api/v1/usage?group_by=` answers.
    """
    start = datetime.now(UTC) - timedelta(days=days)
    with opened() as parts:
        owner = refs.account(parts, refs.either(account_arg, account))
        reports = {
            group_by: parts.usage.totals(
                owner["id"],
                start=start,
                end=None,
                group_by=group_by,  # type: ignore[arg-type]
            )
            for group_by in groupings or ("day", "sku", "gateway")
        }
    if as_json:
        print_json(reports)
        return
    for group_by, totals in reports.items():
        currency = totals["currency"]
        header = [group_by, "requests", "refused"]
        header += ["quantity", "unit"] if group_by == "sku" else []
        rows = []
        for g in totals["data"]:
            row = [_group_label(group_by, g), g["requests"], g["refused_requests"]]
            row += [g["quantity"], g["unit"]] if group_by == "sku" else []
            rows.append([*row, money(g["amount_exact"], currency)])
        click.echo()
        table(rows, [*header, "amount"])
    click.echo(f"\nTotal over {days} days: {money(totals['amount_exact'], totals['currency'])}")


def _group_label(group_by: str, group: dict[str, Any]) -> str:
    """A gateway or key by its name (with its id when it was deleted); others as they are."""
    value = group[group_by]
    if value is None:
        return "-"
    if group_by in ("gateway", "key"):
        return str(group.get("name") or f"{value} (deleted)")
    return str(value)
