"""How well `@auto` routes: the held-out prompts of `alicerce/complexity/eval.jsonl` (never
trained on) through four routers, each mapping a prompt to three tiers (small, medium, large
for easy, medium, hard): the local router (the default), prompt length alone, keyword rules
(the shape of LiteLLM's and Bifrost's heuristic complexity routers) and the LLM router
(SmolLM2-135M answering a digit). The two baselines' cut points are fitted on the training
set, as the local router's weights are. Writes its tables into BENCHMARKS.md (between the
`routing` markers).

    uv run python bench/routing_eval.py [--skip-llm]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from alicerce import complexity
from alicerce.catalog import LOCAL_CHAT_MODEL, LOCAL_ROUTER, Catalog
from alicerce.embeddings import LocalE5Embedder
from alicerce.gateway_routing import Routing
from alicerce.inference.routing import ComplexityRouter
from alicerce.tokens import TokenCounter
from alicerce.upstreams.http import HttpClients
from alicerce.upstreams.local import LocalUpstream
from alicerce.upstreams.registry import UpstreamRegistry

TIERS = ["@tier/small", "@tier/medium", "@tier/large"]
NAMES = ("easy", "medium", "hard")
Example = tuple[str, str, str]

# Keyword rules, weighted as the heuristic routers weigh them (code 30%, reasoning 25%,
# technical terms 25%, length 10%, simple indicators subtracting), in English and Portuguese.
_KEYWORDS: dict[str, tuple[float, re.Pattern[str]]] = {
    "code": (
        0.30,
        re.compile(
            r"```|\b(function|código|code|python|java|rust|sql|query|regex|bash|script|class|"
            r"implement\w*|debug\w*|bug|api|compile\w*|kernel|função|consulta)\b",
            re.I,
        ),
    ),
    "reasoning": (
        0.25,
        re.compile(
            r"\b(prove|proof|derive|step by step|analy[sz]e|evaluate|why|compare|explain|"
            r"prove que|demonstre|derive|passo a passo|analise|avalie|por que|compare|"
            r"explique)\b",
            re.I,
        ),
    ),
    "technical": (
        0.25,
        re.compile(
            r"\b(architecture|distributed|scal\w+|latency|consisten\w+|kubernetes|database|"
            r"concurren\w+|protocol|algorithm|arquitetura|distribu\w+|latência|banco de dados|"
            r"protocolo|algoritmo|concorren\w+|complexity|complexidade)\b",
            re.I,
        ),
    ),
}
_SIMPLE = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|ok|bye|oi|olá|obrigad\w|valeu|tchau|bom dia|boa noite)"
    r"\b|\b(what is|who|how many|translate|qual é|quem|quantos|traduza)\b",
    re.I,
)


def keyword_score(text: str) -> float:
    score = sum(
        weight * min(len(pattern.findall(text)), 2) / 2 for weight, pattern in _KEYWORDS.values()
    )
    score += 0.10 * min(len(text.split()) / 150, 1.0)
    return score - (0.05 if _SIMPLE.search(text) else 0.0)


def length_score(text: str) -> float:
    return float(len(text))


def fit_cuts(scores: list[float], labels: list[int]) -> list[float]:
    """The two cut points that classify the training scores best (ties: the lower cuts)."""
    values = sorted(set(scores))
    candidates = [(a + b) / 2 for a, b in itertools.pairwise(values)]
    best: tuple[int, list[float]] = (-1, [])
    for low, high in itertools.combinations(candidates, 2):
        right = sum(
            bisect.bisect_right([low, high], s) == y for s, y in zip(scores, labels, strict=True)
        )
        if right > best[0]:
            best = (right, [low, high])
    return best[1]


def by_cuts(score: Callable[[str], float], training: list[Example]) -> Callable[[str], int]:
    labels = [NAMES.index(tier) for _, tier, _ in training]
    cuts = fit_cuts([score(t) for t, _, _ in training], labels)
    return lambda text: bisect.bisect_right(cuts, score(text))


async def route_all(
    router: ComplexityRouter, name: str, texts: list[str]
) -> tuple[list[int], list[float]]:
    routing = Routing(router=name, tiers=TIERS)
    body = {"messages": [{"role": "user", "content": "warm up"}]}
    await router.route(routing, body)  # the model loads on first use: not a decision's cost
    predicted, seconds = [], []
    for text in texts:
        started = time.perf_counter()
        routed = await router.route(routing, {"messages": [{"role": "user", "content": text}]})
        seconds.append(time.perf_counter() - started)
        predicted.append(TIERS.index(routed.model_id))
    return predicted, seconds


async def evaluate(skip_llm: bool) -> dict[str, tuple[list[int], list[float]]]:
    training = complexity.load_examples(complexity.TRAIN)
    evaluation = complexity.load_examples(complexity.EVAL)
    texts = [t for t, _, _ in evaluation]
    results: dict[str, tuple[list[int], list[float]]] = {}
    local = LocalUpstream(None, context=2048, threads=None, concurrency=1, queue_timeout_s=600)
    clients = HttpClients(allow_private=True, pool_size=4, connect_timeout_s=10, read_timeout_s=120)
    await clients.start()
    catalog = Catalog.builtin()
    registry = UpstreamRegistry(clients, lambda: catalog, local, allow_private_upstreams=True)
    router = ComplexityRouter(registry, TokenCounter(), LocalE5Embedder(), lambda: catalog)
    results[f"local router (`{LOCAL_ROUTER}`)"] = await route_all(router, LOCAL_ROUTER, texts)
    for label, score in (
        ("prompt length alone", length_score),
        ("keyword rules", keyword_score),
    ):
        classify = by_cuts(score, training)
        predicted, seconds = [], []
        for text in texts:
            started = time.perf_counter()
            predicted.append(classify(text))
            seconds.append(time.perf_counter() - started)
        results[label] = (predicted, seconds)
    if not skip_llm:
        name = f"LLM router (`{LOCAL_CHAT_MODEL}`)"
        results[name] = await route_all(router, LOCAL_CHAT_MODEL, texts)
    await clients.close()
    await local.close()
    return results


def render(results: dict[str, tuple[list[int], list[float]]]) -> str:
    evaluation = complexity.load_examples(complexity.EVAL)
    truth = [NAMES.index(tier) for _, tier, _ in evaluation]
    langs = [lang for _, _, lang in evaluation]
    counts = {n: truth.count(i) for i, n in enumerate(NAMES)}
    lines = [
        f"Held-out set: {len(truth)} prompts of `alicerce/complexity/eval.jsonl` "
        f"({counts['easy']} easy, {counts['medium']} medium, {counts['hard']} hard; "
        f"{langs.count('en')} English, {langs.count('pt')} Portuguese), never trained on; "
        "tiers small / medium / large for easy / medium / hard. *Easy vs hard*: the easy and "
        "hard prompts that land on exactly their own tier (small, large).",
        "",
        "| router | accuracy | easy | medium | hard | easy vs hard | hard → small "
        "| en | pt | ms a decision (median / p95) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (predicted, seconds) in results.items():
        pairs = list(zip(truth, predicted, strict=True))

        def rate(rows: list[tuple[int, int]]) -> str:
            right = sum(t == p for t, p in rows)
            return f"{right / len(rows):.1%}" if rows else "—"

        per_tier = [rate([(t, p) for t, p in pairs if t == k]) for k in range(3)]
        extremes = [(t, p) for t, p in pairs if t != 1]
        hard = [p for t, p in pairs if t == 2]
        by_lang = [
            rate([pr for pr, lg in zip(pairs, langs, strict=True) if lg == k]) for k in ("en", "pt")
        ]
        ms = sorted(s * 1000 for s in seconds)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        lines.append(
            f"| {name} | {rate(pairs)} | {' | '.join(per_tier)} | {rate(extremes)} | "
            f"{sum(p == 0 for p in hard) / len(hard):.1%} | {' | '.join(by_lang)} | "
            f"{statistics.median(ms):.2f} / {p95:.2f} |"
        )
    for name, (predicted, _) in results.items():
        lines += [
            "",
            f"Confusion matrix, {name} (rows: the label; columns: the tier chosen):",
            "",
            "| label \\ tier | small | medium | large |",
            "| --- | --- | --- | --- |",
        ]
        for k, label in enumerate(NAMES):
            row = [
                sum(1 for t, p in zip(truth, predicted, strict=True) if t == k and p == j)
                for j in range(3)
            ]
            lines.append(f"| {label} | " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def write_section(text: str, path: Path = Path("BENCHMARKS.md")) -> None:
    start, end = "<!-- routing:start -->", "<!-- routing:end -->"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{text}\n{end}"
    if start in current:
        current = re.sub(
            re.escape(start) + ".*?" + re.escape(end), lambda _: block, current, flags=re.S
        )
    else:
        current = current.rstrip() + "\n\n## Complexity routing (`@auto`)\n\n" + block + "\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-llm", action="store_true", help="leave out the SmolLM2 router")
    args = parser.parse_args()
    results = asyncio.run(evaluate(args.skip_llm))
    text = render(results)
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
