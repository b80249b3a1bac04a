"""The search modes, in a module of their own: gateway and collection specs name them without
importing the search machinery (the HNSW library, the backends) just to validate a field."""

from __future__ import annotations

import typing
from typing import Literal

Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[Mode, ...] = typing.get_args(Mode)
