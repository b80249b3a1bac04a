"""OpenAI embeddings, local or from the catalog: validate, embed, price, record.

E5 reads its input with a `query: ` or `passage: ` prefix, which OpenAI's request has no field
for: `input_type` (`query`, the default, which E5's authors advise for symmetric tasks such as
similarity, or `passage`/`document` for texts to be retrieved) is our extension to choose it.
`dimensions` other than the model's (384 for E5) is refused rather than truncated: E5 was not
trained for shorter prefixes of its vectors (as OpenAI's v3 models were), so truncation would
quietly lose quality.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from alicerce.billing import LineItem, TokenUsage
from alicerce.catalog import Catalog
from alicerce.embedders import EmbedderRegistry
from alicerce.embeddings import Embedder, EmbeddingBatch, Kind
from alicerce.errors import InvalidRequest, PermissionDenied, RequestTooLarge
from alicerce.inference.request import decode_body
from alicerce.ledger import Call, UsageLedger
from alicerce.limits import Limiter

EMBEDDINGS_SKU = "inference.embeddings.in"
MAX_INPUTS = 2048  # OpenAI's own limit on the number of inputs
MAX_INPUT_CHARS = 32_768  # about 8k tokens, OpenAI's per-input limit
# CPU time: e5-small reads about 550 tokens/s on two busy cores, so 100k characters (~25k
# tokens) is already about 45 s, during which knowledge searches wait for the same model.
MAX_TOTAL_CHARS = 100_000

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class EmbeddingsRequest(msgspec.Struct):
    model: str
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = None
    user: str | None = None
    input_type: Literal["query", "passage", "document"] = "query"


def parse_embeddings_request(raw: bytes) -> tuple[EmbeddingsRequest, list[str]]:
    """The request and its texts; bad input is a 400 naming the field, too much a 413."""
    request = decode_body(EmbeddingsRequest, raw)
    texts = [request.input] if isinstance(request.input, str) else request.input
    if not texts:
        raise InvalidRequest("'input' must not be empty.", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(
            f"'input' has {len(texts)} items; at most {MAX_INPUTS} per request.", param="input"
        )
    total = 0
    for index, text in enumerate(texts):
        param = "input" if isinstance(request.input, str) else f"input[{index}]"
        if not isinstance(text, str):
            raise InvalidRequest(
                "'input' must be a string or a list of strings; token-id arrays are not supported.",
                param=param,
            )
        if not text:
            raise InvalidRequest("An input must not be an empty string.", param=param)
        if len(text) > MAX_INPUT_CHARS:
            raise InvalidRequest(
                f"An input may have at most {MAX_INPUT_CHARS} characters; this one has "
                f"{len(text)}.",
                param=param,
            )
        total += len(text)
    if total > MAX_TOTAL_CHARS:
        raise RequestTooLarge(
            f"The inputs have {total} characters; at most {MAX_TOTAL_CHARS} per request. "
            "Split them over several requests.",
            param="input",
        )
    return request, texts  # type: ignore[return-value]


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32 (what the
    `openai` SDK asks for by default and decodes with numpy)."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()  # type: ignore[no-any-return]


def embeddings_answer(batch: EmbeddingBatch, model: str, encoding_format: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode_vector(row, encoding_format),
            }
            for index, row in enumerate(batch.vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": batch.tokens, "total_tokens": batch.tokens},
    }


def embedding_line_items(catalog: Catalog, model: str, tokens: int) -> list[LineItem]:
    """Tokens read, at the catalog's input price (0 for the local model unless priced)."""
    entry = catalog.get(model)
    price = entry.price_in if entry is not None else Decimal(0)
    return [LineItem(EMBEDDINGS_SKU, tokens, price, f"Embeddings with AI model '{model}'")]


def estimate_tokens(texts: list[str]) -> int:
    """For admission checks: E5's tokenizer makes about one token per four characters."""
    return sum(len(text) // 4 + 3 for text in texts)


class EmbeddingsService:
    """Embeds for the `/embeddings` route and records what it answered, as chats do (a request
    that fails is recorded by the pipeline, `inference/pipeline.py`).

    `@local/multilingual-e5-small` runs in process; the catalog's `kind = "embedding"` models
    are called on their provider's OpenAI-compatible `/embeddings`."""

    def __init__(
        self,
        embedders: EmbedderRegistry,
        catalog: Callable[[], Catalog],
        ledger: UsageLedger,
        limiter: Limiter,
    ) -> None:
        self._embedders = embedders
        self._catalog = catalog
        self._ledger = ledger
        self._limiter = limiter

    async def create(
        self, call: Call, request: EmbeddingsRequest, texts: list[str]
    ) -> tuple[dict[str, Any], dict[str, str] | None]:
        """The embeddings answer, and where the key stands in its limits (`x-ratelimit-*`)."""
        if call.principal.gateways is not None:
            raise PermissionDenied(
                "This key may call only its gateways; embeddings need a key without a "
                "gateway list.",
                param="model",
                code="model_not_allowed",
            )
        embedder = self.embedder_for(request.model)
        if request.dimensions is not None and request.dimensions != embedder.dimensions:
            raise InvalidRequest(
                f"{request.model} makes {embedder.dimensions}-dimensional vectors; "
                f"'dimensions' must be {embedder.dimensions} or left out.",
                param="dimensions",
            )
        tokens = estimate_tokens(texts)
        cost = Decimal(0)
        if call.principal.monthly_budget is not None:  # keys without a budget price nothing here
            priced = self._catalog().get(request.model)
            cost = tokens * priced.price_in if priced is not None else Decimal(0)
        admission = await self._limiter.admit(call.principal, tokens, cost)
        call.reserved = admission.reserved
        ratelimit = admission.headers
        kind: Kind = "query" if request.input_type == "query" else "passage"
        batch = await embedder.embed(texts, kind=kind)
        items = embedding_line_items(self._catalog(), request.model, batch.tokens)
        gone = call.client_gone is not None and await call.client_gone()  # 499, billed: as chat
        self._record(call, 499 if gone else 200, batch.tokens, items, model=request.model)
        return embeddings_answer(batch, request.model, request.encoding_format), ratelimit

    def embedder_for(self, model_id: str) -> Embedder:
        """The local model, or a catalog embedding model's endpoint (made once per entry)."""
        return self._embedders.for_model(model_id)

    def _record(
        self,
        call: Call,
        status: int,
        tokens: int,
        items: list[LineItem],
        model: str | None = None,
    ) -> None:
        usage = TokenUsage(prompt_tokens=tokens)
        self._ledger.record_call(call, model=model, status=status, usage=usage, items=items)
