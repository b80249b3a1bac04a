"""Blocks into chunks: sized in the embedding model's tokens, cut along the document's structure.

- A heading closes the section before it: a chunk never spans two sections, and each chunk keeps
  its heading path (`["Billing", "Prices"]`) and its position in the document (0..n-1).
- Inside a section, paragraphs are packed together up to `max_tokens`. A paragraph too long for
  one chunk is cut at sentence ends, then at line breaks, then between words; a single "word"
  longer than a chunk (a URL, a base64 run) is cut by characters.
- Consecutive chunks of one section overlap: the next chunk starts with the last sentences (at
  most `overlap_tokens`) of the previous one, so a fact cut at the boundary is whole in one.

`Chunk.text` is the document's own text (what search returns and the model reads);
`embedding_text(chunk)` prefixes it with the heading path, which is what the embedder and the
keyword index should see: a chunk "It costs 2 cents." is found by "billing prices" only if its
headings travel with it. `Chunk.tokens` counts `text` alone.

Sentences end at `.`, `!`, `?` or `…` (closing quotes and brackets included) followed by
whitespace and an upper-case letter, a digit or an opening quote/dash, unless the word before
the dot is a known abbreviation (Portuguese and English: `Sr.`, `Dra.`, `pág.`, `e.g.`, ...) or
a single letter (an initial).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from alicerce.knowledge.extract import Block

CountTokens = Callable[[str], int]

HEADING_SEPARATOR = " > "


@dataclass(slots=True)
class Chunk:
    text: str
    heading_path: list[str]
    position: int
    tokens: int


def embedding_text(chunk: Chunk) -> str:
    """What the embedder (and the keyword index) reads for a chunk: its heading path, a blank
    line, its text. A section's title is often the only place its subject is named."""
    return with_headings(chunk.heading_path, chunk.text)


def with_headings(heading_path: list[str], text: str) -> str:
    if not heading_path:
        return text
    return f"{HEADING_SEPARATOR.join(heading_path)}\n\n{text}"


def chunk(
    blocks: list[Block],
    *,
    count_tokens: CountTokens,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
) -> list[Chunk]:
    """The document's chunks in reading order."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))
    chunks: list[Chunk] = []
    for path, texts in _sections(blocks):
        for text in _pack(texts, count_tokens, max_tokens, overlap_tokens):
            chunks.append(Chunk(text, list(path), len(chunks), count_tokens(text)))
    return chunks


def _sections(blocks: list[Block]) -> Iterator[tuple[list[str], list[str]]]:
    """(heading path, text blocks) per section. A heading with no text of its own before the
    next heading of the same or a higher level becomes its own text, so it is not lost."""
    stack: list[tuple[int, str]] = []
    texts: list[str] = []
    for index, block in enumerate(blocks):
        if block.kind == "heading":
            if texts:
                yield [title for _, title in stack], texts
                texts = []
            level = max(1, block.level)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, block.text))
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            if following is None or (following.kind == "heading" and following.level <= level):
                yield [title for _, title in stack[:-1]], [block.text]
        else:
            texts.append(block.text)
    if texts:
        yield [title for _, title in stack], texts


@dataclass(slots=True)
class _Piece:
    text: str
    tokens: int
    joiner: str  # what goes before it when it follows the previous piece


def _pack(texts: list[str], count: CountTokens, max_tokens: int, overlap: int) -> Iterator[str]:
    pieces: list[_Piece] = []
    for text in texts:
        first = True
        for piece in _split(text, count, max_tokens):
            pieces.append(_Piece(piece.text, piece.tokens, "\n\n" if first else piece.joiner))
            first = False
    current: list[_Piece] = []
    used = 0
    fresh = False  # does `current` hold anything beyond the overlap it started with?
    for piece in pieces:
        if current and fresh and used + 1 + piece.tokens > max_tokens:
            yield _join(current)
            current = _tail(current, count, overlap)
            used = sum(p.tokens + 1 for p in current)
            fresh = False
            if used + 1 + piece.tokens > max_tokens:
                current, used = [], 0
        current.append(piece)
        used += piece.tokens + 1
        fresh = True
    if current and fresh:
        yield _join(current)


def _join(pieces: list[_Piece]) -> str:
    parts = [pieces[0].text]
    for piece in pieces[1:]:
        parts.append(piece.joiner + piece.text)
    return "".join(parts).strip()


def _tail(pieces: list[_Piece], count: CountTokens, budget: int) -> list[_Piece]:
    """The last sentences of a chunk, within `budget` tokens, to open the next chunk with."""
    if budget <= 0:
        return []
    sentences = [_Piece(s, count(s), " ") for s in split_sentences(pieces[-1].text) if s.strip()]
    tail: list[_Piece] = []
    used = 0
    for sentence in reversed(sentences):
        if used + sentence.tokens + 1 > budget:
            break
        tail.insert(0, sentence)
        used += sentence.tokens + 1
    if not tail and sentences:  # the last sentence alone is too long: its last words
        words = sentences[-1].text.split()
        keep = max(1, len(words) * budget // max(sentences[-1].tokens, 1) - 1)
        text = " ".join(words[-keep:])
        while keep > 1 and count(text) > budget:
            keep -= 1
            text = " ".join(words[-keep:])
        tail = [_Piece(text, count(text), " ")]
    if tail:
        tail[0] = _Piece(tail[0].text, tail[0].tokens, "\n\n")
    return tail


def _split(text: str, count: CountTokens, max_tokens: int) -> list[_Piece]:
    """`text` as pieces of at most `max_tokens`: whole, else sentences, lines, words, chars."""
    tokens = count(text)
    if tokens <= max_tokens:
        return [_Piece(text, tokens, " ")]
    levels: list[tuple[Callable[[str], list[str]], str]] = [
        (split_sentences, " "),
        (lambda t: t.split("\n"), "\n"),
        (str.split, " "),
    ]
    for splitter, joiner in levels:
        parts = [part for part in splitter(text) if part.strip()]
        if len(parts) > 1:
            pieces: list[_Piece] = []
            for part in parts:
                for index, piece in enumerate(_split(part.strip(), count, max_tokens)):
                    pieces.append(
                        _Piece(piece.text, piece.tokens, piece.joiner if index else joiner)
                    )
            return pieces
    return _split_characters(text, tokens, count, max_tokens)


def _split_characters(text: str, tokens: int, count: CountTokens, max_tokens: int) -> list[_Piece]:
    size = max(1, len(text) * max_tokens // max(tokens, 1))
    pieces = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        while end - start > 1 and count(text[start:end]) > max_tokens:
            end = start + max(1, (end - start) * 9 // 10)
        pieces.append(_Piece(text[start:end], count(text[start:end]), ""))
        start = end
    return pieces


_ABBREVIATION_WORDS = """
    sr sra srta dr dra drs prof profa eng engª arq av pç lt ltda cia s.a etc ex pág pag págs pp
    cap caps art arts inc vol vols nº núm num tel fig figs obs ref refs cf aprox máx jan fev abr
    mai jul nov feb apr aug sep sept oct dec mr mrs ms jr st vs e.g i.e approx dept govt corp u.s
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_SENTENCE_END = re.compile("[.!?\u2026]+[\"'\u201d\u2019\u00bb)\\]]*\\s+")
_STARTS_SENTENCE = re.compile(
    "[\"'\u201c\u2018\u00ab(\\[\u00bf\u00a1\u2014\u2013-]?[A-Z\u00c0-\u00d6\u00d8-\u00de0-9]"
)


def split_sentences(text: str) -> list[str]:
    """Sentences of Portuguese or English prose; the text is kept as is (with its spaces)."""
    sentences = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if not _STARTS_SENTENCE.match(text, match.end()):
            continue
        if text[match.start()] == "." and _is_abbreviation(text, match.start()):
            continue
        sentences.append(text[start : match.end()].rstrip())
        start = match.end()
    if start < len(text):
        sentences.append(text[start:])
    return sentences


def _is_abbreviation(text: str, dot: int) -> bool:
    word_start = dot
    while (
        word_start > 0
        and not text[word_start - 1].isspace()
        and text[word_start - 1] not in "(\"'“"
    ):
        word_start -= 1
    word = text[word_start:dot].lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())
