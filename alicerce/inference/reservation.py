"""A request's worst-case cost, reserved against its key's monthly budget at admission
(`alicerce/limits.py`) and settled to the real cost when it ends.

The bound is deliberately generous: what it over-reserves is given back when the request ends,
and a large reservation only makes requests near the budget's edge wait their turn, whereas a
bound that is too small would let concurrent requests overrun the budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from alicerce.catalog import AUTO_MODEL, Catalog, CatalogModel
from alicerce.gateways import GatewaySpec
from alicerce.inference.functions import MAX_ROUNDS

# When neither the request nor the model bounds the answer: as much as most chat models will
# write in one answer.
UNBOUNDED_OUTPUT_TOKENS = 4096
CHUNK_TOKENS_BOUND = 512  # a knowledge chunk put in the prompt (e5 reads 512 tokens at most)


def output_bound(body: dict[str, Any], model: CatalogModel | None, prompt_tokens: int) -> int:
    """The most tokens the answer may have: the request's own limit, else what the model's
    context leaves, else `UNBOUNDED_OUTPUT_TOKENS`."""
    wanted = _requested_output(body)
    if wanted is not None:
        return wanted
    if model is not None and model.context_length:
        return max(1, model.context_length - prompt_tokens)
    return UNBOUNDED_OUTPUT_TOKENS


def _requested_output(body: dict[str, Any]) -> int | None:
    """The request's own bound on its answer (`max_completion_tokens` or `max_tokens`)."""
    wanted = body.get("max_completion_tokens") or body.get("max_tokens")
    return wanted if isinstance(wanted, int) and wanted > 0 else None


def models_of(spec: GatewaySpec, catalog: Catalog) -> list[CatalogModel]:
    """The catalog models that may serve (or route) a gateway's request: its model or `@auto`'s
    tiers and router, and its fallbacks. A gateway's own endpoint is not priced here."""
    ids: list[str] = list(spec.fallbacks)
    if spec.model == AUTO_MODEL and spec.routing is not None:
        ids += [*spec.routing.tiers, spec.routing.router]
    elif spec.model is not None:
        ids.append(spec.model)
    return [model for model in map(catalog.get, ids) if model is not None]


def worst_case_cost(
    body: dict[str, Any],
    prompt_tokens: int,
    models: Iterable[CatalogModel],
    *,
    catalog: Catalog,
    knowledge_chunks: int = 0,
    tool_rounds: bool = False,
    side_calls: int = 0,
) -> Decimal:
    """The most the request can cost: every model call at the dearest model that may serve it
    (the prompt with its knowledge chunks, and the longest answer), for every tool round it
    may run and for its `side_calls` (a query rewritten by a model), and its knowledge searches."""
    calls = (MAX_ROUNDS + 1 if tool_rounds else 1) + side_calls
    prompt = prompt_tokens + knowledge_chunks * CHUNK_TOKENS_BOUND
    per_call = max(
        (
            prompt * model.price_in + output_bound(body, model, prompt) * model.price_out
            for model in models
        ),
        default=Decimal(0),
    )
    searches = calls if knowledge_chunks else 0
    return per_call * calls + searches * catalog.knowledge.per_search


def worst_case_tokens(
    body: dict[str, Any], prompt_tokens: int, *, knowledge_chunks: int = 0
) -> int:
    """The most tokens one answer can take of a key's `tpm`: its prompt with its knowledge
    chunks, and its `max_tokens` (or `UNBOUNDED_OUTPUT_TOKENS`: a rate limit is not money, so a
    model's whole context is not held for an answer that sets no bound). Tool rounds are not
    multiplied in; their tokens count when the request settles."""
    output = _requested_output(body) or UNBOUNDED_OUTPUT_TOKENS
    return prompt_tokens + knowledge_chunks * CHUNK_TOKENS_BOUND + output
