"""Embedding functions beyond the offline default, each registered with chromadb.

Registration lets chromadb persist which function built a collection (name + config) and
rebuild it when the collection is reopened. Configs never hold secrets: the OpenAI-compatible
function stores the *name* of the environment variable that holds the API key.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)


class EmbeddingBackendError(RuntimeError):
    """An embedding backend that cannot be used or failed: the message says which and why."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (
        exc.response.status_code == 429 or exc.response.status_code >= 500)


@register_embedding_function
class OpenAICompatibleEmbeddingFunction(EmbeddingFunction[Documents]):
    """POST {base_url}/embeddings in the OpenAI wire format (OpenAI, vLLM, Ollama, LiteLLM)."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPSLOOP_EMBEDDING_API_KEY",
                 batch_size: int = 64, timeout: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise EmbeddingBackendError(
                f"embedding_base_url must be an http(s) URL ending before /embeddings, "
                f"got {base_url!r}")
        if not model:
            raise EmbeddingBackendError("the openai backend needs embedding_model (a model name)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.batch_size = max(1, batch_size)
        self.timeout = timeout
        self.embedded = 0

    def __call__(self, input: Documents) -> Embeddings:
        out: Embeddings = []
        for i in range(0, len(input), self.batch_size):
            out += self._batch(list(input[i : i + self.batch_size]))
        self.embedded += len(input)
        return out

    def _batch(self, texts: list[str]) -> Embeddings:
        url = f"{self.base_url}/embeddings"
        try:
            body = self._post(url, {"model": self.model, "input": texts,
                                    "encoding_format": "float"})
        except httpx.HTTPStatusError as exc:
            raise EmbeddingBackendError(
                f"embeddings endpoint {url} answered {exc.response.status_code}: "
                f"{exc.response.text[:200]}") from exc
        except httpx.HTTPError as exc:
            raise EmbeddingBackendError(f"embeddings endpoint {url} unreachable: {exc}") from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise EmbeddingBackendError(
                f"embeddings endpoint {url} returned {len(data) if isinstance(data, list) else 0} "
                f"vectors for {len(texts)} inputs")
        try:
            ordered = sorted(data, key=lambda d: int(d.get("index", 0)))
            return [np.asarray(d["embedding"], dtype=np.float32) for d in ordered]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingBackendError(
                f"embeddings endpoint {url} returned a malformed vector: {exc}") from exc

    @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def _post(self, url: str, payload: dict[str, Any]) -> Any:
        headers = {}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        response = httpx.post(url, json=payload, headers=headers, timeout=self.timeout)
        response.raise_for_status()
        try:
            return response.json()
        except ValueError as exc:
            raise EmbeddingBackendError(f"embeddings endpoint {url} did not answer JSON") from exc

    @staticmethod
    def name() -> str:
        return "opsloop-openai-compatible"

    def get_config(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "batch_size": self.batch_size, "timeout": self.timeout}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OpenAICompatibleEmbeddingFunction:
        return OpenAICompatibleEmbeddingFunction(
            base_url=str(config["base_url"]), model=str(config["model"]),
            api_key_env=str(config.get("api_key_env", "OPSLOOP_EMBEDDING_API_KEY")),
            batch_size=int(config.get("batch_size", 64)),
            timeout=float(config.get("timeout", 30.0)))

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def validate_config_update(self, old_config: dict[str, Any],
                               new_config: dict[str, Any]) -> None:
        if (old_config.get("model"), old_config.get("base_url")) != (
                new_config.get("model"), new_config.get("base_url")):
            raise ValueError("an index built with one embedding model cannot switch to another")


@register_embedding_function
class SentenceTransformerEmbeddingFunction(EmbeddingFunction[Documents]):
    """A local sentence-transformers model, by name (already cached) or by path. Never downloads."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        if not model:
            raise EmbeddingBackendError(
                "the sentence-transformers backend needs embedding_model (a name or a path)")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingBackendError(
                "the sentence-transformers backend needs the optional extra: "
                "pip install 'opsloop[local-embeddings]'") from exc
        self.model = model
        self.device = device
        try:
            # local_files_only: a name must already be in the local cache; we never download.
            self._model = SentenceTransformer(model, device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbeddingBackendError(
                f"sentence-transformers model {model!r} is not available locally: {exc}") from exc
        self.embedded = 0

    def __call__(self, input: Documents) -> Embeddings:
        vectors = self._model.encode(list(input), normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        self.embedded += len(input)
        return [np.asarray(v, dtype=np.float32) for v in vectors]

    @staticmethod
    def name() -> str:
        return "opsloop-sentence-transformers"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> SentenceTransformerEmbeddingFunction:
        return SentenceTransformerEmbeddingFunction(str(config["model"]),
                                                    str(config.get("device", "cpu")))

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def validate_config_update(self, old_config: dict[str, Any],
                               new_config: dict[str, Any]) -> None:
        if old_config.get("model") != new_config.get("model"):
            raise ValueError("an index built with one embedding model cannot switch to another")
