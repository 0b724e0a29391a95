"""Unsafe policies: SEV1 without a human is an error, other lost safety nets are warnings.

Each case copies the shipped policies, changes one setting and checks what `policy check`
says about it; the shipped policies themselves must say nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli import run
from test_policy_support import POLICIES_DIR, copy_policies, edit

from opsloop.graph.runner import OperateLoop
from opsloop.policy import PolicyError, PolicyProblem, ProblemLevel, check_policies, load_policies
from opsloop.settings import Settings

ERROR, WARN = ProblemLevel.ERROR, ProblemLevel.WARNING
SEV1_AUTO = ("remediation.yaml", "SEV1: {outcome: needs_approval, notify: true}",
             "SEV1: {outcome: auto, notify: true}")


@dataclass(frozen=True)
class Case:
    """One dangerous change: edits (file, old, new), and the problem it must produce."""

    edits: tuple[tuple[str, str, str], ...]
    file: str
    field: str
    level: ProblemLevel


def _silence(matchers: str, starts: str = "2026-11-02T06:00:00Z",
             ends: str = "2026-11-02T18:00:00Z") -> tuple[str, str, str]:
    return ("intake.yaml", "silences: []",
            f"silences:\n  - matchers: {matchers}\n    startsAt: {starts}\n    endsAt: {ends}\n"
            "    createdBy: alice\n    comment: test")


CASES: dict[str, Case] = {
    # 1. Errors: any way a SEV1 action could run without a human.
    "sev1-ceiling-auto": Case((SEV1_AUTO,), "remediation.yaml", "severities.SEV1.outcome", ERROR),
    "action-says-sev1-auto": Case(
        (("remediation.yaml", "  restart:\n    risk: reduces\n",
          "  restart:\n    risk: reduces\n    outcome: {SEV1: auto}\n"),),
        "remediation.yaml", "actions.restart.outcome.SEV1", ERROR),
    "action-outcome-auto-shorthand": Case(
        (("remediation.yaml", "  purge_logs:\n    risk: reduces\n",
          "  purge_logs:\n    risk: reduces\n    outcome: auto\n"),),
        "remediation.yaml", "actions.purge_logs.outcome", ERROR),
    "default-outcome-auto": Case(
        (("remediation.yaml", "default_outcome: deny", "default_outcome: auto"),),
        "remediation.yaml", "default_outcome", ERROR),
    "kill-switch-rolls-back": Case(
        (("rollback.yaml", "action: disable_flag", "action: rollback_deploy"),),
        "rollback.yaml", "kill_switch.action", ERROR),
    "sev1-pages-nobody": Case(
        (("severity.yaml", "SEV1: {page: true,", "SEV1: {page: false,"),),
        "severity.yaml", "escalation.SEV1.page", ERROR),
    # 2. Warnings: rate limits an agent can flap a service under.
    "unbounded-per-service-rate": Case(
        (("remediation.yaml", "max_auto_per_service_per_hour: 3",
          "max_auto_per_service_per_hour: 1000000"),),
        "remediation.yaml", "rate_limits.max_auto_per_service_per_hour", WARN),
    "unbounded-per-incident-rate": Case(
        (("remediation.yaml", "max_auto_per_incident: 5", "max_auto_per_incident: 999"),),
        "remediation.yaml", "rate_limits.max_auto_per_incident", WARN),
    # 3. Warnings: triage that can never say SEV1 or SEV2, however it is written.
    "every-incident-sev4-by-catch-all": Case(
        (("severity.yaml", "rules:\n", "rules:\n  - name: everything\n"
          "    when: {tier_gte: 1, error_ratio_gte: 0}\n    severity: SEV4\n"),),
        "severity.yaml", "rules", WARN),
    "every-incident-sev4-by-rule-severities": Case(
        tuple(("severity.yaml", f"severity: SEV{n}\n", "severity: SEV4\n")
              for n in (1, 1, 2, 2, 2, 2, 3, 3)),
        "severity.yaml", "rules", WARN),
    "no-tier-1-service-so-no-sev1": Case(
        tuple(("severity.yaml", f"    {s}: 1\n", f"    {s}: 2\n")
              for s in ("web", "api-gateway", "checkout", "payments", "postgres")),
        "severity.yaml", "rules", WARN),
    "sev1-rule-behind-a-sev3-rule": Case(
        (("severity.yaml", "rules:\n",
          "rules:\n  - name: early-degraded\n    when: {tier_lte: 2}\n    severity: SEV3\n"),),
        "severity.yaml", "rules[1]", WARN),
    "sev1-rule-that-cannot-match": Case(
        (("severity.yaml", "when: {tier_lte: 1, error_ratio_gte: 0.2}",
          "when: {tier_lte: 1, error_ratio_gte: 0.2, error_ratio_lte: 0.1}"),),
        "severity.yaml", "rules[0]", WARN),
    # 4. Warnings: alerts that never reach anyone.
    "silence-everything-until-2100": Case(
        (_silence("['alertname=~\".*\"']", "2026-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),),
        "intake.yaml", "silences[0].matchers", WARN),
    "silence-for-months": Case(
        (_silence("['alertname=\"HighErrorRate\"', 'service=\"web\"']",
                  "2026-11-02T00:00:00Z", "2027-01-02T00:00:00Z"),),
        "intake.yaml", "silences[0].endsAt", WARN),
    "silence-a-whole-environment": Case(
        (_silence("['env=\"prod\"']"),), "intake.yaml", "silences[0].matchers", WARN),
    "silence-every-page": Case(
        (_silence("['severity=\"page\"']"),), "intake.yaml", "silences[0].matchers", WARN),
    "ticket-mutes-page": Case(
        (("intake.yaml", "  - source_matchers: ['severity=\"page\"']\n"
          "    target_matchers: ['severity=\"ticket\"']",
          "  - source_matchers: ['severity=\"ticket\"']\n"
          "    target_matchers: ['severity=\"page\"']"),),
        "intake.yaml", "inhibit_rules[0]", WARN),
    "inhibition-across-every-service": Case(
        (("intake.yaml", "    target_matchers: ['severity=\"ticket\"']\n    equal: [service]",
          "    target_matchers: ['alertname=\"HighErrorRate\"']"),),
        "intake.yaml", "inhibit_rules[0]", WARN),
    # 5. Warnings: unattended actions with fewer nets than the house rules promise.
    "outside-incident-auto": Case(
        (("remediation.yaml", "outside_incident: needs_approval", "outside_incident: auto"),),
        "remediation.yaml", "outside_incident", WARN),
    "sev2-acts-silently": Case(
        (("remediation.yaml", "SEV2: {outcome: auto, notify: true}",
          "SEV2: {outcome: auto, notify: false}"),),
        "remediation.yaml", "severities.SEV2.notify", WARN),
    "capacity-removal-unattended": Case(
        (("remediation.yaml", "    risk: adds                     # removing capacity\n"
          "    outcome: needs_approval\n", "    risk: adds\n"),),
        "remediation.yaml", "actions.scale_in", WARN),
    "scale-to-zero-unattended": Case(
        (("remediation.yaml", "    risk: adds                     # removing capacity\n"
          "    outcome: needs_approval\n", "    risk: adds\n"),
         ("capacity.yaml", "defaults: {min: 2, max: 30}", "defaults: {min: 0, max: 30}")),
        "capacity.yaml", "replicas.defaults.min", WARN),
}


def _apply(tmp_path: Path, *edits: tuple[str, str, str]) -> Path:
    directory = copy_policies(tmp_path)
    for name, old, new in edits:
        edit(directory, name, old, new)
    return directory


def _unsafe(directory: Path) -> list[PolicyProblem]:
    return [p for p in check_policies(directory) if p.unsafe]


def test_the_shipped_policies_are_safe() -> None:
    assert _unsafe(POLICIES_DIR) == []


@pytest.mark.parametrize("name", CASES)
def test_each_danger_is_reported_at_its_level(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    problems = _unsafe(_apply(tmp_path, *case.edits))
    found = [p for p in problems if Path(p.file).name == case.file and p.field == case.field]
    assert found, [str(p) for p in problems]
    assert {p.level for p in found} == {case.level}, [str(p) for p in found]
    # A warning case must not be an error somewhere else either: levels mean something.
    if case.level is WARN:
        assert all(p.level is WARN for p in problems), [str(p) for p in problems]
    assert all(p.has_value and p.message for p in found)


def test_a_problem_names_file_line_field_value_and_reason(tmp_path: Path) -> None:
    [problem] = _unsafe(_apply(tmp_path, SEV1_AUTO))
    assert problem.value == "auto" and problem.line is not None
    text = str(problem)
    assert "remediation.yaml" in text and "severities.SEV1.outcome = 'auto'" in text
    assert "without a human" in text and "needs_approval" in text


def test_an_action_saying_sev1_auto_is_an_error_though_the_ceiling_holds_it(
        tmp_path: Path) -> None:
    directory = _apply(tmp_path, *CASES["action-says-sev1-auto"].edits)
    [problem] = _unsafe(directory)
    assert "still holds it" in problem.message
    assert problem.level is ERROR


@pytest.mark.parametrize("extra", [
    ("rollback.yaml", "  automatic: true", "  automatic: false"),
    ("remediation.yaml", "  rollback_deploy:\n    risk: reduces\n",
     "  rollback_deploy:\n    risk: reduces\n    outcome: {SEV1: needs_approval}\n"),
])
def test_a_kill_switch_that_still_asks_at_sev1_is_fine(
        extra: tuple[str, str, str], tmp_path: Path) -> None:
    directory = _apply(tmp_path, *CASES["kill-switch-rolls-back"].edits, extra)
    assert _unsafe(directory) == []


def test_the_rate_limit_bound_is_what_verification_windows_allow(tmp_path: Path) -> None:
    # The shortest verification window in rollback.yaml is 5 min: 12 actions an hour.
    limit = ("remediation.yaml", "max_auto_per_service_per_hour: 3",
             "max_auto_per_service_per_hour: {}")
    at = _apply(tmp_path / "at", (limit[0], limit[1], limit[2].format(12)))
    above = _apply(tmp_path / "above", (limit[0], limit[1], limit[2].format(13)))
    assert _unsafe(at) == []
    assert [p.field for p in _unsafe(above)] == ["rate_limits.max_auto_per_service_per_hour"]


def test_losing_tier_1_kills_the_sev1_rules_and_says_why(tmp_path: Path) -> None:
    directory = _apply(tmp_path, *CASES["no-tier-1-service-so-no-sev1"].edits)
    problems = _unsafe(directory)
    [summary] = [p for p in problems if p.field == "rules"]
    assert summary.value == "SEV1" and "no service has a tier" in summary.message
    # The two SEV1 rules and the three tier-1 SEV2 rules; SEV2 stays reachable via tier 2.
    assert {p.field for p in problems} == {"rules", *(f"rules[{i}]" for i in range(5))}


def test_a_narrow_short_silence_is_fine(tmp_path: Path) -> None:
    directory = _apply(tmp_path, _silence(
        "['alertname=\"ErrorBudgetBurn\"', 'severity=\"ticket\"', 'service=\"checkout\"']"))
    assert _unsafe(directory) == []


def test_a_thirty_day_silence_is_the_longest_allowed(tmp_path: Path) -> None:
    matchers = "['alertname=\"HighErrorRate\"']"
    fine = _apply(tmp_path / "a", _silence(matchers, "2026-11-01T00:00:00Z",
                                           "2026-12-01T00:00:00Z"))
    long = _apply(tmp_path / "b", _silence(matchers, "2026-11-01T00:00:00Z",
                                           "2026-12-01T00:01:00Z"))
    assert _unsafe(fine) == []
    assert [p.field for p in _unsafe(long)] == ["silences[0].endsAt"]


# --- the command line --------------------------------------------------------------------


def test_policy_check_fails_on_an_unsafe_setting(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    directory = _apply(tmp_path, SEV1_AUTO)
    code, out, _ = run(capsys, "policy", "check", str(directory))
    assert code == 1
    assert "error: " in out and "unsafe: severities.SEV1.outcome" in out
    assert "policies OK" not in out


def test_allow_unsafe_downgrades_the_error_but_still_shows_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    directory = _apply(tmp_path, SEV1_AUTO)
    code, out, _ = run(capsys, "policy", "check", str(directory), "--allow-unsafe", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["allow_unsafe"] is True
    [problem] = report["problems"]
    assert (problem["level"], problem["unsafe"], problem["allowed"]) == ("warning", True, True)
    assert problem["field"] == "severities.SEV1.outcome"

    code, out, _ = run(capsys, "policy", "check", str(directory), "--allow-unsafe")
    assert code == 0 and "unsafe (allowed): severities.SEV1.outcome" in out
    assert "policies OK" not in out and "1 allowed by --allow-unsafe" in out


def test_allow_unsafe_does_not_excuse_other_errors(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    directory = _apply(tmp_path, SEV1_AUTO, (
        "remediation.yaml", "max_auto_per_incident: 5", "max_auto_per_incident: lots"))
    code, out, _ = run(capsys, "policy", "check", str(directory), "--allow-unsafe")
    assert code == 1 and "max_auto_per_incident" in out


# --- running the loop ----------------------------------------------------------------------


def test_loading_unsafe_policies_is_refused_without_the_opt_in(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = _apply(tmp_path, SEV1_AUTO)
    with pytest.raises(PolicyError) as caught:
        load_policies(directory)
    message = str(caught.value)
    assert "remediation.yaml" in message and "severities.SEV1.outcome" in message
    assert "OPSLOOP_ALLOW_UNSAFE_POLICIES=1" in message
    policies = load_policies(directory, allow_unsafe=True)
    assert policies.remediation.severities["SEV1"].outcome == "auto"
    assert any("unsafe (allowed)" in w for w in policies.warnings)
    said = [r.getMessage() for r in caplog.records if r.name == "opsloop.policy"]
    assert any("severities.SEV1.outcome" in m for m in said)  # never silently


def test_the_demo_refuses_unsafe_policies_without_a_traceback(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_POLICIES_DIR", str(_apply(tmp_path, SEV1_AUTO)))
    monkeypatch.delenv("OPSLOOP_ALLOW_UNSAFE_POLICIES", raising=False)
    work = tmp_path / "work"
    code, _, err = run(capsys, "demo", "--scenario", "disk_filling", "--work-dir", str(work))
    assert code == 1
    assert "severities.SEV1.outcome" in err and "Traceback" not in err
    assert not (work / "state" / "opsloop.db").exists()


def test_the_loop_runs_unsafe_policies_when_the_operator_opts_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLOOP_POLICIES_DIR", str(_apply(tmp_path, SEV1_AUTO)))
    monkeypatch.setenv("OPSLOOP_ALLOW_UNSAFE_POLICIES", "1")
    settings = Settings(work_dir=tmp_path / "work")
    assert settings.allow_unsafe_policies is True
    loop = OperateLoop(settings)
    try:
        assert loop.policies.remediation.severities["SEV1"].outcome == "auto"
    finally:
        loop.close()
    monkeypatch.setenv("OPSLOOP_ALLOW_UNSAFE_POLICIES", "0")
    with pytest.raises(PolicyError):
        OperateLoop(Settings(work_dir=tmp_path / "work2"))
