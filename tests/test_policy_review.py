"""The policy review: evidence in stored incidents becomes checked, replayed policy diffs,
and nothing under the policies directory changes."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_policy_replay import alert_only, recorded

from opsloop.models import Incident, Severity, Verdict
from opsloop.policy import Policies, check_policies, load_policies
from opsloop.scheduled.agents.policy_review import PolicyReview
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.settings import REPO_ROOT, Settings
from opsloop.simulator import SimEnvironment
from opsloop.store import IncidentStore

DUE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def policies(tmp_path: Path) -> Policies:
    copy = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", copy)
    return load_policies(copy)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    s = IncidentStore(tmp_path / "work" / "state" / "opsloop.db")
    yield s
    s.close()


def review(tmp_path: Path, policies: Policies, store: IncidentStore,
           incidents: list[Incident]) -> tuple[Analysis, dict[str, Any]]:
    for incident in incidents:
        store.save_incident(incident)
    env = SimEnvironment.create("bad_deploy", 7)
    ctx = AgentContext(run_id="run-1", agent="policy-review", due_at=DUE, now=env.now(),
                       settings=Settings(work_dir=tmp_path / "work",
                                         policies_dir=policies.source_dir),
                       policies=policies, telemetry=env, store=store)
    agent = PolicyReview()
    observed = json.loads(json.dumps(agent.observe(ctx)))  # what a checkpoint keeps
    analysis = agent.analyse(ctx, observed)
    data = json.loads((ctx.reports_dir / "policy-2026-12-01.json").read_text())
    return analysis, {p["subject"]: p for p in data["proposals"]}


def scale_ins(policies: Policies, numbers: range, verdicts: list[Verdict] | None = None
              ) -> list[Incident]:
    verdicts = verdicts or [Verdict.APPROVE] * len(numbers)
    return [recorded(n, policies, action="scale_in", service="recommendations",
                     severity=Severity.SEV3, params={"replicas": 8}, replicas=10, verdict=v)
            for n, v in zip(numbers, verdicts, strict=True)]


def test_an_always_approved_rule_gets_a_relaxing_diff_that_checks_and_replays_to_auto(
        tmp_path: Path, policies: Policies, store: IncidentStore) -> None:
    before = digest(policies.source_dir)
    analysis, proposals = review(tmp_path, policies, store, scale_ins(policies, range(1, 4)))

    relax = proposals["scale_in at SEV3"]
    assert relax["status"] == "proposed" and relax["problems"] == []
    assert relax["rule"] == "remediation.yaml:actions.scale_in.outcome.SEV3"
    assert relax["incidents"] == ["INC-0001", "INC-0002", "INC-0003"]
    assert relax["counts"] == {"held": 3, "approved": 3, "failed_verification": 0}
    assert relax["replay"]["transitions"] == {"needs_approval -> auto": 3}
    diff = Path(relax["diff_file"]).read_text()
    assert Path(relax["diff_file"]).name == "1-remediation.yaml.diff"
    assert "-    outcome: needs_approval\n" in diff
    assert "+    outcome: {SEV1: needs_approval, SEV2: needs_approval, SEV4: needs_approval}" \
        in diff
    assert "+    notify: true" in diff
    # The diff, applied to a copy by hand, passes the same check the review ran.
    applied = tmp_path / "applied"
    shutil.copytree(policies.source_dir, applied)
    text = (applied / "remediation.yaml").read_text()
    (applied / "remediation.yaml").write_text(text.replace(
        "    outcome: needs_approval\n    params:\n      replicas",
        "    outcome: {SEV1: needs_approval, SEV2: needs_approval, SEV4: needs_approval}\n"
        "    notify: true\n    params:\n      replicas", 1))
    assert not [p for p in check_policies(applied) if p.level == "error"]
    assert load_policies(applied).remediation.actions["scale_in"].notify
    assert digest(policies.source_dir) == before  # proposals only
    assert any(f.kind == "policy_relax" for f in analysis.findings)


def test_a_failed_automatic_action_gets_a_tightening_diff(
        tmp_path: Path, policies: Policies, store: IncidentStore) -> None:
    failed = recorded(1, policies, action="restart", service="checkout",
                      severity=Severity.SEV2, failed=True)
    held = recorded(2, policies, action="restart", service="checkout", severity=Severity.SEV3)
    _, proposals = review(tmp_path, policies, store, [failed, held])

    tighten = proposals["restart at SEV2"]
    assert tighten["kind"] == "tighten" and tighten["status"] == "proposed"
    assert tighten["rule"] == "remediation.yaml:severities.SEV2"
    assert tighten["incidents"] == ["INC-0001"]
    assert tighten["counts"] == {"failed_verification": 1, "partial": 0}
    assert "+    outcome: {SEV2: needs_approval}" in Path(tighten["diff_file"]).read_text()
    assert tighten["replay"]["transitions"] == {"auto -> needs_approval": 1}
    assert [a["incident"] for a in tighten["replay"]["changed"]] == ["INC-0001"]
    assert "restart at SEV3" not in proposals  # it held: no evidence against it


def test_relaxing_sev1_is_reported_as_rejected_with_the_policy_check_problems(
        tmp_path: Path, policies: Policies, store: IncidentStore) -> None:
    rollbacks = [recorded(n, policies, action="rollback_deploy", service="checkout",
                          severity=Severity.SEV1) for n in (1, 2, 3)]
    restarts = [recorded(n, policies, action="restart", service="search",
                         severity=Severity.SEV1) for n in (4, 5, 6)]
    analysis, proposals = review(tmp_path, policies, store, [*rollbacks, *restarts])

    # One ceiling held both action types: one proposal with the evidence of both.
    sev1 = proposals["restart at SEV1, rollback_deploy at SEV1"]
    assert sev1["rule"] == "remediation.yaml:severities.SEV1"
    assert sev1["counts"] == {"held": 6, "approved": 6, "failed_verification": 0}
    assert len(sev1["incidents"]) == 6
    assert sev1["status"] == "rejected"
    assert any("severities.SEV1.outcome" in p for p in sev1["problems"])
    assert sev1["diff_file"] and Path(sev1["diff_file"]).is_file()
    report = (tmp_path / "work" / "reports" / "policy-2026-12-01.md").read_text()
    assert "rejected" in report and "policy check:" in report
    assert any(f.level == "warning" and f.kind == "policy_relax" for f in analysis.findings)


def test_an_alert_that_never_led_to_action_gets_a_longer_for(
        tmp_path: Path, policies: Policies, store: IncidentStore) -> None:
    quiet = [alert_only(n, "DiskFilling") for n in (1, 2, 3)]
    # HighErrorRate opened three incidents too, but one of them acted: no proposal.
    acted = [alert_only(n, "HighErrorRate") for n in (4, 5)] + [
        recorded(6, policies, action="restart", service="checkout", severity=Severity.SEV3)]
    _, proposals = review(tmp_path, policies, store, [*quiet, *acted])

    alert = proposals["DiskFilling"]
    assert alert["kind"] == "alert" and alert["status"] == "proposed"
    assert alert["incidents"] == ["INC-0001", "INC-0002", "INC-0003"]
    diff = Path(alert["diff_file"]).read_text()
    assert "-    for_minutes: 2\n" in diff and "+    for_minutes: 4\n" in diff
    assert "HighErrorRate" not in proposals


def test_too_little_or_mixed_evidence_proposes_nothing_and_a_rerun_replaces(
        tmp_path: Path, policies: Policies, store: IncidentStore) -> None:
    two = scale_ins(policies, range(1, 3))  # below the minimum of three
    # Three approvals, enough on their own, but one human said no: not "always approved".
    mixed = [recorded(n, policies, action="failover", service="payments",
                      severity=Severity.SEV2, verdict=v)
             for n, v in zip((3, 4, 5, 10), (Verdict.APPROVE, Verdict.REJECT, Verdict.APPROVE,
                                             Verdict.APPROVE), strict=True)]
    # Approved every time, but one of the fixes failed verification.
    failing = [recorded(n, policies, action="scale_in", service="recommendations",
                        severity=Severity.SEV4, params={"replicas": 8}, replicas=10,
                        failed=n == 13) for n in (11, 12, 13)]
    analysis, proposals = review(tmp_path, policies, store, [*two, *mixed, *failing])
    assert proposals == {}
    assert "No rule has enough evidence" in (
        tmp_path / "work" / "reports" / "policy-2026-12-01.md").read_text()

    for incident in scale_ins(policies, range(6, 9)):
        store.save_incident(incident)
    _, proposals = review(tmp_path, policies, store, [])
    _, again = review(tmp_path, policies, store, [])
    assert list(again) == list(proposals) == ["scale_in at SEV3"]
    diffs = sorted(p.name for p in (tmp_path / "work" / "reports" / "policy-2026-12-01").iterdir())
    assert diffs == ["1-remediation.yaml.diff"]
    assert analysis.proposals == []  # policy changes are never actions on production
