"""The indexing worker (`alicerce.knowledge.indexer`): resuming what a stopped process left,
several processes sharing one store, re-embedding, failures, billing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from alicerce.keys import AccountCreate
from alicerce.knowledge.indexer import PASSAGE_SLICE, Reembed
from alicerce.knowledge.store import Collection, Document
from alicerce.services import Services
from tests import conftest
from tests.test_knowledge_api import RELEASE_NOTES


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
