"""The embedding backends by name: light to import, so the CLI can list them."""

from __future__ import annotations

from typing import Literal

BackendName = Literal["hashing", "sentence-transformers", "openai", "chroma-default"]
BACKENDS: tuple[BackendName, ...] = ("hashing", "sentence-transformers", "openai",
                                     "chroma-default")
