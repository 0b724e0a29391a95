"""Which embedding function builds the runbook vectors, chosen in settings.

Vectors from two backends are not comparable, so each backend configuration gets its own
chromadb collection (named by a hash of what makes its vectors what they are) and records
itself in the collection's metadata. Switching backend therefore re-embeds into a fresh
collection; switching back finds the old one still valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from chromadb.api.types import Documents, EmbeddingFunction

from opsloop.tools.embeddings import HashingEmbeddingFunction
from opsloop.tools.retrieval.embedders import (
    EmbeddingBackendError,
    OpenAICompatibleEmbeddingFunction,
    SentenceTransformerEmbeddingFunction,
)
from opsloop.tools.retrieval.names import AUTO, BACKENDS, CHOICES, BackendName
from opsloop.tools.retrieval.onnx_embedder import OnnxEmbeddingFunction, model_files

if TYPE_CHECKING:
    from opsloop.settings import Settings


# Fused-score thresholds below which the best hit is "no good match". Hashing's was read
# off `opsloop eval retrieval` (its suggested_threshold, rounded down: a covered alert
# wrongly called novel costs a review, a novel one called covered loses its proposal).
# onnx's is the same reading for the packaged all-MiniLM-L6-v2 int8 (suggested 0.247 on the
# alert queries, 0.238 on the name-free ones); another ONNX model should be measured anew.
# The others could not be measured offline here; run the eval with them and set
# no_match_threshold to the suggested value it prints.
DEFAULT_THRESHOLDS: dict[str, float] = {"hashing": 0.15, "onnx": 0.23}
UNCALIBRATED_THRESHOLD = 0.15

@dataclass(frozen=True)
class EmbeddingBackend:
    name: BackendName = "hashing"
    model: str = ""
    base_url: str = ""
    api_key_env: str = "OPSLOOP_EMBEDDING_API_KEY"
    dim: int = 512  # hashing only

    @classmethod
    def from_settings(cls, settings: Settings, name: str | None = None) -> EmbeddingBackend:
        chosen = name or settings.embedding_backend
        if chosen == AUTO:
            # The semantic model when it is installed; the offline hashing otherwise.
            chosen = "onnx" if _onnx_usable(settings.embedding_model) else "hashing"
        if chosen not in BACKENDS:
            raise EmbeddingBackendError(
                f"unknown embedding backend {chosen!r}; choose one of {', '.join(CHOICES)}")
        return cls(name=chosen, model=settings.embedding_model,
                   base_url=settings.embedding_base_url,
                   api_key_env=settings.embedding_api_key_env)

    def identity(self) -> dict[str, Any]:
        """What determines the vectors; two backends with equal identities are interchangeable."""
        if self.name == "hashing":
            return {"name": "hashing", "dim": self.dim, "features": 1}
        if self.name == "chroma-default":
            return {"name": "chroma-default", "model": "all-MiniLM-L6-v2"}
        if self.name == "onnx":  # the files' content, wherever the folder is
            return {"name": "onnx", "digest": model_files(self.model).digest()}
        return {"name": self.name, "model": self.model,
                **({"base_url": self.base_url} if self.name == "openai" else {})}

    @property
    def key(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"{self.name}-{digest[:10]}"

    def describe(self) -> str:
        if self.name == "onnx":
            return "onnx (" + (self.model or "packaged all-MiniLM-L6-v2 int8") + ")"
        return self.name + (f" ({self.model})" if self.model and self.name in (
            "openai", "sentence-transformers") else "")

    def build(self) -> EmbeddingFunction[Documents]:
        """The chromadb embedding function; EmbeddingBackendError says why one is unusable."""
        if self.name == "hashing":
            return HashingEmbeddingFunction(self.dim)
        if self.name == "openai":
            if not self.base_url:
                raise EmbeddingBackendError(
                    "the openai backend needs embedding_base_url "
                    "(env OPSLOOP_EMBEDDING_BASE_URL, e.g. http://localhost:8000/v1)")
            return OpenAICompatibleEmbeddingFunction(self.base_url, self.model, self.api_key_env)
        if self.name == "sentence-transformers":
            return SentenceTransformerEmbeddingFunction(self.model)
        if self.name == "onnx":
            return OnnxEmbeddingFunction(self.model)
        return _chroma_default()

    def default_threshold(self) -> float:
        return DEFAULT_THRESHOLDS.get(self.name, UNCALIBRATED_THRESHOLD)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _onnx_usable(folder: str) -> bool:
    try:
        model_files(folder)
    except EmbeddingBackendError:
        return False
    return True


def _chroma_default() -> EmbeddingFunction[Documents]:
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    folder = os.path.join(ONNXMiniLM_L6_V2.DOWNLOAD_PATH, ONNXMiniLM_L6_V2.EXTRACTED_FOLDER_NAME)
    if not os.path.exists(os.path.join(folder, "model.onnx")):
        # chromadb would fetch the model on first use; opsloop never downloads at run time.
        raise EmbeddingBackendError(
            f"chromadb's default model (all-MiniLM-L6-v2, ONNX) is not in {folder}; "
            "opsloop never downloads models at run time: place it there once or choose "
            "another backend")
    return DefaultEmbeddingFunction()
