"""The XLM-RoBERTa SentencePiece tokenizer of multilingual-e5-small, on `sentencepiece`.

The vocabulary (pieces, unigram scores, special tokens in the model's own id order) comes from
the weights file; sentencepiece runs the unigram Viterbi segmentation in C++. Normalisation is
the file's per-code-point table applied first (XLM-R's NFKC rules, folded per character),
then sentencepiece's own whitespace handling: runs of spaces collapse, a leading "▁" is added,
and leading or trailing spaces are dropped, as in the reference tokenizer.
"""

from __future__ import annotations

from typing import Any

from sentencepiece import SentencePieceProcessor, sentencepiece_model_pb2

from alicerce.e5.weights import Vocabulary

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "


# Generated protobuf classes, which mypy cannot see.
model_pb2: Any = sentencepiece_model_pb2


def _model_proto(vocabulary: Vocabulary) -> bytes:
    piece_type = model_pb2.ModelProto.SentencePiece
    specials = {vocabulary.bos, vocabulary.eos, vocabulary.pad}
    proto = model_pb2.ModelProto()
    for index, (text, score) in enumerate(
        zip(vocabulary.pieces, vocabulary.scores.tolist(), strict=True)
    ):
        piece = proto.pieces.add(piece=text, score=score)
        if index in specials or text == "<mask>":
            piece.type = piece_type.CONTROL  # never produced from text
        elif index == vocabulary.unk:
            piece.type = piece_type.UNKNOWN
    trainer = proto.trainer_spec
    trainer.model_type = model_pb2.TrainerSpec.UNIGRAM
    trainer.unk_id, trainer.bos_id = vocabulary.unk, vocabulary.bos
    trainer.eos_id, trainer.pad_id = vocabulary.eos, vocabulary.pad
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"  # the table below has already folded the text
    normalizer.add_dummy_prefix = True
    normalizer.remove_extra_whitespaces = True
    normalizer.escape_whitespaces = True
    return bytes(proto.SerializeToString())


class E5Tokenizer:
    def __init__(self, vocabulary: Vocabulary) -> None:
        self.bos, self.eos = vocabulary.bos, vocabulary.eos
        self._fold = str.maketrans(
            {chr(code): out for code, out in vocabulary.normalisation.items()}
        )
        self._processor = SentencePieceProcessor(model_proto=_model_proto(vocabulary))

    def content(self, text: str, *, prefix: str) -> list[int]:
        """The ids of `prefix + text`, without the <s> and </s> around them."""
        ids: list[int] = self._processor.encode((prefix + text).translate(self._fold))
        return ids

    def contents(self, texts: list[str], *, prefix: str) -> list[list[int]]:
        folded = [(prefix + text).translate(self._fold) for text in texts]
        ids: list[list[int]] = self._processor.encode(folded)
        return ids
