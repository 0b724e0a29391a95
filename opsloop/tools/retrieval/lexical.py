"""BM25 over runbook chunks, held in compressed postings so a query costs a few array adds.

The scores are also normalised to an absolute scale: the share of the query's BM25 mass a
chunk could at most earn (every query term present and saturated). That share is what lets
"no good match" be a threshold rather than a guess; terms the corpus has never seen count
at the highest idf, so an alert about something no runbook mentions scores low everywhere.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from opsloop.tools.retrieval import analyzer
from opsloop.tools.retrieval.analyzer import terms

K1 = 1.2
B = 0.75
_ARRAYS = ("docs", "parts", "starts", "idf")


def code_digest() -> str:
    """What a saved index was built by: this module and the analyzer, byte for byte, so a
    change to either (a stem, a concept, k1) makes saved indexes stale without a version to
    remember to bump."""
    digest = hashlib.sha256()
    for module in (__file__, analyzer.__file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()


class LexicalIndex:
    """BM25 (k1=1.2, b=0.75) over a fixed list of documents; rebuild to change it."""

    def __init__(self, documents: Sequence[str]) -> None:
        self.size = len(documents)
        self.extra: dict[str, np.ndarray] = {}  # what `load` read beside the postings
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

    def save(self, path: Path, key: str, extra: dict[str, np.ndarray] | None = None) -> None:
        """Write the index to `path` (numpy .npz, no pickles) under `key`, with `extra`
        arrays that describe the same documents (read back by `load`); atomic."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            arrays: dict[str, np.ndarray] = {
                "key": np.asarray(key), "size": np.asarray(self.size),
                "unseen_idf": np.asarray(self._unseen_idf),
                "vocab": np.asarray(list(self._vocab), dtype=np.str_),
                "extra": np.asarray(sorted(extra or {}), dtype=np.str_),
                **{f"extra_{name}": array for name, array in (extra or {}).items()},
                **{name: getattr(self, f"_{name}") for name in _ARRAYS}}
            with tmp.open("wb") as out:
                np.savez(out, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, key: str) -> LexicalIndex | None:
        """The index saved at `path` under `key` (its extra arrays in `extra`), or None when
        there is none, it was saved for other documents or by other code, or it does not
        hold together (a torn or tampered file is rebuilt, never trusted)."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["key"]) != key:
                    return None
                index = cls.__new__(cls)
                index.size = int(saved["size"])
                index._unseen_idf = float(saved["unseen_idf"])
                index._vocab = {term: i for i, term in enumerate(saved["vocab"].tolist())}
                for name in _ARRAYS:
                    setattr(index, f"_{name}", saved[name])
                index.extra = {str(name): saved[f"extra_{name}"]
                               for name in saved["extra"].tolist()}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # missing, torn or foreign: rebuilt by the caller
        return index if index._consistent() else None

    def _consistent(self) -> bool:
        """Postings that index only this index's documents and terms."""
        n_terms = len(self._vocab)
        return bool(
            self._starts.shape == (n_terms + 1,) and self._idf.shape == (n_terms,)
            and self._docs.shape == self._parts.shape and self._docs.ndim == 1
            and (n_terms == 0 or (self._starts[0] == 0 and self._starts[-1] == len(self._docs)
                                  and (np.diff(self._starts) >= 0).all()))
            and (len(self._docs) == 0 or (self._docs.min() >= 0 and self._docs.max() < self.size)))

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
