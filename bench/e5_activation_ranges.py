"""Measures the e5 activation ranges that ship as `alicerce/e5/activation_ranges.npz`.

SmoothQuant (`alicerce.e5.graph`) needs `max|x_k|` of every linear layer's input channels;
`alicerce.e5.smoothing.measure` takes them over the project's sample documents and a few
questions, run through the float32 model. The library measures them at load only when its
weights file is not the one they were measured on (the file carries that file's SHA-256); this
script writes the shipped copy. Run it again after changing the weights, the calibration text
or the graph:

    uv run --frozen python bench/e5_activation_ranges.py

Kept out of the library: it builds an `E5Engine` (for its tokenizer and embedding tables),
which imports `smoothing`, so a `main` inside `smoothing` made the two import each other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alicerce.e5 import E5Engine, E5Weights  # noqa: E402
from alicerce.e5.smoothing import SHIPPED, digest, measure  # noqa: E402


def main() -> None:
    engine = E5Engine(threads=2)
    weights = E5Weights()
    ranges = measure(weights, engine.tokenizer, engine.model.embeds)
    arrays: dict[str, np.ndarray] = {"weights_sha256": np.array(digest(weights.path)), **ranges}
    np.savez_compressed(SHIPPED, **arrays)  # type: ignore[arg-type]
    print(f"wrote {SHIPPED} ({len(ranges)} layers)")


if __name__ == "__main__":
    main()
