"""Score calibration: what a knowledge search `score` means, measured on the retrieval eval sets.

The sets are `retrieval_eval`'s three FAQs (Debian's in English and Portuguese, Python's), each
question against its own collection, and more made from them:
- cross-lingual: the Portuguese questions against the English Debian FAQ and the English ones
  against the Portuguese FAQ. The two are translations of one DocBook source: a question's
  answer in the other language is the section with the same page and section number (checked
  against the sections' anchor ids, which the translation keeps);
- off-topic: the Python FAQ's questions against the Debian FAQ, and the Portuguese Debian
  questions against the Python collection, which cannot answer them.

What it measures, every number of BENCHMARKS.md's "Score calibration":
1. cosines straight from the vectors: a question against the best chunk of its answer
   (relevant) and against every other chunk (irrelevant);
2. the store's raw scores (the cosine, the BM25 fraction, the fused relevance) of the top-5
   hits of every mode, through `KnowledgeStore.search` with the score maps swapped for raw ones;
3. the score maps fitted on them (`alicerce.knowledge.scoring`), and each set held out in turn;
4. with the shipped maps and `min_score`: of the relevant hits in the top 5, how many are kept,
   and how many irrelevant hits pass, per set and mode;
5. end to end: of the questions, how many get their answer through `KnowledgeService.search`
   with a gateway's default knowledge settings (also for the product manual fixture and for the
   demo's sample documents).

    uv run --frozen python bench/score_calibration.py [--write]
    uv run --frozen python bench/score_calibration.py --before CHECKOUT  # 4 and 5 on old code

`--before` measures 4 and 5 with the `alicerce` package of another checkout and keeps them in
bench/results/ for the before/after columns: a `git worktree add DIR COMMIT`, or `git archive
COMMIT alicerce | tar -x -C DIR` with the commit written in DIR/COMMIT.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if "--before" in sys.argv:  # the package of the other checkout, before ours
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--before") + 1]).resolve()))
sys.path.insert(1 if "--before" in sys.argv else 0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import retrieval_eval as rev  # noqa: E402

from alicerce.embeddings import LocalE5Embedder  # noqa: E402
from alicerce.gateways import Knowledge  # noqa: E402
from alicerce.knowledge.extract import extract  # noqa: E402

MODES = ("vector", "keyword", "hybrid")
TOP_K = 5
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
RESULTS = ROOT / "bench" / "results"
BEFORE = RESULTS / "score-calibration-before.json"
MANUAL = ROOT / "tests" / "fixtures" / "knowledge" / "manual"
SAMPLES = ROOT / "alicerce" / "samples"


@dataclass
class QuerySet:
    name: str
    kind: str  # "monolingual", "cross-lingual" or "off-topic"
    corpus: str  # the collection searched
    questions: list[str]
    answers: list[str | None]  # the answering document's name in that collection
    vectors: np.ndarray


# -- the cross-lingual qrels --------------------------------------------------------------------

_ANCHOR = re.compile(r'<a id="([^"]+)"></a>(\d+(?:\.\d+)*)\.?\s')


def section_keys(pages: list[Path]) -> dict[str, str]:
    """Each FAQ document's name (as `retrieval_eval` names it) -> "page#section number"."""
    keys: dict[str, str] = {}
    for page in pages:
        for block in extract(rev._main_html(page), page.name):
            number = re.match(r"^(\d+(?:\.\d+)*)\.?\s", block.text)
            if block.kind == "heading" and number:
                question = rev._NUMBERING.sub("", block.text).rstrip(" ¶").strip()
                keys.setdefault(f"{page.stem}: {question}", f"{_page(page)}#{number[1]}")
    return keys


def _page(page: Path) -> str:
    return page.name.split(".")[0]


def anchors(pages: list[Path]) -> dict[str, str]:
    """ "page#section number" -> the section's DocBook anchor id."""
    found: dict[str, str] = {}
    for page in pages:
        for anchor, number in _ANCHOR.findall(page.read_text(errors="replace")):
            found[f"{_page(page)}#{number}"] = anchor
    return found


def cross_lingual(en: rev.Corpus, pt: rev.Corpus) -> tuple[dict[str, str], dict[str, int]]:
    """English document name -> Portuguese one, for the sections both FAQs hold."""
    en_pages = sorted(rev.DEBIAN_FAQ.glob("*.en.html"))
    pt_pages = sorted((rev.DEBIAN_FAQ / "pt").glob("*.pt.html"))
    en_keys, pt_keys = section_keys(en_pages), section_keys(pt_pages)
    en_anchors, pt_anchors = anchors(en_pages), anchors(pt_pages)
    by_key = {key: name for name, key in pt_keys.items() if name in pt.documents}
    pairs, agree = {}, 0
    for name, key in en_keys.items():
        if name in en.documents and key in by_key:
            pairs[name] = by_key[key]
            agree += en_anchors.get(key) is not None and en_anchors.get(key) == pt_anchors.get(key)
    stats = {"en": len(en.documents), "pt": len(pt.documents), "pairs": len(pairs)}
    return pairs, stats | {"anchors_agree": agree}


def query_sets(corpora: list[rev.Corpus], embedder: LocalE5Embedder) -> list[QuerySet]:
    en, pt, python = corpora
    vectors = {c.name: rev._cached_vectors(embedder, list(c.queries), "query") for c in corpora}

    def own(corpus: rev.Corpus) -> QuerySet:
        questions = list(corpus.queries)
        return QuerySet(
            f"{corpus.name} ({corpus.language})",
            "monolingual",
            corpus.name,
            questions,
            [corpus.queries[q] for q in questions],
            vectors[corpus.name],
        )

    def across(
        source: rev.Corpus, target: rev.Corpus, pairs: dict[str, str], label: str
    ) -> QuerySet:
        rows = [i for i, q in enumerate(source.queries) if source.queries[q] in pairs]
        questions = [list(source.queries)[i] for i in rows]
        answers: list[str | None] = [pairs[source.queries[q]] for q in questions]
        return QuerySet(
            label, "cross-lingual", target.name, questions, answers, vectors[source.name][rows]
        )

    def off(source: rev.Corpus, target: rev.Corpus, label: str) -> QuerySet:
        questions = list(source.queries)
        return QuerySet(
            label,
            "off-topic",
            target.name,
            questions,
            [None] * len(questions),
            vectors[source.name],
        )

    en_to_pt, _ = cross_lingual(en, pt)
    pt_to_en = {p: e for e, p in en_to_pt.items()}
    return [
        own(en),
        own(pt),
        own(python),
        across(pt, en, pt_to_en, "pt questions → Debian FAQ (en)"),
        across(en, pt, en_to_pt, "en questions → FAQ do Debian (pt)"),
        off(python, en, "Python questions → Debian FAQ (en)"),
        off(pt, python, "Debian questions (pt) → Python collection"),
    ]


# -- measuring -----------------------------------------------------------------------------------


def cosines(qset: QuerySet, indexed: rev.Indexed) -> dict[str, np.ndarray]:
    """Straight from the vectors: each question against the best chunk of its answer, against
    every chunk of the other documents, and its best other-document chunk."""
    similarity = qset.vectors @ indexed.vectors.T
    owners = np.array(indexed.chunk_documents)
    relevant, irrelevant, hardest = [], [], []
    for row, answer in zip(similarity, qset.answers, strict=True):
        mine = owners == answer
        if mine.any():
            relevant.append(float(row[mine].max()))
        irrelevant.append(row[~mine])
        hardest.append(float(row[~mine].max()))
    return {
        "relevant": np.array(relevant),
        "irrelevant": np.concatenate(irrelevant),
        "hardest irrelevant": np.array(hardest),
    }


Ranked = list[list[tuple[str, float]]]  # per question: (document name, score) best first


def search(bench: rev.Bench, indexed: rev.Indexed, qset: QuerySet, mode: str) -> Ranked:
    found = []
    for question, vector in zip(qset.questions, qset.vectors, strict=True):
        hits = bench.store.search(
            bench.account_id,
            [indexed.collection_id],
            query=question,
            vector=vector,
            top_k=TOP_K,
            mode=mode,
        )
        found.append([(indexed.names[h.document_id], float(h.score)) for h in hits])
    return found


def split(ranked: Ranked, answers: list[str | None]) -> tuple[list[float], list[float]]:
    """The scores of the relevant hits (the answer's best chunk, when it is in the top 5) and of
    the irrelevant ones (chunks of other documents; the answer's other chunks are neither)."""
    relevant, irrelevant = [], []
    for hits, answer in zip(ranked, answers, strict=True):
        seen = False
        for name, score in hits:
            if name != answer:
                irrelevant.append(score)
            elif not seen:
                relevant.append(score)
                seen = True
    return relevant, irrelevant


def percentiles(values: Any) -> list[float]:
    array = np.asarray(values, dtype=float)
    if not len(array):
        return [float("nan")] * len(PERCENTILES)
    return [float(v) for v in np.percentile(array, PERCENTILES)]


# -- fitting -------------------------------------------------------------------------------------

# The anchors: where the relevant hits' distribution puts them, and the score they get.
KEEP = 0.95  # the floor keeps this share of every fitted set's relevant top-5 hits
FLOOR, MEDIAN, HIGH = 0.2, 0.5, 0.8  # the scores at the floor, the median, the 90th percentile


def fit(relevant: dict[str, list[float]], bottom: float, top: float) -> Any:
    """A `ScoreMap` through three anchors: FLOOR at the lowest of the sets' 5th percentiles (so it
    keeps at least 95% of each set's relevant hits), MEDIAN at the pooled median, HIGH at the
    pooled 90th percentile; the first segment goes on down to 0 and the last up to 1 with their
    own slopes, within the raw scale's [bottom, top]."""
    from alicerce.knowledge.scoring import ScoreMap

    floor = min(float(np.quantile(v, 1 - KEEP, method="lower")) for v in relevant.values())
    floor = math.floor(floor * 1e4) / 1e4  # rounded down: the floor's own hit scores 0.2
    pooled = np.concatenate([np.asarray(v, dtype=float) for v in relevant.values()])
    median, high = float(np.median(pooled)), float(np.quantile(pooled, 0.9))
    below = (MEDIAN - FLOOR) / (median - floor)  # score per raw unit, the first segment
    above = (HIGH - MEDIAN) / (high - median)  # and the last
    low = floor - FLOOR / below
    xs, ys = [floor, median, high], [FLOOR, MEDIAN, HIGH]
    if low >= bottom:
        xs.insert(0, low)
        ys.insert(0, 0.0)
    else:
        xs.insert(0, bottom)
        ys.insert(0, FLOOR - (floor - bottom) * below)
    end = high + (1 - HIGH) / above
    xs.append(min(end, top))
    ys.append(1.0 if end <= top else HIGH + (top - high) * above)
    xs = [x if x == floor else round(x, 4) for x in xs]
    return ScoreMap(tuple(xs), tuple(round(y, 4) for y in ys))


# What each map is fitted on: keyword search matches words, so it does not cross languages (its
# cross-lingual hits are chance matches of names); the other two modes do.
RAW_SCALE = {"vector": (0.0, 1.0), "keyword": (0.0, 1.0), "hybrid": (-10.0, 10.0)}


def fitted_on(mode: str, qset: QuerySet) -> bool:
    return qset.kind == "monolingual" or (qset.kind == "cross-lingual" and mode != "keyword")


def fit_maps(
    raw: dict[tuple[str, str], Ranked], sets: list[QuerySet], leave_out: str = ""
) -> dict[str, Any]:
    maps = {}
    for mode in MODES:
        relevant = {
            q.name: split(raw[q.name, mode], q.answers)[0]
            for q in sets
            if fitted_on(mode, q) and q.name != leave_out
        }
        maps[mode] = fit(relevant, *RAW_SCALE[mode])
    return maps


def raw_calibration() -> Any:
    """The store's raw values: the cosine, the BM25 fraction, fusion's relevance."""
    from alicerce.knowledge.scoring import E5_BAND, Calibration

    def unchanged(value: float) -> float:
        return value

    return Calibration(unchanged, unchanged, unchanged, E5_BAND)


# -- keep and let through ------------------------------------------------------------------------


@dataclass
class Kept:
    relevant: int  # relevant hits in the top 5
    kept: int  # of them, scoring min_score or more
    irrelevant: int
    passed: int  # irrelevant hits scoring min_score or more

    def row(self) -> str:
        share = f"{self.kept / self.relevant:.1%}" if self.relevant else "—"
        through = f"{self.passed / self.irrelevant:.0%}" if self.irrelevant else "—"
        kept = f"{self.kept}/{self.relevant} ({share})" if self.relevant else "—"
        return f"{kept} | {self.passed}/{self.irrelevant} ({through})"


def kept(ranked: Ranked, answers: list[str | None], min_score: float, score: Any = None) -> Kept:
    relevant, irrelevant = split(ranked, answers)
    if score is not None:
        relevant, irrelevant = [score(v) for v in relevant], [score(v) for v in irrelevant]
    return Kept(
        len(relevant),
        sum(v >= min_score for v in relevant),
        len(irrelevant),
        sum(v >= min_score for v in irrelevant),
    )


# -- end to end ----------------------------------------------------------------------------------


def knowledge_service(bench: rev.Bench, embedder: LocalE5Embedder) -> Any:
    """A `KnowledgeService` over the bench's store, built as a server builds it."""
    from alicerce.catalog import Catalog
    from alicerce.embedders import EmbedderRegistry
    from alicerce.knowledge.indexer import Indexer
    from alicerce.knowledge.service import KnowledgeService
    from alicerce.ledger import UsageLedger
    from alicerce.limits import Limiter, MemoryBackend
    from alicerce.metrics import Metrics
    from alicerce.request_log import RequestLog
    from alicerce.security import CredentialCipher
    from alicerce.upstreams.http import HttpClients

    catalog = Catalog.builtin
    cipher = CredentialCipher("bench")
    limits = Limiter(MemoryBackend(), lambda _key, _since: Decimal(0))  # no key limits
    ledger = UsageLedger(RequestLog(bench.db, flush_interval_s=1, batch_size=1), limits, Metrics())
    http = HttpClients(allow_private=False, pool_size=1, connect_timeout_s=1, read_timeout_s=1)
    embedders = EmbedderRegistry(embedder, cipher=cipher, http=http, catalog=catalog)
    indexer = Indexer(
        bench.store, embedders, catalog=catalog, ledger=ledger, max_document_bytes=1 << 24
    )
    return KnowledgeService(
        bench.store,
        embedders,
        indexer,
        cipher=cipher,
        catalog=catalog,
        ledger=ledger,
        allow_private_upstreams=False,
        max_document_bytes=1 << 24,
    )


async def ingested(service: Any, account_id: str, name: str, files: list[Path]) -> str:
    """A collection of `files` through `alicerce ingest`'s pipeline; its id."""
    from alicerce.knowledge.batch import ingest_files

    collection = await service.create_collection(account_id, {"name": name})
    report = await ingest_files(service, collection, files)
    assert not report.failed and not report.skipped, (report.failed, report.skipped)
    return str(collection.id)


async def answered(
    service: Any,
    account_id: str,
    collection_id: str,
    questions: list[tuple[str, str | None]],
    top_k: int,
) -> dict[str, Any]:
    """Through `KnowledgeService.search` with a gateway's default mode and `min_score`: of the
    questions, how many find their document in the top `top_k` at all (`ranked`), how many give
    it to the model (`used`), how many give the model any passage (`any`), and the questions
    whose document was ranked but dropped."""
    defaults = Knowledge()
    counts: dict[str, Any] = {"questions": len(questions), "ranked": 0, "used": 0, "any": 0}
    counts["lost"] = []
    for question, answer in questions:
        common: dict[str, Any] = {"top_k": top_k, "mode": defaults.mode}
        every = await service.search(account_id, [collection_id], question, **common)
        used = await service.search(
            account_id, [collection_id], question, **common, min_score=defaults.min_score
        )
        in_top = answer in {h.document_name for h in every.hits}
        given = answer in {h.document_name for h in used.hits}
        counts["ranked"] += in_top
        counts["used"] += given
        counts["any"] += bool(used.hits)
        if in_top and not given:
            counts["lost"].append(question)
    return counts


def fixture_questions(path: Path) -> list[tuple[str, str | None]]:
    data = json.loads(path.read_text())
    return [(q["question"], q["document"]) for q in data["questions"]]


async def end_to_end(
    bench: rev.Bench,
    embedder: LocalE5Embedder,
    sets: list[QuerySet],
    indexed: dict[str, rev.Indexed],
) -> dict[str, Any]:
    """`answered` for every set, and for the product manual and the demo's samples, each of
    those in a database of its own as a new user's would be (BM25 counts every collection of
    a database)."""
    service = knowledge_service(bench, embedder)
    top_k = Knowledge().top_k
    out: dict[str, Any] = {}
    for qset in sets:
        ix = indexed[qset.corpus]  # the eval's document names are the stored documents' names
        questions = list(zip(qset.questions, qset.answers, strict=True))
        out[qset.name] = await answered(
            service, bench.account_id, ix.collection_id, questions, top_k
        )
    manual = json.loads((MANUAL / "questions.json").read_text())
    for label, files, questions, k in (
        (
            "product manual (fixture)",
            [(MANUAL / name).resolve() for name in manual["documents"]],
            fixture_questions(MANUAL / "questions.json"),
            top_k,
        ),
        ("demo samples (top_k 3)", sorted(SAMPLES.iterdir()), fixture_questions(DEMO_QUESTIONS), 3),
    ):
        alone = rev.open_store(None)
        own = knowledge_service(alone, embedder)
        collection_id = await ingested(own, alone.account_id, label, files)
        out[label] = await answered(own, alone.account_id, collection_id, questions, k)
        alone.db.dispose()
    return out


DEMO_QUESTIONS = ROOT / "tests" / "fixtures" / "knowledge" / "demo_questions.json"


# -- the report ----------------------------------------------------------------------------------

START, END = "<!-- calibration:start -->", "<!-- calibration:end -->"
SHOWN = (1, 5, 25, 50, 75, 95)


def _cells(values: Any, digits: int = 3) -> str:
    if not len(values):
        return " | ".join("—" for _ in SHOWN)
    return " | ".join(f"{v:.{digits}f}" for v in np.percentile(np.asarray(values, float), SHOWN))


def _header(first: str) -> list[str]:
    cells = " | ".join(f"p{p}" for p in SHOWN)
    return [f"| {first} | n | {cells} |", "| --- " * (len(SHOWN) + 2) + "|"]


def _map_row(mode: str, score_map: Any) -> str:
    knots = ", ".join(f"{x:g} → {y:g}" for x, y in zip(score_map.xs, score_map.ys, strict=True))
    return f"| {mode} | {knots} |"


INTRO = """\
`bench/score_calibration.py`; reproduce with `apt-get install debian-faq debian-faq-pt \
python3.11-doc`, then `uv run --frozen python bench/score_calibration.py --write`. The retrieval \
eval's three FAQs and four sets made from them, each question against one collection, through \
the real pipeline and `KnowledgeStore.search` (SQLite, the collections in one database as on a \
server):

- **monolingual**: each FAQ's questions against its own collection (one answering section each);
- **cross-lingual**: the Portuguese Debian FAQ is a translation of the English one, so a \
question's answer in the other language is the section with the same page and section number \
({pairs} pairs of {en} English and {pt} Portuguese sections; the sections' DocBook anchor ids \
agree for {anchors_agree});
- **off-topic**: the Python FAQ's questions against the Debian FAQ, the Portuguese Debian \
questions against the Python collection: nothing there answers them.

*Relevant* is the answering document's best chunk, *irrelevant* a chunk of another document.

**Cosines** (multilingual-e5-small, query against passage, straight from the vectors: the best \
chunk of the answer, and every chunk of the other documents):
"""
MAPS = """
**The maps** (`alicerce/knowledge/scoring.py`), raw value → score, linear between the knots and \
flat outside. In each mode 0.2 sits at the lowest of the fitted sets' 5th percentiles of \
relevant top-5 hits (so it keeps at least 95% of each set's), 0.5 at their pooled median, 0.8 at \
their pooled 90th percentile; the end segments go on with their own slopes to 0 and 1. Vector \
and hybrid are fitted on the three monolingual and the two cross-lingual sets, keyword on the \
monolingual ones only (word matching does not cross languages: its cross-lingual hits are chance \
matches of names and commands). Hybrid's raw value is fusion's relevance, `0.5 (cos - 0.82) / \
0.10 + 0.5 bm25_fraction`, what the store ranks by.

| mode | knots |
| --- | --- |
"""
HELD_OUT = """
**Held out**: each fitted set left out of the fit in turn: the share of its relevant top-5 hits \
that the maps fitted on the other sets score {min_score:g} or more (in brackets: fitted on all). \
The cross-lingual sets share their documents, and their questions in the other language, with \
the monolingual Debian sets, so leaving one of those out is not a fully independent test; the \
Python FAQ shares nothing with the others.

| held-out set | vector | keyword | hybrid |
| --- | --- | --- | --- |
"""
KEPT = """
**At the default `min_score` {min_score:g}** (a gateway's, `alicerce/gateways.py`), the top 5 of \
each question: relevant hits kept, irrelevant hits let through. Before: the scores of \
`{commit}` (the e5 cosine rescaled from [0.82, 0.92] and clipped, the raw BM25 fraction, their \
mean for hybrid).

| set | mode | before: relevant kept | others passed | after: relevant kept | others passed |
| --- | --- | --- | --- | --- | --- |
"""
END_TO_END = """
**End to end**: each question through `KnowledgeService.search` with a gateway's default \
knowledge settings (strategy `always`: top_k {top_k}, mode `{mode}`, min_score {min_score:g}). \
*Ranked*: the answering document is in the top {top_k}; *reaches the model*: it also passes \
`min_score`. The product manual is `tests/fixtures/knowledge/manual/` (Markdown, HTML, text, \
DOCX and the handbook PDF; questions in English and Portuguese), the demo's samples are \
`alicerce/samples/` with the demo gateway's top_k 3 and the questions of \
`tests/fixtures/knowledge/demo_questions.json`, each in a fresh database as a new user's. For the \
off-topic sets the last two columns count the questions given *any* passage.

| questions | N | ranked, before | after | reaches the model, before | after |
| --- | --- | --- | --- | --- | --- |
"""


def render(
    results: dict[str, Any],
    sets: list[QuerySet],
    maps: dict[str, Any],
    before: dict[str, Any] | None,
) -> str:
    min_score = results["min_score"]
    out = [INTRO.format(**results["pairs"]), *_header("set")]
    for q in sets:
        for kind in ("relevant", "irrelevant"):
            values = results["cosines"][q.name][kind]
            if len(values):
                out.append(f"| {q.name}, {kind} | {len(values)} | {_cells(values)} |")
    for mode in MODES:
        out += ["", f"**Raw {mode} scores of the top-5 hits** (the store's):", "", *_header("set")]
        for q in sets:
            relevant, irrelevant = results["raw"][q.name][mode]
            if relevant:
                out.append(f"| {q.name}, relevant | {len(relevant)} | {_cells(relevant)} |")
            out.append(f"| {q.name}, irrelevant | {len(irrelevant)} | {_cells(irrelevant)} |")
    shipped = results["shipped_maps"]
    out += [MAPS.rstrip("\n"), *[_map_row(mode, shipped[mode]) for mode in MODES]]
    drift = max(
        max(abs(a - b) for a, b in zip(maps[m].xs, shipped[m].xs, strict=True)) for m in MODES
    )
    if drift:
        out += [
            "",
            f"These are the shipped maps; this run's fit differs from them by at most {drift:.4f}"
            " in a knot's raw value (the in-process HNSW graph's approximate search changes a"
            " few top-5 hits from one run to the next).",
        ]
    out.append(HELD_OUT.format(min_score=min_score).rstrip("\n"))
    for name, row in results["held_out"].items():
        cells = [f"{row[m][0]:.1%} ({row[m][1]:.1%})" if m in row else "not fitted" for m in MODES]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    commit = before["commit"] if before else "?"
    out.append(KEPT.format(min_score=min_score, commit=commit).rstrip("\n"))
    for q in sets:
        for mode in MODES:
            now = Kept(**results["kept"][q.name][mode])
            then = Kept(**before["kept"][q.name][mode]).row() if before else "— | —"
            out.append(f"| {q.name} | {mode} | {then} | {now.row()} |")
    out.append(END_TO_END.format(**results).rstrip("\n"))
    for name, row in results["e2e"].items():
        old = before["e2e"].get(name) if before else None
        column = "any" if name.startswith(("Python questions", "Debian questions")) else "used"
        then = f"{old['ranked']} | {old[column]}" if old else "— | —"
        ranked_cells = f"{row['questions']} | {then.split(' | ')[0]} | {row['ranked']}"
        out.append(f"| {name} | {ranked_cells} | {then.split(' | ')[1]} | {row[column]} |")
    answerable = [q.name for q in sets if q.kind != "off-topic"]
    total = sum(results["e2e"][n]["questions"] for n in answerable)
    ranked = sum(results["e2e"][n]["ranked"] for n in answerable)
    after = sum(results["e2e"][n]["used"] for n in answerable)
    then = sum(before["e2e"][n]["used"] for n in answerable) if before else "?"
    out += [
        "",
        f"Of the {total} eval questions that have an answer (monolingual and cross-lingual), search"
        f" ranks it in the top {results['top_k']} for {ranked}; it reached the model for {then}"
        f" of them before, and reaches it for {after} now.",
    ]
    return "\n".join(out) + "\n"


def write_benchmarks(section: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text()
    block = f"{START}\n{section}{END}"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        current = head + block + rest.split(END, 1)[1]
    else:
        marker = "## Knowledge search"
        current = current.replace(marker, f"## Score calibration\n\n{block}\n\n{marker}", 1)
    path.write_text(current)


# -- the run -------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """What JSON cannot hold itself: score maps and arrays."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return np.asarray(value).tolist()


def _commit(checkout: Path) -> str:
    """The checkout's commit: its git HEAD, or a COMMIT file (a `git archive` of it)."""
    import subprocess

    if (checkout / "COMMIT").exists():
        return (checkout / "COMMIT").read_text().strip()[:7]
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", type=Path, help="measure the code of this checkout instead")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    embedder = LocalE5Embedder()
    bench = rev.open_store(None)
    corpora = rev.load_corpora()
    indexed = {c.name: rev.index_corpus(bench, c, embedder) for c in corpora}
    sets = query_sets(corpora, embedder)
    defaults = Knowledge()

    def searched() -> dict[tuple[str, str], Ranked]:
        return {(q.name, m): search(bench, indexed[q.corpus], q, m) for q in sets for m in MODES}

    def kept_table(ranked: dict[tuple[str, str], Ranked]) -> dict[str, Any]:
        return {
            q.name: {m: vars(kept(ranked[q.name, m], q.answers, defaults.min_score)) for m in MODES}
            for q in sets
        }

    if args.before:
        import alicerce

        assert Path(alicerce.__file__).is_relative_to(args.before.resolve()), alicerce.__file__
        shipped = searched()
        e2e = asyncio.run(end_to_end(bench, embedder, sets, indexed))
        before = {"commit": _commit(args.before), "kept": kept_table(shipped), "e2e": e2e}
        BEFORE.write_text(json.dumps(before, indent=1, ensure_ascii=False))
        print(json.dumps(before["e2e"], indent=1, ensure_ascii=False))
        return

    from alicerce.knowledge import scoring

    shipped_maps = {
        "vector": scoring.E5_VECTOR,
        "keyword": scoring.KEYWORD,
        "hybrid": scoring.E5_HYBRID,
    }
    results: dict[str, Any] = {"min_score": defaults.min_score, "top_k": defaults.top_k}
    results["shipped_maps"] = shipped_maps
    results["mode"] = defaults.mode
    results["pairs"] = cross_lingual(corpora[0], corpora[1])[1]
    results["cosines"] = {q.name: cosines(q, indexed[q.corpus]) for q in sets}
    bench.store.searcher.calibration = lambda model, settings: raw_calibration()
    raw = searched()
    results["raw"] = {q.name: {m: split(raw[q.name, m], q.answers) for m in MODES} for q in sets}
    maps = fit_maps(raw, sets)
    results["held_out"] = {}
    for q in sets:
        if q.kind == "off-topic":
            continue
        without, row = fit_maps(raw, sets, leave_out=q.name), {}
        for m in MODES:
            if fitted_on(m, q):
                alone = kept(raw[q.name, m], q.answers, defaults.min_score, without[m])
                together = kept(raw[q.name, m], q.answers, defaults.min_score, maps[m])
                row[m] = (alone.kept / alone.relevant, together.kept / together.relevant)
        results["held_out"][q.name] = row
    bench.store.searcher.calibration = scoring.Calibration.for_collection
    results["kept"] = kept_table(searched())
    results["e2e"] = asyncio.run(end_to_end(bench, embedder, sets, indexed))
    for mode in MODES:
        if maps[mode] != shipped_maps[mode]:
            print(f"!! the shipped {mode} map differs from the fit: {maps[mode]!r}")
    earlier = json.loads(BEFORE.read_text()) if BEFORE.exists() else None
    section = render(results, sets, maps, earlier)
    print(section)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "score-calibration.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False, default=_plain)
    )
    if args.write:
        write_benchmarks(section)
    bench.db.dispose()


if __name__ == "__main__":
    main()
