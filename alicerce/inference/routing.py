"""`@auto`: each request goes to one of the gateway's tiers, by how demanding it is.

In order: the gateway's `rules` (the first that matches forces its tier: tools, long prompts,
images); else the router rates the request. The default router is in process
(`alicerce.complexity`: the e5 vector and cheap features, a few milliseconds); a router naming
a catalog chat model is asked for a complexity digit, as before. Either gives a score in
[0, 1] that the gateway's thresholds cut into tiers. A router that fails or answers nonsense
sends the request to the middle tier, never to an error. Routing is billed as
`inference.resolving.routing_complexity.*` at the router's catalog price (the local router:
its e5 tokens, free unless the catalog prices `@local/complexity-router`), with zero
quantities when a rule decided, so that the line items always show that routing happened.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alicerce import complexity
from alicerce.billing import ROUTING_SKU, LineItem, TokenUsage, inference_line_items
from alicerce.catalog import LOCAL_PROVIDER, LOCAL_ROUTER, Catalog, CatalogModel
from alicerce.embeddings import Embedder
from alicerce.errors import AlicerceError
from alicerce.gateway_routing import Routing, RoutingRule
from alicerce.inference.answer import prompt_estimate
from alicerce.inference.side_calls import ask
from alicerce.messages import text_of
from alicerce.tokens import TokenCounter
from alicerce.upstreams.registry import UpstreamRegistry

# Worked examples as earlier turns: small router models follow a pattern far better than a rule.
EXAMPLES = [  # mixed order, so that no digit is merely the most recent one
    ("user: Write a Python function that merges overlapping intervals, with tests.", "4"),
    ("user: hello, how are you?", "1"),
    ("user: Prove that the square root of 2 is irrational and generalise to any prime.", "5"),
    ("user: What is the capital of Italy?", "2"),
    ("user: Summarise the causes of the French Revolution in a paragraph.", "3"),
    ("user: thanks!", "1"),
]
ROUTER_INSTRUCTIONS = (
    "You rate how demanding a request is for an AI assistant. Reply with a single digit from 1 "
    "to 5: 1 = greeting or small talk, 2 = a simple fact or short rewrite, 3 = an explanation or "
    "a summary, 4 = multi-step reasoning, code or analysis, 5 = hard math, proofs, complex code "
    "or long expert analysis. Reply with the digit only."
)
LOWEST, HIGHEST = 1, 5
VIEW_TURNS = 4
VIEW_CHARS = 600
_DIGIT = re.compile(r"[0-9]")
PURPOSE = "Complexity routing"


@dataclass(slots=True)
class Routed:
    model_id: str
    complexity: int | None  # None: the router gave no usable answer
    line_items: list[LineItem] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)  # `generation_context.routing`


def compact_view(messages: list[dict[str, Any]]) -> str:
    """The last few turns, each cut short: enough to judge difficulty, cheap to read."""
    turns = [m for m in messages if m.get("role") in ("user", "assistant")][-VIEW_TURNS:]
    lines = []
    for message in turns:
        text = " ".join(text_of(message.get("content")).split())
        if len(text) > VIEW_CHARS:
            text = text[: VIEW_CHARS // 2] + " … " + text[-VIEW_CHARS // 2 :]
        lines.append(f"{message['role']}: {text}")
    return "\n".join(lines)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def tier_index(score: float, cuts: list[float]) -> int:
    """The tier a score falls in: below the first cut the cheapest, at or above the last the
    dearest."""
    return bisect.bisect_right(cuts, score)


def complexity_of_tier(index: int, tiers: int) -> int:
    """A tier as the 1-5 digit the header shows (a rule's choice has no score of its own)."""
    if tiers == 1:
        return LOWEST
    return LOWEST + round(index / (tiers - 1) * (HIGHEST - LOWEST))


def tier_for(complexity: int, tiers: list[str]) -> str:
    """Spreads 1..5 evenly over the tiers, the cheapest first."""
    span = HIGHEST - LOWEST
    index = round((complexity - LOWEST) / span * (len(tiers) - 1))
    return tiers[index]


def parse_complexity(text: str | None) -> int | None:
    match = _DIGIT.search(text or "")
    if match is None:
        return None
    return min(max(int(match.group()), LOWEST), HIGHEST)


def has_image(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(part, dict) and part.get("type") in ("image_url", "input_image")
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
    )


def matching_rule(rules: list[RoutingRule], body: dict[str, Any]) -> int | None:
    """The first rule whose every condition the request meets."""
    messages = body["messages"]
    for i, rule in enumerate(rules):
        if rule.tools is not None and rule.tools != bool(body.get("tools")):
            continue
        if rule.images is not None and rule.images != has_image(messages):
            continue
        if rule.min_tokens is not None and prompt_estimate(body) < rule.min_tokens:
            continue
        return i
    return None


class ComplexityRouter:
    def __init__(
        self,
        upstreams: UpstreamRegistry,
        tokens: TokenCounter,
        embedder: Embedder,
        catalog: Callable[[], Catalog],
    ) -> None:
        self._upstreams = upstreams
        self._tokens = tokens
        self._embedder = embedder
        self._catalog = catalog

    async def route(self, routing: Routing, body: dict[str, Any]) -> Routed:
        """The tier for the request `body` (its messages, tools), and what deciding cost."""
        rule = matching_rule(routing.rules, body)
        if rule is not None:
            chosen = routing.rules[rule].tier
            index = routing.tiers.index(chosen)
            digit = complexity_of_tier(index, len(routing.tiers))
            items = self._items(routing.router, TokenUsage())
            return Routed(chosen, digit, items, self._decision(routing, digit, None, chosen, rule))
        if routing.router == LOCAL_ROUTER:
            score, items = await self._judge_locally(body["messages"])
        else:
            score, items = await self._ask_model(routing.router, body["messages"])
        if score is None:
            middle = routing.tiers[len(routing.tiers) // 2]
            return Routed(middle, None, items, self._decision(routing, None, None, middle, None))
        chosen = routing.tiers[tier_index(score, routing.cuts())]
        digit = LOWEST + round(score * (HIGHEST - LOWEST))
        return Routed(chosen, digit, items, self._decision(routing, digit, score, chosen, None))

    @staticmethod
    def _decision(
        routing: Routing, digit: int | None, score: float | None, chosen: str, rule: int | None
    ) -> dict[str, Any]:
        return {
            "router": routing.router,
            "complexity": digit,
            "score": score,
            "tier": chosen,
            "model": chosen,
            "rule": rule,
        }

    def _router_model(self, router: str) -> CatalogModel | None:
        model = self._catalog().get(router)
        if model is None and router == LOCAL_ROUTER:
            return CatalogModel(LOCAL_ROUTER, LOCAL_PROVIDER, "complexity-router")  # free
        return model

    def _items(self, router: str, usage: TokenUsage) -> list[LineItem]:
        return inference_line_items(self._router_model(router), usage, ROUTING_SKU, PURPOSE)

    async def _judge_locally(
        self, messages: list[dict[str, Any]]
    ) -> tuple[float | None, list[LineItem]]:
        text = last_user_text(messages)
        try:
            batch = await self._embedder.embed([complexity.embedded_text(text)], kind="query")
        except AlicerceError:
            return None, self._items(LOCAL_ROUTER, TokenUsage())
        judgement = complexity.shipped().judge(complexity.inputs(batch.vectors[0], text))
        return judgement.score, self._items(LOCAL_ROUTER, TokenUsage(batch.tokens, 0))

    async def _ask_model(
        self, router: str, messages: list[dict[str, Any]]
    ) -> tuple[float | None, list[LineItem]]:
        """The router model's digit, as a score; None when it could not answer."""
        try:
            target = self._upstreams.for_model(router)
        except AlicerceError:
            return None, []
        body: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": ROUTER_INSTRUCTIONS},
                *(
                    turn
                    for view, digit in EXAMPLES
                    for turn in (
                        {"role": "user", "content": view},
                        {"role": "assistant", "content": digit},
                    )
                ),
                {"role": "user", "content": compact_view(messages)},
            ],
            "max_tokens": 2,
            "temperature": 0,
        }
        answered = await ask(target, body, self._tokens, ROUTING_SKU, PURPOSE)
        digit = parse_complexity(answered.text)
        if digit is None:
            return None, answered.line_items
        return (digit - LOWEST) / (HIGHEST - LOWEST), answered.line_items
