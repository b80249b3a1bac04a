"""Which embedder embeds what: the one place embedders are chosen and built.

- the local multilingual-e5-small, for `/embeddings` and every collection made without an
  endpoint; documents go to a second engine over the same model (one thread of its own), so a
  query never waits behind a document's passages for the one engine's lock (measured: seconds,
  on two busy cores);
- a catalog `kind = "embedding"` model, for `/embeddings`: called on the trusted session (the
  catalog's providers are the operator's own), built once per catalog entry;
- a collection's own OpenAI-compatible endpoint: called on the guarded session (its URL is a
  user's), its key decrypted only when the call is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from alicerce.catalog import Catalog, CatalogModel
from alicerce.embeddings import LOCAL_EMBEDDING_MODEL, Embedder, LocalE5Embedder, OpenAIEmbedder
from alicerce.errors import AlicerceError, InvalidRequest
from alicerce.security import CredentialCipher
from alicerce.upstreams.http import HttpClients

Endpoint = Mapping[str, Any]  # what a collection keeps of its endpoint (`settings["embedding"]`)


class EmbedderRegistry:
    def __init__(
        self,
        local: LocalE5Embedder,
        *,
        cipher: CredentialCipher,
        http: HttpClients,
        catalog: Callable[[], Catalog],
        indexing: Embedder | None = None,
    ) -> None:
        self.local = local  # also the tokenizer that sizes every collection's chunks
        self._indexing = indexing or local
        self._cipher = cipher
        self._http = http
        self._catalog = catalog
        self._models: dict[str, tuple[CatalogModel, OpenAIEmbedder]] = {}

    def index_in_foreground(self) -> None:
        """For a process that only indexes (`alicerce ingest`): no query waits, so documents
        take the shared engine with all its threads."""
        self._indexing = self.local

    def for_model(self, model_id: str) -> Embedder:
        """The `/embeddings` route's model: the local one, or a catalog embedding model's
        endpoint (made once per catalog entry; a reloaded catalog makes it again)."""
        if model_id == LOCAL_EMBEDDING_MODEL:
            return self.local
        entry = self._catalog().get(model_id)
        if entry is None or entry.kind != "embedding" or entry.provider.base_url is None:
            raise InvalidRequest(
                f"The embedding model {model_id!r} does not exist; use "
                f"{LOCAL_EMBEDDING_MODEL!r} or an embedding model of the catalog "
                "(GET /api/v1/models lists them).",
                param="model",
                code="model_not_found",
            )
        cached = self._models.get(model_id)
        if cached is not None and cached[0] is entry:  # the same catalog entry: not reloaded
            return cached[1]
        assert self._http.trusted is not None
        embedder = OpenAIEmbedder(
            self._http.trusted,  # catalog providers are the operator's own
            base_url=entry.provider.base_url,
            model=entry.upstream_model,
            dimensions=entry.dimensions or 0,
            api_key=entry.provider.api_key,
            headers=entry.provider.headers,
            label=f"'{entry.id}'",
        )
        self._models[model_id] = (entry, embedder)
        return embedder

    def for_collection(
        self, endpoint: Endpoint | None, collection_name: str, *, indexing: bool = False
    ) -> Embedder:
        """A collection's embedder: the local model without `endpoint` (its indexing engine
        for documents), else the collection's own endpoint."""
        if not endpoint:
            return self._indexing if indexing else self.local
        session = self._http.guarded
        if session is None:
            raise AlicerceError("The HTTP clients are not started.")
        key = endpoint.get("api_key_encrypted")
        return OpenAIEmbedder(
            session,
            base_url=endpoint["base_url"],
            model=endpoint["model"],
            dimensions=int(endpoint["dimensions"]),
            api_key=self._cipher.decrypt(key) if key else None,
            headers=endpoint.get("headers"),
            label=f"'{endpoint['model']}' of collection '{collection_name}'",
            query_prefix=endpoint.get("query_prefix", ""),
            passage_prefix=endpoint.get("passage_prefix", ""),
        )

    @staticmethod
    def identity(endpoint: Endpoint | None, model: str) -> str:
        """Which embedder made vectors of `model` (behind `endpoint`, or local): vectors are
        comparable only when this is the same."""
        return f"{(endpoint or {}).get('base_url', '@local')} {model}"
