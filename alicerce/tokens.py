"""Counting tokens for upstreams that report none, with a real tokenizer.

SmolLM2's tokenizer (a 49k-entry BPE, loaded vocabulary-only from the GGUF file Alicerce ships)
counts within a few percent of the GPT-family tokenizers on English and Portuguese, where a
characters-per-token rule is off by much more on code or non-Latin text. Counts made this way are
always marked estimated. If the tokenizer cannot load, four characters a token stands in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from alicerce.billing import TokenUsage, tokens_by_length
from alicerce.local_model import bundled_model_path, load_llama
from alicerce.messages import text_of

log = logging.getLogger("alicerce.tokens")
MESSAGE_OVERHEAD = 4  # role and separators, as chat templates add them


class TokenCounter:
    def __init__(self, model_path: str | None = None) -> None:
        self._path = model_path
        self._vocab: Any = None
        self._failed = False
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._vocab is None and not self._failed:
                try:
                    self._vocab = load_llama(
                        model_path=self._path or bundled_model_path(),
                        vocab_only=True,
                        verbose=False,
                    )
                except Exception as exc:  # counting must never fail a request
                    log.warning("no tokenizer for estimates, counting characters: %s", exc)
                    self._failed = True
            return self._vocab

    def count(self, text: str) -> int:
        if not text:
            return 0
        vocab = self._load()
        if vocab is None:
            return tokens_by_length(text)
        with self._lock:
            return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

    def estimate(self, messages: list[dict[str, Any]], completion: str) -> TokenUsage:
        prompt = sum(self.count(text_of(m.get("content"))) + MESSAGE_OVERHEAD for m in messages)
        return TokenUsage(prompt, self.count(completion), estimated=True)

    async def settle(
        self, reported: Any, messages: list[dict[str, Any]], completion: str
    ) -> TokenUsage:
        """The upstream's own counts when it sent them; otherwise the tokenizer's estimate,
        counted off the event loop."""
        usage = TokenUsage.from_openai(reported)
        if usage is not None:
            return usage
        return await asyncio.to_thread(self.estimate, messages, completion)
