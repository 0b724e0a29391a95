"""Reopening the runbook index reads back what it saved (BM25, parsed runbooks) and only
while it still describes the runbooks on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from opsloop.tools.retrieval.lexical import LexicalIndex
from opsloop.tools.runbook_index import RunbookIndex

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
DOCS = ["disk filling on the database volume", "certificate expired x509 handshake",
        "pods crash looping after a deploy", "disk pressure and evictions"]


def test_a_saved_lexical_index_scores_exactly_as_the_one_it_was_saved_from(
        tmp_path: Path) -> None:
    built = LexicalIndex(DOCS)
    built.save(tmp_path / "bm25.npz", "key-1")
    loaded = LexicalIndex.load(tmp_path / "bm25.npz", "key-1")
    assert loaded is not None
    for query in ("disk filling", "x509 certificate", "never mentioned anywhere", "deploy"):
        (want, want_bound), (got, got_bound) = built.scores(query), loaded.scores(query)
        assert np.array_equal(want, got) and want_bound == got_bound


def test_a_lexical_index_saved_for_other_runbooks_or_torn_is_not_read(tmp_path: Path) -> None:
    LexicalIndex(DOCS).save(tmp_path / "bm25.npz", "key-1")
    assert LexicalIndex.load(tmp_path / "bm25.npz", "key-2") is None
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04 not really")
    assert LexicalIndex.load(tmp_path / "torn.npz", "key-1") is None
    assert LexicalIndex.load(tmp_path / "missing.npz", "key-1") is None


def test_a_reopened_index_ranks_as_before_and_sees_an_edited_runbook(tmp_path: Path) -> None:
    books = tmp_path / "books"
    shutil.copytree(RUNBOOKS, books)
    first = RunbookIndex(tmp_path / "idx", [books])
    query = "disk is filling up on the volume"
    before = [(h.runbook_id, h.score) for h in first.search(query, k=3)]
    assert list((tmp_path / "idx").glob("*.bm25.npz"))
    assert list((tmp_path / "idx").glob("*.runbooks.json"))

    again = RunbookIndex(tmp_path / "idx", [books])
    assert [(h.runbook_id, h.score) for h in again.search(query, k=3)] == before
    assert again.runbooks() == first.runbooks()

    path = books / "certificate-expiry.md"
    path.write_text(path.read_text() + "\nZanzibarQuokka rotation notes.\n")
    edited = RunbookIndex(tmp_path / "idx", [books])
    assert edited.search("zanzibarquokka", k=1)[0].runbook_id == "certificate-expiry"
    assert "ZanzibarQuokka" in edited.get("certificate-expiry").body
