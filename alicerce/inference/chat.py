"""The upstream step of a chat request: its answer, whole or streamed, and its record.

Called by the pipeline (`inference/pipeline.py`) with a request already planned, admitted,
routed and grounded, and the targets that may serve it (the first, then its fallbacks). Tries
them in order (`fallback.py`), drives the tool rounds (`rounds.py`), relays a stream chunk by
chunk (`relay.py`), and records what it served in the ledger: a whole answer once it has it, a
stream when it ends, however it ends (the client leaving is 499, billed for what was
generated). A failure before the answer began is raised unrecorded: the pipeline records it;
one after a round was answered (a bug too: a 500) is recorded here, with what it consumed.

Knows nothing of HTTP: it returns a dict, or an async iterator of chunk objects
(`relay.StreamItem`) that only the API layer turns into bytes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio

from alicerce.errors import AlicerceError, UpstreamError, internal_error
from alicerce.inference.answer import answer_choices, normalise_message
from alicerce.inference.fallback import RetryPolicy, first_success, upstream_failed
from alicerce.inference.functions import split_calls
from alicerce.inference.plan import Plan
from alicerce.inference.relay import Chunk, Failure, StreamItem, StreamRelay
from alicerce.inference.rounds import ToolRounds
from alicerce.ledger import Call, UsageLedger
from alicerce.tokens import TokenCounter
from alicerce.upstreams.base import Completion
from alicerce.upstreams.registry import Target

log = logging.getLogger("alicerce.api")


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
        answers (or calls the client's tools), as `ToolRounds` decides. A failure of every
        target raises; unrecorded when it came before any answer (the caller records it), recorded
        here with the answered rounds' cost when it came in a later round."""
        rounds = ToolRounds(plan, self._tokens)
        try:
            while True:
                completion, target = await first_success(
                    targets,
                    partial(_complete, body=rounds.body),
                    self._policy,
                    call,
                    self._ledger,
                )
                rounds.started(target)
                choices = answer_choices(completion)
                text = "".join((c.get("message") or {}).get("content") or "" for c in choices)
                await rounds.bill(completion.get("usage"), text)
                if not plan.toolbox or not choices:
                    break
                message = choices[0].get("message") or {}
                server, client = split_calls(message.get("tool_calls"), plan.toolbox)
                if await rounds.next(server, bool(client), message.get("content")):
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
                "usage": rounds.total.to_openai(),
                "service_tier": completion.get("service_tier") or "default",
                "system_fingerprint": completion.get("system_fingerprint"),
                "generation_context": rounds.context.to_json(),
            }
        except Exception as exc:
            if rounds.target is not None:  # a round was answered: what it cost is billed
                if not rounds.billed:  # its answer could not be read: what it reported is
                    with contextlib.suppress(Exception):
                        await rounds.bill(completion.get("usage"), "")
                error = exc if isinstance(exc, AlicerceError) else internal_error()
                model = rounds.target.upstream.model
                self._record(
                    call, model, error.status, rounds, stream=False, ttft_ms=None, error=error
                )
            raise  # a bug goes on to the door, which logs it and answers 500
        # A client that left while the model answered is recorded as 499 (nginx's "client
        # closed request"), billed for the whole answer: the upstream was paid for it.
        gone = call.client_gone is not None and await call.client_gone()
        self._record(call, model, 499 if gone else 200, rounds, stream=False, ttft_ms=None)
        return answer, target

    async def _start_stream(
        self, call: Call, targets: list[Target], body: dict[str, Any]
    ) -> tuple[tuple[AsyncIterator[Completion], Completion | None], Target]:
        """The first target's stream that yields a first chunk (or ends cleanly)."""

        async def start(target: Target) -> tuple[AsyncIterator[Completion], Completion | None]:
            chunks = target.upstream.stream(body)
            try:
                return chunks, await anext(chunks, None)
            except BaseException:
                await chunks.aclose()  # type: ignore[attr-defined]
                raise

        return await first_success(targets, start, self._policy, call, self._ledger)

    async def open_stream(
        self, call: Call, targets: list[Target], plan: Plan
    ) -> tuple[AsyncIterator[StreamItem], Target]:
        """Starts the stream of the first target that answers; fails before the first chunk."""
        rounds = ToolRounds(plan, self._tokens)
        (chunks, first), target = await self._start_stream(call, targets, rounds.body)
        rounds.started(target)
        return self._relay(call, targets, rounds, chunks, first), target

    async def _relay(
        self,
        call: Call,
        targets: list[Target],
        rounds: ToolRounds,
        chunks: AsyncIterator[Chunk],
        first: Chunk | None,
    ) -> AsyncIterator[StreamItem]:
        """Relays the answer, one item per upstream chunk; with server tools, runs each round's
        calls and streams on."""
        plan = rounds.plan
        assert rounds.target is not None
        relay = StreamRelay(
            request_id=call.request_id,
            model=rounds.target.upstream.model,
            prefill=plan.prefill,
            started=call.started,
            toolbox=plan.toolbox,
        )
        status, error = 499, None  # until the stream ends well: the client went away
        try:
            opening = relay.opening()  # the role goes with the first upstream chunk
            while True:
                if first is not None:
                    pieces = relay.relay(first)
                    if opening:
                        pieces[:0], opening = opening, []
                    if pieces:
                        yield pieces
                    async for chunk in chunks:
                        pieces = relay.relay(chunk)
                        if pieces:
                            yield pieces
                text = relay.round_text
                await rounds.bill(relay.usage, text)
                calls = relay.held_calls()
                if not await rounds.next(calls, bool(relay.client_index), text or None):
                    break
                relay.next_round()
                await chunks.aclose()  # type: ignore[attr-defined]
                (chunks, first), target = await self._start_stream(call, targets, rounds.body)
                rounds.started(target)
            closing = relay.closing(
                rounds.total.to_openai(), rounds.context.to_json(), plan.include_usage
            )
            closing.chunks[:0] = opening
            yield closing
            status = 200
        except AlicerceError as exc:
            status, error = exc.status, exc
            self._broke_off(call, rounds, exc)
            yield Failure(exc)
        except Exception:  # a bug after the stream began: an error event, recorded as a 500
            log.exception("unexpected error in the stream of request %s", call.request_id)
            error = internal_error()
            status = error.status
            yield Failure(error)
        finally:
            with anyio.CancelScope(shield=True):
                await chunks.aclose()  # type: ignore[attr-defined]
                if not rounds.billed:  # bill what was generated, also when the client went away
                    await rounds.bill(relay.usage, relay.round_text)
            self._record(
                call, relay.model, status, rounds, stream=True, ttft_ms=relay.ttft_ms, error=error
            )

    def _broke_off(self, call: Call, rounds: ToolRounds, exc: AlicerceError) -> None:
        """An upstream that failed after its stream began (not in a try `first_success` has
        logged already) is logged and counted as one failed try, with nothing after it."""
        tried = call.attempts[-1].error if call.attempts else None
        if isinstance(exc, UpstreamError) and exc is not tried and rounds.target is not None:
            attempt = upstream_failed(
                call.request_id, rounds.target, 1, exc, "fail", after="its answer had begun"
            )
            self._ledger.attempt_failed(call, attempt)

    def _record(
        self,
        call: Call,
        model: str | None,
        status: int,
        rounds: ToolRounds,
        *,
        stream: bool,
        ttft_ms: float | None,
        error: AlicerceError | None = None,
    ) -> None:
        call.target = rounds.target or call.target
        self._ledger.record_call(
            call,
            model=model,
            status=status,
            usage=rounds.total,
            items=rounds.context.line_items,
            stream=stream,
            ttft_ms=ttft_ms,
            error=error,
        )
