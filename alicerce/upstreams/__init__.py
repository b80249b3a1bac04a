"""Upstreams: where a gateway's completions come from.

Everything above this package talks to the `Upstream` interface and never knows whether the
tokens come from an OpenAI-compatible server over HTTP or from the in-process local model.
"""

from alicerce.upstreams.base import Completion, Upstream

__all__ = ["Completion", "Upstream"]
