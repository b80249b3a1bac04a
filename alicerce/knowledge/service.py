"""Knowledge collections as the HTTP layer, the CLI and chat use them.

The store is synchronous and owns the transactions; this service runs it in threads, owns the
ingestion worker (one asyncio task taking documents from a queue, extraction, chunking and the
local embedder's work in a thread) and picks each collection's embedder: the in-process
multilingual-e5-small by default, or an OpenAI-compatible endpoint given at creation.

Statuses go `queued` -> `indexing` -> `ready` | `failed`. A document becomes searchable in the
one transaction of `KnowledgeStore.write_chunks`, so a crash at any point leaves it queued or
indexing, never half visible; `start()` queues those again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import numpy as np

from alicerce.billing import LineItem
from alicerce.catalog import Catalog
from alicerce.embeddings import Embedder, EmbeddingBatch, LocalE5Embedder, OpenAIEmbedder
from alicerce.errors import AlicerceError, InvalidRequest, NotFound, RequestTooLarge
from alicerce.knowledge.chunking import Chunk, chunk, embedding_text
from alicerce.knowledge.extract import SUPPORTED_SUFFIXES, ExtractionError, extract
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
from alicerce.upstreams.http import HttpClients

log = logging.getLogger("alicerce.knowledge")

INDEXING_SKU = "knowledge.indexing"
SEARCH_SKU = "knowledge.search"
MODES = ("hybrid", "vector", "keyword")
QUERY_CACHE_SIZE = 4096
PASSAGE_SLICE = 8  # chunks per embedding call: ~1-2 s of the local model on this machine


@dataclass(frozen=True, slots=True)
class Reembed:
    """A job for the worker: the collection's chunks embedded again with another embedder."""

    account_id: str
    collection_id: str
    embedding: dict[str, Any] | None  # the endpoint settings, or None for the local model


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    query_tokens: int  # what embedding the query cost (0 for keyword-only searches)


def unsupported_suffix(name: str) -> str | None:
    """The suffix of `name` when it names a file type that cannot be read. A name without a
    suffix (or with one that is no file type, "v1.2") is read by its media type instead."""
    suffix = PurePath(name).suffix.lower()
    if not suffix or suffix in SUPPORTED_SUFFIXES or suffix[1:].isdigit() or " " in suffix:
        return None
    return suffix


async def embed_passages(embedder: Embedder, texts: list[str]) -> EmbeddingBatch:
    """Passages embedded a few at a time: the local model serves one call at a time, so a
    query (a chat's search) waits for one slice of a long document, never for all of it."""
    parts = [
        await embedder.embed(texts[start : start + PASSAGE_SLICE], kind="passage")
        for start in range(0, len(texts), PASSAGE_SLICE)
    ]
    if not parts:
        return EmbeddingBatch(np.empty((0, embedder.dimensions), dtype=np.float32), 0)
    return EmbeddingBatch(np.vstack([p.vectors for p in parts]), sum(p.tokens for p in parts))


class KnowledgeService:
    def __init__(
        self,
        store: KnowledgeStore,
        embedder: LocalE5Embedder,
        *,
        cipher: CredentialCipher,
        http: HttpClients,
        catalog: Callable[[], Catalog],
        ledger: UsageLedger,
        allow_private_upstreams: bool,
        max_document_bytes: int,
        chunk_tokens: int = 256,
        overlap_tokens: int = 32,
        indexing_embedder: LocalE5Embedder | None = None,
    ) -> None:
        self.store = store
        self._local = embedder
        # A second engine for documents, so that a query never waits behind a document's
        # passages for the one engine's lock (measured: seconds, on two busy cores).
        self._indexer = indexing_embedder or embedder
        self._cipher = cipher
        self._http = http
        self._catalog = catalog
        self._ledger = ledger
        self._allow_private = allow_private_upstreams
        self.max_document_bytes = max_document_bytes
        self._chunk_tokens = chunk_tokens
        self._overlap_tokens = overlap_tokens
        self._queue: asyncio.Queue[Document | Reembed | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._accepting = True
        # Query vectors by (embedder, text): a repeated question skips the model (~10 ms).
        self._query_vectors: OrderedDict[tuple[str, str], tuple[np.ndarray, int]] = OrderedDict()

    # -- lifecycle -----------------------------------------------------------------------

    def index_in_foreground(self) -> None:
        """For a process that only indexes (`alicerce ingest`): no query waits, so documents
        take the shared engine with all its threads."""
        self._indexer = self._local

    async def start(self) -> None:
        """Starts the worker and queues what a previous process left unfinished."""
        self._queue = asyncio.Queue()
        self._accepting = True
        for document in await asyncio.to_thread(self.store.unfinished_documents):
            self._queue.put_nowait(document)
        if not self._queue.empty():
            log.info("resuming the indexing of %d documents", self._queue.qsize())
        self._worker = asyncio.create_task(self._run(), name="knowledge-indexer")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stops taking documents and lets the one being indexed finish (up to `timeout_s`);
        the rest stay queued in the database and are resumed at the next start."""
        self._accepting = False
        if self._worker is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), timeout_s)
        except TimeoutError:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._worker = None

    async def _run(self) -> None:
        while True:
            document = await self._queue.get()
            try:
                if document is None or not self._accepting:
                    return
                if isinstance(document, Reembed):
                    await self.reembed_now(document)
                else:
                    await self.index(document)
            finally:
                self._queue.task_done()

    async def idle(self) -> None:
        """Returns once every queued document has been indexed or has failed."""
        await self._queue.join()

    # -- collections ---------------------------------------------------------------------

    async def create_collection(self, account_id: str, payload: Any) -> Collection:
        spec: CollectionCreate = parse(CollectionCreate, payload)
        settings: dict[str, Any] = {}
        if spec.fusion is not None:
            settings["fusion"] = spec.fusion.model_dump()
        model, dimensions = self._local.model, self._local.dimensions
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

    async def delete_collection(self, account_id: str, collection_id: str) -> None:
        if not await asyncio.to_thread(self.store.delete_collection, account_id, collection_id):
            raise NotFound(f"No collection {collection_id!r}.")

    async def existing_collections(self, account_id: str, ids: list[str]) -> set[str]:
        """Which of `ids` are collections of this account."""
        owned = await self.list_collections(account_id)
        return {c.id for c in owned} & set(ids)

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
        suffix = unsupported_suffix(name)
        if suffix is not None:
            supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
            raise InvalidRequest(
                f"Unsupported file type {suffix!r}; supported: {supported}.",
                param=param,
                code="unsupported_file_type",
            )
        if not self._accepting:
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
            self._queue.put_nowait(document)
        return document, created

    async def get_document(self, account_id: str, collection_id: str, document_id: str) -> Document:
        found = await asyncio.to_thread(
            self.store.get_document, account_id, collection_id, document_id
        )
        if found is None:
            raise NotFound(f"No document {document_id!r} in this collection.")
        return found

    async def list_documents(self, account_id: str, collection_id: str) -> list[Document]:
        await self.get_collection(account_id, collection_id)
        return await asyncio.to_thread(self.store.list_documents, account_id, collection_id)

    async def delete_document(self, account_id: str, collection_id: str, document_id: str) -> None:
        deleted = await asyncio.to_thread(
            self.store.delete_document, account_id, collection_id, document_id
        )
        if not deleted:
            raise NotFound(f"No document {document_id!r} in this collection.")

    # -- indexing ------------------------------------------------------------------------

    async def index(self, document: Document) -> None:
        """Extracts, chunks, embeds and writes one document; any failure marks it failed with
        the reason and touches nothing else in the collection."""
        started = time.perf_counter()
        collection = await asyncio.to_thread(
            self.store.get_collection, document.account_id, document.collection_id
        )
        if collection is None:  # deleted while the document waited
            return
        if not await asyncio.to_thread(self.store.claim, document):
            log.info("document %s is being indexed elsewhere", document.id)
            return
        try:
            data = await asyncio.to_thread(self.store.load_source, document.id)
            chunks = await asyncio.to_thread(self._chunks, document, data)
            texts = [embedding_text(c) for c in chunks]
            endpoint = collection.settings.get("embedding")
            batch = await embed_passages(self._embedder(endpoint, collection.name, True), texts)
            await asyncio.to_thread(
                self.store.write_chunks, document.id, chunks, batch.vectors, batch.tokens
            )
        except (ExtractionError, AlicerceError) as exc:
            reason = exc.message if isinstance(exc, AlicerceError) else str(exc)
            await self._fail(document, reason)
            return
        except Exception:
            log.exception("indexing document %s failed", document.id)
            await self._fail(document, "an internal error stopped the indexing")
            return
        self._bill_indexing(collection, document, batch.tokens, time.perf_counter() - started)

    def _chunks(self, document: Document, data: bytes) -> list[Chunk]:
        blocks = extract(
            data, document.name, document.media_type, max_bytes=self.max_document_bytes
        )
        chunks = chunk(
            blocks,
            count_tokens=self._local.count_tokens,
            max_tokens=self._chunk_tokens,
            overlap_tokens=self._overlap_tokens,
        )
        if not chunks:
            raise ExtractionError("the document has no text")
        return chunks

    async def _fail(self, document: Document, reason: str) -> None:
        try:
            await asyncio.to_thread(self.store.mark_failed, document.id, reason)
        except Exception:  # deleted meanwhile, or the database is gone: nothing to mark
            log.exception("could not mark document %s failed", document.id)

    def embedder_for(self, collection: Collection) -> Embedder:
        return self._embedder(collection.settings.get("embedding"), collection.name)

    def _embedder(
        self, endpoint: dict[str, Any] | None, collection_name: str, indexing: bool = False
    ) -> Embedder:
        if not endpoint:
            return self._indexer if indexing else self._local
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

    def _bill_indexing(
        self, collection: Collection, document: Document, tokens: int, seconds: float
    ) -> None:
        """One ledger record per indexed document, so `/usage` sums it like a request."""
        self._bill(
            collection.account_id,
            collection.embedding_model,
            tokens,
            seconds,
            f"Indexing of '{document.name}' into collection '{collection.name}' "
            f"with '{collection.embedding_model}'",
            {"collection_id": collection.id, "document_id": document.id},
        )

    def _bill(
        self,
        account_id: str,
        model: str,
        tokens: int,
        seconds: float,
        description: str,
        metadata: dict[str, Any],
    ) -> None:
        item = LineItem(
            INDEXING_SKU, tokens, self._catalog().knowledge.per_indexed_token, description
        )
        self._ledger.record_work(
            item,
            account_id=account_id,
            seconds=seconds,
            model=model,
            tokens=tokens,
            metadata=metadata,
        )

    # -- re-embedding --------------------------------------------------------------------

    async def reembed(self, account_id: str, collection_id: str, payload: Any) -> Reembed:
        """Queues the collection's re-embedding with another embedder (`embedding`, or the
        local model without one). Searches keep using the old vectors until the new ones
        replace them all, in one transaction."""
        spec: ReembedRequest = parse(ReembedRequest, {} if payload is None else payload)
        await self.get_collection(account_id, collection_id)
        endpoint = self._endpoint_settings(spec.embedding) if spec.embedding else None
        job = Reembed(account_id, collection_id, endpoint)
        self._queue.put_nowait(job)
        return job

    async def reembed_now(self, job: Reembed) -> bool:
        """Embeds every chunk again and swaps the vectors and the collection's model at once;
        a failure (the endpoint is down) changes nothing and is logged."""
        started = time.perf_counter()
        collection = await asyncio.to_thread(
            self.store.get_collection, job.account_id, job.collection_id
        )
        if collection is None:
            return False
        settings = {k: v for k, v in collection.settings.items() if k != "embedding"}
        if job.embedding:
            settings["embedding"] = job.embedding
            model, dimensions = job.embedding["model"], int(job.embedding["dimensions"])
        else:
            model, dimensions = self._local.model, self._local.dimensions
        try:
            batches = await asyncio.to_thread(
                lambda: list(self.store.chunk_vectors(job.account_id, job.collection_id))
            )
            stored = [c for batch in batches for c in batch]
            texts = [embedding_text(Chunk(c.text, c.heading_path, c.position, 0)) for c in stored]
            embedder = self._embedder(job.embedding, collection.name, True)
            embedded = await embed_passages(embedder, texts)
            done = await asyncio.to_thread(
                self.store.replace_vectors,
                job.account_id,
                job.collection_id,
                [c.id for c in stored],
                embedded.vectors,
                embedding_model=model,
                dimensions=dimensions,
                settings=settings,
            )
        except AlicerceError as exc:
            log.warning("collection %s not re-embedded: %s", job.collection_id, exc.message)
            return False
        except Exception:
            log.exception("collection %s not re-embedded", job.collection_id)
            return False
        if done:
            self._bill(
                job.account_id,
                model,
                embedded.tokens,
                time.perf_counter() - started,
                f"Re-embedding of collection '{collection.name}' with '{model}'",
                {"collection_id": job.collection_id, "reembed": True},
            )
        return done

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
        wanted = set(collection_ids)
        collections = [c for c in await self.list_collections(account_id) if c.id in wanted]
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
        return SearchResult([h for h in hits[:top_k] if h.score >= min_score], tokens)

    @staticmethod
    def _embedder_key(collection: Collection) -> str:
        endpoint = collection.settings.get("embedding") or {}
        return f"{endpoint.get('base_url', '@local')} {collection.embedding_model}"

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
        cached = self._query_vectors.get(key)
        if cached is not None:
            self._query_vectors.move_to_end(key)
            return cached
        batch = await self.embedder_for(collection).embed([query], kind="query")
        self._query_vectors[key] = found = (batch.vectors[0], batch.tokens)
        if len(self._query_vectors) > QUERY_CACHE_SIZE:
            self._query_vectors.popitem(last=False)
        return found

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
