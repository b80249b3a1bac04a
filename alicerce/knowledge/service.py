"""Knowledge collections as the HTTP layer, the CLI and chat use them: collections, their
documents, and search.

The store is synchronous and owns the transactions; this service runs it in threads. New
documents and re-embeddings go to the indexing worker (`alicerce.knowledge.indexer`); which
embedder a collection uses (the in-process multilingual-e5-small by default, or an
OpenAI-compatible endpoint given at creation) is `alicerce.embedders`' choice.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from alicerce.billing import SEARCH_SKU, LineItem
from alicerce.cache import LRUCache
from alicerce.catalog import Catalog
from alicerce.embedders import EmbedderRegistry
from alicerce.embeddings import Embedder
from alicerce.errors import AlicerceError, Conflict, InvalidRequest, NotFound, RequestTooLarge
from alicerce.knowledge.extract import SUPPORTED_SUFFIXES, unsupported_suffix
from alicerce.knowledge.indexer import Indexer, Reembed
from alicerce.knowledge.modes import MODES
from alicerce.knowledge.records import DocumentChunk, ReembedState
from alicerce.knowledge.search import Hit
from alicerce.knowledge.specs import (
    CollectionCreate,
    CollectionUpdate,
    EmbeddingEndpoint,
    ReembedRequest,
    TextDocument,
    parse,
)
from alicerce.knowledge.store import Collection, Document, KnowledgeStore
from alicerce.ledger import UsageLedger
from alicerce.security import CredentialCipher, check_upstream_url

QUERY_CACHE_SIZE = 4096
MAX_NAME_CHARS = 500  # a document's name, as `TextDocument.name` allows
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def filename_base(filename: str) -> str:
    """An uploaded file's name without any folders (`../../etc/passwd` is `passwd`, also
    with backslashes): a name, never a path. Nothing opens a file by a document's name; this
    keeps a stored name from reading as a path wherever it is shown or saved."""
    base = re.split(r"[/\\]", filename)[-1].strip()
    return "" if base in (".", "..") else base


def document_name(name: str, param: str) -> str:
    """The name stored: control characters (NUL too) taken out, at most `MAX_NAME_CHARS`."""
    cleaned = _CONTROL_CHARACTERS.sub("", name).strip()
    if not cleaned:
        raise InvalidRequest("The document needs a name.", param="name")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidRequest(
            f"The document's name has {len(cleaned):,} characters; the limit is {MAX_NAME_CHARS}.",
            param="name" if param == "content" else param,
            code="name_too_long",
        )
    return cleaned


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    query_tokens: int  # what embedding the query cost (0 for keyword-only searches)


class CollectionUsers(Protocol):
    """Who names a collection: the gateways (`GatewayService`, wired in `alicerce.services`).
    Each user is `{"id", "name", "slug"}`; knowledge never reads the gateways' tables."""

    def using_collection(self, account_id: str, collection_id: str) -> list[dict[str, str]]: ...

    def detach_collection(self, account_id: str, collection_id: str) -> list[dict[str, str]]:
        """Takes the collection out of every gateway naming it; those gateways."""
        ...


class _NoUsers:
    """No gateway names any collection: a service without gateways (the benchmarks)."""

    def using_collection(self, account_id: str, collection_id: str) -> list[dict[str, str]]:
        return []

    def detach_collection(self, account_id: str, collection_id: str) -> list[dict[str, str]]:
        return []


class KnowledgeService:
    def __init__(
        self,
        store: KnowledgeStore,
        embedders: EmbedderRegistry,
        indexer: Indexer,
        *,
        users: CollectionUsers = _NoUsers(),  # a stateless default
        cipher: CredentialCipher,
        catalog: Callable[[], Catalog],
        ledger: UsageLedger,
        allow_private_upstreams: bool,
        max_document_bytes: int,
    ) -> None:
        self.store = store
        self.indexer = indexer  # the worker that indexes what this service stores
        self._users = users
        self._embedders = embedders
        self._cipher = cipher
        self._catalog = catalog
        self._ledger = ledger
        self._metrics = ledger.metrics  # searches and their duration
        self._allow_private = allow_private_upstreams
        self.max_document_bytes = max_document_bytes
        # Query vectors by (embedder, text): a repeated question skips the model (~10 ms).
        self._query_vectors: LRUCache[tuple[str, str], tuple[np.ndarray, int]] = LRUCache(
            QUERY_CACHE_SIZE
        )

    # -- collections ---------------------------------------------------------------------

    async def create_collection(self, account_id: str, payload: Any) -> Collection:
        spec: CollectionCreate = parse(CollectionCreate, payload)
        settings: dict[str, Any] = {}
        if spec.fusion is not None:
            settings["fusion"] = spec.fusion.model_dump()
        model, dimensions = self._embedders.local.model, self._embedders.local.dimensions
        if spec.embedding is not None:
            settings["embedding"] = self._endpoint_settings(spec.embedding)
            model, dimensions = spec.embedding.model, spec.embedding.dimensions
        return await asyncio.to_thread(
            self.store.create_collection,
            account_id,
            name=spec.name,
            description=spec.description,
            embedding_model=model,
            dimensions=dimensions,
            settings=settings,
        )

    def _endpoint_settings(self, endpoint: EmbeddingEndpoint) -> dict[str, Any]:
        """What a collection keeps of its endpoint: the key encrypted, the URL checked."""
        base_url = check_upstream_url(
            endpoint.base_url, allow_private=self._allow_private, param="embedding.base_url"
        )
        data = endpoint.model_dump(exclude={"api_key"}) | {"base_url": base_url}
        if endpoint.api_key:
            data["api_key_encrypted"] = self._cipher.encrypt(endpoint.api_key)
        return data

    async def get_collection(self, account_id: str, collection_id: str) -> Collection:
        found = await asyncio.to_thread(self.store.get_collection, account_id, collection_id)
        if found is None:
            raise NotFound(f"No collection {collection_id!r}.")
        return found

    async def list_collections(self, account_id: str) -> list[Collection]:
        return await asyncio.to_thread(self.store.list_collections, account_id)

    async def update_collection(
        self, account_id: str, collection_id: str, payload: Any
    ) -> Collection:
        spec: CollectionUpdate = parse(CollectionUpdate, payload)
        updated = await asyncio.to_thread(
            self.store.update_collection,
            account_id,
            collection_id,
            name=spec.name.strip() if spec.name else None,
            description=spec.description,
        )
        if updated is None:
            raise NotFound(f"No collection {collection_id!r}.")
        return updated

    async def delete_collection(
        self, account_id: str, collection_id: str, *, force: bool = False
    ) -> list[dict[str, str]]:
        """Deletes the collection, refused (409 `collection_in_use`, naming them) while
        gateways use it, unless `force`: then it is taken out of those gateways first. Returns
        the gateways it was taken out of: with `force`, and any gateway saved naming it while
        it was being deleted (swept after the delete, so none is left naming a collection that
        is gone)."""
        collection = await self.get_collection(account_id, collection_id)
        users = await asyncio.to_thread(self._users.using_collection, account_id, collection_id)
        if users and not force:
            named = ", ".join(f"{u['slug']} ({u['id']})" for u in users)
            raise Conflict(
                f"Collection {collection.name!r} is used by {len(users)} gateway(s): {named}. "
                "Take it out of their knowledge.collections first, or delete it with "
                "force=true to detach it from them.",
                code="collection_in_use",
                details={"gateways": users},
            )
        detached = await self._detach(account_id, collection_id) if users else []
        if not await asyncio.to_thread(self.store.delete_collection, account_id, collection_id):
            raise NotFound(f"No collection {collection_id!r}.")
        self.indexer.cancel(collection_id=collection_id)
        late = await self._detach(account_id, collection_id)
        return detached + [g for g in late if g not in detached]

    async def _detach(self, account_id: str, collection_id: str) -> list[dict[str, str]]:
        return await asyncio.to_thread(self._users.detach_collection, account_id, collection_id)

    # -- documents -----------------------------------------------------------------------

    async def add_text(
        self, account_id: str, collection_id: str, payload: Any
    ) -> tuple[Document, bool]:
        """A document given as JSON text: its type comes from its name's suffix, else from
        `media_type`; text with neither is read as Markdown."""
        spec: TextDocument = parse(TextDocument, payload)
        if not spec.content.strip():
            raise InvalidRequest("content: the document has no text.", param="content")
        media_type = spec.media_type or "text/markdown"
        return await self.add_file(
            account_id,
            collection_id,
            name=spec.name,
            data=spec.content.encode(),
            media_type=media_type,
            source_url=spec.source_url,
            metadata=spec.metadata or {},
            param="content",
        )

    async def add_file(
        self,
        account_id: str,
        collection_id: str,
        *,
        name: str,
        data: bytes,
        media_type: str | None,
        source_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        param: str = "file",
        enqueue: bool = True,
    ) -> tuple[Document, bool]:
        """Stores the document and queues it for the worker (unless `enqueue` is false: the
        caller indexes it); the same content again returns the existing document and `False`
        (nothing is indexed twice)."""
        if len(data) > self.max_document_bytes:
            raise RequestTooLarge(
                f"The document is larger than {self.max_document_bytes} bytes "
                "(ALICERCE_MAX_DOCUMENT_BYTES).",
                param=param,
            )
        if not data.strip():
            raise InvalidRequest("The document is empty.", param=param, code="empty_document")
        name = document_name(name, param)
        suffix = unsupported_suffix(name)
        if suffix is not None:
            supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
            raise InvalidRequest(
                f"Unsupported file type {suffix!r}; supported: {supported}.",
                param=param,
                code="unsupported_file_type",
            )
        if not self.indexer.accepting:
            raise AlicerceError("The server is shutting down; send the document again later.")
        await self.get_collection(account_id, collection_id)
        document, created = await asyncio.to_thread(
            self.store.add_document,
            account_id,
            collection_id,
            name=name,
            data=data,
            media_type=media_type,
            source_url=source_url,
            metadata=metadata or {},
        )
        if created and enqueue:
            self.indexer.enqueue(document)
        return document, created

    async def get_document(self, account_id: str, collection_id: str, document_id: str) -> Document:
        found = await asyncio.to_thread(
            self.store.get_document, account_id, collection_id, document_id
        )
        if found is None:
            raise NotFound(f"No document {document_id!r} in this collection.")
        return found

    async def get_chunk(
        self, account_id: str, collection_id: str, document_id: str, chunk_id: str
    ) -> DocumentChunk:
        found = await asyncio.to_thread(
            self.store.get_chunk, account_id, collection_id, document_id, chunk_id
        )
        if found is None:
            raise NotFound(f"No chunk {chunk_id!r} in this document.")
        return found

    async def list_documents(self, account_id: str, collection_id: str) -> list[Document]:
        await self.get_collection(account_id, collection_id)
        return await asyncio.to_thread(self.store.list_documents, account_id, collection_id)

    async def retry_document(
        self, account_id: str, collection_id: str, document_id: str
    ) -> Document:
        """A failed document queued again with the bytes it kept, its error cleared."""
        if not self.indexer.accepting:
            raise AlicerceError("The server is shutting down; retry the document later.")
        document = await asyncio.to_thread(
            self.store.retry_document, account_id, collection_id, document_id
        )
        self.indexer.enqueue(document)
        return document

    async def delete_document(self, account_id: str, collection_id: str, document_id: str) -> None:
        deleted = await asyncio.to_thread(
            self.store.delete_document, account_id, collection_id, document_id
        )
        if not deleted:
            raise NotFound(f"No document {document_id!r} in this collection.")
        self.indexer.cancel(document_id)  # its indexing, if any, stops now

    # -- re-embedding --------------------------------------------------------------------

    async def reembed(self, account_id: str, collection_id: str, payload: Any) -> ReembedState:
        """Queues the collection's re-embedding with another embedder (`embedding`, or the
        local model without one), in place of any not done yet. Searches keep using the old
        vectors until the new ones replace them all, in one transaction. Kept on the
        collection: a restart resumes it, a failure is shown there (`reembed`)."""
        spec: ReembedRequest = parse(ReembedRequest, {} if payload is None else payload)
        await self.get_collection(account_id, collection_id)
        endpoint = self._endpoint_settings(spec.embedding) if spec.embedding else None
        state = await asyncio.to_thread(
            self.store.request_reembed, account_id, collection_id, endpoint
        )
        self.indexer.enqueue(Reembed(account_id, collection_id, state.id))
        return state

    async def retry_reembed(self, account_id: str, collection_id: str) -> ReembedState:
        """The failed re-embedding queued again, to the same embedder (409
        `reembed_not_failed` when there is none)."""
        state = await asyncio.to_thread(self.store.retry_reembed, account_id, collection_id)
        self.indexer.enqueue(Reembed(account_id, collection_id, state.id))
        return state

    # -- search --------------------------------------------------------------------------

    async def search(
        self,
        account_id: str,
        collection_ids: list[str],
        query: str,
        *,
        top_k: int = 5,
        mode: str = "hybrid",
        min_score: float = 0.0,
    ) -> SearchResult:
        """The best chunks of the account's `collection_ids` for `query`, best first, those
        scoring under `min_score` left out. Collections of other accounts find nothing."""
        if not query or not query.strip():
            raise InvalidRequest("query: must not be empty.", param="query")
        if mode not in MODES:
            raise InvalidRequest(f"mode: must be one of {list(MODES)}.", param="mode")
        started = time.perf_counter()
        wanted = set(collection_ids)
        collections = [c for c in await self.list_collections(account_id) if c.id in wanted]
        if not collections:  # all gone (deleted as a gateway was saved): no search, no charge
            raise NotFound("None of the collections to search exists any more.")
        # Vectors are comparable only within one embedder: search each group with its own
        # query vector and merge by score, which the store keeps comparable across searches.
        groups: dict[str, list[Collection]] = {}
        for collection in collections:
            groups.setdefault(self._embedder_key(collection), []).append(collection)
        hits: list[Hit] = []
        tokens = 0
        for group in groups.values():
            found, used = await self._search_group(account_id, group, query, top_k, mode)
            hits += found
            tokens += used
        hits.sort(key=lambda hit: hit.score, reverse=True)
        self._metrics.searched(mode, time.perf_counter() - started)
        return SearchResult([h for h in hits[:top_k] if h.score >= min_score], tokens)

    def _embedder_key(self, collection: Collection) -> str:
        return self._embedders.identity(
            collection.settings.get("embedding"), collection.embedding_model
        )

    def _embedder(self, collection: Collection) -> Embedder:
        return self._embedders.for_collection(collection.settings.get("embedding"), collection.name)

    async def _search_group(
        self, account_id: str, group: list[Collection], query: str, top_k: int, mode: str
    ) -> tuple[list[Hit], int]:
        """One embedder's collections searched with one query vector (cached: a repeated
        question skips the model). Embedding the query while the store ran its keyword side
        was measured too: slower, the model's two threads and the store's then share two
        cores."""
        vector, tokens = await self._query_vector(group[0], query, mode)
        hits = await asyncio.to_thread(
            self.store.search,
            account_id,
            [c.id for c in group],
            query=query,
            vector=vector,
            top_k=top_k,
            mode=mode,  # type: ignore[arg-type]
        )
        return hits, tokens

    async def _query_vector(
        self, collection: Collection, query: str, mode: str
    ) -> tuple[np.ndarray, int]:
        if mode == "keyword":  # the store reads no vector then
            return np.zeros(collection.dimensions, dtype=np.float32), 0
        key = (self._embedder_key(collection), query)
        _, cached = self._query_vectors.get(key)
        if cached is not None:
            return cached
        batch = await self._embedder(collection).embed([query], kind="query")
        vector = (batch.vectors[0], batch.tokens)
        self._query_vectors.put(key, vector)
        return vector

    def search_line_item(self, searches: int = 1) -> LineItem:
        """The `knowledge.search` line item at the catalog's price (for chat's searches)."""
        return LineItem(
            SEARCH_SKU, searches, self._catalog().knowledge.per_search, "Knowledge search"
        )

    def record_search(self, account_id: str, key_id: str | None, seconds: float) -> Decimal:
        """A search made through the API (not chat) in the ledger, billed per search."""
        return self._ledger.record_work(
            self.search_line_item(), account_id=account_id, seconds=seconds, key_id=key_id
        )
