"""BM25 over runbook chunks, held in compressed postings so a query costs a few array adds.

The scores are also normalised to an absolute scale: the share of the query's BM25 mass a
chunk could at most earn (every query term present and saturated). That share is what lets
"no good match" be a threshold rather than a guess; terms the corpus has never seen count
at the highest idf, so an alert about something no runbook mentions scores low everywhere.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from opsloop.tools.retrieval.analyzer import terms

K1 = 1.2
B = 0.75


class LexicalIndex:
    """BM25 (k1=1.2, b=0.75) over a fixed list of documents; rebuild to change it."""

    def __init__(self, documents: Sequence[str]) -> None:
        self.size = len(documents)
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[int] = []
        lengths = np.zeros(self.size, dtype=np.float32)
        for doc_id, text in enumerate(documents):
            counts = Counter(terms(text))
            lengths[doc_id] = sum(counts.values())
            for term, tf in counts.items():
                rows.append(vocab.setdefault(term, len(vocab)))
                cols.append(doc_id)
                tfs.append(tf)
        self._vocab = vocab
        avgdl = float(lengths.mean()) if self.size else 1.0
        order = np.argsort(np.asarray(rows, dtype=np.int64), kind="stable")
        term_of = np.asarray(rows, dtype=np.int64)[order]
        self._docs = np.asarray(cols, dtype=np.int32)[order]
        freq = np.asarray(tfs, dtype=np.float32)[order]
        norm = K1 * (1 - B + B * lengths[self._docs] / max(avgdl, 1e-9))
        self._parts = (freq * (K1 + 1) / (freq + norm)).astype(np.float32)
        self._starts = np.searchsorted(term_of, np.arange(len(vocab) + 1))
        df = np.diff(self._starts).astype(np.float64)
        self._idf = np.log(1 + (self.size - df + 0.5) / (df + 0.5))
        self._unseen_idf = math.log(1 + (self.size + 0.5) / 0.5)

    def scores(self, query: str) -> tuple[np.ndarray, float]:
        """(BM25 per document, the most a document could score for this query)."""
        out = np.zeros(self.size, dtype=np.float32)
        bound = 0.0
        for term, qtf in Counter(terms(query)).items():
            weight = 1.0 + math.log(qtf)  # a repeated query word matters more, sub-linearly
            tid = self._vocab.get(term)
            if tid is None:
                bound += weight * self._unseen_idf * (K1 + 1)
                continue
            idf = float(self._idf[tid])
            bound += weight * idf * (K1 + 1)
            lo, hi = self._starts[tid], self._starts[tid + 1]
            out[self._docs[lo:hi]] += np.float32(weight * idf) * self._parts[lo:hi]
        return out, bound
