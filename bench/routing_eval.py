"""How `@auto` routes: easy and hard prompts through the complexity router, and the tier each
one lands on. Writes its table into BENCHMARKS.md (between the `routing` markers).

    uv run python bench/routing_eval.py [--router @local/smollm2-135m]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from pathlib import Path

from alicerce.catalog import Catalog
from alicerce.gateways import Routing
from alicerce.inference.routing import ComplexityRouter
from alicerce.tokens import TokenCounter
from alicerce.upstreams.http import HttpClients
from alicerce.upstreams.local import LocalUpstream
from alicerce.upstreams.registry import UpstreamRegistry

TIERS = ["@tier/small", "@tier/medium", "@tier/large"]
EASY = [
    "Hi there!",
    "Thanks, that's all.",
    "What is the capital of France?",
    "Translate 'good morning' into Portuguese.",
    "Olá, tudo bem?",
    "How many days are in a week?",
    "What color is the sky?",
    "Say hello to my friend Ana.",
    "Is water wet?",
    "What's 2 + 2?",
]
HARD = [
    "Prove that there are infinitely many prime numbers, then generalise the argument to "
    "primes of the form 4k+3.",
    "Write a thread-safe LRU cache in Rust with O(1) operations and explain its invariants.",
    "Compare the CAP trade-offs of Raft and EPaxos for a geo-replicated database, with "
    "failure scenarios.",
    "Derive the closed form of the variance of a geometric distribution step by step.",
    "Refactor this 2,000-line legacy COBOL payroll program into a modular Java service; "
    "propose the architecture and a migration plan.",
    "Explain how transformer attention scales with sequence length and design a sub-quadratic "
    "alternative, with complexity analysis.",
    "Analyse the macroeconomic effects of a 2% rise in interest rates on a small open economy "
    "with a floating exchange rate.",
    "Find all integer solutions of x^3 + y^3 = z^3 + 1 with |x|,|y|,|z| < 100 and describe "
    "an efficient algorithm.",
    "Design a distributed rate limiter for 1M requests per second across regions; discuss "
    "consistency, clock skew and failure handling.",
    "Write a formal specification in TLA+ of a two-phase commit protocol and check a safety "
    "property.",
]


async def evaluate(router_model: str) -> tuple[list[tuple[str, str, str, str]], float]:
    local = LocalUpstream(None, context=2048, threads=None, concurrency=1, queue_timeout_s=600)
    clients = HttpClients(allow_private=True, pool_size=4, connect_timeout_s=10, read_timeout_s=120)
    await clients.start()
    catalog = Catalog.builtin()
    registry = UpstreamRegistry(clients, lambda: catalog, local, allow_private_upstreams=True)
    router = ComplexityRouter(registry, TokenCounter())
    routing = Routing(router=router_model, tiers=TIERS)
    rows = []
    started = time.perf_counter()
    for kind, prompts in (("easy", EASY), ("hard", HARD)):
        for prompt in prompts:
            routed = await router.route(routing, [{"role": "user", "content": prompt}])
            digit = str(routed.complexity) if routed.complexity is not None else "—"
            rows.append((kind, prompt, digit, routed.model_id))
    elapsed = time.perf_counter() - started
    await clients.close()
    await local.close()
    return rows, elapsed / len(rows)


def render(rows: list[tuple[str, str, str, str]], router: str, seconds_each: float) -> str:
    def share(kind: str, tier: str) -> str:
        of_kind = [r for r in rows if r[0] == kind]
        return f"{sum(1 for r in of_kind if r[3] == tier)}/{len(of_kind)}"

    lines = [
        f"Router `{router}`, tiers {', '.join(f'`{t}`' for t in TIERS)}; "
        f"{seconds_each * 1000:.0f} ms a routing decision on this machine.",
        "",
        "| prompts | " + " | ".join(TIERS) + " |",
        "| --- |" + " --- |" * len(TIERS),
        *(
            f"| {kind} | " + " | ".join(share(kind, t) for t in TIERS) + " |"
            for kind in ("easy", "hard")
        ),
        "",
        "| kind | prompt | digit | tier |",
        "| --- | --- | --- | --- |",
        *(
            f"| {k} | {p[:70] + ('…' if len(p) > 70 else '')} | {d} | `{t}` |"
            for k, p, d, t in rows
        ),
    ]
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
    parser.add_argument("--router", default="@local/smollm2-135m")
    args = parser.parse_args()
    rows, seconds_each = asyncio.run(evaluate(args.router))
    text = render(rows, args.router, seconds_each)
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
