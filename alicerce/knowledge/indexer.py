"""The indexing workers: a few asyncio tasks taking documents (and re-embeddings) from a queue
kept per account (`fair_queue`), so one account's huge upload cannot hold another's document.

Each document is extracted, chunked and embedded, then written in the one transaction of
`KnowledgeStore.write_chunks`, so a crash at any point leaves it queued or indexing, never half
visible; `start()` queues those again, and the re-embeddings left queued or running (their
state is on the collection: `reembeds`). Statuses go `queued` -> `indexing` -> `ready` |
`failed`; a failed document is queued again by a re-upload or a retry. Extraction and
chunking run in a thread, the local embedder's work on its own thread, so the event loop keeps
serving requests meanwhile. Each indexed document and each re-embedding is one
`knowledge.indexing` record in the ledger.

Every document is bounded: its reading by the extraction limits (`extract.limits`), its chunks
by `max_chunks` and its whole indexing by `max_seconds`, each refused past the bound with the
reason as its `error`. A document deleted while it is indexed stops at once (`cancel`): its
reading ends at the next block, its embedding at the current slice of `PASSAGE_SLICE` chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from alicerce.billing import LineItem
from alicerce.catalog import Catalog
from alicerce.embedders import EmbedderRegistry
from alicerce.embeddings import Embedder, EmbeddingBatch
from alicerce.errors import AlicerceError
from alicerce.knowledge.chunk_rows import EmbedderChanged
from alicerce.knowledge.chunking import Chunk, chunk, embedding_text
from alicerce.knowledge.extract import ExtractionError, ExtractionStopped, extract
from alicerce.knowledge.fair_queue import FairQueue
from alicerce.knowledge.store import Collection, Document, KnowledgeStore
from alicerce.ledger import UsageLedger

log = logging.getLogger("alicerce.knowledge")

INDEXING_SKU = "knowledge.indexing"
PASSAGE_SLICE = 8  # chunks per embedding call: ~1-2 s of the local model on this machine
CHECK_EVERY_SLICES = 4  # slices between checks that the document is still wanted
SWAP_ATTEMPTS = 5  # a re-embedding and a document written at once: each tries again this often

ChunkProgress = Callable[[int, int], None]
"""`(chunks embedded, chunks of the document)`, told after each slice (`alicerce ingest`'s bar
moves within a long document); the domain only counts, the caller draws."""


@dataclass(frozen=True, slots=True)
class Reembed:
    """A job for the worker: the collection's chunks embedded again with the embedder its
    re-embedding names (kept on the collection, `reembeds`), if `token` is still its own."""

    account_id: str
    collection_id: str
    token: str


class _Gone(Exception):
    """The document is no longer being indexed (deleted through another process)."""


async def embed_passages(
    embedder: Embedder,
    texts: list[str],
    progress: ChunkProgress | None = None,
    before_slice: Callable[[], Awaitable[None]] | None = None,
) -> EmbeddingBatch:
    """Passages embedded a few at a time: the local model serves one call at a time, so a
    query (a chat's search) waits for one slice of a long document, never for all of it, and
    two documents indexed at once take turns slice by slice. `before_slice` may end it."""
    parts: list[EmbeddingBatch] = []
    for start in range(0, len(texts), PASSAGE_SLICE):
        if before_slice is not None:
            await before_slice()
        parts.append(await embedder.embed(texts[start : start + PASSAGE_SLICE], kind="passage"))
        if progress is not None:
            progress(min(start + PASSAGE_SLICE, len(texts)), len(texts))
    if not parts:
        return EmbeddingBatch(np.empty((0, embedder.dimensions), dtype=np.float32), 0)
    return EmbeddingBatch(np.vstack([p.vectors for p in parts]), sum(p.tokens for p in parts))


class Indexer:
    def __init__(
        self,
        store: KnowledgeStore,
        embedders: EmbedderRegistry,
        *,
        catalog: Callable[[], Catalog],
        ledger: UsageLedger,
        max_document_bytes: int,
        chunk_tokens: int = 256,
        overlap_tokens: int = 32,
        workers: int = 2,
        max_chunks: int = 5_000,
        max_seconds: float = 900.0,
    ) -> None:
        self.store = store
        self._embedders = embedders
        self._catalog = catalog
        self._ledger = ledger
        self._metrics = ledger.metrics  # documents and chunks indexed, failures
        self._max_document_bytes = max_document_bytes
        self._chunk_tokens = chunk_tokens
        self._overlap_tokens = overlap_tokens
        self._workers_wanted, self.max_chunks, self.max_seconds = workers, max_chunks, max_seconds
        self._queue: FairQueue[Document | Reembed] = FairQueue()
        self._workers: list[asyncio.Task[None]] = []
        # The documents being indexed: the task to cancel and the event that stops its reading.
        self._running: dict[str, tuple[asyncio.Task[None], threading.Event, Document]] = {}
        self.accepting = True  # false once closing: new documents are refused

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the workers and queues what a previous process left unfinished."""
        self._queue = FairQueue()
        self.accepting = True
        documents = await asyncio.to_thread(self.store.unfinished_documents)
        for document in documents:
            self.enqueue(document)
        if documents:
            log.info("resuming the indexing of %d documents", len(documents))
        reembeds = await asyncio.to_thread(self.store.unfinished_reembeds)
        for account_id, collection_id, token in reembeds:
            self.enqueue(Reembed(account_id, collection_id, token))
        if reembeds:
            log.info("resuming the re-embedding of %d collections", len(reembeds))
        self._workers = [
            asyncio.create_task(self._run(), name=f"knowledge-indexer-{number}")
            for number in range(self._workers_wanted)
        ]

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stops taking documents and lets those being indexed finish (up to `timeout_s`);
        the rest stay queued in the database and are resumed at the next start."""
        self.accepting = False
        if not self._workers:
            return
        self._queue.close()
        workers = self._workers
        self._workers = []
        _done, pending = await asyncio.wait(workers, timeout=timeout_s)
        for worker in pending:
            worker.cancel()
        for worker in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def enqueue(self, job: Document | Reembed) -> None:
        """For a worker, after the jobs its account queued before it."""
        self._queue.put(job.account_id, job)

    async def idle(self) -> None:
        """Returns once every queued document has been indexed or has failed."""
        await self._queue.join()

    def cancel(self, document_id: str | None = None, *, collection_id: str | None = None) -> int:
        """Stops the work on a deleted document (or on every document of a deleted
        collection): taken out of the queue, or its indexing stopped at once. How many."""

        def unwanted(job: Document | Reembed) -> bool:
            if isinstance(job, Reembed):
                return job.collection_id == collection_id
            return job.id == document_id or job.collection_id == collection_id

        stopped = self._queue.drop(unwanted)
        for task, stop, document in list(self._running.values()):
            if unwanted(document):
                stop.set()
                task.cancel()
                stopped += 1
                log.info("indexing of document %s stopped: it was deleted", document.id)
        return stopped

    async def _run(self) -> None:
        while True:
            taken = await self._queue.get()
            if taken is None or not self.accepting:
                return
            account_id, job = taken
            try:
                if isinstance(job, Reembed):
                    await self.reembed(job)
                else:
                    await self._index_cancellable(job)
            finally:
                self._queue.task_done(account_id)

    async def _index_cancellable(self, document: Document) -> None:
        """`index` in a task of its own, which `cancel` can stop and the worker's end too."""
        stop = threading.Event()
        task = asyncio.create_task(self.index(document, stop=stop))
        self._running[document.id] = (task, stop, document)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            stop.set()
            task.cancel()
            raise
        finally:
            self._running.pop(document.id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("indexing document %s failed", document.id, exc_info=task.exception())

    # -- indexing ------------------------------------------------------------------------

    async def index(
        self,
        document: Document,
        progress: ChunkProgress | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        """Extracts, chunks, embeds and writes one document; any failure marks it failed with
        the reason and touches nothing else in the collection. `progress` hears how many of
        its chunks are embedded, first `(0, n)` once it is chunked. Past `max_seconds` it is
        stopped and failed; setting `stop` ends its reading (the caller cancels the rest)."""
        stop = stop or threading.Event()
        try:
            async with asyncio.timeout(self.max_seconds) as deadline:
                await self._index(document, progress, stop, deadline)
        except TimeoutError:
            stop.set()
            await self._fail(
                document,
                f"indexing took longer than {self.max_seconds:g} s, the limit "
                "(ALICERCE_KNOWLEDGE_MAX_INDEXING_S); split the document into smaller ones",
            )

    async def _index(
        self,
        document: Document,
        progress: ChunkProgress | None,
        stop: threading.Event,
        deadline: asyncio.Timeout,
    ) -> None:
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
            chunks = await asyncio.to_thread(self._chunks, document, data, stop)
            if len(chunks) > self.max_chunks:
                raise ExtractionError(
                    f"the document makes {len(chunks):,} chunks; the limit is "
                    f"{self.max_chunks:,} (ALICERCE_KNOWLEDGE_MAX_DOCUMENT_CHUNKS): split it "
                    "into smaller documents"
                )
            del data
            texts = [embedding_text(c) for c in chunks]
            if progress is not None:
                progress(0, len(texts))
            for _attempt in range(SWAP_ATTEMPTS):
                batch = await self._embed_for(collection, texts, progress, document.id)
                # The write is one short transaction in a thread: not cut by the deadline,
                # which would fail the document while its chunks are being committed.
                ends = deadline.when()
                deadline.reschedule(None)
                try:
                    await asyncio.to_thread(
                        functools.partial(
                            self.store.write_chunks,
                            document.id,
                            chunks,
                            batch.vectors,
                            batch.tokens,
                            embedding_version=collection.embedding_version,
                        )
                    )
                    break
                except EmbedderChanged:  # re-embedded meanwhile: embed it for the new embedder
                    deadline.reschedule(ends)
                    current = await asyncio.to_thread(
                        self.store.get_collection, document.account_id, document.collection_id
                    )
                    if current is None:
                        return
                    collection = current
            else:
                raise AlicerceError("the collection's embedder kept changing; retry the document")
            self._metrics.documents_indexed.inc()
            self._metrics.chunks_indexed.inc(len(chunks))

        except (ExtractionStopped, _Gone):  # deleted (here or in another process), or timed out
            return
        except (ExtractionError, AlicerceError) as exc:
            reason = exc.message if isinstance(exc, AlicerceError) else str(exc)
            await self._fail(document, reason)
            return
        except Exception:
            log.exception("indexing document %s failed", document.id)
            await self._fail(document, "an internal error stopped the indexing")
            return
        self._bill(
            collection.account_id,
            collection.embedding_model,
            batch.tokens,
            time.perf_counter() - started,
            f"Indexing of '{document.name}' into collection '{collection.name}' "
            f"with '{collection.embedding_model}'",
            {"collection_id": collection.id, "document_id": document.id},
        )

    async def _embed_for(
        self,
        collection: Collection,
        texts: list[str],
        progress: ChunkProgress | None,
        document_id: str,
    ) -> EmbeddingBatch:
        embedder = self._embedders.for_collection(
            collection.settings.get("embedding"), collection.name, indexing=True
        )
        slices = 0

        async def still_wanted() -> None:
            """A document deleted through another process stops within a few slices."""
            nonlocal slices
            slices += 1
            if slices % CHECK_EVERY_SLICES == 0 and not await asyncio.to_thread(
                self.store.is_indexing, document_id
            ):
                raise _Gone

        return await embed_passages(embedder, texts, progress, still_wanted)

    def _chunks(self, document: Document, data: bytes, stop: threading.Event) -> list[Chunk]:
        blocks = extract(
            data,
            document.name,
            document.media_type,
            max_bytes=self._max_document_bytes,
            stop=stop,
        )
        chunks = chunk(
            blocks,
            count_tokens=self._embedders.local.count_tokens,
            max_tokens=self._chunk_tokens,
            overlap_tokens=self._overlap_tokens,
        )
        if not chunks:
            raise ExtractionError("the document has no text")
        return chunks

    async def _fail(self, document: Document, reason: str) -> None:
        self._metrics.indexing_failures.inc()
        log.warning(
            "indexing document %s (%r) failed: %s",
            document.id,
            document.name,
            reason,
            extra={"document_id": document.id, "collection_id": document.collection_id},
        )
        try:
            await asyncio.to_thread(self.store.mark_failed, document.id, reason)
        except Exception:  # deleted meanwhile, or the database is gone: nothing to mark
            log.exception("could not mark document %s failed", document.id)

    # -- re-embedding --------------------------------------------------------------------

    async def reembed(self, job: Reembed) -> bool:
        """Embeds every chunk again and swaps the vectors and the collection's model at once
        (`reembeds`); a failure (the endpoint is down) changes no vector and leaves the
        re-embedding `failed` with the reason. True once swapped in."""
        started = time.perf_counter()
        claimed = await asyncio.to_thread(self.store.claim_reembed, job.collection_id, job.token)
        if claimed is None:  # superseded, done elsewhere, or the collection is gone
            return False
        collection, token = claimed
        target = collection.reembed.embedding if collection.reembed else None
        settings = {k: v for k, v in collection.settings.items() if k != "embedding"}
        if target:
            settings["embedding"] = target
            model, dimensions = target["model"], int(target["dimensions"])
        else:
            model, dimensions = self._embedders.local.model, self._embedders.local.dimensions
        try:
            embedder = self._embedders.for_collection(target, collection.name, indexing=True)
            tokens = await self._swap(job, token, embedder, model, dimensions, settings)
        except AlicerceError as exc:
            log.warning("collection %s not re-embedded: %s", job.collection_id, exc.message)
            await self._fail_reembed(job.collection_id, token, exc.message)
            return False
        except Exception:
            log.exception("collection %s not re-embedded", job.collection_id)
            await self._fail_reembed(
                job.collection_id, token, "an internal error stopped the re-embedding"
            )
            return False
        if tokens is None:
            return False
        self._bill(
            job.account_id,
            model,
            tokens,
            time.perf_counter() - started,
            f"Re-embedding of collection '{collection.name}' with '{model}'",
            {"collection_id": job.collection_id, "reembed": True},
        )
        return True

    async def _swap(
        self,
        job: Reembed,
        token: str,
        embedder: Embedder,
        model: str,
        dimensions: int,
        settings: dict[str, Any],
    ) -> int | None:
        """The tokens embedded once the new vectors are in; None if the job lost its
        collection or its token. A document written meanwhile makes the swap `stale`: its
        chunks are embedded too (the others are not embedded twice) and the swap tried again."""
        vectors: dict[str, np.ndarray] = {}
        tokens = 0
        for _attempt in range(SWAP_ATTEMPTS):
            found = await asyncio.to_thread(
                self.store.chunks_to_embed, job.account_id, job.collection_id
            )
            if found is None:
                return None
            generation, chunks = found
            missing = [c for c in chunks if c.id not in vectors]
            texts = [embedding_text(Chunk(c.text, c.heading_path, c.position, 0)) for c in missing]
            embedded = await embed_passages(embedder, texts)
            tokens += embedded.tokens
            vectors.update(zip((c.id for c in missing), embedded.vectors, strict=True))
            ids = [c.id for c in chunks]
            stacked = (
                np.vstack([vectors[i] for i in ids])
                if ids
                else np.empty((0, dimensions), dtype=np.float32)
            )
            swap = await asyncio.to_thread(
                functools.partial(
                    self.store.replace_vectors,
                    job.account_id,
                    job.collection_id,
                    ids,
                    stacked,
                    embedding_model=model,
                    dimensions=dimensions,
                    settings=settings,
                    token=token,
                    generation=generation,
                )
            )
            if swap == "done":
                return tokens
            if swap == "superseded":
                return None
        raise AlicerceError("the collection's documents kept changing; retry the re-embedding")

    async def _fail_reembed(self, collection_id: str, token: str, reason: str) -> None:
        try:
            await asyncio.to_thread(self.store.fail_reembed, collection_id, token, reason)
        except Exception:  # the database is gone: a restart resumes it (it stays running)
            log.exception("could not mark the re-embedding of %s failed", collection_id)

    def _bill(
        self,
        account_id: str,
        model: str,
        tokens: int,
        seconds: float,
        description: str,
        metadata: dict[str, Any],
    ) -> None:
        """One ledger record per indexed document or re-embedding, so `/usage` sums it like a
        request."""
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
