"""Knowledge ingestion throughput, end to end: real documents into a fresh collection through
`KnowledgeService`, as the HTTP API and `alicerce ingest` do it.

Every run is a fresh SQLite database in a temporary directory; each document goes the whole
way: stored, extracted, chunked (the server's default 256 tokens, 32 of overlap), embedded, and
written in the store's one transaction (chunks, FTS5 rows, vectors, the HNSW graph insert).

- Documents are real and not ours: the Debian FAQ's HTML pages in English and Portuguese
  (`apt-get install debian-faq debian-faq-pt`) and the Python 3.11 docs' reST sources, read as
  plain text (`apt-get install python3.11-doc`). The selection is fixed: the three sources taken
  in turn, each in sorted order, the Python docs at an even stride across their sorted paths so
  that every part of them (C API, library, reference, tutorial, ...) is in.
- Configurations: `alicerce ingest`'s (`ingest_files` after `index_in_foreground()`: the local
  e5 engine with all cores), the server's (the background worker; documents embedded by the
  one-thread indexing engine that shares the main engine's model), and the pipeline's own
  ceiling: the same two paths with an embedder that costs nothing (deterministic unit vectors,
  token counts from the local tokenizer), which leaves what the store, extraction and chunking
  cost.
- The collection's graph is loaded (one search) before each run, as in a server that searches
  it, so every write inserts into the graph; `alicerce ingest` alone never loads it (the server
  builds it at its first search).

    uv run --frozen python bench/ingestion.py [--documents 30] [--chunk-tokens 256 512] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import mimetypes
import os
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alicerce.catalog import Catalog  # noqa: E402
from alicerce.clock import utcnow  # noqa: E402
from alicerce.e5.tokenizer import PASSAGE_PREFIX, QUERY_PREFIX  # noqa: E402
from alicerce.embedders import EmbedderRegistry  # noqa: E402
from alicerce.embeddings import (  # noqa: E402
    LOCAL_DIMENSIONS,
    LOCAL_EMBEDDING_MODEL,
    EmbeddingBatch,
    Kind,
    LocalE5Embedder,
)
from alicerce.knowledge.batch import ingest_files  # noqa: E402
from alicerce.knowledge.chunking import Chunk  # noqa: E402
from alicerce.knowledge.indexer import Indexer  # noqa: E402
from alicerce.knowledge.service import KnowledgeService  # noqa: E402
from alicerce.knowledge.store import ChunkLike, Collection, Document, KnowledgeStore  # noqa: E402
from alicerce.ledger import UsageLedger  # noqa: E402
from alicerce.limits import Limiter, MemoryBackend  # noqa: E402
from alicerce.metrics import Metrics  # noqa: E402
from alicerce.request_log import RequestLog  # noqa: E402
from alicerce.security import CredentialCipher  # noqa: E402
from alicerce.store import Database  # noqa: E402
from alicerce.store.tables import AccountRow  # noqa: E402
from alicerce.upstreams.http import HttpClients  # noqa: E402

NO_LIMITS = Limiter(MemoryBackend(), lambda _key, _since: Decimal(0))  # keys without limits

DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
MARK_START, MARK_END = "<!-- ingestion:start -->", "<!-- ingestion:end -->"
SECTION = "## Knowledge ingestion"
OVERLAP_TOKENS = 32  # the server's default (`ALICERCE_KNOWLEDGE_CHUNK_OVERLAP_TOKENS`)
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024  # the server's default
TARGET_CHUNKS_PER_S = 100

# multilingual-e5-small's shape, for the arithmetic bound.
LAYERS, HIDDEN, FFN = 12, 384, 1536
MATRIX_MACS = LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)  # QKV, output, FFN: 21.2e6/token
E5_WINDOW = 510  # content tokens a forward pass reads between <s> and </s>
INT8_MACS_PER_CYCLE = 32  # one core, vpmaddubsw + vpmaddwd on 256-bit registers


# -- timing the service's steps -------------------------------------------------------------


@dataclass
class Timings:
    """Seconds spent in each step of `Indexer.index`, summed over a run's documents."""

    extract_s: float = 0.0
    extracted: int = 0  # documents that went through `_chunks`
    embed_s: float = 0.0
    write_s: float = 0.0
    written: int = 0


class TimedE5(LocalE5Embedder):
    """The local engine with its `embed` calls timed, as the service awaits them."""

    def __init__(
        self, *, threads: int | None = None, sharing: LocalE5Embedder | None = None
    ) -> None:
        super().__init__(threads=threads, sharing=sharing)
        self.timings = Timings()

    async def embed(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch:
        started = time.perf_counter()
        try:
            return await super().embed(texts, kind=kind)
        finally:
            self.timings.embed_s += time.perf_counter() - started


class FreeEmbedder:
    """An `Embedder` that costs nothing: a unit vector per text drawn from its hash, returned at
    once, with the tokens the local model would have read (so the rates compare)."""

    model = LOCAL_EMBEDDING_MODEL
    dimensions = LOCAL_DIMENSIONS

    def __init__(self, tokenizer: LocalE5Embedder) -> None:
        self._tokenizer = tokenizer
        self.timings = Timings()

    async def embed(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch:
        started = time.perf_counter()
        prefix = PASSAGE_PREFIX if kind == "passage" else QUERY_PREFIX
        vectors = np.empty((len(texts), self.dimensions), np.float32)
        tokens = 0
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())
            vector = np.random.default_rng(seed).standard_normal(self.dimensions)
            vectors[row] = vector / np.linalg.norm(vector)
            content = self._tokenizer.count_tokens(prefix + text)
            tokens += content + 2 * max(1, -(-content // E5_WINDOW))  # <s> </s> per window
        self.timings.embed_s += time.perf_counter() - started
        return EmbeddingBatch(vectors, tokens)


class TimedStore(KnowledgeStore):
    """The store with its one-transaction write timed."""

    def __init__(self, db: Database, *, index_dir: Path, timings: Timings) -> None:
        super().__init__(db, index_dir=index_dir)
        self.timings = timings

    def write_chunks(
        self,
        document_id: str,
        chunks: Sequence[ChunkLike],
        vectors: np.ndarray,
        tokens: int,
        *,
        embedding_version: int | None = None,
    ) -> None:
        started = time.perf_counter()
        super().write_chunks(
            document_id, chunks, vectors, tokens, embedding_version=embedding_version
        )
        self.timings.write_s += time.perf_counter() - started
        self.timings.written += 1


class TimedIndexer(Indexer):
    """The indexer with extraction + chunking timed. `_chunks` is private: if it is renamed,
    nothing counts here and the report shows "—" for the step instead of a wrong number."""

    timings: Timings

    def _chunks(self, document: Document, data: bytes, stop: threading.Event) -> list[Chunk]:
        started = time.perf_counter()
        try:
            return super()._chunks(document, data, stop)
        finally:
            self.timings.extract_s += time.perf_counter() - started
            self.timings.extracted += 1


# -- documents ------------------------------------------------------------------------------


def sources() -> tuple[list[Path], list[Path], list[Path]]:
    """The English and Portuguese Debian FAQ pages and the Python docs' sources, sorted."""
    english = sorted(DEBIAN_FAQ.glob("*.en.html"))  # `basic-defs.html` etc. are symlinks to these
    portuguese = sorted((DEBIAN_FAQ / "pt").glob("*.pt.html"))
    python = sorted(PYTHON_DOCS.rglob("*.txt"))
    missing = [
        package
        for package, found in (
            ("debian-faq", english),
            ("debian-faq-pt", portuguese),
            ("python3.11-doc", python),
        )
        if not found
    ]
    if missing:
        sys.exit(
            f"needs the documents of {', '.join(missing)}: apt-get install {' '.join(missing)}"
        )
    return english, portuguese, python


def select(count: int) -> list[Path]:
    """`count` documents: the sources in turn (English FAQ, Portuguese FAQ, Python docs), the
    Python docs spread evenly over their sorted paths. The same `count` gives the same files."""
    lists = sources()
    available = sum(len(found) for found in lists)
    if not 1 <= count <= available:
        sys.exit(f"--documents must be between 1 and {available}")
    taken = [0, 0, 0]
    order: list[int] = []
    while len(order) < count:
        for source, found in enumerate(lists):
            if len(order) < count and taken[source] < len(found):
                order.append(source)
                taken[source] += 1
    python = lists[2]
    spread = [python[i * len(python) // taken[2]] for i in range(taken[2])] if taken[2] else []
    picked = [list(lists[0]), list(lists[1]), spread]
    return [picked[source].pop(0) for source in order]


# -- one run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    flow: str  # "ingest": `ingest_files` in the foreground; "server": the background worker
    engine: str  # "e5 all cores" | "e5 one thread" | "free"


CONFIGS = (
    Config("ingest", "`alicerce ingest`: e5, all cores", "ingest", "e5 all cores"),
    Config("server", "server: one-thread indexing engine", "server", "e5 one thread"),
    Config("ceiling", "ceiling, `ingest` path: no-cost embedder", "ingest", "free"),
    Config("ceiling-server", "ceiling, server worker: no-cost embedder", "server", "free"),
)


@dataclass
class Run:
    config: Config
    chunk_tokens: int
    documents: int = 0
    chunks: int = 0
    tokens: int = 0  # what the model read: heading path, `passage: ` prefix, <s> </s> included
    failed: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    timings: Timings = field(default_factory=Timings)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.wall_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    def split(self) -> dict[str, float | None]:
        """Seconds per step; None for a step the run could not see."""
        t = self.timings
        extract = t.extract_s if t.extracted >= self.documents else None
        write = t.write_s if t.written >= self.documents else None
        known = [s for s in (extract, t.embed_s, write) if s is not None]
        other = self.wall_s - sum(known) if len(known) == 3 else None
        return {"extract": extract, "embed": t.embed_s, "write": write, "other": other}


@dataclass
class Engines:
    main: TimedE5  # the server's and `alicerce ingest`'s engine, all cores
    one_thread: TimedE5  # the server's indexing engine, sharing the main one's model
    free: FreeEmbedder


def measure(config: Config, chunk_tokens: int, files: list[Path], engines: Engines) -> Run:
    """One configuration on a fresh database; the wall time covers the uploads, the indexing
    and the flush of the indexing's ledger records."""
    run = Run(config, chunk_tokens)
    indexer = {"e5 all cores": engines.main, "e5 one thread": engines.one_thread}.get(
        config.engine, engines.free
    )
    for embedder in (engines.main, engines.one_thread, engines.free):
        embedder.timings = run.timings
    with tempfile.TemporaryDirectory(prefix="alicerce-ingest-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'alicerce.db'}")
        db.migrate()
        account = "bench-" + os.urandom(4).hex()
        with db.session() as session:
            now = utcnow()
            session.add(AccountRow(id=account, name="bench", created_at=now, updated_at=now))
        request_log = RequestLog(db, flush_interval_s=0.1, batch_size=500)
        catalog = Catalog.builtin
        cipher = CredentialCipher("bench")
        ledger = UsageLedger(request_log, NO_LIMITS, Metrics())
        store = TimedStore(db, index_dir=Path(tmp) / "graphs", timings=run.timings)
        embedders = EmbedderRegistry(
            engines.main,
            cipher=cipher,
            http=HttpClients(
                allow_private=False, pool_size=1, connect_timeout_s=1, read_timeout_s=1
            ),
            catalog=catalog,
            indexing=indexer,  # the indexer only calls `embed` on it: any `Embedder` does
        )
        if config.engine == "e5 all cores":
            embedders.index_in_foreground()  # what `alicerce ingest` does
        timed = TimedIndexer(
            store,
            embedders,
            catalog=catalog,
            ledger=ledger,
            max_document_bytes=MAX_DOCUMENT_BYTES,
            chunk_tokens=chunk_tokens,
            overlap_tokens=OVERLAP_TOKENS,
        )
        timed.timings = run.timings
        service = KnowledgeService(
            store,
            embedders,
            timed,
            cipher=cipher,
            catalog=catalog,
            ledger=ledger,
            allow_private_upstreams=False,
            max_document_bytes=MAX_DOCUMENT_BYTES,
        )
        try:
            documents = asyncio.run(run_flow(service, request_log, account, files, run))
        finally:
            db.dispose()
    run.documents = sum(d.status == "ready" for d in documents)
    run.chunks = sum(d.chunks for d in documents if d.status == "ready")
    run.tokens = sum(d.tokens for d in documents if d.status == "ready")
    run.failed = [f"{d.name}: {d.error}" for d in documents if d.status == "failed"]
    return run


async def run_flow(
    service: KnowledgeService, request_log: RequestLog, account: str, files: list[Path], run: Run
) -> list[Document]:
    collection = await service.create_collection(account, {"name": "bench"})
    await load_graph(service, collection)
    if run.config.flow == "server":
        await request_log.start()
        await service.indexer.start()
    started = time.perf_counter()
    if run.config.flow == "ingest":
        await ingest_files(service, collection, files)
    else:
        for path in files:  # as multipart uploads: the file's name and its media type
            await service.add_file(
                account,
                collection.id,
                name=path.name,
                data=path.read_bytes(),
                media_type=mimetypes.guess_type(path.name)[0],
            )
        await service.indexer.idle()
    await request_log.close()  # the indexing's ledger records, as `alicerce ingest` ends
    run.wall_s = time.perf_counter() - started
    await service.indexer.close()
    return await service.list_documents(account, collection.id)


async def load_graph(service: KnowledgeService, collection: Collection) -> None:
    """One search, so the collection's graph is in memory and each write inserts into it."""
    zero = np.zeros(collection.dimensions, np.float32)
    await asyncio.to_thread(
        service.store.search,
        collection.account_id,
        [collection.id],
        query="x",
        vector=zero,
        mode="vector",
    )


# -- report ---------------------------------------------------------------------------------


def cpu_mhz() -> float:
    """The mean of /proc/cpuinfo's "cpu MHz" (what the kernel reports; a VM's is nominal)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return float("nan")
    found = [float(line.split(":")[1]) for line in lines if line.startswith("cpu MHz")]
    return sum(found) / len(found) if found else float("nan")


def memory_mb() -> tuple[float, float]:
    """(RSS, peak RSS) of this process, MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def macs_per_token(mean_tokens: float) -> float:
    """int8 multiply-accumulates a token costs in a chunk of `mean_tokens`: the matrices, plus
    attention's Q.K and weights.V (2 * seq * hidden a layer)."""
    return MATRIX_MACS + LAYERS * 2 * mean_tokens * HIDDEN


def bound(runs: list[Run]) -> dict[str, Any]:
    """The arithmetic of 100 chunks/s for each chunk size, against the engine and the CPU."""
    cores = os.cpu_count() or 1
    mhz = cpu_mhz()
    peak = cores * INT8_MACS_PER_CYCLE * mhz * 1e6
    sizes = []
    for size in sorted({r.chunk_tokens for r in runs}):
        of = {r.config.key: r for r in runs if r.chunk_tokens == size}
        base = next(iter(of.values()))
        mean = base.tokens / max(base.chunks, 1)
        per_token = macs_per_token(mean)
        engines = {
            key: of[key].tokens / of[key].timings.embed_s * per_token
            for key in ("ingest", "server")
            if key in of and of[key].timings.embed_s > 0
        }
        sizes.append(
            {
                "chunk_tokens": size,
                "mean_tokens": mean,
                "per_token": per_token,
                "per_chunk": mean * per_token,
                "needed": TARGET_CHUNKS_PER_S * mean * per_token,
                "engines": engines,
            }
        )
    return {"cores": cores, "mhz": mhz, "peak": peak, "sizes": sizes}


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_run(run: Run) -> None:
    s = run.split()
    print(
        f"  {run.config.label}: {run.documents} documents, {run.chunks:,} chunks, "
        f"{run.tokens:,} tokens in {run.wall_s:.1f} s: {run.chunks_per_s:.1f} chunks/s, "
        f"{run.tokens_per_s:,.0f} tokens/s; extract+chunk {seconds(s['extract'])} s, "
        f"embed {seconds(s['embed'])} s, write {seconds(s['write'])} s, "
        f"other {seconds(s['other'])} s"
    )
    for reason in run.failed:
        print(f"    failed: {reason}")


def print_bound(facts: dict[str, Any]) -> None:
    print(
        f"AVX2 int8 peak: {facts['cores']} cores x {INT8_MACS_PER_CYCLE} MAC/cycle x "
        f"{facts['mhz']:.0f} MHz = {facts['peak'] / 1e9:.0f} GMAC/s"
    )
    for size in facts["sizes"]:
        engines = ", ".join(
            f"{key} engine {rate / 1e9:.1f} GMAC/s ({rate / facts['peak']:.0%} of peak)"
            for key, rate in size["engines"].items()
        )
        print(
            f"  {size['chunk_tokens']}-token chunks: mean {size['mean_tokens']:.0f} tokens read, "
            f"{size['per_token'] / 1e6:.1f} M MAC/token, {size['per_chunk'] / 1e9:.2f} GMAC a "
            f"chunk; {TARGET_CHUNKS_PER_S} chunks/s needs {size['needed'] / 1e9:.0f} GMAC/s "
            f"({size['needed'] / facts['peak']:.1f}x the peak); measured: {engines or 'no e5 run'}"
        )


# -- BENCHMARKS.md --------------------------------------------------------------------------


def wrap(text: str, first: str = "", rest: str = "") -> str:
    """A paragraph of BENCHMARKS.md, at the width of the rest of the file."""
    return textwrap.fill(
        text,
        100,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def write_markdown(
    runs: list[Run], facts: dict[str, Any], files: list[Path], load: float, rss: float
) -> None:
    rows = []
    for run in runs:
        s = run.split()
        rows.append(
            f"| {run.chunk_tokens} | {run.config.label} | {run.documents} | {run.chunks:,} | "
            f"{run.tokens:,} | {run.wall_s:.1f} | {run.chunks_per_s:.1f} | "
            f"{run.tokens_per_s:,.0f} | {seconds(s['extract'])} | {seconds(s['embed'])} | "
            f"{seconds(s['write'])} | {seconds(s['other'])} |"
        )
    english = sum(p.name.endswith(".en.html") for p in files)
    portuguese = sum(p.name.endswith(".pt.html") for p in files)
    intro = (
        f"`bench/ingestion.py`: {len(files)} real documents ({english} Debian FAQ pages in "
        f"English and {portuguese} in Portuguese, HTML; {len(files) - english - portuguese} of "
        "the Python 3.11 docs' reST sources, plain text; a fixed selection) ingested end to end "
        "through `KnowledgeService` into a fresh SQLite database each run: stored, extracted, "
        f"chunked ({OVERLAP_TOKENS} tokens of overlap), embedded, and written in one transaction "
        "(chunks, FTS5 rows, vectors, the insert into the collection's loaded HNSW graph). "
        f"This {facts['cores']}-core machine, load average {load:.1f} when the run began. Tokens "
        "are what the model reads (heading path, `passage: ` prefix, `<s>` and `</s>` included). "
        'The split is timed around the service\'s steps; "other" is the rest (storing the '
        "uploads, claims, thread hops, the ledger)."
    )
    command = f"--documents {len(files)} --chunk-tokens "
    command += " ".join(str(size) for size in dict.fromkeys(r.chunk_tokens for r in runs))
    keys = list(dict.fromkeys(r.config.key for r in runs))
    if len(keys) < len(CONFIGS):
        command += " --configs " + " ".join(keys)
    header = (
        "| chunk tokens | configuration | documents | chunks | tokens | wall s | chunks/s "
        "| tokens/s | extract+chunk s | embed s | write s | other s |\n" + "| --- " * 12 + "|"
    )
    table = "\n".join(
        [
            SECTION,
            "",
            MARK_START,
            wrap(intro),
            "",
            f"    uv run --frozen python bench/ingestion.py {command}",
            "",
            header,
            *rows,
            "",
            *(wrap(line, "- ", "  ") for line in bullets(runs, facts, rss)),
            MARK_END,
            "",
        ]
    )
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        head = head.rsplit(SECTION, 1)[0]
        text = head + table + rest.split(MARK_END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + table
    path.write_text(text)
    print(f"wrote {path}")


def bullets(runs: list[Run], facts: dict[str, Any], rss: float) -> list[str]:
    """The facts under the table (one line each), from this run's numbers only."""
    by = {(r.chunk_tokens, r.config.key): r for r in runs}
    size = 256 if (256, "ingest") in by else runs[0].chunk_tokens
    ingest, server = by.get((size, "ingest")), by.get((size, "server"))
    ceiling, ceiling_server = by.get((size, "ceiling")), by.get((size, "ceiling-server"))
    out = []
    if ingest:
        s = ingest.split()
        out.append(
            f"`alicerce ingest` ({size}-token chunks): {ingest.chunks_per_s:.1f} chunks/s; "
            f"embedding is {ingest.timings.embed_s / ingest.wall_s:.0%} of the wall time "
            f"({ingest.timings.embed_s / max(ingest.chunks, 1) * 1000:.0f} ms a chunk); the "
            f"write took {seconds(s['write'])} s and extraction + chunking "
            f"{seconds(s['extract'])} s for all {ingest.chunks:,} chunks."
        )
    if server and ingest:
        out.append(
            f"The server's one-thread indexing engine: {server.chunks_per_s:.1f} chunks/s, "
            f"{server.chunks_per_s / ingest.chunks_per_s:.2f}x the rate of `alicerce ingest`'s "
            "all-core engine (the server keeps its main engine's threads for searches)."
        )
    if ceiling:
        rate = f"{ceiling.chunks_per_s:,.0f} chunks/s"
        if ceiling_server:
            rate += f", {ceiling_server.chunks_per_s:,.0f} through the server's worker"
        if ingest:
            rate += f", {ceiling.chunks_per_s / ingest.chunks_per_s:,.0f}x the rate with e5"
        out.append(
            "Without the model (an embedder that costs nothing) the pipeline ingests "
            f"{rate}: what everything but the embedding costs."
        )
    for other in sorted({r.chunk_tokens for r in runs} - {size}):
        them = by.get((other, "ingest"))
        if them and ingest:
            out.append(
                f"{other}-token chunks (`alicerce ingest`): {them.chunks:,} chunks of "
                f"{them.tokens / max(them.chunks, 1):.0f} tokens read on average, "
                f"{them.chunks_per_s:.1f} chunks/s and {them.tokens_per_s:,.0f} tokens/s "
                f"(at {size}: {ingest.chunks:,} of {ingest.tokens / max(ingest.chunks, 1):.0f}, "
                f"{ingest.chunks_per_s:.1f} and {ingest.tokens_per_s:,.0f})."
            )
    out.append(
        f"Arithmetic bound: multilingual-e5-small ({LAYERS} layers of {HIDDEN}, FFN {FFN}) "
        f"costs ~T x ({MATRIX_MACS / 1e6:.1f} M + {LAYERS} x 2 x T x {HIDDEN}) int8 "
        "multiply-accumulates (MACs) for a chunk of T tokens, the matrices plus attention. This "
        f"machine's AVX2 peak is {facts['cores']} cores x {INT8_MACS_PER_CYCLE} int8 MAC/cycle "
        f"(vpmaddubsw + vpmaddwd) x {facts['mhz']:.0f} MHz = {facts['peak'] / 1e9:.0f} GMAC/s."
    )
    for entry in facts["sizes"]:
        engines = "".join(
            f"; the {'all-core' if key == 'ingest' else 'one-thread'} engine did "
            f"{rate / 1e9:.1f} GMAC/s while embedding ({rate / facts['peak']:.0%} of the peak)"
            for key, rate in entry["engines"].items()
        )
        out.append(
            f"{entry['chunk_tokens']}-token chunks, mean T = {entry['mean_tokens']:.0f}: "
            f"{entry['per_chunk'] / 1e9:.2f} GMAC a chunk, so {TARGET_CHUNKS_PER_S} chunks/s "
            f"needs {entry['needed'] / 1e9:.0f} GMAC/s, "
            f"{entry['needed'] / facts['peak']:.1f}x the peak{engines}."
        )
    out.append(
        f"Process RSS after all runs: {rss:.0f} MB (the e5 model and its two engines; each "
        "run's database and graph are gone)."
    )
    return out


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=30, help="how many (fixed selection)")
    parser.add_argument(
        "--chunk-tokens", type=int, nargs="+", default=[256], help="chunk sizes to run (32-512)"
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=[c.key for c in CONFIGS],
        default=[c.key for c in CONFIGS],
        help="which configurations to run (default: all)",
    )
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    if any(not 32 <= size <= 512 for size in args.chunk_tokens):
        sys.exit("--chunk-tokens: each size must be 32-512 (what the server accepts)")
    load = os.getloadavg()[0]
    files = select(args.documents)
    print(
        f"{len(files)} documents, {sum(p.stat().st_size for p in files):,} bytes; "
        f"{os.cpu_count()} cores, load average {load:.1f}"
    )

    main_engine = TimedE5()
    one_thread = TimedE5(threads=1, sharing=main_engine)
    for engine in (main_engine, one_thread):  # load the model, build both sessions
        engine.embed_sync(["passage to warm up the engine"], kind="passage")
    engines = Engines(main_engine, one_thread, FreeEmbedder(main_engine))

    runs: list[Run] = []
    chosen = [c for c in CONFIGS if c.key in args.configs]
    for size in args.chunk_tokens:
        print(f"{size}-token chunks ({OVERLAP_TOKENS} of overlap):")
        for config in chosen:
            run = measure(config, size, files, engines)
            print_run(run)
            runs.append(run)
        same = {(r.chunks, r.tokens) for r in runs if r.chunk_tokens == size}
        if len(same) > 1:
            print(f"  note: the configurations disagree on chunks/tokens: {sorted(same)}")
    facts = bound(runs)
    print_bound(facts)
    rss, peak_rss = memory_mb()
    print(f"process RSS: {rss:.0f} MB (peak {peak_rss:.0f} MB)")
    if args.write:
        write_markdown(runs, facts, files, load, rss)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    main()
