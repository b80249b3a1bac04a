"""`@auto`: a router model rates the request's complexity with one digit; the gateway maps it
to one of its tiers. A router that fails or answers nonsense sends the request to the middle
tier, never to an error. Its tokens are billed as `inference.resolving.routing_complexity.*`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from alicerce.billing import ROUTING_SKU, LineItem
from alicerce.errors import AlicerceError
from alicerce.gateways import Routing
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


@dataclass(slots=True)
class Routed:
    model_id: str
    complexity: int | None  # None: the router gave no usable answer
    line_items: list[LineItem] = field(default_factory=list)


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


class ComplexityRouter:
    def __init__(self, upstreams: UpstreamRegistry, tokens: TokenCounter) -> None:
        self._upstreams = upstreams
        self._tokens = tokens

    async def route(self, routing: Routing, messages: list[dict[str, Any]]) -> Routed:
        middle = routing.tiers[len(routing.tiers) // 2]
        try:
            target = self._upstreams.for_model(routing.router)
        except AlicerceError:
            return Routed(middle, None)
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
        answered = await ask(target, body, self._tokens, ROUTING_SKU, "Complexity routing")
        complexity = parse_complexity(answered.text)
        if complexity is None:
            return Routed(middle, None, answered.line_items)
        return Routed(tier_for(complexity, routing.tiers), complexity, answered.line_items)
