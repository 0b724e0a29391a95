"""A failure no runbook covers is flagged novel and yields a runbook proposal to review."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsloop.agents.runbook_proposal import draft_runbook_proposal
from opsloop.graph.runner import OperateLoop
from opsloop.models import Incident, IncidentStatus
from opsloop.runbooks.load import load_runbook
from opsloop.settings import Settings
from opsloop.tools.runbook_index import RunbookIndex
from opsloop.watch import run_scenario

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def novel_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Incident, Settings]:
    """The memory-leak scenario against runbooks that know nothing about memory leaks."""
    root = tmp_path_factory.mktemp("novel")
    books = root / "books"
    books.mkdir()
    for path in (REPO / "runbooks").glob("*.md"):
        if path.name != "memory-leak.md":
            shutil.copy(path, books / path.name)
    settings = Settings(work_dir=root / "work", runbook_dirs=[books])
    loop = OperateLoop(settings)
    try:
        incident = run_scenario(loop, "memory_leak", seed=7, progress=lambda _m: None).incidents[0]
    finally:
        loop.close()
    return incident, settings


def test_novel_failure_is_escalated_with_a_proposal_on_its_timeline(
        novel_run: tuple[Incident, Settings]) -> None:
    incident, settings = novel_run
    assert incident.novel and incident.status is IncidentStatus.ESCALATED
    [path] = sorted(settings.runbook_proposals_dir.glob("*.md"))
    assert path.name == f"{incident.id}.md"
    assert any(e.kind == "runbook_proposal" and str(path) in e.message for e in incident.timeline)


def test_proposal_says_what_the_incident_taught(novel_run: tuple[Incident, Settings]) -> None:
    incident, settings = novel_run
    text = (settings.runbook_proposals_dir / f"{incident.id}.md").read_text()
    assert "MemoryHigh" in text and "inventory" in text
    assert "memory at" in text  # the symptom the alert reported
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
        assert section in text
    assert "does not hold" in text  # what was checked and ruled out
    assert "no good match" in text and "novel failure" in text


def test_merged_proposal_indexes_and_then_covers_the_alert(
        novel_run: tuple[Incident, Settings], tmp_path: Path) -> None:
    incident, settings = novel_run
    books = tmp_path / "books"
    shutil.copytree(settings.runbook_dirs[0], books)
    shutil.copy(settings.runbook_proposals_dir / f"{incident.id}.md", books / "memoryhigh.md")
    index = RunbookIndex(tmp_path / "idx", [books])
    assert index.problems() == []
    rb = load_runbook(books / "memoryhigh.md", (books / "memoryhigh.md").read_text())
    assert rb.alerts == ["MemoryHigh"] and rb.services == ["inventory"]
    assert draft_runbook_proposal(incident.model_copy(update={"novel": False}), index,
                                  tmp_path / "proposals") is None
    assert index.search("MemoryHigh inventory: memory at 88% of its limit", k=1)[
        0].runbook_id == "memoryhigh-inventory"


def test_covered_incident_gets_no_proposal(novel_run: tuple[Incident, Settings],
                                           tmp_path: Path) -> None:
    incident, _ = novel_run
    index = RunbookIndex(tmp_path / "idx", [REPO / "runbooks"])
    covered = incident.model_copy(update={"novel": False})
    assert draft_runbook_proposal(covered, index, tmp_path / "proposals") is None
    assert not (tmp_path / "proposals").exists()
