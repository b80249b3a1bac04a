"""Priced line items (SPEC section 4): what a request consumed, at the catalog's prices.

Amounts are exact decimals (`amount = quantity * unit_price`), never floats, so sums over many
requests do not drift; they are shown as `Money` (plain decimal numbers, `money.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeGuard

from alicerce.catalog import CatalogModel
from alicerce.money import Money, plain


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    quantity: int
    unit_price: Decimal
    description: str

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price

    def to_json(self) -> dict[str, Any]:
        """The answer's form (`generation_context.generated_usage`, `/requests`): JSON numbers
        with the exact digits."""
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "unit_price": Money.of(self.unit_price),
            "amount": Money(self.amount),
            "description": self.description,
        }

    def to_record(self) -> dict[str, Any]:
        """The ledger's form: decimals as plain strings, exact."""
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "unit_price": plain(self.unit_price),
            "amount": plain(self.amount),
            "description": self.description,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LineItem:
        """Back from the ledger's form (also rows written before amounts were plain: `5E-7`)."""
        return cls(
            record["sku"],
            int(record["quantity"]),
            Decimal(record["unit_price"]),
            record["description"],
        )


@dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        """Usage over several upstream calls (a request's tool rounds)."""
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.estimated or other.estimated,
        )

    def to_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }

    @classmethod
    def from_openai(cls, usage: Any) -> TokenUsage | None:
        """The upstream's own counts, or None when it sent none usable."""
        if not isinstance(usage, dict):
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not _count(prompt) or not _count(completion):
            return None
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        cached = cached if _count(cached) and 0 <= cached <= prompt else 0
        return cls(max(prompt, 0), max(completion, 0), cached)


# The most tokens one upstream call may report and be believed: 100 times the longest context
# of any model today, and small enough that a request's rounds stay within the request log's
# 32-bit columns. An upstream that reports more (2**70, say) is broken: its answer is counted.
MAX_REPORTED_TOKENS = 10**8


def _count(value: Any) -> TypeGuard[int]:
    return type(value) is int and value <= MAX_REPORTED_TOKENS


SEARCH_SKU = "knowledge.search"


def unit_of(sku: str) -> str:
    """What a SKU's `quantity` counts: searches for `knowledge.search`, tokens for every other
    SKU (`knowledge.indexing` too: its price is per 1,000 tokens, its quantity in tokens)."""
    return "search" if sku == SEARCH_SKU else "token"


CHAT_SKU = "inference.chat_completions"
ROUTING_SKU = "inference.resolving.routing_complexity"
QUERY_REWRITE_SKU = "inference.resolving.query_rewrite"


def inference_line_items(
    model: CatalogModel | None, usage: TokenUsage, sku: str = CHAT_SKU, purpose: str = "Inference"
) -> list[LineItem]:
    """Tokens at the catalog price; none for a bring-your-own endpoint (`model` None).

    Cached prompt tokens are billed once, at the cached price: `.in` counts only the rest.
    """
    if model is None:
        return []
    note = " (estimated)" if usage.estimated else ""
    description = f"{purpose} for AI model '{model.id}'{note}"
    items = [
        LineItem(
            f"{sku}.in", usage.prompt_tokens - usage.cached_tokens, model.price_in, description
        ),
        LineItem(f"{sku}.out", usage.completion_tokens, model.price_out, description),
    ]
    if usage.cached_tokens:
        items.append(
            LineItem(f"{sku}.in.cached", usage.cached_tokens, model.price_cached_in, description)
        )
    return items


def merged(items: list[LineItem]) -> list[LineItem]:
    """Items of the same SKU, price and description summed into one, in first-seen order."""
    totals: dict[tuple[str, Decimal, str], int] = {}
    for item in items:
        key = (item.sku, item.unit_price, item.description)
        totals[key] = totals.get(key, 0) + item.quantity
    return [LineItem(sku, quantity, price, note) for (sku, price, note), quantity in totals.items()]


def tokens_by_length(text: str) -> int:
    """A tokenizer-free estimate (about four characters a token) for upstreams that report
    no usage; such counts are marked estimated wherever they appear."""
    return max(1, (len(text) + 3) // 4) if text else 0
