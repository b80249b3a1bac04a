"""The request pipeline: one inference request, from its body to its ledger record.

The API layer (`api/inference.py`, `api/responses.py`, `api/embeddings.py`) authenticates the
key (`api/auth.py`), opens a `Call` and hands the pipeline the request's body, still to be read;
it gets back plain objects (an answer dict, or a stream of chunk objects) and only encodes them.
In between, in this order, for chat completions and the Responses API alike:

1. read and parse the body (`inference/request.py`; the Responses API's is translated into a
   chat request, `inference/responses.py`);
2. resolve the gateway the key names (`gateways.py`), or a catalog model called by its id;
3. plan what the upstream is sent (`inference/plan.py`) and add the gateway's server-side
   tools (`inference/functions.py`, `inference/grounding.py`'s search tool);
4. admit it against the key's limits (`limits.py`): a refused request has called no model and
   searched nothing;
5. route `@auto` to a tier (`inference/routing.py`);
6. ground it in the gateway's knowledge (`inference/grounding.py`);
7. call the upstream (`inference/chat.py`: fallbacks, tool rounds, the stream relay);
8. record it (`ledger.py`), exactly once whatever the outcome: `ChatService` (and
   `EmbeddingsService`) record what they answered, a stream when it ends, however it ends; a
   request that got no answer (bad body, unknown model, limits, every upstream down) is
   recorded here, with what it consumed before failing.

Embeddings share steps 1 and 8 (`inference/embeddings.py` does the rest).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any

from anyio import to_thread

from alicerce.billing import LineItem, TokenUsage
from alicerce.catalog import AUTO_MODEL, Catalog
from alicerce.errors import AlicerceError, NotFound, PermissionDenied, internal_error
from alicerce.gateways import OVERRIDABLE, Gateway, GatewayService, GatewaySpec
from alicerce.inference.answer import prompt_estimate
from alicerce.inference.chat import ChatService
from alicerce.inference.embeddings import EmbeddingsService, parse_embeddings_request
from alicerce.inference.functions import GatewayTools, merge_tools
from alicerce.inference.grounding import Grounder
from alicerce.inference.plan import Plan, plan_chat
from alicerce.inference.relay import StreamItem
from alicerce.inference.request import ChatRequest, parse_chat_request
from alicerce.inference.reservation import models_of, worst_case_cost, worst_case_tokens
from alicerce.inference.responses import (
    ResponseEvents,
    parse_responses_request,
    response_from_chat,
    response_id,
    to_chat_request,
)
from alicerce.inference.routing import ComplexityRouter
from alicerce.keys import Principal
from alicerce.ledger import Call, UsageLedger
from alicerce.limits import Limiter
from alicerce.upstreams.registry import Target, UpstreamRegistry

log = logging.getLogger("alicerce.api")


@dataclass(slots=True)
class Served:
    """Who answered a request and how it was routed: what its answer's headers say."""

    request_id: str
    target: Target | None = None  # None for embeddings
    complexity: int | None = None  # `@auto` only: the tier's complexity
    routing_fallback: bool = False  # `@auto` only: the router failed, the middle tier answered
    ratelimit: dict[str, str] | None = None  # a key with rpm/tpm: where it stands


@dataclass(slots=True)
class Answer:
    """A whole answer: a chat completion, a `response` object or an embeddings list."""

    body: dict[str, Any]
    served: Served


@dataclass(slots=True)
class ChatStream:
    """A streamed chat completion: one item per write (`relay.StreamItem`)."""

    items: AsyncIterator[StreamItem]
    served: Served


@dataclass(slots=True)
class ResponseStream:
    """A streamed response: the chat stream's items and their translator into events."""

    items: AsyncIterator[StreamItem]
    events: ResponseEvents
    served: Served


@dataclass(slots=True)
class Prepared:
    """A request ready for the upstream: its plan and who may serve it, the first first."""

    plan: Plan
    targets: list[Target]
    served: Served


@dataclass(slots=True)
class _Unanswered:
    """The frame of one call: if it fails before an answer, records it (and names it in the
    error) with what was known by then. One frame for every entry point, so that none can
    record a failure differently, or forget to."""

    ledger: UsageLedger
    call: Call
    stream: bool = False
    model: str | None = None
    charges: list[LineItem] | None = None

    def prepared(self, prepared: Prepared) -> None:
        """What a failure from now on is recorded with: the model, planning's charges."""
        self.model = prepared.targets[0].upstream.model
        self.charges = prepared.plan.line_items
        self.call.target = prepared.targets[0]

    def __enter__(self) -> _Unanswered:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.ledger.release(self.call)  # nothing to record here (an answer records itself)
            return
        bug = isinstance(exc, Exception) and not isinstance(exc, AlicerceError)
        if bug:  # logged here, where the request is known; the client gets a plain 500
            log.error("unexpected error in request %s", self.call.request_id, exc_info=exc)
        error = exc if isinstance(exc, AlicerceError) else internal_error()
        error.request_id = self.call.request_id  # the error names the request
        if isinstance(exc, Exception) and not self.call.recorded:
            # Recorded all the same: with planning's charges (the service records what an
            # upstream call that answered consumed, and a bug after it, itself).
            self.ledger.record_call(
                self.call,
                model=self.model,
                status=error.status,
                usage=TokenUsage(),
                items=list(self.charges or ()),
                stream=self.stream,
                error=error,
            )
        else:
            self.ledger.release(self.call)  # cancelled unanswered: its reservation goes back
        if bug:
            raise error from exc


def direct_spec(model_id: str) -> GatewaySpec:
    """A catalog model called by its id: no instructions, every parameter the client's."""
    return GatewaySpec(name="direct", model=model_id, overridable=list(OVERRIDABLE))


class Pipeline:
    def __init__(
        self,
        *,
        gateways: GatewayService,
        catalog: Callable[[], Catalog],
        upstreams: UpstreamRegistry,
        tools: GatewayTools,
        router: ComplexityRouter,
        grounder: Grounder,
        limiter: Limiter,
        chat: ChatService,
        embeddings: EmbeddingsService,
        ledger: UsageLedger,
    ) -> None:
        self._gateways = gateways
        self._catalog = catalog
        self._upstreams = upstreams
        self._tools = tools
        self._router = router
        self._grounder = grounder
        self._limiter = limiter
        self._chat = chat
        self._embeddings = embeddings
        self._ledger = ledger

    # -- the entry points: one per route -------------------------------------------------

    async def chat(self, call: Call, body: Awaitable[bytes]) -> Answer | ChatStream:
        """`POST /chat/completions`: a chat completion, whole or streamed."""
        with _Unanswered(self._ledger, call) as frame:
            request = parse_chat_request(await body)
            frame.stream, call.metadata = request.stream, request.metadata
            prepared = await self.prepare(call, request)
            frame.prepared(prepared)
            served = prepared.served
            if request.stream:
                items, served.target = await self._chat.open_stream(
                    call, prepared.targets, prepared.plan
                )
                return ChatStream(items, served)
            answer, served.target = await self._chat.complete(call, prepared.targets, prepared.plan)
            return Answer(answer, served)

    async def respond(self, call: Call, body: Awaitable[bytes]) -> Answer | ResponseStream:
        """`POST /responses`: the same pipeline, its answer reshaped as a `response`."""
        with _Unanswered(self._ledger, call) as frame:
            request = parse_responses_request(await body)
            frame.stream, call.metadata = request.stream, request.metadata
            prepared = await self.prepare(call, to_chat_request(request))
            frame.prepared(prepared)
            served, rid = prepared.served, response_id(call.request_id)
            if request.stream:
                items, target = await self._chat.open_stream(call, prepared.targets, prepared.plan)
                served.target = target
                events = ResponseEvents(rid, request, target.upstream.model)
                return ResponseStream(items, events, served)
            answer, served.target = await self._chat.complete(call, prepared.targets, prepared.plan)
            return Answer(response_from_chat(rid, request, answer), served)

    async def embed(self, call: Call, body: Awaitable[bytes]) -> Answer:
        """`POST /embeddings`."""
        with _Unanswered(self._ledger, call):
            request, texts = parse_embeddings_request(await body)
            answer, ratelimit = await self._embeddings.create(call, request, texts)
            return Answer(answer, Served(call.request_id, ratelimit=ratelimit))

    # -- the steps before the upstream ---------------------------------------------------

    async def resolve_gateway(self, principal: Principal, ref: str) -> Gateway | None:
        """The gateway `ref` (an id or slug) names in the key's account, if the key may call
        it; None if there is no such gateway. From memory when cached."""
        assert principal.account_id is not None
        found, gateway = self._gateways.peek(principal.account_id, ref)
        if not found:
            gateway = await to_thread.run_sync(self._gateways.resolve, principal.account_id, ref)
        if gateway is not None and not principal.may_use_gateway(gateway.id):
            raise PermissionDenied(
                f"This key may not call the gateway {ref!r}.",
                param="model",
                code="gateway_not_allowed",
            )
        return gateway

    async def prepare(self, call: Call, chat: ChatRequest) -> Prepared:
        """Resolves the gateway (or catalog model) and plans the request; then, once the key's
        limits let it through, routes it (`@auto`) and grounds it in the gateway's knowledge, so
        that a refused request has called no model and searched nothing."""
        principal = call.principal
        gateway = await self.resolve_gateway(principal, chat.model)
        if gateway is None:
            return await self._prepare_direct(call, chat)
        call.gateway_id, call.gateway = gateway.id, gateway.slug
        spec = gateway.spec
        plan = plan_chat(spec, chat, self._catalog().currency)
        searches = spec.knowledge.strategy == "tool"
        if spec.functions or searches:
            more = (
                [self._grounder.search_tool(gateway.account_id, spec.knowledge)] if searches else []
            )
            plan.toolbox = self._tools.for_gateway(gateway.id, spec, spec.functions, *more)
            plan.body["tools"] = merge_tools(plan.body.get("tools"), plan.toolbox)
        served = Served(call.request_id, ratelimit=await self._admit(call, plan, spec))
        chosen = None
        if spec.model == AUTO_MODEL and spec.routing is not None:
            routed = await self._router.route(spec.routing, plan.body)
            plan.line_items += routed.line_items
            chosen = routed.model_id
            served.complexity = routed.complexity
            if served.complexity is None:  # the router failed: the middle tier, said so
                served.complexity, served.routing_fallback = 3, True
                routed.decision |= {"complexity": 3, "fallback": True}
            plan.routing = call.routing = routed.decision
        targets = self._upstreams.targets(gateway, chosen)
        if spec.knowledge.strategy != "none":
            await self._grounder.ground(gateway.account_id, spec.knowledge, plan, targets[0])
        return Prepared(plan, targets, served)

    async def _prepare_direct(self, call: Call, chat: ChatRequest) -> Prepared:
        """A catalog chat model called by its id, by a key not limited to gateways."""
        principal = call.principal
        direct = self._catalog().get(chat.model)
        if principal.gateways is None and direct is not None and direct.kind == "chat":
            spec = direct_spec(chat.model)
            plan = plan_chat(spec, chat, self._catalog().currency)
            ratelimit = await self._admit(call, plan, spec)
            targets = [self._upstreams.for_model(chat.model)]
            return Prepared(plan, targets, Served(call.request_id, ratelimit=ratelimit))
        raise NotFound(
            f"The model {chat.model!r} does not exist: name a gateway by its id or slug "
            "(GET /api/v1/models lists what this key may call).",
            param="model",
            code="model_not_found",
        )

    async def _admit(self, call: Call, plan: Plan, spec: GatewaySpec) -> dict[str, str] | None:
        """Enforces the key's limits (429) before any model is called, reserving the request's
        worst-case cost against a monthly budget (settled when it is recorded); where the key
        stands (its `x-ratelimit-*` headers) when it has `rpm` or `tpm`."""
        principal = call.principal
        if not self._limiter.applies(principal):
            return None
        prompt = prompt_estimate(plan.body)
        knowledge = spec.knowledge
        chunks = knowledge.top_k if knowledge.strategy != "none" else 0
        cost = Decimal(0)
        if principal.monthly_budget is not None:
            catalog = self._catalog()
            cost = worst_case_cost(
                plan.body,
                prompt,
                models_of(spec, catalog),
                catalog=catalog,
                knowledge_chunks=chunks,
                tool_rounds=plan.toolbox is not None,
                side_calls=1 if knowledge.strategy == "rewrite" else 0,
            )
        tokens = None
        if principal.tpm is not None:
            tokens = worst_case_tokens(plan.body, prompt, knowledge_chunks=chunks)
        admission = await self._limiter.admit(principal, prompt, cost, tokens)
        call.reserved = admission.reserved
        return admission.headers
