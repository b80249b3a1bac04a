"""Ingesting files from disk in this process, one after the other (`alicerce ingest`, the demo).

Unlike uploads to the server, nothing is left to a background worker: each file is stored,
indexed and reported before the next, so the command ends when the collection is ready. What
happens is told to a plain callable as it happens (`IngestStep`); drawing it is the caller's.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from alicerce.errors import AlicerceError, InvalidRequest, RequestTooLarge
from alicerce.knowledge.extract import SUPPORTED_SUFFIXES, unsupported_suffix
from alicerce.knowledge.service import KnowledgeService
from alicerce.knowledge.store import Collection, Document

Outcome = Literal["indexed", "unchanged", "skipped", "failed"]
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestStep:
    """One thing `ingest_files` did: a file's chunks embedded so far (`outcome` None, told
    after each slice of a long file), or a file done, with its outcome."""

    path: Path
    size: int  # bytes on disk
    chunks_done: int = 0
    chunks_total: int = 0
    outcome: Outcome | None = None
    reason: str = ""  # why it was skipped or failed
    document: Document | None = None  # the document indexed, or the one already holding it


@dataclass
class IngestReport:
    indexed: list[Document] = field(default_factory=list)
    unchanged: list[Document] = field(default_factory=list)  # same content already there
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # not stored: type, size
    failed: list[tuple[Path, str]] = field(default_factory=list)  # unreadable, not indexable

    @property
    def chunks(self) -> int:
        return sum(d.chunks for d in self.indexed)

    @property
    def tokens(self) -> int:
        return sum(d.tokens for d in self.indexed)


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and under the folders named (recursively, sorted) the files with a
    type suffix: supported ones to ingest, others (`.xls`, `.png`) to be reported as skipped.
    Hidden files and folders, and names with no type suffix (`LICENSE`), are left out."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and (p.suffix.lower() in SUPPORTED_SUFFIXES or unsupported_suffix(p.name))
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))


async def collection_named(knowledge: KnowledgeService, account_id: str, ref: str) -> Collection:
    """The account's collection with id or name `ref` (names are unique in an account), made
    with that name (and the local embedder) if there is none."""
    for collection in await knowledge.list_collections(account_id):
        if ref in (collection.id, collection.name):
            return collection
    return await knowledge.create_collection(account_id, {"name": ref})


def _size(count: int) -> str:
    if count >= _MB:
        return f"{count / _MB:.1f} MB"
    return f"{count / 1024:.1f} KB" if count >= 1024 else f"{count} bytes"


def refusal(path: Path, size: int, limit: int) -> str | None:
    """Why the file is skipped before it is read, if it is: what the server would refuse at
    the upload (a 2 GB video is not read into memory to be told so)."""
    suffix = unsupported_suffix(path.name)
    if suffix is not None:
        return f"unsupported type {suffix!r}"
    if size > limit:
        return f"too big: {_size(size)}, over {_size(limit)} (ALICERCE_MAX_DOCUMENT_BYTES)"
    if size == 0:
        return "empty"
    return None


async def ingest_files(
    knowledge: KnowledgeService,
    collection: Collection,
    files: list[Path],
    *,
    progress: Callable[[IngestStep], None] = lambda _: None,
) -> IngestReport:
    """Stores and indexes each file now; a file refused (type, size, empty) is skipped, a bad
    file is reported as failed, and the rest go on."""
    report = IngestReport()
    for path in files:
        step = await _ingest_one(knowledge, collection, path, progress)
        if step.outcome == "indexed" and step.document is not None:
            report.indexed.append(step.document)
        elif step.outcome == "unchanged" and step.document is not None:
            report.unchanged.append(step.document)
        elif step.outcome == "skipped":
            report.skipped.append((path, step.reason))
        else:
            report.failed.append((path, step.reason))
        progress(step)
    return report


def _read(path: Path, limit: int) -> tuple[int, bytes | str, str]:
    """The file's size, its bytes or why it is skipped unread, and its URI (a thread's work:
    a disk may be slow)."""
    size = path.stat().st_size
    refused = refusal(path, size, limit)
    return size, refused if refused is not None else path.read_bytes(), path.resolve().as_uri()


async def _ingest_one(
    knowledge: KnowledgeService,
    collection: Collection,
    path: Path,
    progress: Callable[[IngestStep], None],
) -> IngestStep:
    size = 0
    try:
        size, data, uri = await asyncio.to_thread(_read, path, knowledge.max_document_bytes)
        if isinstance(data, str):
            return IngestStep(path, size, outcome="skipped", reason=data)
        document, created = await knowledge.add_file(
            collection.account_id,
            collection.id,
            name=path.name,
            data=data,
            media_type=mimetypes.guess_type(path.name)[0],
            source_url=uri,
            enqueue=False,
        )
        indexed_now = created or document.status in ("queued", "indexing")
        if indexed_now:  # also finishes what a stopped server left unfinished
            await knowledge.indexer.index(
                document, lambda done, total: progress(IngestStep(path, size, done, total))
            )
            document = await knowledge.get_document(
                collection.account_id, collection.id, document.id
            )
    except OSError as exc:
        return IngestStep(path, size, outcome="failed", reason=exc.strerror or str(exc))
    except (RequestTooLarge, InvalidRequest) as exc:  # what the server refuses at the upload
        return IngestStep(path, size, outcome="skipped", reason=exc.message)
    except AlicerceError as exc:
        return IngestStep(path, size, outcome="failed", reason=exc.message)
    if document.status == "failed":
        return IngestStep(path, size, outcome="failed", reason=document.error or "failed")
    outcome: Outcome = "indexed" if indexed_now else "unchanged"
    chunks = document.chunks
    return IngestStep(path, size, chunks, chunks, outcome=outcome, document=document)
