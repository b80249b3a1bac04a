"""A gateway on the in-process local model, called through the `openai` SDK (real model)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Account

pytestmark = pytest.mark.slow


def _local_gateway(account: Account, **params: object) -> dict:
    return account.create_gateway(
        model="@local/smollm2-135m",
        instructions="You are a helpful assistant. Answer in one short sentence.",
        parameters={"temperature": 0, "seed": 1, "max_tokens": 16, **params},
    )


def test_local_model_answers_streaming_and_not(account: Account) -> None:
    gateway = _local_gateway(account)
    client = account.openai()
    messages = [{"role": "user", "content": "What color is the sky on a clear day?"}]
    completion = client.chat.completions.create(model=gateway["slug"], messages=messages)
    text = completion.choices[0].message.content
    assert text and text.strip()
    assert completion.model == "smollm2-135m-instruct"
    usage = completion.usage
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # A catalog model is billed by line items even when its price is zero.
    items = {i["sku"]: i for i in completion.model_extra["generation_context"]["generated_usage"]}
    assert items["inference.chat_completions.in"]["quantity"] == usage.prompt_tokens
    assert items["inference.chat_completions.out"]["quantity"] == usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model=gateway["slug"],
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    content = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(content) > 2  # real token streaming, not one buffered piece
    assert "".join(content).strip()
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0


def test_local_model_continues_the_prefill(account: Account) -> None:
    gateway = _local_gateway(account, prefill="The capital of France is")
    client = account.openai()
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    completion = client.chat.completions.create(model=gateway["id"], messages=messages)
    text = completion.choices[0].message.content
    assert text.startswith("The capital of France is")
    assert len(text) > len("The capital of France is")
    assert "paris" in text.lower()

    stream = client.chat.completions.create(model=gateway["id"], messages=messages, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == text  # same seed, same answer, streamed or not


def test_local_model_async_client(account: Account) -> None:
    gateway = _local_gateway(account)

    async def run() -> str:
        client = account.async_openai()
        stream = await client.chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Say hi."}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return text

    assert asyncio.run(run()).strip()


def test_clients_that_leave_mid_stream_do_not_break_the_next_request(account: Account) -> None:
    """A stream closed after its first token gives its model back only once the model's
    thread has stopped: the next request never shares a llama.cpp context still decoding."""
    gateway = _local_gateway(account, max_tokens=64)
    client = account.openai()
    messages = [{"role": "user", "content": "Tell me about the sea."}]
    for _ in range(4):
        with client.chat.completions.create(
            model=gateway["id"], messages=messages, stream=True
        ) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
        completion = client.chat.completions.create(model=gateway["id"], messages=messages)
        assert completion.choices[0].message.content
