"""Trains `@auto`'s local router and writes `alicerce/complexity/weights.json`.

Reads `alicerce/complexity/train.jsonl` only; `eval.jsonl` is read to check that no evaluation
prompt is a near-duplicate of a training one (the largest cosine similarity across the sets is
printed, and the script refuses to go on above `--max-similarity`). Deterministic: the same
data gives the same file, byte for byte (`--check` says whether the shipped file is it).

    uv run python bench/train_router.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from alicerce.complexity import (
    EVAL,
    TIERS,
    TRAIN,
    WEIGHTS,
    Classifier,
    embedded_text,
    inputs,
    load_examples,
    train,
)
from alicerce.embeddings import LocalE5Embedder

L2 = 0.05
STEPS = 600
RATE = 0.5


def embed(embedder: LocalE5Embedder, texts: list[str]) -> np.ndarray:
    return embedder.embed_sync([embedded_text(t) for t in texts], kind="query").vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare with the shipped file")
    parser.add_argument("--max-similarity", type=float, default=0.95)
    args = parser.parse_args()
    embedder = LocalE5Embedder()
    training, evaluation = load_examples(TRAIN), load_examples(EVAL)
    train_vectors = embed(embedder, [t for t, _, _ in training])
    eval_vectors = embed(embedder, [t for t, _, _ in evaluation])
    similarity = eval_vectors @ train_vectors.T
    i, j = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
    print(
        f"max similarity eval/train: {similarity[i, j]:.4f}\n"
        f"  eval:  {evaluation[i][0][:90]}\n  train: {training[j][0][:90]}"
    )
    if similarity[i, j] > args.max_similarity:
        sys.exit(
            f"an evaluation prompt is a near-duplicate of a training one (> {args.max_similarity})"
        )
    x = np.stack([inputs(v, t) for v, (t, _, _) in zip(train_vectors, training, strict=True)])
    labels = np.array([TIERS.index(tier) for _, tier, _ in training])
    classifier = Classifier.from_json(train(x, labels, l2=L2, steps=STEPS, rate=RATE).to_json())
    text = json.dumps(classifier.to_json(), separators=(",", ":")) + "\n"
    predicted = [classifier.judge(row).tier for row in x]
    right = sum(p == tier for p, (_, tier, _) in zip(predicted, training, strict=True))
    print(f"training accuracy: {right}/{len(training)}")
    if args.check:
        same = WEIGHTS.exists() and WEIGHTS.read_text() == text
        print("the shipped weights are reproduced" if same else "the shipped weights differ")
        sys.exit(0 if same else 1)
    WEIGHTS.write_text(text)
    print(f"wrote {WEIGHTS} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
