"""Counting tokens for upstreams that report none."""

from __future__ import annotations

from alicerce.tokens import TokenCounter


def test_token_counter_counts_with_a_real_tokenizer() -> None:
    counter = TokenCounter()
    assert counter.count("") == 0
    hello = counter.count("Hello world")
    assert 1 <= hello <= 4
    long_text = "The quick brown fox jumps over the lazy dog. " * 50
    assert 400 <= counter.count(long_text) <= 700  # ~10 tokens a sentence, not 4 chars a token
    usage = counter.estimate([{"role": "user", "content": "Hello world"}], "Hi!")
    assert usage.estimated and usage.prompt_tokens == hello + 4 and usage.completion_tokens >= 1
