"""The activation ranges that SmoothQuant needs (see `alicerce.e5.graph`), measured once.

`max|x_k|` of every linear layer's input channels, over calibration text run through the float32
model: the project's sample documents (Portuguese and English) as passages and a few questions
as queries. The result ships beside this module (`activation_ranges.npz`, 130 KB, with the
SHA-256 of the weights file it was measured on); for another weights file it is measured at
load instead (a few seconds). Regenerate it with `bench/e5_activation_ranges.py`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from alicerce.e5.graph import Ranges, build_calibration_graph
from alicerce.e5.tokenizer import PASSAGE_PREFIX, QUERY_PREFIX, E5Tokenizer
from alicerce.e5.weights import E5Weights

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("activation_ranges.npz")
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
QUESTIONS = [
    "Como a cobrança funciona?",
    "what is an AI gateway",
    "how do I search my documents",
    "quais formatos de arquivo posso enviar?",
]

Embeds = Callable[[list[int]], np.ndarray]  # ids -> [1, tokens, 384] float32


def digest(path: Path) -> str:
    hashed = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            hashed.update(block)
    return hashed.hexdigest()


def activation_ranges(weights: E5Weights, tokenizer: E5Tokenizer, embeds: Embeds) -> Ranges:
    """The shipped ranges when they were measured on this weights file, else measured now."""
    wanted = digest(weights.path)
    if SHIPPED.exists():
        with np.load(SHIPPED) as shipped:
            if str(shipped["weights_sha256"]) == wanted:
                return {name: shipped[name] for name in shipped.files if name != "weights_sha256"}
    log.info(
        "measuring e5 activation ranges for %s (its weights are not the shipped ones)", weights.path
    )
    return measure(weights, tokenizer, embeds)


def measure(weights: E5Weights, tokenizer: E5Tokenizer, embeds: Embeds) -> Ranges:
    model, probes = build_calibration_graph(weights)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    texts = [
        (PASSAGE_PREFIX, path.read_text(errors="replace")) for path in sorted(SAMPLES.iterdir())
    ]
    texts += [(QUERY_PREFIX, question) for question in QUESTIONS]
    window = weights.max_positions - 2
    ranges: Ranges = {}
    for prefix, text in texts:
        ids = tokenizer.content(text, prefix=prefix)
        for start in range(0, max(len(ids), 1), window):
            part = [tokenizer.bos, *ids[start : start + window], tokenizer.eos]
            mask = np.ones((1, len(part)), np.int32)
            outputs = session.run(None, {"embeds": embeds(part), "mask": mask})[1:]
            for (name, _), values in zip(probes, outputs, strict=True):
                found = np.abs(values).reshape(-1, values.shape[-1]).max(axis=0)
                ranges[name] = np.maximum(ranges.get(name, found), found)
    return ranges
