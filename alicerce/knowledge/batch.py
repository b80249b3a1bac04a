"""Ingesting files from disk in this process, one after the other (`alicerce ingest`, the demo).

Unlike uploads to the server, nothing is left to a background worker: each file is stored,
indexed and reported before the next, so the command ends when the collection is ready.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alicerce.errors import AlicerceError
from alicerce.knowledge.extract import SUPPORTED_SUFFIXES
from alicerce.knowledge.service import KnowledgeService
from alicerce.knowledge.store import Collection, Document


@dataclass
class IngestReport:
    indexed: list[Document] = field(default_factory=list)
    unchanged: list[Document] = field(default_factory=list)  # same content already there
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return sum(d.chunks for d in self.indexed)

    @property
    def tokens(self) -> int:
        return sum(d.tokens for d in self.indexed)


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the supported files under the folders named (recursively, sorted;
    hidden files and folders skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))


async def collection_named(knowledge: KnowledgeService, account_id: str, name: str) -> Collection:
    """The account's collection called `name`, made (with the local embedder) if missing."""
    for collection in await knowledge.list_collections(account_id):
        if collection.name == name:
            return collection
    return await knowledge.create_collection(account_id, {"name": name})


async def ingest_files(
    knowledge: KnowledgeService,
    collection: Collection,
    files: list[Path],
    *,
    progress: Callable[[Path], None] = lambda _: None,
) -> IngestReport:
    """Stores and indexes each file now; a bad file is reported and the rest go on."""
    report = IngestReport()
    for path in files:
        try:
            data = path.read_bytes()
            document, created = await knowledge.add_file(
                collection.account_id,
                collection.id,
                name=path.name,
                data=data,
                media_type=mimetypes.guess_type(path.name)[0],
                source_url=path.resolve().as_uri(),
                enqueue=False,
            )
            indexed_now = created or document.status in ("queued", "indexing")
            if indexed_now:  # also finishes what a stopped server left unfinished
                await knowledge.indexer.index(document)
                document = await knowledge.get_document(
                    collection.account_id, collection.id, document.id
                )
        except OSError as exc:
            report.failed.append((path, exc.strerror or str(exc)))
        except AlicerceError as exc:
            report.failed.append((path, exc.message))
        else:
            if document.status == "failed":
                report.failed.append((path, document.error or "failed"))
            elif indexed_now:
                report.indexed.append(document)
            else:
                report.unchanged.append(document)
        progress(path)
    return report
