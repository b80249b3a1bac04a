"""Reading a message's text, the one way planning, grounding, routing, token counting and
the local model all read it; and where the local model's weights are."""

from __future__ import annotations

from pathlib import Path

from alicerce.local_model import GGUF_FILE, bundled_model_path
from alicerce.messages import text_of


def test_text_of_a_string_or_null() -> None:
    assert text_of("Olá") == "Olá"
    assert text_of("") == ""
    assert text_of(None) == ""


def test_text_of_content_parts_joins_the_text_parts_only() -> None:
    parts = [
        {"type": "text", "text": "What is "},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this?"},
        "not a part",
        {"type": "input_text"},  # no text: nothing
    ]
    assert text_of(parts) == "What is this?"
    assert text_of([]) == ""


def test_the_bundled_model_is_found_without_importing_its_package() -> None:
    path = Path(bundled_model_path())
    assert path.name == GGUF_FILE and path.is_file()
