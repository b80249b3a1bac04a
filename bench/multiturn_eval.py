"""Grounding in conversations: does the last user turn's passage reach the model when the turn
only makes sense after the earlier ones, and is an old topic left out when the subject changes?

Every candidate runs through the gateway's own `Grounder` (the code a chat request runs) over
the conversations of `bench/multiturn_conversations.py`, on a collection of the fixture
manuals (`tests/fixtures/knowledge/manuals/`, en and pt) and the sample documents
(`alicerce/samples/`), indexed by the real pipeline (local multilingual-e5-small, SQLite).

Candidates: the last turn alone (`always` with `context_weight` 0, what `always` searched
before); the last `context_turns` user turns joined (`concatenate`, 2 and 3 turns); the last turn
and the joined turns searched apart and fused (`always` with `context_weight` w); a standalone
query written by the local model (`rewrite`, SmolLM2-135M on llama.cpp; skip with
`--no-rewrite`).

Measured per candidate, over the kinds of conversation: the right document ranked first
(doc@1) and in the top 5 (doc@5), the answering passage in the top 5 (passage@5), the answering
passage given to the model (with the gateway's default `min_score`, low-confidence included),
the searches billed per turn, and the grounding's latency (query embeddings included, none
cached).

    uv run --frozen python bench/multiturn_eval.py [--no-rewrite] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from alicerce.catalog import LOCAL_CHAT_MODEL  # noqa: E402
from alicerce.gateways import Knowledge  # noqa: E402
from alicerce.inference.plan import Plan  # noqa: E402
from alicerce.keys import AccountCreate  # noqa: E402
from alicerce.knowledge.batch import collect_files, ingest_files  # noqa: E402
from alicerce.services import Services  # noqa: E402
from alicerce.settings import Settings  # noqa: E402
from alicerce.store.tables import ChunkRow  # noqa: E402
from bench.multiturn_conversations import CONVERSATIONS, Conversation  # noqa: E402

CORPUS = [ROOT / "tests" / "fixtures" / "knowledge" / "manuals", ROOT / "alicerce" / "samples"]
KINDS = ("follow-up", "switch", "first")
START, END = "<!-- multiturn:start -->", "<!-- multiturn:end -->"
CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("last turn only (`always`, context_weight 0)", {"strategy": "always", "context_weight": 0}),
    ("`concatenate`, 2 turns", {"strategy": "concatenate", "context_turns": 2}),
    ("`concatenate`, 3 turns", {"strategy": "concatenate", "context_turns": 3}),
    *(
        (f"fused (`always`, context_weight {w})", {"strategy": "always", "context_weight": w})
        for w in (0.4, 0.5, 0.6, 0.7, 0.8)
    ),
]
REWRITE = ("`rewrite` (SmolLM2-135M)", {"strategy": "rewrite"})


def _norm(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Tally:
    count: int = 0
    doc1: int = 0
    doc5: int = 0
    passage5: int = 0
    given: int = 0

    def add(self, doc1: bool, doc5: bool, passage5: bool, given: bool) -> None:
        self.count += 1
        self.doc1 += doc1
        self.doc5 += doc5
        self.passage5 += passage5
        self.given += given


@dataclass
class Result:
    name: str
    tallies: dict[str, Tally] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    searches: int = 0
    misses: list[str] = field(default_factory=list)

    def tally(self, kind: str) -> Tally:
        return self.tallies.setdefault(kind, Tally())


async def evaluate(rewrite: bool) -> tuple[list[Result], dict[str, Any]]:
    directory = Path(tempfile.mkdtemp(prefix="alicerce-multiturn-"))
    settings = Settings(
        database_url=f"sqlite:///{directory / 'alicerce.db'}",
        secret_key="bench",
        create_database=True,
        local_model_queue_timeout_s=600,
    )
    services = Services.build(settings, create_database=True)
    services.embedders.index_in_foreground()
    await services.http.start()
    account = services.keys.create_account(AccountCreate(name="bench"))["id"]
    collection = await services.knowledge.create_collection(account, {"name": "manuals"})
    report = await ingest_files(services.knowledge, collection, collect_files(CORPUS))
    assert not report.failed, report.failed
    documents = await services.knowledge.list_documents(account, collection.id)
    corpus = {
        "documents": len(documents),
        "chunks": sum(d.chunks for d in documents),
        "conversations": len(CONVERSATIONS),
    }
    with services.db.session() as session:
        texts = dict(session.execute(sa.select(ChunkRow.id, ChunkRow.text)).tuples().all())
    target = services.upstreams.for_model(LOCAL_CHAT_MODEL)
    if rewrite:
        await services.local.warm_up()
    results = []
    for name, knobs in [*CANDIDATES, *([REWRITE] if rewrite else [])]:
        spec = Knowledge(collections=[collection.id], top_k=5, **knobs)
        services.knowledge._query_vectors.clear()  # every candidate embeds its own queries
        result = Result(name)
        for conversation in CONVERSATIONS:
            plan = Plan(
                body={"messages": conversation.messages()}, prefill=None, include_usage=False
            )
            started = time.perf_counter()
            await services.grounder.ground(account, spec, plan, target)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            _score(result, conversation, plan, texts)
        results.append(result)
        print(_line(result), flush=True)
    await services.close()
    return results, corpus


def _score(result: Result, conversation: Conversation, plan: Plan, texts: dict[str, str]) -> None:
    """`plan.searches` ranks what was found (ids and scores), `plan.knowledge` is what was
    given; `texts` (every chunk's, by id) says which of them hold the fact."""
    [search] = plan.searches
    result.searches += search["searches"]
    ranked = search["hits"][:5]
    fact = _norm(conversation.fact)
    right = [h for h in ranked if h["document_name"] == conversation.document]
    doc1 = bool(ranked) and ranked[0]["document_name"] == conversation.document
    passage5 = any(fact in _norm(texts[h["chunk_id"]]) for h in right)
    given = any(fact in _norm(texts[k["chunk_id"]]) for k in plan.knowledge)
    for kind in (conversation.kind, conversation.language, "all"):
        result.tally(kind).add(doc1, bool(right), passage5, given)
    if not doc1:
        top = ranked[0]["document_name"] if ranked else "nothing"
        result.misses.append(f"{conversation.kind}: {conversation.turns[-1]!r} -> {top}")


def _cell(tally: Tally | None) -> str:
    if tally is None or not tally.count:
        return "—"
    return f"{tally.doc1}/{tally.doc5}/{tally.passage5}/{tally.given} of {tally.count}"


def _line(result: Result) -> str:
    cells = "  ".join(f"{kind} {_cell(result.tallies.get(kind))}" for kind in (*KINDS, "all"))
    return f"{result.name}: {cells}  p50 {statistics.median(result.latencies_ms):.0f} ms"


def render(results: list[Result], corpus: dict[str, Any]) -> str:
    head = "| candidate | " + " | ".join(
        f"{kind} ({results[0].tallies[kind].count})" for kind in (*KINDS, "en", "pt", "all")
    )
    lines = [
        f"`bench/multiturn_eval.py`: {corpus['conversations']} conversations (en and pt) over "
        f"{corpus['documents']} documents, {corpus['chunks']} chunks (six product manuals in "
        "`tests/fixtures/knowledge/manuals/`, four of them with an error E42, and the samples); "
        "each candidate runs through the gateway's `Grounder`, top_k 5, default `min_score`. "
        "Cells: right document first / right document in the top 5 / answering passage in the "
        "top 5 / answering passage given to the model.",
        "",
        head + " | searches a turn | latency p50 / p90 |",
        "| --- |" + " --- |" * 8,
    ]
    for result in results:
        times = sorted(result.latencies_ms)
        p90 = times[int(0.9 * (len(times) - 1))]
        cells = " | ".join(_cell(result.tallies.get(k)) for k in (*KINDS, "en", "pt", "all"))
        searches = result.searches / len(result.latencies_ms)
        lines.append(
            f"| {result.name} | {cells} | {searches:.2f} | "
            f"{statistics.median(times):.0f} / {p90:.0f} ms |"
        )
    best = max(results, key=lambda r: (r.tallies["all"].doc1, r.tallies["all"].doc5))
    lines += [
        "",
        f"Most right documents first: **{best.name}**, {best.tallies['all'].doc1} of "
        f"{best.tallies['all'].count} (follow-ups {best.tallies['follow-up'].doc1} of "
        f"{best.tallies['follow-up'].count}, switches {best.tallies['switch'].doc1} of "
        f"{best.tallies['switch'].count}). Load average {os.getloadavg()[0]:.1f} during the run "
        "(2 cores, shared).",
    ]
    return "\n".join(lines)


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    current = path.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in current:
        current = re.sub(
            re.escape(START) + ".*?" + re.escape(END), lambda _: block, current, flags=re.S
        )
    else:
        current = current.rstrip() + "\n\n## Grounding in conversations\n\n" + block + "\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-rewrite", action="store_true", help="skip the local model")
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args()
    results, corpus = asyncio.run(evaluate(not args.no_rewrite))
    text = render(results, corpus)
    print(text)
    for result in results:
        print(f"\n{result.name}: {len(result.misses)} not first")
        for miss in result.misses:
            print("  ", miss)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
