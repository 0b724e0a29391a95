"""Scheduled agents' eval cases: the key is judged line by line, and a wrong key fails.

Each test runs a real case folder through the real harness (scheduler, operate loop,
change path, simulator); the keys below are written from the physics, then mutated to show
that every kind of check can fail and says what was seen instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsloop.evals.cases import CaseError, load_case
from opsloop.evals.driver import Harness
from opsloop.evals.metrics import CaseScore, score_case
from opsloop.evals.runner import run_case
from opsloop.policy import Policies
from opsloop.settings import REPO_ROOT, Settings
from opsloop.tools.runbook_index import RunbookIndex

CASES = REPO_ROOT / "evals" / "cases"


def _case(tmp_path: Path, source: str, change: dict[str, Any] | None = None,
          agent: dict[str, Any] | None = None) -> Path:
    """A copy of a shipped agent case under tmp_path, with fields of it replaced."""
    folder = tmp_path / "cases" / "agents" / Path(source).name
    shutil.copytree(CASES / source, folder)
    raw = yaml.safe_load((folder / "case.yaml").read_text())
    raw.update(change or {})
    raw["agent"].update(agent or {})
    (folder / "case.yaml").write_text(yaml.safe_dump(raw))
    return folder


def _score(folder: Path, tmp_path: Path, policies: Policies, runbooks: RunbookIndex
           ) -> CaseScore:
    case = load_case(folder, folder.parents[1])
    settings = Settings(work_dir=tmp_path / "work")
    harness = Harness(settings, policies, runbooks)
    workdir = tmp_path / "run"
    workdir.mkdir()
    return score_case(case, run_case(case, harness, policies, workdir, "offline", 1))


def _failed(score: CaseScore) -> dict[str, str]:
    return {c.check: c.detail for c in score.checks if not c.ok}


def test_the_shipped_disk_case_passes_and_a_wrong_key_fails_naming_what_was_seen(
        tmp_path: Path, shipped_policies: Policies, runbook_index: RunbookIndex) -> None:
    right = _score(_case(tmp_path / "a", "agents/capacity-disk-full-in-30h"), tmp_path / "a",
                   shipped_policies, runbook_index)
    assert right.passed and right.checks and all(c.ok for c in right.checks)
    # The same production judged against a key that says "escalate, 10 hours left".
    wrong = _score(_case(tmp_path / "b", "agents/capacity-disk-full-in-30h", agent={
        "findings": [{"kind": "capacity_escalate", "subject": "search disk_utilization",
                      "data": {"exhaustion.expected_hours": {"min": 8, "max": 12}}}],
        "absent": [{"kind": "capacity_alert"}]}), tmp_path / "b",
        shipped_policies, runbook_index)
    assert not wrong.passed
    failed = _failed(wrong)
    (missing,) = [d for c, d in failed.items() if c.startswith("finding capacity_escalate")]
    assert "capacity_alert search disk_utilization (warning" in missing
    assert "exhaustion.expected_hours=" in missing
    (unwanted,) = [d for c, d in failed.items() if c.startswith("no finding capacity_alert")]
    assert "at minute 0" in unwanted


def test_an_action_the_key_does_not_accept_fails_the_case(
        tmp_path: Path, shipped_policies: Policies, runbook_index: RunbookIndex) -> None:
    # The regression's rollback runs unattended; a key that accepts nothing must fail it.
    folder = _case(tmp_path, "agents/performance-deploy-regression-7pct",
                   agent={"actions": [], "acceptable": []})
    score = _score(folder, tmp_path, shipped_policies, runbook_index)
    assert not score.passed
    assert _failed(score) == {"nothing ran": "rollback_deploy(search, to_version=4.7.3)"}
    assert score.wrong_actions_run == 1


def test_approvals_are_judged_and_answered_by_the_cases_human(
        tmp_path: Path, shipped_policies: Policies, runbook_index: RunbookIndex) -> None:
    # The rightsizing scale_in waits for a person; a human who says no keeps it from running.
    folder = _case(tmp_path, "agents/cost-spike-from-scaling-change",
                   change={"human": "reject"})
    score = _score(folder, tmp_path, shipped_policies, runbook_index)
    assert score.passed  # asked (approval: true), and nothing ran
    (proposal,) = score.proposals
    assert (proposal.decision, proposal.verdict, proposal.ran) == ("needs_approval", "reject",
                                                                   False)
    no_human = _case(tmp_path / "n", "agents/cost-spike-from-scaling-change",
                     agent={"approval": False})
    failed = _failed(_score(no_human, tmp_path / "n", shipped_policies, runbook_index))
    assert failed == {"no human was asked": "asked: scale_in(recommendations, replicas=8) "
                                            "(remediation.yaml:actions.scale_in.outcome.SEV4)"}


@pytest.mark.parametrize(("change", "agent", "message"), [
    ({"simulation": None}, {}, "an agent case needs `agent` and `simulation`"),
    ({}, {"name": "astrologer"}, "agent.name: unknown agent 'astrologer'; agents: "),
    ({}, {"state": "missing"}, "agent.state: no folder 'missing' in the case"),
    ({"expected": [{"service": "search", "severity": "SEV3", "specialists": "capacity",
                    "root_cause": {"category": "disk"}, "approval": False}]}, {},
     "expected: an agent case's answer key is under `agent`"),
    ({}, {"findings": [{"kind": "x", "data": {"n": {"min": "many"}}}]},
     "agent.findings.0.data.n"),
    ({}, {"every": 0}, "agent.every: Input should be greater than or equal to 1"),
])
def test_agent_case_mistakes_say_where(tmp_path: Path, change: dict[str, Any],
                                       agent: dict[str, Any], message: str) -> None:
    folder = _case(tmp_path, "agents/capacity-stable-fleet", change, agent)
    with pytest.raises(CaseError) as err:
        load_case(folder, folder.parents[1])
    assert str(folder / "case.yaml") in str(err.value)
    assert message in str(err.value)


def test_the_planned_activity_mark_is_what_keeps_the_migration_quiet(
        tmp_path: Path, shipped_policies: Policies, runbook_index: RunbookIndex) -> None:
    marked = _score(_case(tmp_path / "m", "agents/cost-planned-migration"), tmp_path / "m",
                    shipped_policies, runbook_index)
    assert marked.passed
    # The same production and key without the state the CLI wrote: the spend is raised.
    unmarked = _score(_case(tmp_path / "u", "agents/cost-planned-migration",
                            agent={"state": None}), tmp_path / "u",
                      shipped_policies, runbook_index)
    failed = _failed(unmarked)
    (raised,) = [d for c, d in failed.items() if c.startswith("no finding cost_anomaly_*")]
    assert "cost_anomaly_" in raised and "search" in raised
    assert "no signal" in failed
