"""The embedding backends by name: light to import, so the CLI can list them."""

from __future__ import annotations

from typing import Literal

BackendName = Literal["hashing", "onnx", "sentence-transformers", "openai", "chroma-default"]
BACKENDS: tuple[BackendName, ...] = ("hashing", "onnx", "sentence-transformers", "openai",
                                     "chroma-default")
# `auto` is not a backend but a choice: onnx when its packaged model is installed, else hashing.
AUTO = "auto"
CHOICES: tuple[str, ...] = (AUTO, *BACKENDS)
