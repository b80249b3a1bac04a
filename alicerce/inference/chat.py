"""Chat completions: plan → upstream → answer (whole or streamed) → request log.

Knows nothing of HTTP: the API layer hands in a decoded request and gets back a dict or an
iterator of SSE bytes. Every request is recorded once, whatever its outcome.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio

from alicerce.billing import LineItem, TokenUsage
from alicerce.errors import AlicerceError
from alicerce.inference.answer import (
    GenerationContext,
    bill,
    normalise_message,
)
from alicerce.inference.fallback import RetryPolicy, first_success
from alicerce.inference.functions import MAX_ROUNDS, split_calls
from alicerce.inference.plan import Plan
from alicerce.inference.relay import StreamRelay, sse
from alicerce.ledger import Call, UsageLedger
from alicerce.tokens import TokenCounter
from alicerce.upstreams.base import Completion
from alicerce.upstreams.registry import Target


async def _complete(target: Target, body: dict[str, Any]) -> Completion:
    return await target.upstream.complete(body)


class ChatService:
    def __init__(self, ledger: UsageLedger, policy: RetryPolicy, tokens: TokenCounter) -> None:
        self._ledger = ledger
        self._policy = policy
        self._tokens = tokens

    async def complete(
        self, call: Call, targets: list[Target], plan: Plan
    ) -> tuple[dict[str, Any], Target]:
        """The whole answer from the first target that gives one, and that target.

        With server-side tools, each round's calls are run and fed back until the model
        answers (or calls the client's tools), at most `MAX_ROUNDS` times; the last round is
        asked for an answer (`tool_choice: none`). A failure of every target raises,
        unrecorded: the caller records it."""
        context = GenerationContext.of(plan)
        total = TokenUsage()
        body = plan.body
        for round_number in range(MAX_ROUNDS + 1):
            sent = plan.for_round(body, round_number)
            completion, target = await first_success(
                targets, partial(_complete, body=sent), self._policy
            )
            choices = [c for c in completion["choices"] if isinstance(c, dict)]
            text = "".join(c.get("message", {}).get("content") or "" for c in choices)
            usage = await self._tokens.settle(completion.get("usage"), body["messages"], text)
            bill(context, target, usage)
            total += usage
            if not plan.toolbox or not choices:
                break
            message = choices[0].get("message") or {}
            server, client = split_calls(message.get("tool_calls"), plan.toolbox)
            if server and not client and round_number < MAX_ROUNDS:
                results = await plan.toolbox.run_all(server)
                context.absorb(results)
                body = plan.after_tools(body, message.get("content"), server, results)
                continue
            # The client's calls (if any) go back to it; the server's are not its business.
            choices[0] = {**choices[0], "message": {**message, "tool_calls": client or None}}
            if not client and choices[0].get("finish_reason") == "tool_calls":
                choices[0]["finish_reason"] = "stop"
            break
        model = completion.get("model") or target.upstream.model
        answer = {
            "id": call.request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": c.get("index", i),
                    "message": normalise_message(c.get("message"), plan.prefill),
                    "logprobs": c.get("logprobs"),
                    "finish_reason": c.get("finish_reason") or "stop",
                }
                for i, c in enumerate(choices)
            ],
            "usage": total.to_openai(),
            "service_tier": completion.get("service_tier") or "default",
            "system_fingerprint": completion.get("system_fingerprint"),
            "generation_context": context.to_json(),
        }
        self._record(call, model, 200, total, context, stream=False, ttft_ms=None)
        return answer, target

    async def _start_stream(
        self, targets: list[Target], body: dict[str, Any]
    ) -> tuple[tuple[AsyncIterator[Completion], Completion | None], Target]:
        """The first target's stream that yields a first chunk (or ends cleanly)."""

        async def start(target: Target) -> tuple[AsyncIterator[Completion], Completion | None]:
            chunks = target.upstream.stream(body)
            try:
                return chunks, await anext(chunks, None)
            except BaseException:
                await chunks.aclose()  # type: ignore[attr-defined]
                raise

        return await first_success(targets, start, self._policy)

    async def open_stream(
        self, call: Call, targets: list[Target], plan: Plan
    ) -> tuple[AsyncIterator[bytes], Target]:
        """Starts the stream of the first target that answers; fails before the first byte."""
        (chunks, first), target = await self._start_stream(targets, plan.body)
        return self._relay(call, targets, target, plan, chunks, first), target

    async def _relay(
        self,
        call: Call,
        targets: list[Target],
        target: Target,
        plan: Plan,
        chunks: AsyncIterator[dict[str, Any]],
        first: dict[str, Any] | None,
    ) -> AsyncIterator[bytes]:
        """Relays the answer; with server tools, runs each round's calls and streams on."""
        relay = StreamRelay(
            request_id=call.request_id,
            model=target.upstream.model,
            prefill=plan.prefill,
            started=call.started,
            toolbox=plan.toolbox,
        )
        context = GenerationContext.of(plan)
        total = TokenUsage()
        body = plan.body
        billed = False  # whether the current round's tokens are in `total`
        status, error = 499, None  # until the stream ends well: the client went away
        try:
            opening = relay.opening()
            for round_number in range(MAX_ROUNDS + 1):
                if first is not None:
                    # One write per upstream chunk (the role goes with the first one).
                    pieces = [*opening, *relay.relay(first)]
                    opening = []
                    if pieces:
                        yield b"".join(pieces)
                    async for chunk in chunks:
                        pieces = relay.relay(chunk)
                        if pieces:
                            yield b"".join(pieces)
                usage = await self._tokens.settle(relay.usage, body["messages"], relay.round_text)
                bill(context, target, usage)
                total, billed = total + usage, True
                calls = relay.held_calls()
                if not calls or relay.client_index or round_number == MAX_ROUNDS:
                    break
                assert plan.toolbox is not None
                results = await plan.toolbox.run_all(calls)
                context.absorb(results)
                body = plan.after_tools(body, relay.round_text or None, calls, results)
                relay.next_round()
                await chunks.aclose()  # type: ignore[attr-defined]
                sent = plan.for_round(body, round_number + 1)
                (chunks, first), target = await self._start_stream(targets, sent)
                billed = False
            closing = relay.closing(total.to_openai(), context.to_json(), plan.include_usage)
            yield b"".join([*opening, *closing])
            status = 200
        except AlicerceError as exc:
            status, error = exc.status, exc
            yield sse(exc.to_body())
        finally:
            with anyio.CancelScope(shield=True):
                await chunks.aclose()  # type: ignore[attr-defined]
                if not billed:  # bill what was generated, also when the client went away
                    usage = await self._tokens.settle(
                        relay.usage, body["messages"], relay.round_text
                    )
                    bill(context, target, usage)
                    total += usage
            self._record(
                call,
                relay.model,
                status,
                total,
                context,
                stream=True,
                ttft_ms=relay.ttft_ms,
                error=error,
            )

    # -- recording -----------------------------------------------------------------------

    def record_failure(
        self,
        call: Call,
        model: str | None,
        exc: AlicerceError,
        *,
        stream: bool,
        charges: list[LineItem] | None = None,
    ) -> None:
        """Records a request that got no answer, with what it consumed before failing."""
        self._record(
            call,
            model,
            exc.status,
            TokenUsage(),
            GenerationContext(line_items=list(charges or [])),
            stream=stream,
            ttft_ms=None,
            error=exc,
        )

    def _record(
        self,
        call: Call,
        model: str | None,
        status: int,
        usage: TokenUsage,
        context: GenerationContext,
        *,
        stream: bool,
        ttft_ms: float | None,
        error: AlicerceError | None = None,
    ) -> None:
        self._ledger.record_call(
            call,
            model=model,
            status=status,
            usage=usage,
            items=context.line_items,
            stream=stream,
            ttft_ms=ttft_ms,
            error=error,
        )
