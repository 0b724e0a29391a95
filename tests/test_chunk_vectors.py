"""The in-memory vector ranking answers what chromadb's cosine query answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from opsloop.tools.retrieval.vectors import ChunkVectors
from opsloop.tools.runbook_index import RunbookIndex

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"


def test_nearest_chunks_are_the_closest_allowed_ones_floored_at_zero() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    present = np.array([True, True, True, True])
    near = ChunkVectors(vectors, present, lambda texts: [[1.0, 0.2] for _ in texts])
    allowed = np.array([True, False, True, True])
    got = near.nearest("q", allowed, 2)
    assert [row for row, _ in got] == [0, 2]  # row 1 is not allowed
    assert got[0][1] > got[1][1] > 0
    assert near.nearest("q", np.array([False, False, False, True]), 5) == [(3, 0.0)]


def test_the_index_ranks_chunks_as_a_chromadb_query_does(tmp_path: Path) -> None:
    books = tmp_path / "books"
    shutil.copytree(RUNBOOKS, books)
    index = RunbookIndex(tmp_path / "idx", [books])
    col = index._col
    for query in ("disk filling up on the database volume", "certificate expired x509",
                  "error ratio after a deploy of checkout"):
        allowed = np.ones(len(index._ids), dtype=bool)
        ours = index._vectors().nearest(query, allowed[index._owner], 10)
        theirs = col.query(query_texts=[query], n_results=10,
                           include=["metadatas", "distances"])
        expected = [max(0.0, 1.0 - d) for d in (theirs["distances"] or [[]])[0]]
        assert np.allclose([sim for _, sim in ours], expected, atol=1e-5)
        sections = [str(m["section"]) for m in (theirs["metadatas"] or [[]])[0]]
        assert [index._sections[row] for row, _ in ours][:3] == sections[:3]
