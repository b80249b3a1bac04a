"""How demanding a prompt is, judged in process: `@auto`'s default router.

A multinomial logistic regression over the prompt's multilingual-e5-small vector (the model
already in memory for knowledge) and a few cheap features (length, code, math, multi-step
instructions, language) says how likely the prompt is easy, medium or hard; its `score` in
[0, 1] is the expected difficulty (easy 0, medium 0.5, hard 1), which the gateway's thresholds
map to a tier. Why not ask a small chat model: SmolLM2-135M answering a digit was no better
than chance at 165 ms a decision (BENCHMARKS.md); this takes a few milliseconds and is measured
on a held-out set.

The weights (`weights.json`) are made by `bench/train_router.py` from `train.jsonl` and
checked on `eval.jsonl`, both in this package and kept apart (no near-duplicates across them).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

TIERS = ("easy", "medium", "hard")
WEIGHTS = Path(__file__).with_name("weights.json")
TRAIN = Path(__file__).with_name("train.jsonl")
EVAL = Path(__file__).with_name("eval.jsonl")
EMBED_CHARS = 1200  # head and tail of a long prompt: enough to judge it, one e5 window

_CODE = re.compile(
    r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|=>|\bSELECT\b|\bimport\b|#include|\bfunc\b|"
    r"\bpublic\b|\basync\b|\bawait\b",
    re.M,
)
_MATH = re.compile(
    r"\b(prove|proof|derive|theorem|lemma|integral|equation|eigen\w*|induction|"
    r"demonstr\w+|prove que|prova|deriv\w+|teorema|integral|equa[cç][aã]o|indu[cç][aã]o)\b|"
    r"[\^∑∫√≤≥]|\b[a-z]\([a-z]\)",
    re.I,
)
_STEPS = re.compile(
    r"\b(then|first|finally|step by step|after that|and explain|with tests|"
    r"depois|primeiro|por fim|passo a passo|em seguida|e explique|com testes)\b|^\s*\d+[.)]\s",
    re.I | re.M,
)
_DESIGN = re.compile(
    r"\b(design|architect\w*|distributed|scal\w+|trade-offs?|optimi[sz]e|analy[sz]e|"
    r"evaluate|critically|strategy|migrat\w+|concurren\w+|lock-free|consisten\w+|"
    r"projete|arquitet\w+|distribu[ií]d\w+|escal\w+|otimiz\w+|analise|avalie|"
    r"criticamente|estrat[eé]gia|concorren\w+|consist[eê]ncia)\b",
    re.I,
)
_PORTUGUESE = re.compile(r"[ãõçáéíóúâêô]|\b(que|não|uma|para|com|você|como|qual|é)\b", re.I)
FEATURES = ("length", "words", "lines", "code", "math", "steps", "design", "questions", "pt")


def features(text: str) -> np.ndarray:
    """The cheap features, each roughly in [0, 1], so that no one of them dominates."""
    words = len(text.split())
    return np.array(
        [
            min(math.log1p(len(text)) / math.log(4000), 1.5),
            min(math.log1p(words) / math.log(600), 1.5),
            min(text.count("\n") / 20, 1.0),
            min(len(_CODE.findall(text)) / 3, 1.0),
            min(len(_MATH.findall(text)) / 2, 1.0),
            min(len(_STEPS.findall(text)) / 2, 1.0),
            min(len(_DESIGN.findall(text)) / 2, 1.0),
            min(text.count("?") / 3, 1.0),
            1.0 if len(_PORTUGUESE.findall(text)) >= 2 else 0.0,
        ],
        dtype=np.float64,
    )


def embedded_text(text: str) -> str:
    """What the embedder reads of a prompt: all of a short one, head and tail of a long one."""
    text = " ".join(text.split())
    if len(text) <= EMBED_CHARS:
        return text
    half = EMBED_CHARS // 2
    return text[:half] + " … " + text[-half:]


def inputs(vector: np.ndarray, text: str) -> np.ndarray:
    """The classifier's input: the e5 vector (rounded, so that thread counts cannot change a
    decision or the trained weights) and the features."""
    rounded = np.round(np.asarray(vector, dtype=np.float64), 4)
    return np.concatenate([rounded, features(text)])


@dataclass(frozen=True, slots=True)
class Judgement:
    probabilities: tuple[float, float, float]  # easy, medium, hard
    score: float  # expected difficulty in [0, 1]

    @property
    def complexity(self) -> int:
        """The score as the LLM router's digit, 1 to 5."""
        return 1 + round(self.score * 4)

    @property
    def tier(self) -> str:
        return TIERS[int(np.argmax(self.probabilities))]


@dataclass(frozen=True, slots=True)
class Classifier:
    weights: np.ndarray  # (inputs, 3)
    bias: np.ndarray  # (3,)
    mean: np.ndarray  # (inputs,): inputs are standardised before the weights
    scale: np.ndarray

    def judge(self, x: np.ndarray) -> Judgement:
        logits = ((x - self.mean) / self.scale) @ self.weights + self.bias
        exp = np.exp(logits - logits.max())
        p = exp / exp.sum()
        score = float(p[1] * 0.5 + p[2])
        return Judgement((float(p[0]), float(p[1]), float(p[2])), round(score, 4))

    def to_json(self) -> dict[str, object]:
        return {
            "classes": list(TIERS),
            "features": list(FEATURES),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [[round(float(v), 6) for v in row] for row in self.weights],
            "bias": [round(float(v), 6) for v in self.bias],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Classifier:
        def array(name: str) -> np.ndarray:
            return np.asarray(data[name], dtype=np.float64)

        return cls(array("weights"), array("bias"), array("mean"), array("scale"))


@cache
def shipped() -> Classifier:
    """The classifier in this package (read once: a few hundred kilobytes of JSON)."""
    return Classifier.from_json(json.loads(WEIGHTS.read_text()))


def load_examples(path: Path) -> list[tuple[str, str, str]]:
    """`(text, tier, lang)` of a data file."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(row["text"], row["tier"], row["lang"]) for row in rows]


def train(x: np.ndarray, labels: np.ndarray, *, l2: float, steps: int, rate: float) -> Classifier:
    """Full-batch gradient descent from zeros: deterministic, so the weights are reproducible."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    n, d = z.shape
    onehot = np.eye(len(TIERS))[labels]
    weights = np.zeros((d, len(TIERS)))
    bias = np.zeros(len(TIERS))
    for _ in range(steps):
        logits = z @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        error = (p - onehot) / n
        weights -= rate * (z.T @ error + l2 * weights)
        bias -= rate * error.sum(axis=0)
    return Classifier(weights, bias, mean, scale)
