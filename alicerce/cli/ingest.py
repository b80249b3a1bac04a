"""`alicerce ingest`: files and folders indexed into a collection in this process, with a
progress bar, a line for every file not indexed (and why), and a summary at the end."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import click

from alicerce.cli import refs
from alicerce.cli.context import opened
from alicerce.cli.output import plural

if TYPE_CHECKING:
    from alicerce.knowledge.batch import IngestReport, IngestStep
    from alicerce.knowledge.store import Collection
    from alicerce.services import Services

_NAME_WIDTH = 30


class IngestProgress:
    """Draws `ingest_files`' steps on standard error. On a terminal: a bar over the bytes to
    read (they predict the time better than a count of files of any size), with files done,
    chunks embedded, chunks per second and the ETA, moving within a long file as its chunks
    are embedded. Elsewhere (a pipe, a log): a line per file. A file skipped, unchanged or
    failed gets a line either way."""

    def __init__(self, files: list[Path], label: str, *, limit: int) -> None:
        self._stream: IO[str] = sys.stderr
        self._terminal = self._stream.isatty()
        self._weights = {path: _weight(path, limit) for path in files}
        self._files = len(files)
        self._done = 0
        self._chunks = 0  # embedded so far, the current file's included
        self._file_chunks = 0  # of the current file, counted in `_chunks`
        self._credited = 0  # bytes of the current file the bar has moved by
        self._started = time.monotonic()
        self._bar: Any = click.progressbar(
            length=max(1, sum(self._weights.values())),
            label=label,
            file=self._stream,
            width=0,  # as wide as the terminal leaves room for
            item_show_func=self._info,
        )

    def __enter__(self) -> IngestProgress:
        self._bar.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(kind, exc, tb)

    def __call__(self, step: IngestStep) -> None:
        if step.outcome is None:  # some chunks of the current file embedded
            self._count_chunks(step.chunks_done)
            weight = self._weights.get(step.path, 0)
            self._advance(weight * step.chunks_done // max(1, step.chunks_total), step.path)
            return
        self._done += 1
        if step.outcome == "indexed":
            self._count_chunks(step.chunks_total)
        self._file_chunks = 0
        if not self._terminal or step.outcome != "indexed":
            self._say(f"[{self._done}/{self._files}] {step.outcome} {step.path}: {_detail(step)}")
        self._advance(self._weights.get(step.path, 0), step.path)
        self._credited = 0

    def _count_chunks(self, done: int) -> None:
        self._chunks += done - self._file_chunks
        self._file_chunks = done

    def _advance(self, credited: int, path: Path) -> None:
        """The bar moved to `credited` bytes of the current file, and drawn again (also when
        it did not move: the counts beside it did)."""
        steps = credited - self._credited
        if steps > 0:
            self._bar.update(steps, path)
            self._credited = credited
        else:
            self._bar.current_item = path
            self._bar.render_progress()

    def _say(self, line: str) -> None:
        if self._terminal:  # over the bar, which the next update draws again below
            line = "\r\x1b[2K" + line
        click.echo(line, file=self._stream)

    def _info(self, path: Path | None) -> str:
        rate = self._chunks / max(time.monotonic() - self._started, 1e-6)
        name = path.name if path else ""
        if len(name) > _NAME_WIDTH:
            name = name[: _NAME_WIDTH - 1] + "…"
        done = f"{self._done}/{self._files} files"
        return f"{done}  {self._chunks} chunks  {rate:.1f} chunks/s  {name}"


def _weight(path: Path, limit: int) -> int:
    """The bytes the bar counts for a file: none for one that will be skipped unread."""
    from alicerce.knowledge.batch import refusal

    try:
        size = path.stat().st_size
    except OSError:
        return 0
    return 0 if refusal(path, size, limit) else size


def _detail(step: IngestStep) -> str:
    if step.outcome == "indexed":
        return plural(step.chunks_total, "chunk")
    if step.outcome == "unchanged":
        same = step.document.name if step.document else None
        elsewhere = f" (as {same!r})" if same and same != step.path.name else ""
        return f"the collection holds this content already{elsewhere}"
    return step.reason


def ingest_paths(
    services: Services, account_id: str, collection: str, paths: list[Path]
) -> tuple[Collection, IngestReport]:
    """Indexes `paths` into the account's collection `collection` (an id or a name; made with
    that name if missing), in this process, with progress on standard error."""
    from alicerce.knowledge.batch import collect_files, collection_named, ingest_files

    files = collect_files(paths)
    services.embedders.index_in_foreground()

    async def run() -> tuple[Collection, IngestReport]:
        await services.http.start()
        try:
            target = await collection_named(services.knowledge, account_id, collection)
            label = f"Indexing into '{target.name}'"
            limit = services.knowledge.max_document_bytes
            with IngestProgress(files, label, limit=limit) as progress:
                report = await ingest_files(services.knowledge, target, files, progress=progress)
            return target, report
        finally:
            await services.request_log.close()  # the indexing line items
            await services.http.close()

    return asyncio.run(run())


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--collection", "-c", required=True, help="The collection's id or name (made if missing)."
)
@refs.account_option
def ingest(paths: tuple[Path, ...], collection: str, account: str | None) -> None:
    """Index files or folders into a knowledge collection, here and now (no server needed).

    Folders are read recursively for .txt .md .html .htm .pdf .docx .json .csv files; files
    of other types in them are listed as skipped, hidden ones left out. A file too big
    (ALICERCE_MAX_DOCUMENT_BYTES) or empty is skipped, one whose content the collection holds
    already is unchanged; each gets a line. Exits 1 if any file failed to be read or indexed.
    """
    started = time.monotonic()
    with opened() as parts:
        account_id = refs.account(parts, account)["id"]
        target, report = ingest_paths(parts.services, account_id, collection, list(paths))
    click.echo(
        f"Collection '{target.name}' ({target.id}): {len(report.indexed)} indexed "
        f"({plural(report.chunks, 'chunk')}, {plural(report.tokens, 'token')}), "
        f"{len(report.unchanged)} unchanged, "
        f"{len(report.skipped)} skipped, {len(report.failed)} failed, "
        f"in {time.monotonic() - started:.1f} s."
    )
    if report.failed:
        sys.exit(1)
