"""Grounding answers in a gateway's knowledge collections (SPEC section 2, `knowledge`).

- `always`: the latest user turn is the search query. In a conversation, the last
  `context_turns` user turns joined are searched too, and the two rankings fused
  (`context_weight` of the conversation's score, the rest the last turn's): a follow-up ("and
  what does E42 mean?") finds what the conversation is about, and a change of subject is still
  ranked by the turn that made it (`bench/multiturn_eval.py` measured the choice; two searches,
  two `knowledge.search` line items). `context_weight` 0 searches the last turn alone.
- `concatenate`: the last `context_turns` user turns joined, one search.
- `rewrite`: a model first writes one standalone query from the last turns (billed as
  `inference.resolving.query_rewrite.*`; if it cannot, `concatenate`'s query is used).
- `tool`: the model gets a `search_knowledge` function that the gateway runs in its tool loop.

Which passages the model is given, how, and what the answer says about them (the passages
cited in `generation_context.knowledge`, every search in `.knowledge_searches`) is
`references`' business.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from alicerce.billing import QUERY_REWRITE_SKU
from alicerce.errors import AlicerceError
from alicerce.gateways import Knowledge
from alicerce.inference.functions import ToolCall, ToolResult, failed, tool_spec
from alicerce.inference.plan import Plan
from alicerce.inference.references import (
    RUNNERS_UP,
    SEARCH_FAILED,
    Found,
    citation,
    reference_block,
    search_report,
    select,
)
from alicerce.inference.side_calls import ask
from alicerce.knowledge.search import Hit
from alicerce.knowledge.service import KnowledgeService
from alicerce.messages import text_of
from alicerce.tokens import TokenCounter
from alicerce.upstreams.registry import Target

log = logging.getLogger("alicerce.grounding")

SEARCH_TOOL = "search_knowledge"
REWRITE_INSTRUCTIONS = (
    "You turn the last question of a conversation into one standalone search query for a "
    "document search engine. Resolve pronouns and references from the earlier turns, keep the "
    "user's language, and answer with the query only: no quotes, no explanation."
)
TOOL_HINT = (
    "You can search this assistant's documents with the `search_knowledge` function; use it "
    "for questions that the documents may answer, and base your answer on what it returns."
)


def user_turns(messages: list[dict[str, Any]], count: int) -> list[str]:
    texts = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    return [t for t in texts if t.strip()][-count:]


def add_to_system(messages: list[dict[str, Any]], text: str) -> None:
    """`text` appended to the leading system message (made if there is none)."""
    if messages and messages[0].get("role") == "system":
        current = text_of(messages[0].get("content"))
        messages[0] = {**messages[0], "content": f"{current}\n\n{text}" if current else text}
    else:
        messages.insert(0, {"role": "system", "content": text})


async def find(
    knowledge: KnowledgeService,
    account_id: str,
    settings: Knowledge,
    query: str,
    context: str | None = None,
) -> Found:
    """The hits for `query` (and, fused with them, for `context`), best first: `top_k` and a
    few runners-up, every score, so that the caller can say why each was or was not used."""
    found = Found(query, context_query=context, context_weight=settings.context_weight)
    wanted = settings.top_k + RUNNERS_UP
    try:
        first = await knowledge.search(
            account_id, settings.collections, query, top_k=wanted, mode=settings.mode
        )
        if context is None:
            found.hits = first.hits
            return found
        second = await knowledge.search(
            account_id, settings.collections, context, top_k=wanted, mode=settings.mode
        )
    except AlicerceError as exc:  # the answer goes on without documents, and says so
        log.warning("knowledge search failed: %s", exc.message)
        found.error, found.searches = exc.message, 0
        return found
    found.searches = 2
    found.hits, found.parts = fuse(first.hits, second.hits, settings.context_weight)
    del found.hits[wanted:]
    return found


def fuse(
    by_query: list[Hit], by_context: list[Hit], weight: float
) -> tuple[list[Hit], dict[str, tuple[float, float]]]:
    """Two rankings of the same collections as one: `(1 - weight) x query + weight x context`
    (a hit missing from one list scores 0 there), best first, with each hit's two scores. The
    scores stay in [0, 1] and comparable, so `min_score` means what it means for one search."""
    query_scores = {h.chunk_id: h.score for h in by_query}
    context_scores = {h.chunk_id: h.score for h in by_context}
    hits = {h.chunk_id: h for h in [*by_context, *by_query]}
    parts = {c: (query_scores.get(c, 0.0), context_scores.get(c, 0.0)) for c in hits}
    fused = [
        replace(hit, score=(1 - weight) * parts[c][0] + weight * parts[c][1])
        for c, hit in hits.items()
    ]
    fused.sort(key=lambda hit: hit.score, reverse=True)
    return fused, parts


def grounded(
    strategy: str, settings: Knowledge, found: Found
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """What the model reads of a grounding step, the passages it cites, and the step's report."""
    if found.error is not None:
        return SEARCH_FAILED, [], search_report(strategy, settings, found, None)
    selection = select(found.hits, settings)
    cited = [citation(hit, selection.low_confidence) for hit in selection.given]
    return reference_block(selection), cited, search_report(strategy, settings, found, selection)


class SearchTool:
    """`search_knowledge`, offered to the model under the `tool` strategy."""

    name = SEARCH_TOOL

    def __init__(self, knowledge: KnowledgeService, account_id: str, settings: Knowledge) -> None:
        self._knowledge = knowledge
        self._account_id = account_id
        self._settings = settings

    def spec(self) -> dict[str, Any]:
        return tool_spec(
            SEARCH_TOOL,
            "Search this assistant's documents. Returns the most relevant passages with the "
            "names of the documents they come from.",
            {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "minLength": 1,
                        "description": "What to look for, as a standalone question or keywords.",
                    }
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        )

    async def run(self, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        settings = self._settings
        found = await find(self._knowledge, self._account_id, settings, arguments["query"])
        text, cited, report = grounded("tool", settings, found)
        result = failed(call, found.error) if found.error is not None else ToolResult(call, text)
        if found.searches:
            result.charges.append(self._knowledge.search_line_item(found.searches))
        result.knowledge.extend(cited)
        result.searches.append(report)
        return result


class Grounder:
    def __init__(self, knowledge: KnowledgeService, tokens: TokenCounter) -> None:
        self.knowledge = knowledge
        self._tokens = tokens

    async def ground(
        self, account_id: str, settings: Knowledge, plan: Plan, target: Target
    ) -> None:
        """Adds the gateway's knowledge to `plan`: searched chunks, or the search tool."""
        strategy = settings.strategy
        if strategy == "none" or not settings.collections:
            return
        messages = plan.body["messages"]
        if strategy == "tool":
            add_to_system(messages, TOOL_HINT)
            return
        turns = user_turns(messages, settings.context_turns)
        if not turns:
            return
        query, context = "\n".join(turns), None
        if strategy == "always":
            query = turns[-1]
            if len(turns) > 1 and settings.context_weight > 0:
                context = "\n".join(turns)
        elif strategy == "rewrite":
            query = await self._rewrite(messages, settings.context_turns, plan, target) or query
        found = await find(self.knowledge, account_id, settings, query, context)
        text, cited, report = grounded(strategy, settings, found)
        if found.searches:
            plan.line_items.append(self.knowledge.search_line_item(found.searches))
        plan.knowledge.extend(cited)
        plan.searches.append(report)
        add_to_system(messages, text)

    def search_tool(self, account_id: str, settings: Knowledge) -> SearchTool:
        return SearchTool(self.knowledge, account_id, settings)

    async def _rewrite(
        self, messages: list[dict[str, Any]], turns: int, plan: Plan, target: Target
    ) -> str | None:
        recent = [m for m in messages if m.get("role") in ("user", "assistant")]
        if plan.prefill and recent and recent[-1].get("role") == "assistant":
            recent = recent[:-1]  # the prefill is ours, not the conversation's
        transcript = "\n".join(
            f"{m['role']}: {' '.join(text_of(m.get('content')).split())[:2000]}"
            for m in recent[-2 * turns :]
        )
        body = {
            "messages": [
                {"role": "system", "content": REWRITE_INSTRUCTIONS},
                {"role": "user", "content": transcript},
            ],
            "max_tokens": 64,
            "temperature": 0,
        }
        answered = await ask(target, body, self._tokens, QUERY_REWRITE_SKU, "Query rewriting")
        plan.line_items += answered.line_items
        query = " ".join((answered.text or "").split()).strip("\"'")
        return query or None
