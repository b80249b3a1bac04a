"""Chunking (`alicerce.knowledge.chunking`): heading paths, packing, sentence cuts and overlap."""

from __future__ import annotations

import itertools

from alicerce.knowledge.chunking import chunk, embedding_text, split_sentences
from alicerce.knowledge.extract import Block, extract


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word. The real one is tested below."""
    return len(text.split())


def section(words_count: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {i} is here." for i in range(start, start + words_count))


def test_chunks_keep_heading_paths_and_positions() -> None:
    blocks = [
        Block("text", "Preamble before any heading."),
        Block("heading", "Guide", 1),
        Block("text", "Intro of the guide."),
        Block("heading", "Install", 2),
        Block("text", "Run pip."),
        Block("heading", "Empty", 3),
        Block("heading", "Usage", 2),
        Block("text", "Call the API."),
        Block("heading", "Appendix", 1),
        Block("text", "The end."),
    ]
    chunks = chunk(blocks, count_tokens=words, max_tokens=100)
    assert [(c.position, c.heading_path, c.text) for c in chunks] == [
        (0, [], "Preamble before any heading."),
        (1, ["Guide"], "Intro of the guide."),
        (2, ["Guide", "Install"], "Run pip."),
        (3, ["Guide", "Install"], "Empty"),  # a heading without text is kept as text
        (4, ["Guide", "Usage"], "Call the API."),
        (5, ["Appendix"], "The end."),
    ]
    assert embedding_text(chunks[2]) == "Guide > Install\n\nRun pip."
    assert embedding_text(chunks[0]) == "Preamble before any heading."


def test_small_paragraphs_of_a_section_are_packed_together() -> None:
    blocks = [Block("heading", "A", 1)] + [Block("text", f"Paragraph {i}.") for i in range(5)]
    [only] = chunk(blocks, count_tokens=words, max_tokens=100)
    assert (
        only.text == "Paragraph 0.\n\nParagraph 1.\n\nParagraph 2.\n\nParagraph 3.\n\nParagraph 4."
    )
    assert only.tokens == 10


def test_long_section_is_split_at_sentences_with_overlap() -> None:
    blocks = [Block("heading", "Long", 1), Block("text", section(40))]
    chunks = chunk(blocks, count_tokens=words, max_tokens=30, overlap_tokens=6)
    assert len(chunks) > 5
    for previous, following in itertools.pairwise(chunks):
        last_sentence = split_sentences(previous.text)[-1]
        assert following.text.startswith(last_sentence)  # the overlap
        assert following.heading_path == ["Long"]
    for piece in chunks:
        assert piece.tokens <= 30
        assert piece.text.endswith(".")  # cut at sentence ends, not mid-sentence
    covered = " ".join(c.text for c in chunks)
    assert all(f"Sentence number {i} is here." in covered for i in range(40))


def test_no_overlap_across_headings_or_when_disabled() -> None:
    blocks = [
        Block("heading", "A", 1),
        Block("text", section(12)),
        Block("heading", "B", 1),
        Block("text", section(12, 100)),
    ]
    chunks = chunk(blocks, count_tokens=words, max_tokens=30, overlap_tokens=0)
    texts = " ".join(c.text for c in chunks)
    assert all(texts.count(f"number {i} ") == 1 for i in [*range(12), *range(100, 112)])
    assert {c.heading_path[0] for c in chunks if "number 5 " in c.text} == {"A"}
    assert {c.heading_path[0] for c in chunks if "number 105 " in c.text} == {"B"}


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    long_sentence = " ".join(f"w{i}" for i in range(95)) + "."
    chunks = chunk([Block("text", long_sentence)], count_tokens=words, max_tokens=20)
    assert all(c.tokens <= 20 for c in chunks)
    assert " ".join(c.text for c in chunks).count("w94.") == 1


def test_an_unsplittable_run_is_cut_by_characters() -> None:
    def chars(text: str) -> int:
        return len(text) // 4

    chunks = chunk([Block("text", "x" * 1000)], count_tokens=chars, max_tokens=50)
    assert all(c.tokens <= 50 for c in chunks)
    assert sum(len(c.text) for c in chunks) == 1000


def test_portuguese_sentences() -> None:
    text = (
        "O Dr. Silva chegou às 10h. Ele disse: “Olá!” Depois foi embora… E voltou. "
        "Veja a pág. 3 e o art. 5º. A Sra. J. Souza concordou? Sim. Custa R$ 1.500,00 por mês. "
        "2024 foi bom."
    )
    assert split_sentences(text) == [
        "O Dr. Silva chegou às 10h.",
        "Ele disse: “Olá!”",
        "Depois foi embora…",
        "E voltou.",
        "Veja a pág. 3 e o art. 5º.",
        "A Sra. J. Souza concordou?",
        "Sim.",
        "Custa R$ 1.500,00 por mês.",
        "2024 foi bom.",
    ]
    assert split_sentences("See e.g. Mr. Smith. He agreed. version 1.2 is out.") == [
        "See e.g. Mr. Smith.",
        "He agreed. version 1.2 is out.",  # a lower-case start is not a new sentence
    ]


def test_real_tokenizer_sizes_portuguese_chunks() -> None:
    from alicerce.embeddings import LocalE5Embedder

    count = LocalE5Embedder().count_tokens
    text = " ".join(
        f"A cláusula {i} estabelece que o reembolso é feito em até {i + 2} dias úteis."
        for i in range(200)
    )
    blocks = extract(f"# Contrato\n\n## Reembolso\n\n{text}".encode(), "contrato.md")
    chunks = chunk(blocks, count_tokens=count, max_tokens=128, overlap_tokens=24)
    assert len(chunks) > 10
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for piece in chunks:
        assert piece.tokens == count(piece.text) <= 128
        assert piece.heading_path == ["Contrato", "Reembolso"]
    assert chunks[1].text.startswith(split_sentences(chunks[0].text)[-1])
