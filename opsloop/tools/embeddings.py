"""An offline text embedding: feature hashing of words, word pairs and character n-grams.

Runbook search has to work on an air-gapped box with no model download, so the vectors come
from hashing rather than a neural model. Words carry most of the weight; word pairs keep
phrases like "connection pool" apart from "pool" alone; character n-grams let "OOMKilled"
meet "oom" and "timeouts" meet "timeout".
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")
# Split CamelCase alert names ("HighErrorRate") into their words as well as keeping the whole.
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
    "it", "its", "of", "on", "or", "the", "this", "that", "to", "was", "were", "when", "which",
    "with", "will",
})
_WEIGHTS = {"w": 1.0, "b": 0.6, "c": 0.25}


def tokens(text: str) -> list[str]:
    """Lower-cased words, with CamelCase and snake_case names also split into their parts."""
    out: list[str] = []
    for raw in _WORD.findall(text.replace("_", " ")):
        parts = _CAMEL.findall(raw)
        if len(parts) > 1:
            out.append(raw.lower())
        out.extend(p.lower() for p in parts)
    return [t for t in out if t not in _STOP]


def _features(text: str) -> Counter[str]:
    words = tokens(text)
    feats: Counter[str] = Counter()
    for w in words:
        feats["w:" + w] += 1
        padded = f"<{w}>"
        for n in (3, 4):
            for i in range(len(padded) - n + 1):
                feats["c:" + padded[i : i + n]] += 1
    for a, b in itertools.pairwise(words):
        feats[f"b:{a} {b}"] += 1
    return feats


def embed_text(text: str, dim: int) -> np.ndarray:
    """One L2-normalised float32 vector; the empty text maps to a fixed unit vector."""
    vec = np.zeros(dim, dtype=np.float32)
    for feat, count in _features(text).items():
        # crc32 is stable across processes (unlike hash()), so persisted vectors stay valid.
        h = zlib.crc32(feat.encode("utf-8"))
        sign = 1.0 if (h >> 31) & 1 else -1.0
        vec[h % dim] += sign * _WEIGHTS[feat[0]] * (1.0 + math.log(count))
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0] = 1.0
        return vec
    return vec / norm


@register_embedding_function
class HashingEmbeddingFunction(EmbeddingFunction[Documents]):
    """chromadb embedding function for the hashing embedding; counts what it embeds."""

    def __init__(self, dim: int = 512) -> None:
        if dim < 16:
            raise ValueError(f"embedding dimension must be at least 16, got {dim}")
        self.dim = dim
        self.embedded = 0  # documents embedded by this instance; tests use it to spot re-work

    def __call__(self, input: Documents) -> Embeddings:
        self.embedded += len(input)
        return [embed_text(doc, self.dim) for doc in input]

    @staticmethod
    def name() -> str:
        return "opsloop-hashing"

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingEmbeddingFunction:
        return HashingEmbeddingFunction(dim=int(config.get("dim", 512)))

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        # A different dimension would silently mix incomparable vectors in one collection.
        if old_config.get("dim") != new_config.get("dim"):
            raise ValueError("the embedding dimension of an existing index cannot change")
