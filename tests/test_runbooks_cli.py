"""`opsloop index --runbooks DIR` then `opsloop runbooks search`: the search reads the index
that was built, and a query that cannot mean anything is refused with a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from opsloop.cli.main import main

SHIPPED = Path(__file__).resolve().parents[1] / "runbooks"


def own_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "team-runbooks"
    folder.mkdir()
    shutil.copy(SHIPPED / "disk-filling.md", folder)
    return folder


def test_search_after_index_searches_the_folders_that_were_indexed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = own_folder(tmp_path)
    work = ["--work-dir", str(tmp_path / "work")]
    assert main([*work, "index", "--runbooks", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runbooks"] == 1
    # The shipped folder has memory-leak; the index that was built does not.
    assert main([*work, "runbooks", "search", "MemoryHigh inventory memory 88%", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert {h["runbook_id"] for h in hits} == {"disk-filling"}
    assert main([*work, "runbooks", "search", "DiskFilling search disk 87% full"]) == 0
    shown = capsys.readouterr()
    assert f"searched the index of {folder.resolve()}" in shown.err
    assert "disk-filling" in shown.out
    # --runbooks on the search itself still wins.
    assert main([*work, "runbooks", "search", "MemoryHigh inventory", "--runbooks",
                 str(SHIPPED), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["runbook_id"] == "memory-leak"


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_refused(tmp_path: Path, query: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--work-dir", str(tmp_path), "runbooks", "search", query]) == 2
    shown = capsys.readouterr()
    assert "the query is empty" in shown.err and shown.out == ""


def test_an_unknown_specialist_is_refused_naming_the_known_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--work-dir", str(tmp_path), "runbooks", "search", "disk full",
                 "--specialist", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no specialist 'nosuch'" in err and "remediation" in err
    assert not (tmp_path / "index").exists()  # refused before anything was built
