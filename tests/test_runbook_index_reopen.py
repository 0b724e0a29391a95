"""A reopened runbook index answers exactly as the one that was built, and the BM25 file saved
beside the vectors is read back only while it is whole and describes these runbooks."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from opsloop.evals.retrieval import load_set
from opsloop.tools import runbook_index
from opsloop.tools.runbook_index import RunbookIndex, SearchAnswer

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
OTHER = Path(__file__).resolve().parent.parent / "evals" / "retrieval" / "corpus"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunbookIndex, Path]:
    """The shipped runbooks indexed once for this module, and where the index lives."""
    where = tmp_path_factory.mktemp("built") / "idx"
    return RunbookIndex(where, [RUNBOOKS]), where


@pytest.fixture
def reopen(built: tuple[RunbookIndex, Path], tmp_path: Path
           ) -> tuple[Path, Callable[[], RunbookIndex]]:
    """A copy of the built index dir, and a function that opens it again."""
    copy = tmp_path / "idx"
    shutil.copytree(built[1], copy)
    return copy, lambda: RunbookIndex(copy, [RUNBOOKS])


def _queries() -> list[str]:
    return [case.alert.query() for case in load_set().cases] + [
        "disk is filling up on the volume", "HighErrorRate checkout", "nothing like this at all"]


def _answers(index: RunbookIndex) -> list[SearchAnswer]:
    k = len(index.runbooks())  # every runbook with a score, not just the top few
    out = [index.answer(q, k) for q in _queries()]
    out += [index.answer(q, k, specialist="capacity") for q in _queries()[:5]]
    out += [index.answer(q, k, service="checkout") for q in _queries()[:5]]
    return out


def _lexical_file(where: Path) -> Path:
    [path] = where.glob("*.bm25.npz")
    return path


def _saved_key(path: Path) -> str:
    with np.load(path, allow_pickle=False) as saved:
        return str(saved["key"])


def test_a_reopened_index_returns_exactly_the_hits_and_scores_it_was_built_with(
        built: tuple[RunbookIndex, Path],
        reopen: tuple[Path, Callable[[], RunbookIndex]]) -> None:
    fresh = built[0]
    again = reopen[1]()
    assert again.last_counts["indexed"] == 0 and again.last_counts["unchanged"] > 0
    assert again.chunk_count() == fresh.chunk_count()
    assert again.runbooks() == fresh.runbooks()
    want = _answers(fresh)
    assert any(a.hits for a in want) and any(h.matched_alerts for a in want for h in a.hits)
    assert _answers(again) == want


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped byte", "empty"])
def test_a_damaged_lexical_file_is_rebuilt_not_trusted(
        damage: str, built: tuple[RunbookIndex, Path],
        reopen: tuple[Path, Callable[[], RunbookIndex]]) -> None:
    where, open_again = reopen
    path = _lexical_file(where)
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "flipped byte":
        middle = len(good) // 2
        path.write_bytes(good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1:])
    else:
        path.write_bytes(b"")
    again = open_again()
    assert _answers(again) == _answers(built[0])
    assert _saved_key(path) == _saved_key(_lexical_file(built[1]))  # written whole again


def test_a_lexical_file_saved_for_other_runbooks_is_rebuilt(
        built: tuple[RunbookIndex, Path], reopen: tuple[Path, Callable[[], RunbookIndex]],
        tmp_path: Path) -> None:
    where, open_again = reopen
    other = RunbookIndex(tmp_path / "other", [OTHER])
    assert other.chunk_count() != built[0].chunk_count()
    shutil.copyfile(_lexical_file(tmp_path / "other"), _lexical_file(where))
    again = open_again()
    assert _answers(again) == _answers(built[0])
    assert _saved_key(_lexical_file(where)) == _saved_key(_lexical_file(built[1]))


def test_a_lexical_file_with_a_layout_that_does_not_fit_its_postings_is_rebuilt(
        built: tuple[RunbookIndex, Path],
        reopen: tuple[Path, Callable[[], RunbookIndex]]) -> None:
    where, open_again = reopen
    path = _lexical_file(where)
    with np.load(path, allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files}
    arrays["extra_chunks"] = arrays["extra_chunks"][:-1]  # one runbook's chunks missing
    with path.open("wb") as out:
        np.savez(out, **arrays)
    assert _answers(open_again()) == _answers(built[0])
    with np.load(path, allow_pickle=False) as saved:
        assert saved["extra_chunks"].shape == (len(built[0].runbooks()),)


def test_new_chunking_code_makes_the_saved_lexical_file_stale(
        built: tuple[RunbookIndex, Path], reopen: tuple[Path, Callable[[], RunbookIndex]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    where, open_again = reopen
    before = _saved_key(_lexical_file(where))
    monkeypatch.setattr(runbook_index, "_chunker_digest", lambda: "another chunker")
    again = open_again()
    assert _saved_key(_lexical_file(where)) != before
    assert _answers(again) == _answers(built[0])
