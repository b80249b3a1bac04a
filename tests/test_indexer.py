"""The indexing worker (`alicerce.knowledge.indexer`): resuming what a stopped process left,
several processes sharing one store, re-embedding (resumed, and never a mix of two embedders),
failures, billing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from alicerce.keys import AccountCreate
from alicerce.knowledge.indexer import PASSAGE_SLICE, Reembed
from alicerce.knowledge.store import Collection, Document
from alicerce.services import Services
from alicerce.store.tables import ChunkRow
from tests import conftest
from tests.test_knowledge_api import HASH_DIMENSIONS, MANUAL_PT, RELEASE_NOTES, HashEmbedder


async def _stored(services: Services, account: str) -> tuple[str, Collection, Document]:
    """A new account's collection with the release notes stored and queued, not yet indexed
    (as a process that stopped right after the upload left them)."""
    account_id = services.keys.create_account(AccountCreate(name=account))["id"]
    collection = await services.knowledge.create_collection(account_id, {"name": "kb"})
    document, created = await services.knowledge.add_file(
        account_id,
        collection.id,
        name="zephyr.md",
        data=RELEASE_NOTES.encode(),
        media_type="text/markdown",
        enqueue=False,
    )
    assert created and document.status == "queued"
    return account_id, collection, document


def test_unfinished_documents_are_indexed_at_start(tmp_path: Path) -> None:
    """A document stored but never indexed (the process died) is indexed by the next start."""

    async def scenario() -> tuple[str, dict[str, Any]]:
        services = Services.build(conftest.test_settings(tmp_path))
        account_id, collection, document = await _stored(services, "resume")  # then the "crash"
        services.db.dispose()

        restarted = Services.build(conftest.test_settings(tmp_path))
        await restarted.start()
        try:
            await restarted.knowledge.indexer.idle()
            done = await restarted.knowledge.get_document(account_id, collection.id, document.id)
            result = await restarted.knowledge.search(account_id, [collection.id], "mesh roaming")
        finally:
            await restarted.close()
        return done.status, {"hits": [h.document_id for h in result.hits], "id": document.id}

    status, found = asyncio.run(scenario())
    assert status == "ready"
    assert found["hits"][0] == found["id"]


def test_two_processes_resuming_one_document_index_it_once(tmp_path: Path) -> None:
    """`serve --workers 2`: both workers find the same unfinished document at start."""

    async def scenario() -> tuple[list[str], int]:
        first = Services.build(conftest.test_settings(tmp_path))
        second = Services.build(conftest.test_settings(tmp_path))
        account_id, collection, document = await _stored(first, "workers")
        [seen_by_first] = first.knowledge.store.unfinished_documents()
        [seen_by_second] = second.knowledge.store.unfinished_documents()
        await asyncio.gather(
            first.knowledge.indexer.index(seen_by_first),
            second.knowledge.indexer.index(seen_by_second),
        )
        for services in (first, second):
            await services.request_log.close()
        done = await first.knowledge.get_document(account_id, collection.id, document.id)
        usage = first.usage.totals(account_id, start=None, end=None, group_by="sku")
        for services in (first, second):
            services.db.dispose()
        return [done.status], usage["data"][0]["requests"]

    statuses, indexing_records = asyncio.run(scenario())
    assert statuses == ["ready"]
    assert indexing_records == 1


def test_a_failed_reembedding_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The new endpoint is unreachable: the collection keeps its model and its vectors, and
    says that its re-embedding failed, and why."""

    async def scenario() -> tuple[bool, Collection, list[str]]:
        services = Services.build(conftest.test_settings(tmp_path))
        await services.http.start()
        try:
            knowledge = services.knowledge
            account_id, collection, document = await _stored(services, "reembed")
            await knowledge.indexer.index(document)
            endpoint = {"base_url": "http://127.0.0.1:9/v1", "model": "gone", "dimensions": 8}
            state = await knowledge.reembed(account_id, collection.id, {"embedding": endpoint})
            done = await knowledge.indexer.reembed(Reembed(account_id, collection.id, state.id))
            after = await knowledge.get_collection(account_id, collection.id)
            found = await knowledge.search(account_id, [collection.id], "mesh roaming")
        finally:
            await services.request_log.close()
            await services.http.close()
            services.db.dispose()
        return done, after, [h.document_id for h in found.hits]

    done, after, hits = asyncio.run(scenario())
    assert done is False
    assert "is unreachable" in caplog.text  # told why, in the log
    assert (after.embedding_model, after.dimensions) == ("@local/multilingual-e5-small", 384)
    assert after.reembed is not None and after.reembed.status == "failed"
    assert after.reembed.error is not None and "is unreachable" in after.reembed.error
    assert hits and len(set(hits)) == 1


def test_a_document_whose_collection_was_deleted_is_skipped(tmp_path: Path) -> None:
    async def scenario() -> int:
        services = Services.build(conftest.test_settings(tmp_path))
        knowledge = services.knowledge
        account_id, collection, document = await _stored(services, "deleted")
        await knowledge.delete_collection(account_id, collection.id)
        await knowledge.indexer.index(document)  # nothing to do, nothing billed
        await services.request_log.close()
        usage = services.usage.totals(account_id, start=None, end=None, group_by="sku")
        services.db.dispose()
        return len(usage["data"])

    assert asyncio.run(scenario()) == 0


def test_indexing_tells_its_progress_slice_by_slice(tmp_path: Path) -> None:
    """`alicerce ingest`'s bar moves within a long document: the indexer says how many of its
    chunks are embedded, once it has chunked it and after each slice."""
    settings = conftest.test_settings(
        tmp_path, knowledge_chunk_tokens=32, knowledge_chunk_overlap_tokens=0
    )
    text = "\n\n".join(
        f"Paragraph {n} of the Zephyr manual says that mesh roaming works on channel {n}."
        for n in range(12)
    )

    async def scenario() -> tuple[list[tuple[int, int]], int]:
        services = Services.build(settings)
        knowledge = services.knowledge
        try:
            account_id = services.keys.create_account(AccountCreate(name="progress"))["id"]
            collection = await knowledge.create_collection(account_id, {"name": "kb"})
            document, _ = await knowledge.add_file(
                account_id,
                collection.id,
                name="zephyr.md",
                data=text.encode(),
                media_type="text/markdown",
                enqueue=False,
            )
            told: list[tuple[int, int]] = []
            await knowledge.indexer.index(document, lambda done, total: told.append((done, total)))
            await services.request_log.close()
            done = await knowledge.get_document(account_id, collection.id, document.id)
        finally:
            services.db.dispose()
        return told, done.chunks

    told, chunks = asyncio.run(scenario())
    assert chunks > PASSAGE_SLICE  # more than one slice
    starts = list(range(0, chunks, PASSAGE_SLICE))
    assert told == [(0, chunks)] + [(min(s + PASSAGE_SLICE, chunks), chunks) for s in starts]


# -- re-embeddings: resumed, and never a mix of two embedders ---------------------------------


class GatedEmbedder(HashEmbedder):
    """The hash embeddings server of `test_knowledge_api`, whose first request, once armed,
    waits for the test's word: what another worker does meanwhile is then known."""

    def __init__(self) -> None:
        self.hit, self.release = threading.Event(), threading.Event()
        self.armed = False
        super().__init__()

    async def _embeddings(self, request: Request) -> Response:
        if self.armed:
            self.armed = False
            self.hit.set()
            await asyncio.to_thread(self.release.wait, 60)
        return await super()._embeddings(request)


@pytest.fixture
def gated() -> Iterator[GatedEmbedder]:
    embedder = GatedEmbedder()
    embedder.server.start()
    yield embedder
    embedder.release.set()
    embedder.server.stop()


def _vector_bytes(services: Services, collection_id: str) -> set[int]:
    with services.db.session() as session:
        rows = session.execute(
            sa.select(sa.func.length(ChunkRow.vector)).where(
                ChunkRow.collection_id == collection_id
            )
        ).scalars()
        return set(rows)


async def _two_documents(
    services: Services, embedding: dict[str, Any] | None
) -> tuple[str, Collection, Document, Document]:
    """A collection with one document indexed and one stored, not yet indexed."""
    knowledge = services.knowledge
    account_id = services.keys.create_account(AccountCreate(name="mix"))["id"]
    spec: dict[str, Any] = {"name": "kb"} | ({"embedding": embedding} if embedding else {})
    collection = await knowledge.create_collection(account_id, spec)
    documents = []
    for name, text in (("aurora.md", MANUAL_PT), ("zephyr.md", RELEASE_NOTES)):
        document, _ = await knowledge.add_file(
            account_id,
            collection.id,
            name=name,
            data=text.encode(),
            media_type="text/markdown",
            enqueue=False,
        )
        documents.append(document)
    await knowledge.indexer.index(documents[0])
    return account_id, collection, documents[0], documents[1]


def test_a_document_embedded_across_a_swap_is_embedded_again(
    tmp_path: Path, gated: GatedEmbedder
) -> None:
    """The document was embedded with the old embedder while the re-embedding swapped in the
    new one: it is not written with the old vectors, but embedded again."""

    async def scenario() -> tuple[str, set[int], list[str], str]:
        services = Services.build(conftest.test_settings(tmp_path, upstream_read_timeout_s=30))
        await services.http.start()
        knowledge = services.knowledge
        try:
            account_id, collection, _, late = await _two_documents(services, gated.endpoint())
            gated.armed = True
            indexing = asyncio.create_task(knowledge.indexer.index(late))
            await asyncio.to_thread(gated.hit.wait, 60)  # its vectors are being made
            state = await knowledge.reembed(account_id, collection.id, {})  # to the local model
            assert await knowledge.indexer.reembed(Reembed(account_id, collection.id, state.id))
            gated.release.set()
            await indexing
            done = await knowledge.get_document(account_id, collection.id, late.id)
            after = await knowledge.get_collection(account_id, collection.id)
            found = await knowledge.search(
                account_id, [collection.id], "mesh roaming", mode="vector"
            )
        finally:
            await services.request_log.close()
            await services.http.close()
            services.db.dispose()
        sizes = _vector_bytes(services, collection.id)
        return done.status, sizes, [h.document_id for h in found.hits], after.embedding_model

    status, sizes, hits, model = asyncio.run(scenario())
    assert status == "ready" and model == "@local/multilingual-e5-small"
    assert sizes == {4 * 384}  # every chunk the local model's: none of the endpoint's 64
    assert len(set(hits)) == 2  # both documents found by their new vectors


def test_a_document_written_during_a_reembedding_is_reembedded_before_the_swap(
    tmp_path: Path, gated: GatedEmbedder
) -> None:
    async def scenario() -> tuple[bool, set[int], int, int, str]:
        services = Services.build(conftest.test_settings(tmp_path, upstream_read_timeout_s=30))
        await services.http.start()
        knowledge = services.knowledge
        try:
            account_id, collection, _, late = await _two_documents(services, None)
            gated.armed = True
            state = await knowledge.reembed(
                account_id, collection.id, {"embedding": gated.endpoint()}
            )
            job = Reembed(account_id, collection.id, state.id)
            reembedding = asyncio.create_task(knowledge.indexer.reembed(job))
            await asyncio.to_thread(gated.hit.wait, 60)  # the first chunks are being embedded
            await knowledge.indexer.index(late)  # with the local model, the current one
            gated.release.set()
            swapped = await reembedding
            after = await knowledge.get_collection(account_id, collection.id)
            await services.request_log.close()
            records = services.usage.totals(account_id, start=None, end=None, group_by="sku")
        finally:
            await services.http.close()
            services.db.dispose()
        chunks = sum(d.chunks for d in await knowledge.list_documents(account_id, collection.id))
        return (
            swapped,
            _vector_bytes(services, collection.id),
            chunks,
            records["data"][0]["requests"],
            after.embedding_model,
        )

    swapped, sizes, chunks, records, model = asyncio.run(scenario())
    assert swapped and model == "hash-64"
    assert sizes == {4 * HASH_DIMENSIONS} and chunks > 0  # the late document's chunks too
    assert records == 3  # two documents and one re-embedding, each billed once


def test_a_reembedding_left_running_is_resumed_at_start_once(tmp_path: Path) -> None:
    """The process died while re-embedding: the next start finishes it; a worker still holding
    the old token (another process, slower) can no longer claim it."""

    async def scenario() -> tuple[bool, Collection, int]:
        services = Services.build(conftest.test_settings(tmp_path))
        account_id, collection, document = await _stored(services, "resumed")
        await services.knowledge.indexer.index(document)
        state = await services.knowledge.reembed(account_id, collection.id, {})
        claimed = services.knowledge.store.claim_reembed(collection.id, state.id)
        assert claimed is not None  # then the "crash", the re-embedding `running`
        await services.request_log.close()
        services.db.dispose()

        restarted = Services.build(conftest.test_settings(tmp_path))
        await restarted.start()
        try:
            await restarted.knowledge.indexer.idle()
            stale = restarted.knowledge.store.claim_reembed(collection.id, state.id)
            after = await restarted.knowledge.get_collection(account_id, collection.id)
        finally:
            await restarted.close()
        return stale is None, after, claimed[0].embedding_version

    stale_refused, after, before = asyncio.run(scenario())
    assert stale_refused
    assert after.reembed is None and after.embedding_version == before + 1
