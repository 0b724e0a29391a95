"""The chunks' embeddings in memory, for ranking a query against every chunk at once.

chromadb keeps the vectors; this reads them back once per refresh and answers what a
cosine-space `collection.query(n_results=n, where=...)` answers: the n chunks closest to the
query among those allowed, with similarity 1 - cosine distance. A search for an incident
then costs one matrix-vector product per query text, not a database round trip per
specialist, and the similarities of one query text are computed once for all its searches.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Embed = Callable[[list[str]], Sequence[Any]]
_REMEMBERED_QUERIES = 16  # one incident's searches share a query text; a few incidents overlap


class ChunkVectors:
    """Unit vectors of the chunks, row for row with the index's chunk list."""

    def __init__(self, vectors: np.ndarray, present: np.ndarray, embed: Embed) -> None:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self._unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        self._present = present  # rows chromadb holds a vector for
        self._embed = embed
        self._similarities: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def similarities(self, query: str) -> np.ndarray:
        """Cosine similarity of the query to every chunk (computed once per query text)."""
        with self._lock:
            known = self._similarities.get(query)
            if known is not None:
                self._similarities.move_to_end(query)
                return known
        vector = np.asarray(self._embed([query])[0], dtype=np.float64)
        norm = float(np.linalg.norm(vector))
        sims = self._unit @ (vector / norm) if norm > 0 else np.zeros(len(self._unit))
        with self._lock:
            self._similarities[query] = sims
            while len(self._similarities) > _REMEMBERED_QUERIES:
                self._similarities.popitem(last=False)
        return sims

    def nearest(self, query: str, allowed: np.ndarray, n: int) -> list[tuple[int, float]]:
        """(chunk row, similarity) of the n allowed chunks closest to the query, closest
        first; similarity floored at 0 as 1 - cosine distance is."""
        sims = self.similarities(query)
        rows = np.flatnonzero(allowed & self._present)
        if len(rows) > n:
            rows = rows[np.argpartition(-sims[rows], n - 1)[:n]]
        rows = rows[np.argsort(-sims[rows], kind="stable")]
        return list(zip(rows.tolist(), np.fmax(sims[rows], 0.0).tolist(), strict=True))
